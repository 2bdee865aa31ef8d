//! One port, three doors, over real sockets: native clients, WebSocket clients in the three
//! gateway carriages (binary, JSON, legacy), and plain HTTP for the web page.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use common::{connect, wait_for};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::session::{Config, Event, Session};
use tidings_core::ws::{
    ClientHandshake, ClientRequest, CloseCode, WsConfig, WsConnection, WsEvent, TIDINGS_SUBPROTOCOL,
};
use tidings_smol::{
    ClientEvent, DoorConfig, Server, ServerConfig, ServerEvent, ServerHandle, WebAsset,
};

const PAGE: &[u8] = b"<!doctype html><title>tidings</title>";

/// A server with a web page and a short head timeout, on its own thread.
struct DoorServer {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DoorServer {
    fn start(head_timeout: Duration) -> DoorServer {
        DoorServer::with(DoorConfig {
            head_timeout,
            ..page()
        })
    }

    fn with(doors: DoorConfig) -> DoorServer {
        DoorServer::with_config(ServerConfig::default(), doors)
    }

    fn with_config(config: ServerConfig, doors: DoorConfig) -> DoorServer {
        let server = smol::block_on(Server::bind("127.0.0.1:0", config))
            .unwrap()
            .with_doors(doors);
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = std::thread::spawn(move || smol::block_on(server.run()).unwrap());
        DoorServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

/// Doors with a small web page.
fn page() -> DoorConfig {
    {
        DoorConfig {
            web: vec![
                WebAsset {
                    path: "/index.html",
                    content_type: "text/html; charset=utf-8",
                    body: PAGE,
                },
                WebAsset {
                    path: "/app.js",
                    content_type: "text/javascript; charset=utf-8",
                    body: b"console.log(1)",
                },
            ],
            ..DoorConfig::default()
        }
    }
}

impl Drop for DoorServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            smol::block_on(self.handle.shutdown("test over"));
            let _ = t.join();
        }
    }
}

/// Fails the test instead of hanging when `fut` takes more than 30 s.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    future::or(fut, async {
        async_io::Timer::after(Duration::from_secs(30)).await;
        panic!("timed out");
    })
    .await
}

/// A WebSocket client over a real socket, built from the core's handshake and connection.
struct WsClient {
    stream: TcpStream,
    ws: WsConnection,
    protocol: Option<String>,
}

impl WsClient {
    async fn connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> WsClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let host = addr.to_string();
        let request = ClientRequest {
            host: &host,
            path,
            key: *b"0123456789abcdef",
            protocols,
            origin: None,
        };
        let (mut handshake, bytes) = ClientHandshake::new(&request, 8192).unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 4096];
        let accepted = loop {
            let n = within(stream.read(&mut buf)).await.unwrap();
            assert!(n > 0, "the server closed during the handshake");
            if let Some(accepted) = handshake.feed(&buf[..n]).unwrap() {
                break accepted;
            }
        };
        // Masks from a counter: fine for a test, a real client draws them at random.
        let mut counter: u32 = 0;
        let mut ws = WsConnection::client(WsConfig::default(), move || {
            counter = counter.wrapping_add(0x9E37_79B9);
            counter.to_le_bytes()
        });
        ws.handle_input(Instant::now(), &handshake.take_remaining());
        WsClient {
            stream,
            ws,
            protocol: accepted.protocol,
        }
    }

    async fn flush(&mut self) {
        while let Some(bytes) = self.ws.poll_transmit() {
            self.stream.write_all(&bytes).await.unwrap();
        }
    }

    async fn send_text(&mut self, text: &str) {
        self.ws.send_text(text).unwrap();
        self.flush().await;
    }

    async fn send_binary(&mut self, data: &[u8]) {
        self.ws.send_binary(data).unwrap();
        self.flush().await;
    }

    /// The next event; pings are answered on the way.
    async fn next(&mut self) -> WsEvent {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Some(ev) = self.ws.poll_event() {
                self.flush().await;
                return ev;
            }
            let n = within(self.stream.read(&mut buf)).await.unwrap_or(0);
            if n == 0 {
                self.ws.handle_eof(Instant::now());
            } else {
                self.ws.handle_input(Instant::now(), &buf[..n]);
            }
        }
    }

    /// The next text message containing `needle` (other messages are skipped).
    async fn text_with(&mut self, needle: &str) -> String {
        loop {
            match self.next().await {
                WsEvent::Text(t) if t.as_str().contains(needle) => return t.as_str().to_string(),
                WsEvent::Text(_) | WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                other => panic!("waiting for {needle:?}, got {other:?}"),
            }
        }
    }
}

