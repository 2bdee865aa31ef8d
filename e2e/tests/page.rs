//! The web page over plain HTTP on the server's one port, against both servers, and the
//! answers to every request that is not for the page.

use std::net::SocketAddr;

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use tidings_e2e::smol_client::{connect, wait_for};
use tidings_e2e::{
    for_both_servers, in_time, web_with_page, ClientEvent, ConnLimit, ServerConfig, ServerKind,
    TestServer, PAGE,
};

for_both_servers! {
    native: [],
    web: [
        plain_http_serves_the_page_and_refuses_the_rest,
        http_visitors_beyond_the_connection_limit_get_503_with_the_reason,
    ],
}

/// Sends a raw HTTP request and returns the whole answer (the server closes after it).
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    in_time(stream.read_to_end(&mut answer)).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A WebSocket upgrade request for `/ws` (no name, no subprotocol) in protocol `version`.
fn upgrade_to_ws(version: u32) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    .into_bytes()
}

fn plain_http_serves_the_page_and_refuses_the_rest(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let page = http(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(page.contains("Cache-Control: no-cache\r\n"));
        assert!(page.contains(&format!("Content-Length: {}\r\n", PAGE.len())));
        assert!(page.ends_with(std::str::from_utf8(PAGE).unwrap()));

        let index = http(server.addr, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
        let js = http(server.addr, b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(js.contains("Content-Type: text/javascript"), "{js}");

        let missing = http(server.addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

        let post = http(
            server.addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");

        let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..400 {
            huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
        }
        huge.extend_from_slice(b"\r\n");
        assert!(huge.len() > 8192);
        let too_big = http(server.addr, &huge).await;
        assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");

        let old = http(server.addr, &upgrade_to_ws(8)).await;
        assert!(old.starts_with("HTTP/1.1 426 "), "{old}");
        assert!(old.contains("Sec-WebSocket-Version: 13\r\n"));

        let garbled = http(server.addr, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").await;
        assert!(garbled.starts_with("HTTP/1.1 400 "), "{garbled}");

        // No name (`?name=`, `Origin`) and no subprotocol: nobody to register.
        let nameless = http(server.addr, &upgrade_to_ws(13)).await;
        assert!(nameless.starts_with("HTTP/1.1 400 "), "{nameless}");
    });
}

fn http_visitors_beyond_the_connection_limit_get_503_with_the_reason(kind: ServerKind) {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let web = web_with_page(std::time::Duration::from_secs(10));
    let server = TestServer::start_with(kind, config, web);
    smol::block_on(async {
        let only = connect(server.addr, "only").await;
        let reason = ConnLimit::Total.reason();
        for request in [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            upgrade_to_ws(13),
        ] {
            let answer = http(server.addr, &request).await;
            assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
            assert!(answer.contains("Retry-After: "), "{answer}");
            assert!(answer.ends_with(reason), "{answer}");
        }
        // The one admitted client is served all along.
        only.request_list().await.unwrap();
        wait_for(&only, |e| matches!(e, ClientEvent::PeerList(_))).await;
    });
}
