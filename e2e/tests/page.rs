//! The web page over plain HTTP on the server's one port, against both servers, and the
//! answers to every request that is not for the page, whether too large or beyond the
//! connection limit.

use std::net::SocketAddr;
use std::time::Duration;

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use tidings_core::ws::TIDINGS_SUBPROTOCOL;
use tidings_e2e::smol_client::{connect, wait_for};
use tidings_e2e::{
    closed_without_answer, for_both_servers, in_time, web_with_page, ClientEvent, ConnLimit,
    ServerConfig, ServerKind, TestServer, WebConfig, PAGE,
};

for_both_servers! {
    native: [],
    web: [
        plain_http_serves_the_page_and_refuses_the_rest,
        an_oversize_request_head_is_answered_431_under_its_knob,
        visitors_beyond_the_connection_limit_get_503_with_the_reason,
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

/// A WebSocket upgrade request for `target` (`/ws`, `/ws?name=…`; no subprotocol) in
/// protocol `version`.
fn upgrade_to_ws(target: &str, version: u32) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    .into_bytes()
}

/// The body of an HTTP answer: what follows the head.
fn body(answer: &str) -> &str {
    &answer[answer.find("\r\n\r\n").expect("a complete head") + 4..]
}

fn plain_http_serves_the_page_and_refuses_the_rest(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let page = http(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
        assert!(page.contains("\r\nCache-Control: no-cache\r\n"));
        assert!(page.contains(&format!("\r\nContent-Length: {}\r\n", PAGE.len())));
        assert_eq!(body(&page).as_bytes(), PAGE);

        let index = http(server.addr, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(index, page);
        // A query string does not change which file is served.
        for request in [
            &b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /app.js?v=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let js = http(server.addr, request).await;
            assert!(js.starts_with("HTTP/1.1 200 OK\r\n"), "{js}");
            assert!(js.contains("\r\nContent-Type: text/javascript"), "{js}");
            assert_eq!(body(&js), "console.log(1)", "{js}");
        }

        // Every other request is refused: its status, and what the answer must say.
        let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..400 {
            huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
        }
        huge.extend_from_slice(b"\r\n");
        assert!(huge.len() > 8192);
        let (old_ws, nameless_ws) = (upgrade_to_ws("/ws", 8), upgrade_to_ws("/ws", 13));
        let refusals: Vec<(&[u8], &str, &str)> = vec![
            (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "404 ", ""),
            (
                b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
                "404 ",
                "",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                "405 ",
                "\r\nAllow: GET\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                "405 ",
                "\r\nAllow: GET\r\n",
            ),
            (&huge, "431 ", ""),
            (&old_ws, "426 ", "\r\nSec-WebSocket-Version: 13\r\n"),
            (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400 ", ""),
            // No name (`?name=`, `Origin`) and no subprotocol: nobody to register. The answer
            // names the subprotocol to ask for.
            (&nameless_ws, "400 ", TIDINGS_SUBPROTOCOL),
        ];
        for (request, status, says) in refusals {
            let answer = http(server.addr, request).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.contains(says),
                "expected {status}with {says:?}: {answer}"
            );
        }
    });

    // Without a page configured, the same request for the page is a 404.
    let bare = TestServer::start(kind, ServerConfig::default());
    let none = smol::block_on(http(bare.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(none.starts_with("HTTP/1.1 404 "), "{none}");
}

fn an_oversize_request_head_is_answered_431_under_its_knob(kind: ServerKind) {
    let web = WebConfig {
        max_head_bytes: 512,
        ..web_with_page(Duration::from_secs(10))
    };
    let server = TestServer::start_with(kind, ServerConfig::default(), web);
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.extend_from_slice(format!("X-Filler: {}\r\n\r\n", "y".repeat(600)).as_bytes());
    smol::block_on(async {
        let too_big = http(server.addr, &head).await;
        assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");
        // The default limit (8 KiB) takes the same head.
        let roomy = TestServer::with_page(kind);
        let served = http(roomy.addr, &head).await;
        assert!(served.starts_with("HTTP/1.1 200 "), "{served}");

        // And a head that never ends is cut off at the limit, answered, not read forever.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let filler = [b'a'; 256];
        let mut sent = 0;
        while sent < 64 << 10 {
            match in_time(stream.write(&filler)).await {
                Ok(n) => sent += n,
                Err(_) => break, // the server answered and closed
            }
        }
        let mut answer = Vec::new();
        let _ = in_time(stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    });
}

fn visitors_beyond_the_connection_limit_get_503_with_the_reason(kind: ServerKind) {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let web = web_with_page(Duration::from_secs(10));
    let server = TestServer::start_with(kind, config, web);
    smol::block_on(async {
        let only = connect(server.addr, "only").await;
        let reason = ConnLimit::Total.reason();
        // A visitor for the page, a WebSocket client that would be admitted otherwise, and
        // one that would not: the limit is told before the request is looked at.
        for request in [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            upgrade_to_ws("/ws?name=qt", 13),
            upgrade_to_ws("/ws", 13),
        ] {
            let answer = http(server.addr, &request).await;
            assert!(
                answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
                "{answer}"
            );
            assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
            assert!(answer.ends_with(reason), "{answer}");
        }

        // Bytes that are neither native nor HTTP are just closed.
        let mut stranger = TcpStream::connect(server.addr).await.unwrap();
        stranger.write_all(b"\x16\x03\x01\x02\x00").await.unwrap();
        assert!(closed_without_answer(&mut stranger).await);

        // The one admitted client is served all along.
        only.request_list().await.unwrap();
        wait_for(&only, |e| matches!(e, ClientEvent::PeerList(_))).await;
    });
}