/// Sends what the session queued, in binary messages.
async fn pump_out(ws: &mut WsClient, session: &mut Session) {
    while let Some(b) = session.poll_transmit() {
        ws.send_binary(&b).await;
    }
}

/// The session's next event, feeding it the binary messages received.
async fn next_session_event(ws: &mut WsClient, session: &mut Session) -> Event {
    loop {
        if let Some(ev) = session.poll_event() {
            return ev;
        }
        match ws.next().await {
            WsEvent::Binary(b) => session.handle_input(Instant::now(), &b),
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Sends a raw HTTP request and returns the whole answer (the server closes after it).
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    within(stream.read_to_end(&mut answer)).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn binary_websocket_client_chats_with_a_native_client() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut ws = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        assert_eq!(ws.protocol.as_deref(), Some(TIDINGS_SUBPROTOCOL));
        // The native stream, carried in binary messages, spoken by the core's own session.
        let mut session = Session::client(Config::default(), "wsbin", Instant::now()).unwrap();
        pump_out(&mut ws, &mut session).await;
        let ev = next_session_event(&mut ws, &mut session).await;
        assert!(matches!(ev, Event::Connected(_)), "{ev:?}");
        wait_for(&native, |e| *e == ClientEvent::Joined("wsbin".into())).await;

        session
            .send_text("", "hello from a binary websocket")
            .unwrap();
        pump_out(&mut ws, &mut session).await;
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            heard,
            ClientEvent::Text {
                from: "wsbin".into(),
                private: false,
                text: "hello from a binary websocket".into()
            }
        );

        native.say("hello back").await.unwrap();
        loop {
            if let Event::Text { peer, text, .. } = next_session_event(&mut ws, &mut session).await
            {
                assert_eq!((peer.as_str(), text.as_str()), ("nat", "hello back"));
                break;
            }
        }
    });
}

