//! WebSocket clients on the server's one port, against both servers: the gateway's three
//! modes (binary, JSON through tungstenite, legacy plain text) chatting with native
//! clients, refusals, kicks and shutdown as close frames, and WebSocket clients that break
//! the rules (unmasked frames, a close never answered, a reader that stalls).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::session::{Config, Event, Session};
use tidings_core::ws::{
    ClientHandshake, ClientRequest, CloseCode, WsConfig, WsConnection, WsEvent, TIDINGS_SUBPROTOCOL,
};
use tidings_e2e::smol_client::{connect, wait_for};
use tidings_e2e::{
    closed_without_answer, for_both_servers, in_time, web_with_page, ClientEvent, ServerConfig,
    ServerEvent, ServerKind, TestServer, WebConfig, PATIENCE,
};

for_both_servers! {
    native: [],
    web: [
        binary_websocket_client_chats_with_a_native_client,
        json_websocket_client_chats_and_whispers_to_one_peer_only,
        legacy_websocket_client_speaks_plain_text,
        legacy_client_hears_who_is_online_and_why_it_is_turned_away,
        legacy_clients_with_a_room_chat_in_it_alone,
        with_accounts_json_clients_log_in_and_legacy_clients_are_guests,
        an_unmasked_client_frame_is_closed_with_1002_and_others_are_served,
        a_kicked_client_that_never_answers_the_close_is_cut_off_after_the_bound,
        shutdown_closes_websocket_clients_with_going_away,
        a_websocket_client_that_stops_reading_is_dropped_as_a_slow_consumer,
        a_websocket_message_over_its_limit_closes_that_connection_only,
        #[ignore]
        json_chat_rate_to_a_native_client,
    ],
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
            let n = in_time(stream.read(&mut buf)).await.unwrap();
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

    /// A client of the JSON mode, registered as `name`: returns once welcomed.
    async fn join_json(addr: SocketAddr, name: &str) -> WsClient {
        let mut ws = WsClient::connect(addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        let hello =
            format!(r#"{{"type":"hello","name":"{name}","capabilities":0,"max_frame":1048576}}"#);
        ws.send_text(&hello).await;
        ws.text_with(r#""type":"welcome""#).await;
        ws
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
            let n = in_time(self.stream.read(&mut buf)).await.unwrap_or(0);
            if n == 0 {
                self.ws.handle_eof(Instant::now());
            } else {
                self.ws.handle_input(Instant::now(), &buf[..n]);
            }
        }
    }

    /// The text messages up to the server's close frame, then that frame's code and reason
    /// (pings and pongs are skipped; the reply to the close is sent on the way).
    async fn until_close(&mut self) -> (Vec<String>, CloseCode, String) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                WsEvent::Text(t) => texts.push(t.as_str().to_string()),
                WsEvent::Close { code, reason } => return (texts, code, reason.to_string()),
                WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                other => panic!("expected texts and a close, got {other:?}"),
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

fn binary_websocket_client_chats_with_a_native_client(kind: ServerKind) {
    let server = TestServer::with_page(kind);
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

/// The JSON mode spoken by an independent client: tungstenite over a blocking socket,
/// asking for the tidings subprotocol.
fn tungstenite_client(addr: SocketAddr) -> tungstenite::WebSocket<std::net::TcpStream> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        TIDINGS_SUBPROTOCOL.parse().unwrap(),
    );
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let (ws, response) = tungstenite::client::client(request, stream).unwrap();
    assert_eq!(
        response.headers()["Sec-WebSocket-Protocol"],
        TIDINGS_SUBPROTOCOL
    );
    ws
}

fn send_json(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, json: &str) {
    ws.send(tungstenite::Message::text(json)).unwrap();
}

/// The next text message containing `needle` (other messages are skipped; tungstenite
/// answers pings on the way).
fn json_with(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, needle: &str) -> String {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) if t.as_str().contains(needle) => {
                return t.as_str().to_string()
            }
            tungstenite::Message::Text(_)
            | tungstenite::Message::Ping(_)
            | tungstenite::Message::Pong(_) => {}
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

fn json_websocket_client_chats_and_whispers_to_one_peer_only(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let target = connect(server.addr, "target").await;
        let other = connect(server.addr, "other").await;
        let mut ws = tungstenite_client(server.addr);
        send_json(
            &mut ws,
            r#"{"type":"hello","name":"jay","capabilities":0,"max_frame":1048576}"#,
        );
        let welcome = json_with(&mut ws, r#""type":"welcome""#);
        assert!(welcome.contains(r#""name":"jay""#), "{welcome}");

        send_json(&mut ws, r#"{"type":"text","peer":"target","text":"psst"}"#);
        send_json(&mut ws, r#"{"type":"text","peer":"","text":"hello all"}"#);
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
        let joined = json_with(&mut ws, r#""type":"presence""#);
        assert!(joined.contains(r#""name":"late""#), "{joined}");
        late.say_to("jay", "hi jay").await.unwrap();
        let reply = json_with(&mut ws, r#""text":"hi jay""#);
        assert!(reply.contains(r#""peer":"late""#), "{reply}");
        assert!(reply.contains(r#""private":true"#), "{reply}");

        // Leaving with a close frame: the others hear that jay left.
        ws.close(None).unwrap();
        wait_for(&target, |e| *e == ClientEvent::Left("jay".into())).await;
    });
}

fn legacy_websocket_client_speaks_plain_text(kind: ServerKind) {
    let server = TestServer::with_page(kind);
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

impl WsClient {
    /// The next message, which must be a text line.
    async fn first_line(&mut self) -> String {
        match self.next().await {
            WsEvent::Text(line) => line.as_str().to_string(),
            other => panic!("expected a text line, got {other:?}"),
        }
    }
}

/// Text lines until the close, which ends the list as `close CODE: REASON`.
async fn lines_until_close(ws: &mut WsClient) -> Vec<String> {
    let (mut got, code, reason) = ws.until_close().await;
    got.push(format!("close {}: {reason}", code.0));
    got
}

/// The JSON mode carries `login` before `hello` and `token` after `welcome` (spec §12.3);
/// the legacy door has no way to log in (section 12.4): its clients are guests, refused on a
/// registered name, and refused altogether unless guests are let in.
fn with_accounts_json_clients_log_in_and_legacy_clients_are_guests(kind: ServerKind) {
    let mut accounts = tidings_host::accounts::Accounts::default();
    accounts.set("jay", "jay-pw").unwrap();
    let policy = |guests| ServerConfig {
        accounts: Some(tidings_host::accounts::Policy {
            accounts: std::sync::Arc::new(accounts.clone()),
            guests,
            token_lifetime: tidings_host::accounts::TOKEN_LIFETIME,
            backoff: Default::default(),
        }),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(kind, policy(true), web_with_page(Duration::from_secs(10)));
    smol::block_on(async {
        let mut jay = WsClient::connect(server.addr, "/ws", &[TIDINGS_SUBPROTOCOL]).await;
        jay.send_text(r#"{"type":"login","method":"password","secret":"jay-pw"}"#)
            .await;
        jay.send_text(r#"{"type":"hello","name":"jay","capabilities":0,"max_frame":1048576}"#)
            .await;
        jay.text_with(r#""type":"welcome""#).await;
        let token = jay.text_with(r#""type":"token""#).await;
        assert!(token.contains(r#""token":""#), "{token}");

        let mut guest = WsClient::connect(server.addr, "/ws?name=qt", &[]).await;
        let WsEvent::Text(first) = guest.next().await else {
            panic!()
        };
        assert!(
            first.as_str().contains("online (2): jay, qt"),
            "{}",
            first.as_str()
        );
        let mut imp = WsClient::connect(server.addr, "/ws?name=JAY", &[]).await;
        let got = lines_until_close(&mut imp).await;
        assert!(
            got[0].contains("refused: auth-required: JAY is a registered name")
                && got[1].starts_with("close 1008"),
            "{got:?}"
        );
    });
    drop(server);
    let server =
        TestServer::start_with(kind, policy(false), web_with_page(Duration::from_secs(10)));
    smol::block_on(async {
        let mut guest = WsClient::connect(server.addr, "/ws?name=qt", &[]).await;
        let got = lines_until_close(&mut guest).await;
        assert!(got[0].contains("refused: auth-required"), "{got:?}");
    });
}

/// `?room=` (spec §12.4): two legacy clients in their own room hear each other and nobody
/// else hears them; a room the server refuses is told in one line before the close.
fn legacy_clients_with_a_room_chat_in_it_alone(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut qt1 = WsClient::connect(server.addr, "/ws?name=qt1&room=team", &[]).await;
        assert_eq!(
            qt1.first_line().await,
            r#"{"src":"server","dst":"","msg":"online (1): qt1"}"#
        );
        let mut qt2 = WsClient::connect(server.addr, "/ws?name=qt2&room=Team", &[]).await;
        assert_eq!(
            qt2.first_line().await,
            r#"{"src":"server","dst":"","msg":"online (2): qt1, qt2"}"#
        );
        qt1.text_with("qt2 joined").await;

        qt1.send_text("hi team").await;
        qt1.send_text(r#"{"dst":"nat","msg":"after"}"#).await;
        assert_eq!(
            qt2.text_with("hi team").await,
            r#"{"src":"qt1","dst":"","msg":"hi team"}"#
        );
        // The hub handles qt1's messages in order: had the room's line reached the lobby,
        // it would come before the private one.
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            heard,
            ClientEvent::Text {
                from: "qt1".into(),
                private: true,
                text: "after".into()
            }
        );

        let mut bad = WsClient::connect(server.addr, "/ws?name=qt3&room=no+way", &[]).await;
        let got = lines_until_close(&mut bad).await;
        assert!(
            got.len() == 2
                && got[0].contains("refused: room-refused: \\\"no way\\\" is not a room name")
                && got[1].starts_with("close 1008"),
            "{got:?}"
        );
    });
}

fn legacy_client_hears_who_is_online_and_why_it_is_turned_away(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        // Each one's first message is who was online when it joined, itself included. The
        // second connects once the first has joined: the order of two joins in flight at
        // once is the server's to choose.
        let mut qt1 = WsClient::connect(server.addr, "/ws?name=qt1", &[]).await;
        assert_eq!(
            qt1.first_line().await,
            r#"{"src":"server","dst":"","msg":"online (2): nat, qt1"}"#
        );
        let mut qt2 = WsClient::connect(server.addr, "/ws?name=qt2", &[]).await;
        assert_eq!(
            qt2.first_line().await,
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
        server.kick("qt1", "flooding").unwrap();
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
        server.shutdown("maintenance");
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

fn an_unmasked_client_frame_is_closed_with_1002_and_others_are_served(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let mut rude = WsClient::connect(server.addr, "/ws?name=rude", &[]).await;
        // A text frame "hi" without the mask bit: servers must fail the connection.
        rude.stream
            .write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .unwrap();
        let (_, code, _) = rude.until_close().await;
        assert_eq!(code, CloseCode::PROTOCOL_ERROR);

        let mut polite = WsClient::connect(server.addr, "/ws?name=polite", &[]).await;
        let native = connect(server.addr, "nat").await;
        polite.send_text("fine here").await;
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(heard, ClientEvent::Text { from, .. } if from == "polite"));
    });
}

fn a_kicked_client_that_never_answers_the_close_is_cut_off_after_the_bound(kind: ServerKind) {
    let closing_timeout = Duration::from_millis(400);
    let server = TestServer::start_with(kind, ServerConfig::default(), {
        let mut web = web_with_page(Duration::from_secs(10));
        web.ws.close_timeout = closing_timeout;
        web
    });
    smol::block_on(async {
        let mut deaf = WsClient::join_json(server.addr, "deaf").await;
        server.kick("deaf", "test").unwrap();
        // Read the server's close frame without ever sending the reply.
        let mut buf = vec![0u8; 4096];
        let closed_at = loop {
            match deaf.ws.poll_event() {
                Some(WsEvent::Close { code, .. }) => {
                    assert_eq!(code, CloseCode::POLICY_VIOLATION);
                    break Instant::now();
                }
                Some(_) => continue,
                None => {}
            }
            let n = in_time(deaf.stream.read(&mut buf)).await.unwrap();
            assert!(n > 0, "the socket ended before the close frame");
            deaf.ws.handle_input(Instant::now(), &buf[..n]);
        };
        assert!(
            closed_without_answer(&mut deaf.stream).await,
            "nothing follows the close frame"
        );
        // Measured from when the client saw the close: the server's clock started earlier.
        assert!(closed_at.elapsed() >= closing_timeout / 2);

        // A polite client's close handshake ends at once, and the server goes on.
        let mut polite = WsClient::connect(server.addr, "/ws?name=polite", &[]).await;
        polite
            .ws
            .close(Instant::now(), CloseCode::NORMAL, "bye")
            .unwrap();
        let started = Instant::now();
        polite.flush().await;
        let (_, code, _) = polite.until_close().await;
        assert_eq!(code, CloseCode::NORMAL);
        assert!(closed_without_answer(&mut polite.stream).await);
        assert!(
            started.elapsed() < closing_timeout,
            "{:?}",
            started.elapsed()
        );
        let native = connect(server.addr, "nat").await;
        assert_eq!(native.online_at_join(), ["nat"]);
    });
}

fn shutdown_closes_websocket_clients_with_going_away(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut ws = WsClient::connect(server.addr, "/ws?name=qt", &[]).await;
        wait_for(&native, |e| *e == ClientEvent::Joined("qt".into())).await;
        server.shutdown("maintenance");
        let (_, code, reason) = ws.until_close().await;
        assert_eq!(
            (code, reason.as_str()),
            (CloseCode::GOING_AWAY, "maintenance")
        );
        // The client's reply completes the close handshake: the server lets go at once, not
        // after its closing timeout (5 s).
        assert!(closed_without_answer(&mut ws.stream).await);
    });
    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn a_websocket_client_that_stops_reading_is_dropped_as_a_slow_consumer(kind: ServerKind) {
    // The hub can only see a stalled reader if the connection task leaves the backlog in
    // the hub instead of buffering it: this fails if the WebSocket task takes without bound.
    let mut config = ServerConfig::default();
    config.hub.session.max_queued_output = 1 << 20;
    let server = TestServer::start_with(kind, config, web_with_page(Duration::from_secs(10)));
    smol::block_on(async {
        let watcher = connect(server.addr, "watcher").await;
        let talker = connect(server.addr, "talker").await;
        let slow = WsClient::join_json(server.addr, "slow").await;
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
        let ServerEvent::Left { reason, .. } =
            server.wait_event(|e| matches!(e, ServerEvent::Left { name, .. } if name == "slow"))
        else {
            unreachable!()
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

fn a_websocket_message_over_its_limit_closes_that_connection_only(kind: ServerKind) {
    let web = WebConfig {
        ws: WsConfig {
            max_message_size: 1024,
            max_frame_size: 1024,
            ..WsConfig::default()
        },
        ..web_with_page(Duration::from_secs(10))
    };
    let server = TestServer::start_with(kind, ServerConfig::default(), web);
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut big = WsClient::connect(server.addr, "/ws?name=big", &[]).await;
        wait_for(&native, |e| *e == ClientEvent::Joined("big".into())).await;
        big.send_text(&"x".repeat(2000)).await;
        let (_, code, _) = big.until_close().await;
        assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
        wait_for(&native, |e| *e == ClientEvent::Left("big".into())).await;

        // Within the limit, another one is served.
        let mut small = WsClient::connect(server.addr, "/ws?name=small", &[]).await;
        small.send_text(&"x".repeat(1000)).await;
        let heard = wait_for(&native, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(&heard, ClientEvent::Text { from, text, .. } if from == "small" && text.len() == 1000),
            "{heard:?}"
        );
    });
}

/// A figure, not a check of speed: how many JSON chat messages per second one WebSocket
/// client gets through the gateway to a native client (all must arrive, in order).
/// `cargo test --release -p tidings-e2e --test websocket -- --ignored --nocapture`
fn json_chat_rate_to_a_native_client(kind: ServerKind) {
    const N: usize = 50_000;
    // A throughput figure: the message-rate limit (on by default) would measure itself.
    let mut config = ServerConfig::default();
    config.hub.message_rate = 0;
    let server = TestServer::start_with(kind, config, web_with_page(Duration::from_secs(10)));
    smol::block_on(async {
        let native = connect(server.addr, "nat").await;
        let mut ws = WsClient::join_json(server.addr, "fast").await;
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
