//! The thread-per-connection server's one port beyond native clients, over real sockets:
//! WebSocket clients (JSON, binary and plain legacy chat, with an independent client,
//! tungstenite) chatting with native ones, the web page over plain HTTP, refusals at the
//! connection limits, and slow or hostile first bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Event, Session};
use tidings_std::{
    Client, ClientConfig, ClientEvent, ConnLimit, ServerConfig, ServerEvent, WebAsset, WebConfig,
    WS_PATH,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

mod common;

use common::{start, start_with, Running};

const PAGE: &[u8] = b"<!doctype html><title>tidings</title>";
const SCRIPT: &[u8] = b"console.log(1)";

/// How long any single wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn page() -> WebConfig {
    WebConfig {
        page: vec![
            WebAsset {
                path: "/index.html",
                content_type: "text/html; charset=utf-8",
                body: PAGE,
            },
            WebAsset {
                path: "/app.js",
                content_type: "text/javascript; charset=utf-8",
                body: SCRIPT,
            },
        ],
        ..WebConfig::default()
    }
}

fn serve_page() -> Running {
    serve(page())
}

/// A server with default limits whose port serves `web`.
fn serve(web: WebConfig) -> Running {
    start_with(ServerConfig::default(), web)
}

fn native(addr: SocketAddr, name: &str) -> Client {
    Client::connect(addr, name, ClientConfig::default()).unwrap()
}

fn wait(client: &Client, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let ev = client
            .next_event_timeout(PATIENCE)
            .expect("an event in time");
        if pred(&ev) {
            return ev;
        }
    }
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// A WebSocket client on `path` (`/ws`, `/ws?name=…`) offering `protocol`, if any.
fn ws_connect(addr: SocketAddr, path: &str, protocol: Option<&str>) -> Ws {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    let (ws, response) = tungstenite::client(request, stream).expect("upgraded");
    let chosen = response.headers().get("Sec-WebSocket-Protocol");
    assert_eq!(chosen.map(|v| v.to_str().unwrap()), protocol);
    ws
}