#[test]
fn json_websocket_client_chats_and_whispers_to_one_peer_only() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let target = connect(server.addr, "target").await;
        let other = connect(server.addr, "other").await;
        let mut ws = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        ws.send_text(r#"{"type":"hello","name":"jay","capabilities":0,"max_frame":1048576}"#)
            .await;
        let welcome = ws.text_with(r#""type":"welcome""#).await;
        assert!(welcome.contains(r#""name":"jay""#), "{welcome}");

        ws.send_text(r#"{"type":"text","peer":"target","text":"psst"}"#)
            .await;
        ws.send_text(r#"{"type":"text","peer":"","text":"hello all"}"#)
            .await;
        let whisper = wait_for(&target, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            whisper,
            ClientEvent::Text {
                from: "jay".into(),
                private: true,
                text: "psst".into()
            }
        );
        // The first text `other` hears is the public one: the whisper never reached it.
        let heard = wait_for(&other, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            heard,
            ClientEvent::Text {
                from: "jay".into(),
                private: false,
                text: "hello all".into()
            }
        );

        // Presence and replies come back as JSON.
        let late = connect(server.addr, "late").await;
        let joined = ws.text_with(r#""type":"presence""#).await;
        assert!(joined.contains(r#""name":"late""#), "{joined}");
        late.say_to("jay", "hi jay").await.unwrap();
        let reply = ws.text_with(r#""text":"hi jay""#).await;
        assert!(reply.contains(r#""peer":"late""#), "{reply}");
        assert!(reply.contains(r#""private":true"#), "{reply}");
    });
}

#[test]
fn legacy_websocket_client_speaks_plain_text() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut qt = WsClient::connect(server.addr, "/ws?name=qt", &[]).await;
        assert_eq!(qt.protocol, None);
        wait_for(&native, |e| *e == ClientEvent::Joined("qt".into())).await;
        qt.send_text("hello from qt").await;
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            heard,
            ClientEvent::Text {
                from: "qt".into(),
                private: false,
                text: "hello from qt".into()
            }
        );
        native.say_to("qt", "hi qt").await.unwrap();
        let got = qt.text_with("hi qt").await;
        assert_eq!(got, r#"{"src":"nat","dst":"qt","msg":"hi qt"}"#);
    });
}

/// Text lines until the close, which ends the list as `close CODE: REASON`.
async fn lines_until_close(ws: &mut WsClient) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match ws.next().await {
            WsEvent::Text(t) => got.push(t.as_str().to_string()),
            WsEvent::Close { code, reason } => {
                got.push(format!("close {}: {reason}", code.0));
                return got;
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            other => panic!("expected lines and a close, got {other:?}"),
        }
    }
}

#[test]
fn legacy_client_hears_who_is_online_and_why_it_is_turned_away() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut qt1 = WsClient::connect(server.addr, "/ws?name=qt1", &[]).await;
        let mut qt2 = WsClient::connect(server.addr, "/ws?name=qt2", &[]).await;
        // Each one's first message is who was online when it joined, itself included.
        let WsEvent::Text(first) = qt1.next().await else {
            panic!()
        };
        assert_eq!(
            first.as_str(),
            r#"{"src":"server","dst":"","msg":"online (2): nat, qt1"}"#
        );
        let WsEvent::Text(first) = qt2.next().await else {
            panic!()
        };
        assert_eq!(
            first.as_str(),
            r#"{"src":"server","dst":"","msg":"online (3): nat, qt1, qt2"}"#
        );

        // A taken name: one readable line, then the close with the reason.
        let mut imp = WsClient::connect(server.addr, "/ws?name=NAT", &[]).await;
        assert_eq!(
            lines_until_close(&mut imp).await,
            [
                r#"{"src":"server","dst":"NAT","msg":"refused: name-taken: the name NAT is taken"}"#,
                "close 1008: the name NAT is taken"
            ]
        );

        // Kicked by the operator: the same.
        wait_for(&native, |e| *e == ClientEvent::Joined("qt2".into())).await;
        server.handle.kick("qt1", "flooding").await.unwrap();
        let got = lines_until_close(&mut qt1).await;
        assert_eq!(
            got[got.len() - 2..],
            [
                r#"{"src":"server","dst":"qt1","msg":"goodbye: kicked: flooding"}"#.to_string(),
                "close 1008: flooding".to_string()
            ],
            "{got:?}"
        );

        // And at shutdown.
        server.handle.shutdown("maintenance").await;
        let got = lines_until_close(&mut qt2).await;
        assert_eq!(
            got[got.len() - 2..],
            [
                r#"{"src":"server","dst":"qt2","msg":"goodbye: shutdown: maintenance"}"#
                    .to_string(),
                "close 1001: maintenance".to_string()
            ],
            "{got:?}"
        );
    });
}

#[test]
fn plain_http_serves_the_page_and_refuses_the_rest() {
    let server = DoorServer::start(Duration::from_secs(10));
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

        let old = http(
            server.addr,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        )
        .await;
        assert!(old.starts_with("HTTP/1.1 426 "), "{old}");
        assert!(old.contains("Sec-WebSocket-Version: 13\r\n"));

        let garbled = http(server.addr, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").await;
        assert!(garbled.starts_with("HTTP/1.1 400 "), "{garbled}");

        let nameless = http(
            server.addr,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await;
        assert!(nameless.starts_with("HTTP/1.1 400 "), "{nameless}");
    });
}

#[test]
fn a_silent_client_is_dropped_while_others_keep_chatting() {
    let timeout = Duration::from_millis(300);
    let server = DoorServer::start(timeout);
    smol::block_on(async {
        let started = Instant::now();
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let mut half_http = TcpStream::connect(server.addr).await.unwrap();
        half_http
            .write_all(b"GET / HTTP/1.1\r\nHost:")
            .await
            .unwrap();

        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        alice.say("still here").await.unwrap();
        wait_for(&bob, |e| matches!(e, ClientEvent::Text { .. })).await;

        let mut buf = [0u8; 64];
        let n = within(silent.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "dropped without an answer");
        let n = within(half_http.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "an unfinished head is dropped too");
        assert!(started.elapsed() >= timeout);

        bob.say("and still chatting").await.unwrap();
        let ev = wait_for(&alice, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(ev, ClientEvent::Text { text, .. } if text == "and still chatting"));
    });
}

#[test]
fn an_unmasked_client_frame_is_closed_with_1002_and_others_are_served() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let mut rude = WsClient::connect(server.addr, "/ws?name=rude", &[]).await;
        // A text frame "hi" without the mask bit: servers must fail the connection.
        rude.stream
            .write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .unwrap();
        loop {
            match rude.next().await {
                WsEvent::Close { code, .. } => {
                    assert_eq!(code, CloseCode::PROTOCOL_ERROR);
                    break;
                }
                WsEvent::Ping(_) | WsEvent::Pong(_) | WsEvent::Text(_) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }

        let mut polite = WsClient::connect(server.addr, "/ws?name=polite", &[]).await;
        let native = connect(server.addr, "nat").await;
        polite.send_text("fine here").await;
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(heard, ClientEvent::Text { from, .. } if from == "polite"));
    });
}

#[test]
fn bytes_that_are_neither_native_nor_http_get_a_native_error() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"hello?\r\n").await.unwrap();
        let mut answer = Vec::new();
        within(stream.read_to_end(&mut answer)).await.unwrap();
        // The native preamble, then an error frame naming the problem.
        assert!(answer.starts_with(&[0x89, b'T', b'D', b'G']), "{answer:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("tidings magic"), "{text}");
    });
}

#[test]
fn a_kicked_client_that_never_answers_the_close_is_cut_off_after_the_bound() {
    let closing_timeout = Duration::from_millis(300);
    let doors = page();
    let server = DoorServer::with(DoorConfig {
        ws: WsConfig {
            close_timeout: closing_timeout,
            ..doors.ws
        },
        ..doors
    });
    smol::block_on(async {
        let mut deaf = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        deaf.send_text(r#"{"type":"hello","name":"deaf","capabilities":0,"max_frame":1048576}"#)
            .await;
        deaf.text_with(r#""type":"welcome""#).await;
        server.handle.kick("deaf", "test").await.unwrap();
        // Read the server's close frame without ever sending the reply.
        let mut buf = vec![0u8; 4096];
        let closed_at = loop {
            match deaf.ws.poll_event() {
                Some(WsEvent::Close { .. }) => break Instant::now(),
                Some(_) => continue,
                None => {}
            }
            let n = within(deaf.stream.read(&mut buf)).await.unwrap();
            assert!(n > 0, "the socket ended before the close frame");
            deaf.ws.handle_input(Instant::now(), &buf[..n]);
        };
        let n = within(deaf.stream.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0, "nothing follows the close frame");
        // Measured from when the client saw the close: the server's clock started earlier.
        assert!(closed_at.elapsed() >= closing_timeout / 2);

        // A polite client's close handshake ends at once, and the server goes on.
        let mut polite = WsClient::connect(server.addr, "/ws?name=polite", &[]).await;
        polite
            .ws
            .close(Instant::now(), CloseCode::NORMAL, "bye")
            .unwrap();
        polite.flush().await;
        loop {
            if let WsEvent::Close { code, .. } = polite.next().await {
                assert_eq!(code, CloseCode::NORMAL);
                break;
            }
        }
        let n = within(polite.stream.read(&mut buf)).await.unwrap_or(0);
        assert_eq!(n, 0);
        let native = connect(server.addr, "nat").await;
        assert_eq!(native.online_at_join(), ["nat"]);
    });
}

#[test]
fn shutdown_closes_websocket_clients_with_going_away() {
    let server = DoorServer::start(Duration::from_secs(10));
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut ws = WsClient::connect(server.addr, "/ws?name=qt", &[]).await;
        wait_for(&native, |e| *e == ClientEvent::Joined("qt".into())).await;
        let handle = server.handle.clone();
        handle.shutdown("maintenance").await;
        loop {
            match ws.next().await {
                WsEvent::Close { code, .. } => {
                    assert_eq!(code, CloseCode::GOING_AWAY);
                    break;
                }
                WsEvent::Text(_) | WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    });
    drop(server);
}

#[test]
fn a_websocket_client_that_stops_reading_is_dropped_as_a_slow_consumer() {
    // The hub can only see a stalled reader if the connection task leaves the backlog in
    // the hub instead of buffering it: this fails if the WebSocket task takes without bound.
    let mut config = ServerConfig::default();
    config.hub.session.max_queued_output = 1 << 20;
    let server = DoorServer::with_config(config, page());
    smol::block_on(async {
        let watcher = connect(server.addr, "watcher").await;
        let talker = connect(server.addr, "talker").await;
        let mut slow = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        slow.send_text(r#"{"type":"hello","name":"slow","capabilities":0,"max_frame":1048576}"#)
            .await;
        slow.text_with(r#""type":"welcome""#).await;
        wait_for(&watcher, |e| *e == ClientEvent::Joined("slow".into())).await;
        // From here on `slow` never reads again. Each broadcast waits until `watcher` has it,
        // so `slow`'s task gets to run between two of them (a task taking without bound
        // would drain the hub each time and the hub would never see the backlog).
        let big = "x".repeat(60_000);
        let mut dropped = false;
        for _ in 0..2000 {
            talker.say(&big).await.unwrap();
            match wait_for(&watcher, |e| {
                matches!(e, ClientEvent::Text { .. })
                    || matches!(e, ClientEvent::Left(n) if n == "slow")
            })
            .await
            {
                ClientEvent::Left(_) => {
                    dropped = true;
                    break;
                }
                _ => continue,
            }
        }
        assert!(dropped, "120 MB later the stalled client is still served");
        let events = server.handle.events();
        let reason = loop {
            if let Ok(ServerEvent::Left { name, reason, .. }) = within(events.recv()).await {
                if name == "slow" {
                    break reason;
                }
            }
        };
        assert!(reason.contains("slow"), "{reason}");
        talker.say("still fine").await.unwrap();
        wait_for(
            &watcher,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "still fine"),
        )
        .await;
        drop(slow);
    });
}

/// A figure, not a check of speed: how many JSON chat messages per second one WebSocket
/// client gets through the gateway to a native client (all must arrive, in order).
/// `cargo test --release -p tidings-smol --test websocket -- --ignored --nocapture`
#[test]
#[ignore]
fn json_chat_rate_to_a_native_client() {
    const N: usize = 50_000;
    // A throughput figure: the message-rate limit (on by default) would measure itself.
    let mut config = ServerConfig::default();
    config.hub.message_rate = 0;
    let server = DoorServer::with_config(
        config,
        DoorConfig {
            head_timeout: Duration::from_secs(10),
            ..page()
        },
    );
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut ws = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        ws.send_text(r#"{"type":"hello","name":"fast","capabilities":0,"max_frame":1048576}"#)
            .await;
        ws.text_with(r#""type":"welcome""#).await;
        wait_for(&native, |e| *e == ClientEvent::Joined("fast".into())).await;
        let started = Instant::now();
        let receive = async {
            for i in 0..N {
                let ev = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
                assert!(matches!(ev, ClientEvent::Text { text, .. } if text == format!("m{i}")));
            }
        };
        let send = async {
            for i in 0..N {
                let json = format!(r#"{{"type":"text","peer":"nat","text":"m{i}"}}"#);
                ws.ws.send_text(&json).unwrap();
                if i % 256 == 255 {
                    ws.flush().await;
                }
            }
            ws.flush().await;
            future::pending::<()>().await;
        };
        future::or(receive, send).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{N} JSON messages over WebSocket to a native client in {secs:.3} s: {:.0} msg/s",
            N as f64 / secs
        );
    });
}