/// The next text message containing `needle`; other texts, pings and pongs are skipped.
fn text_with(ws: &mut Ws, needle: &str) -> String {
    loop {
        match ws.read().expect("a message in time") {
            Message::Text(text) if text.as_str().contains(needle) => return text.to_string(),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

/// Whether the server closed `stream` without sending a byte (rather than the wait timing
/// out).
fn closed_without_answer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => got.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset && got.is_empty(),
    }
}

/// Sends a raw request and returns the whole answer (the server closes after it).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("closed in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_json_websocket_client_chats_with_native_clients() {
    let server = serve_page();
    let target = native(server.addr, "target");
    let other = native(server.addr, "other");
    let mut ws = ws_connect(server.addr, WS_PATH, Some("tidings.v1"));
    let hello = r#"{"type":"hello","name":"jay","capabilities":0,"max_frame":1048576}"#;
    ws.send(Message::text(hello)).unwrap();
    let welcome = text_with(&mut ws, r#""type":"welcome""#);
    assert!(welcome.contains(r#""name":"jay""#), "{welcome}");

    ws.send(Message::text(
        r#"{"type":"text","peer":"target","text":"psst"}"#,
    ))
    .unwrap();
    ws.send(Message::text(
        r#"{"type":"text","peer":"","text":"hello all"}"#,
    ))
    .unwrap();
    let whisper = wait(&target, |e| matches!(e, ClientEvent::Text { .. }));
    assert_eq!(
        whisper,
        ClientEvent::Text {
            from: "jay".into(),
            private: true,
            text: "psst".into()
        }
    );
    // The first text `other` hears is the public one: the whisper never reached it.
    let heard = wait(&other, |e| matches!(e, ClientEvent::Text { .. }));
    assert_eq!(
        heard,
        ClientEvent::Text {
            from: "jay".into(),
            private: false,
            text: "hello all".into()
        }
    );

    // Presence and replies come back as JSON.
    let late = native(server.addr, "late");
    let joined = text_with(&mut ws, r#""type":"presence""#);
    assert!(joined.contains(r#""name":"late""#), "{joined}");
    late.say_to("jay", "hi jay").unwrap();
    let reply = text_with(&mut ws, r#""text":"hi jay""#);
    assert!(reply.contains(r#""peer":"late""#), "{reply}");
    assert!(reply.contains(r#""private":true"#), "{reply}");

    // Leaving with a close frame: the others hear that jay left.
    ws.close(None).unwrap();
    wait(&target, |e| *e == ClientEvent::Left("jay".into()));
}

#[test]
fn a_binary_websocket_client_speaks_the_native_stream() {
    let server = serve_page();
    let nat = native(server.addr, "nat");
    let mut ws = ws_connect(server.addr, WS_PATH, Some("tidings.v1"));
    // The native stream, carried in binary messages, spoken by the core's own session.
    let mut session = Session::client(Config::default(), "wsbin", Instant::now()).unwrap();
    let flush = |ws: &mut Ws, session: &mut Session| {
        while let Some(bytes) = session.poll_transmit() {
            ws.send(Message::binary(bytes.to_vec())).unwrap();
        }
    };
    let next_event = |ws: &mut Ws, session: &mut Session| loop {
        if let Some(ev) = session.poll_event() {
            return ev;
        }
        match ws.read().expect("a message in time") {
            Message::Binary(bytes) => session.handle_input(Instant::now(), &bytes),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    flush(&mut ws, &mut session);
    let ev = next_event(&mut ws, &mut session);
    assert!(matches!(ev, Event::Connected(_)), "{ev:?}");
    wait(&nat, |e| *e == ClientEvent::Joined("wsbin".into()));

    session.send_text("", "hello from binary").unwrap();
    flush(&mut ws, &mut session);
    let heard = wait(&nat, |e| matches!(e, ClientEvent::Text { .. }));
    assert_eq!(
        heard,
        ClientEvent::Text {
            from: "wsbin".into(),
            private: false,
            text: "hello from binary".into()
        }
    );
    nat.say("hello back").unwrap();
    loop {
        if let Event::Text { peer, text, .. } = next_event(&mut ws, &mut session) {
            assert_eq!((peer.as_str(), text.as_str()), ("nat", "hello back"));
            break;
        }
    }
}

#[test]
fn a_legacy_websocket_client_speaks_plain_text_and_hears_shutdown() {
    let server = serve_page();
    let nat = native(server.addr, "nat");
    let mut qt = ws_connect(server.addr, "/ws?name=qt", None);
    let online = text_with(&mut qt, "online");
    assert_eq!(
        online,
        r#"{"src":"server","dst":"","msg":"online (2): nat, qt"}"#
    );
    wait(&nat, |e| *e == ClientEvent::Joined("qt".into()));
    qt.send(Message::text("hello from qt")).unwrap();
    let heard = wait(&nat, |e| matches!(e, ClientEvent::Text { .. }));
    assert_eq!(
        heard,
        ClientEvent::Text {
            from: "qt".into(),
            private: false,
            text: "hello from qt".into()
        }
    );
    nat.say_to("qt", "hi qt").unwrap();
    assert_eq!(
        text_with(&mut qt, "hi qt"),
        r#"{"src":"nat","dst":"qt","msg":"hi qt"}"#
    );

    // At shutdown: a readable line, then the close `going away` with the reason.
    server.handle.shutdown("maintenance");
    let line = text_with(&mut qt, "goodbye");
    assert_eq!(
        line,
        r#"{"src":"server","dst":"qt","msg":"goodbye: shutdown: maintenance"}"#
    );
    loop {
        match qt.read() {
            Ok(Message::Close(Some(close))) => {
                assert_eq!(close.code, CloseCode::Away);
                assert_eq!(close.reason.as_str(), "maintenance");
                break;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected the close, got {other:?}"),
        }
    }
    // The client's reply completes the close handshake and the server lets go at once.
    assert!(matches!(
        qt.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_page_is_served_over_plain_http_and_nothing_else() {
    let server = serve_page();
    let index = http(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
    assert!(index.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert!(index.contains("\r\nCache-Control: no-cache\r\n"));
    assert!(index.contains(&format!("\r\nContent-Length: {}\r\n", PAGE.len())));
    let body = &index[index.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body.as_bytes(), PAGE);
    let same = http(server.addr, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(same, index);
    let js = http(server.addr, b"GET /app.js?v=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(js.contains("Content-Type: text/javascript"), "{js}");
    assert!(js.ends_with("\r\n\r\nconsole.log(1)"), "{js}");

    let missing = http(
        server.addr,
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let post = http(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");
    let garbled = http(server.addr, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n");
    assert!(garbled.starts_with("HTTP/1.1 400 "), "{garbled}");
    let old = http(
        server.addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(old.starts_with("HTTP/1.1 426 "), "{old}");
    let nameless = http(
        server.addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(nameless.starts_with("HTTP/1.1 400 "), "{nameless}");
    assert!(nameless.contains("tidings.v1"), "{nameless}");

    // Without a page configured, the same request is a 404.
    let bare = start(ServerConfig::default());
    let none = http(bare.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(none.starts_with("HTTP/1.1 404 "), "{none}");
}

#[test]
fn an_oversize_request_head_is_answered_431_under_its_knob() {
    let server = serve(WebConfig {
        max_head_bytes: 512,
        ..page()
    });
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.extend_from_slice(format!("X-Filler: {}\r\n\r\n", "y".repeat(600)).as_bytes());
    let too_big = http(server.addr, &head);
    assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");
    // The default limit (8 KiB) takes the same head.
    let roomy = serve_page();
    let served = http(roomy.addr, &head);
    assert!(served.starts_with("HTTP/1.1 200 "), "{served}");
    // And a head that never ends is cut off at the limit, answered, not read forever.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let filler = [b'a'; 256];
    let mut sent = 0;
    while sent < 64 << 10 {
        match stream.write(&filler) {
            Ok(n) => sent += n,
            Err(_) => break, // the server answered and closed
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn http_and_websocket_visitors_beyond_the_limit_get_503_with_the_reason() {
    let server = start_with(
        ServerConfig {
            max_connections: 1,
            ..ServerConfig::default()
        },
        page(),
    );
    let _only = native(server.addr, "only");
    let refused = http(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused}"
    );
    assert!(refused.contains("\r\nRetry-After: 5\r\n"), "{refused}");
    assert!(refused.ends_with(ConnLimit::Total.reason()), "{refused}");

    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("ws://{}/ws?name=qt", server.addr)
        .into_client_request()
        .unwrap();
    match tungstenite::client(request, stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected a 503, got {:?}", other.map(|(_, r)| r)),
    }

    // Bytes that are neither native nor HTTP are just closed.
    let mut stranger = TcpStream::connect(server.addr).unwrap();
    stranger.write_all(b"\x16\x03\x01\x02\x00").unwrap();
    assert!(closed_without_answer(&mut stranger));
}

#[test]
fn silent_and_unfinished_visitors_are_dropped_while_others_chat() {
    let timeout = Duration::from_millis(300);
    let server = serve(WebConfig {
        head_timeout: timeout,
        ..page()
    });
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut half_method = TcpStream::connect(server.addr).unwrap();
    half_method.write_all(b"OPTI").unwrap();
    let mut half_head = TcpStream::connect(server.addr).unwrap();
    half_head.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    // One byte at a time, each well within the timeout, never finishing: the deadline is
    // for the whole head, not per read.
    let mut trickle = TcpStream::connect(server.addr).unwrap();
    trickle.write_all(b"GET / HTTP/1.1\r\n").unwrap();

    let alice = native(server.addr, "alice");
    let bob = native(server.addr, "bob");
    alice.say("still here").unwrap();
    wait(&bob, |e| matches!(e, ClientEvent::Text { .. }));

    let trickled = std::thread::spawn(move || {
        for _ in 0..40 {
            if trickle.write_all(b"X").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (closed_without_answer(&mut trickle), started.elapsed())
    });
    for (what, stream) in [
        ("silent", &mut silent),
        ("half a method", &mut half_method),
        ("half a head", &mut half_head),
    ] {
        assert!(closed_without_answer(stream), "{what} got an answer");
    }
    assert!(started.elapsed() >= timeout);
    let (unanswered, closed_after) = trickled.join().unwrap();
    assert!(unanswered, "the trickle got an answer");
    // Cut off by the deadline, well before it stopped trickling (40 × 50 ms).
    assert!(
        closed_after < Duration::from_millis(1500),
        "{closed_after:?}"
    );

    bob.say("and still chatting").unwrap();
    let ev = wait(&alice, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(matches!(ev, ClientEvent::Text { text, .. } if text == "and still chatting"));
}

#[test]
fn a_kicked_client_that_never_answers_the_close_is_cut_off_after_the_bound() {
    let closing_timeout = Duration::from_millis(400);
    let server = serve(WebConfig {
        closing_timeout,
        ..page()
    });
    let mut deaf = ws_connect(server.addr, WS_PATH, Some("tidings.v1"));
    let hello = r#"{"type":"hello","name":"deaf","capabilities":0,"max_frame":1048576}"#;
    deaf.send(Message::text(hello)).unwrap();
    text_with(&mut deaf, r#""type":"welcome""#);
    server.handle.kick("deaf", "test").unwrap();
    loop {
        match deaf.read().expect("the close in time") {
            Message::Close(Some(close)) => {
                assert_eq!(close.code, CloseCode::Policy);
                break;
            }
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected the close, got {other:?}"),
        }
    }
    // The client's reply to the close is never sent: tungstenite only sends it with its next
    // call, and the socket is read directly from here on.
    let seen = Instant::now();
    assert!(closed_without_answer(deaf.get_mut()));
    // Measured from when the client saw the close: the server's clock started earlier.
    assert!(
        seen.elapsed() >= closing_timeout / 2,
        "{:?}",
        seen.elapsed()
    );

    // A polite client's close handshake ends at once, and the server goes on.
    let mut polite = ws_connect(server.addr, "/ws?name=polite", None);
    polite.close(None).unwrap();
    let started = Instant::now();
    loop {
        match polite.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        started.elapsed() < closing_timeout,
        "{:?}",
        started.elapsed()
    );
    let nat = native(server.addr, "nat");
    assert_eq!(nat.online_at_join(), ["nat"]);
}

#[test]
fn a_websocket_message_over_its_limit_closes_that_connection_only() {
    let server = serve(WebConfig {
        ws: tidings_core::ws::WsConfig {
            max_message_size: 1024,
            max_frame_size: 1024,
        },
        ..page()
    });
    let nat = native(server.addr, "nat");
    let mut big = ws_connect(server.addr, "/ws?name=big", None);
    wait(&nat, |e| *e == ClientEvent::Joined("big".into()));
    big.send(Message::text("x".repeat(2000))).unwrap();
    loop {
        match big.read() {
            Ok(Message::Close(Some(close))) => {
                assert_eq!(close.code, CloseCode::Size);
                break;
            }
            Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
    wait(&nat, |e| *e == ClientEvent::Left("big".into()));
    // Within the limit, another one is served.
    let mut small = ws_connect(server.addr, "/ws?name=small", None);
    small.send(Message::text("x".repeat(1000))).unwrap();
    let heard = wait(&nat, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(
        matches!(heard, ClientEvent::Text { from, text, .. } if from == "small" && text.len() == 1000)
    );
}

#[test]
fn a_websocket_client_that_stops_reading_is_dropped_as_a_slow_consumer() {
    // The hub can only see a stalled reader if the connection's writer leaves the backlog in
    // the hub instead of buffering it: this fails if the writer takes without bound.
    let mut config = ServerConfig::default();
    config.hub.session.max_queued_output = 1 << 20;
    let server = start_with(config, page());
    let watcher = native(server.addr, "watcher");
    let talker = native(server.addr, "talker");
    let mut slow = ws_connect(server.addr, WS_PATH, Some("tidings.v1"));
    let hello = r#"{"type":"hello","name":"slow","capabilities":0,"max_frame":1048576}"#;
    slow.send(Message::text(hello)).unwrap();
    text_with(&mut slow, r#""type":"welcome""#);
    wait(&watcher, |e| *e == ClientEvent::Joined("slow".into()));
    // From here on `slow` never reads again. Each broadcast waits until `watcher` has it.
    let big = "x".repeat(60_000);
    let mut dropped = false;
    for _ in 0..2000 {
        talker.say(&big).unwrap();
        let ev = wait(&watcher, |e| {
            matches!(e, ClientEvent::Text { .. })
                || matches!(e, ClientEvent::Left(n) if n == "slow")
        });
        if matches!(ev, ClientEvent::Left(_)) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "120 MB later the stalled client is still served");
    let reason = loop {
        match server.handle.next_event_timeout(PATIENCE) {
            Some(ServerEvent::Left { name, reason, .. }) if name == "slow" => break reason,
            Some(_) => {}
            None => panic!("no Left event for slow"),
        }
    };
    assert!(reason.contains("slow"), "{reason}");
    talker.say("still fine").unwrap();
    wait(
        &watcher,
        |e| matches!(e, ClientEvent::Text { text, .. } if text == "still fine"),
    );
    drop(slow);
}

#[test]
fn bytes_that_are_neither_native_nor_http_get_the_native_error() {
    let server = serve_page();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"hello?\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("closed in time");
    // The native preamble, then an error frame naming the problem: what a native server
    // without a web side would answer.
    assert!(answer.starts_with(&[0x89, b'T', b'D', b'G']), "{answer:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("tidings magic"), "{text}");
}
