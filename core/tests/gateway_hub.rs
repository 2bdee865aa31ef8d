//! The gateway end to end against a real hub in memory: JSON, binary and legacy WebSocket
//! clients chatting with native clients, in virtual time.

mod sim;

use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use serde_json::{json, Value};
use sim::gateway::GatewayNet;
use sim::texts;
use tidings_core::gateway::{legacy_name, legacy_room, Gateway, GatewayMode, WsMessage};
use tidings_core::hub::{Hub, HubConfig, RoomConfig, RoomCreation};
use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::TransferEvent;
use tidings_core::wire::{
    FrameDecoder, Message, Preamble, PresenceKind, Welcome, DEFAULT_MAX_FRAME,
};
use tidings_core::ws::{
    CloseCode, HttpRequestHead, RequestReader, Utf8Bytes, WsConfig, WsConnection, WsEvent,
    TIDINGS_SUBPROTOCOL,
};
use tidings_core::ErrorCode;

fn request(raw: &str) -> HttpRequestHead {
    RequestReader::new(8192)
        .feed(raw.as_bytes())
        .unwrap()
        .unwrap()
}

const HELLO_ALICE: &str = r#"{"type":"hello","name":"alice","capabilities":0,"max_frame":1048576}"#;

// ----- JSON mode ------------------------------------------------------------------------

#[test]
fn json_client_and_native_client_chat() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let alice = w.add_web(GatewayMode::Tidings);
    w.ws_text(alice, HELLO_ALICE);
    assert_eq!(w.web[alice].gw.mode(), &GatewayMode::Json);

    let got = w.take_json(alice);
    assert_eq!(got[0]["type"], "welcome");
    let mut online: Vec<&str> = got[0]["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    online.sort_unstable();
    assert_eq!(online, ["alice", "bob"]);
    assert!(w.take_events(bob).iter().any(|e| matches!(e,
        Event::Presence { kind: PresenceKind::Joined, name } if name == "alice")));

    // To everyone, then privately, both ways.
    w.ws_text(alice, r#"{"type":"text","peer":"","text":"hi all"}"#);
    w.ws_text(alice, r#"{"type":"text","peer":"bob","text":"hi bob"}"#);
    assert_eq!(
        texts(&w.take_events(bob)),
        [
            ("alice".into(), false, "hi all".into()),
            ("alice".into(), true, "hi bob".into())
        ]
    );
    w.native[bob]
        .session
        .send_text("alice", "hi alice")
        .unwrap();
    w.native[bob].session.send_text("", "hi everyone").unwrap();
    w.pump();
    assert_eq!(
        w.take_json(alice),
        [
            json!({"type":"text","peer":"bob","private":true,"text":"hi alice"}),
            json!({"type":"text","peer":"bob","private":false,"text":"hi everyone"}),
        ]
    );

    // Who is online, then bob leaves.
    w.ws_text(alice, r#"{"type":"list-request"}"#);
    assert_eq!(
        w.take_json(alice),
        [json!({"type":"peer-list","names":["alice","bob"]})]
    );
    w.native[bob].session.goodbye(ErrorCode::Normal, "bye");
    w.pump();
    assert_eq!(
        w.take_json(alice),
        [json!({"type":"presence","kind":"left","name":"bob"})]
    );
}

#[test]
fn json_client_unknown_peer_gets_a_json_error_and_stays() {
    let mut w = GatewayNet::new();
    let alice = w.add_web(GatewayMode::Json);
    w.ws_text(alice, HELLO_ALICE);
    w.take_json(alice);
    w.ws_text(alice, r#"{"type":"text","peer":"nobody","text":"?"}"#);
    let got = w.take_json(alice);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "error");
    assert_eq!(got[0]["code"], 13);
    assert_eq!(got[0]["code_name"], "unknown-peer");
    assert!(!w.web[alice].gw.is_ws_closed());
    assert_eq!(w.hub.peer_count(), 1);
}

#[test]
fn malformed_json_is_answered_then_closed_and_the_client_leaves() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let alice = w.add_web(GatewayMode::Tidings);
    w.ws_text(alice, HELLO_ALICE);
    w.take_json(alice);
    w.take_events(bob);

    w.ws_text(
        alice,
        r#"{"type":"text","peer":"","text":"hi","colour":"red"}"#,
    );
    let inbox = std::mem::take(&mut w.web[alice].inbox);
    let WsMessage::Text(error) = &inbox[0] else {
        panic!("{inbox:?}")
    };
    let error: Value = serde_json::from_str(error).unwrap();
    assert_eq!(
        (error["type"].clone(), error["code"].clone()),
        (json!("error"), json!(1))
    );
    assert!(
        matches!(&inbox[1], WsMessage::Close { code, .. } if *code == CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(inbox.len(), 2, "nothing after the close");
    assert!(w.take_events(bob).iter().any(|e| matches!(e,
        Event::Presence { kind: PresenceKind::Left, name } if name == "alice")));
    assert_eq!(w.hub.peer_count(), 1);
}

#[test]
fn unknown_json_type_is_refused_with_unknown_type() {
    let mut w = GatewayNet::new();
    let alice = w.add_web(GatewayMode::Json);
    w.ws_text(alice, HELLO_ALICE);
    w.take_json(alice);
    w.ws_text(alice, r#"{"type":"shout","text":"HI"}"#);
    let inbox = std::mem::take(&mut w.web[alice].inbox);
    let WsMessage::Text(error) = &inbox[0] else {
        panic!()
    };
    assert!(error.contains(r#""code_name":"unknown-type""#), "{error}");
    assert!(matches!(inbox[1], WsMessage::Close { .. }));
}

#[test]
fn websocket_close_is_a_goodbye_to_the_hub() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let alice = w.add_web(GatewayMode::Tidings);
    w.ws_text(alice, HELLO_ALICE);
    w.take_events(bob);
    w.ws(
        alice,
        WsEvent::Close {
            code: CloseCode::GOING_AWAY,
            reason: Utf8Bytes::from(""),
        },
    );
    assert!(w.web[alice].gw.native_finished());
    assert!(w.take_events(bob).iter().any(|e| matches!(e,
        Event::Presence { kind: PresenceKind::Left, name } if name == "alice")));
    assert_eq!(w.hub.peer_count(), 1);
    assert!(
        !w.web[alice]
            .inbox
            .iter()
            .any(|m| matches!(m, WsMessage::Close { .. })),
        "the WebSocket answers the close itself; the gateway adds none"
    );
}

#[test]
fn refused_json_hello_closes_with_1008_after_the_refusal() {
    let mut w = GatewayNet::new();
    w.add_native("bob");
    let imp = w.add_web(GatewayMode::Json);
    w.ws_text(
        imp,
        r#"{"type":"hello","name":"BOB","capabilities":0,"max_frame":1048576}"#,
    );
    let inbox = std::mem::take(&mut w.web[imp].inbox);
    let WsMessage::Text(refused) = &inbox[0] else {
        panic!("{inbox:?}")
    };
    assert!(refused.contains(r#""code_name":"name-taken""#), "{refused}");
    let Some(WsMessage::Close { code, .. }) = inbox.last() else {
        panic!("{inbox:?}")
    };
    assert_eq!(*code, CloseCode::POLICY_VIOLATION);
}

// ----- binary mode ----------------------------------------------------------------------

#[test]
fn binary_client_carries_native_bytes_untouched() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let carol = w.add_web(GatewayMode::Tidings);
    let mut session = Session::client(Config::default(), "carol", w.now).unwrap();

    // Drive carol's native session through the WebSocket messages.
    let exchange = |w: &mut GatewayNet, session: &mut Session| loop {
        let mut moved = false;
        while let Some(b) = session.poll_transmit() {
            w.ws(carol, WsEvent::Binary(b));
            moved = true;
        }
        for m in std::mem::take(&mut w.web[carol].inbox) {
            let WsMessage::Binary(b) = m else {
                panic!("{m:?}")
            };
            session.handle_input(w.now, &b);
            moved = true;
        }
        if !moved {
            break;
        }
    };
    exchange(&mut w, &mut session);
    assert_eq!(w.web[carol].gw.mode(), &GatewayMode::Binary);
    assert!(matches!(session.poll_event(), Some(Event::Connected(_))));

    session.send_text("bob", "psst").unwrap();
    exchange(&mut w, &mut session);
    assert_eq!(
        texts(&w.take_events(bob)),
        [("carol".into(), true, "psst".into())]
    );
    w.native[bob].session.send_text("", "hello").unwrap();
    w.pump();
    exchange(&mut w, &mut session);
    assert!(matches!(session.poll_event(),
        Some(Event::Text { peer, private: false, text }) if peer == "bob" && text == "hello"));
}

#[test]
fn binary_mode_is_zero_copy() {
    let now = Instant::now();
    let mut gw = Gateway::new(GatewayMode::Binary, now);
    let from_hub = Bytes::from(vec![1u8; 4096]);
    gw.handle_native(now, from_hub.clone());
    let Some(WsMessage::Binary(out)) = gw.poll_ws() else {
        panic!()
    };
    assert_eq!(out.as_ptr(), from_hub.as_ptr());
    let from_client = Bytes::from(vec![2u8; 4096]);
    gw.handle_ws_event(now, WsEvent::Binary(from_client.clone()));
    assert_eq!(gw.poll_native().unwrap().as_ptr(), from_client.as_ptr());
}

#[test]
fn text_on_a_binary_connection_closes_1003() {
    let now = Instant::now();
    let mut gw = Gateway::new(GatewayMode::Binary, now);
    gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from("hi")));
    assert!(
        matches!(gw.poll_ws(), Some(WsMessage::Close { code, .. }) if code == CloseCode::UNSUPPORTED_DATA)
    );
    assert!(gw.native_finished());
    assert_eq!(
        gw.poll_native(),
        None,
        "no frame is invented in the binary stream"
    );
}

// ----- legacy mode ----------------------------------------------------------------------

/// A legacy client for `target`, everything it received so far left in its inbox.
fn legacy_raw(w: &mut GatewayNet, target: &str) -> usize {
    let head = request(&format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    let mode = GatewayMode::for_request(&head, None).unwrap();
    w.add_web(mode)
}

/// A legacy client for `target`; if it joined, its first line (who is online) is checked
/// for its form and taken out of the inbox.
fn legacy(w: &mut GatewayNet, target: &str) -> usize {
    let i = legacy_raw(w, target);
    if !w.web[i].gw.is_ws_closed() {
        let first = w.web[i].inbox.remove(0);
        assert!(
            matches!(&first, WsMessage::Text(t)
                if t.starts_with(r#"{"src":"server","dst":"","msg":"online ("#)),
            "{first:?}"
        );
    }
    i
}

/// Everything a legacy client received, the close last: (text lines as JSON, close).
fn farewell(w: &mut GatewayNet, i: usize) -> (Vec<Value>, (CloseCode, String)) {
    let mut inbox = std::mem::take(&mut w.web[i].inbox);
    let Some(WsMessage::Close { code, reason }) = inbox.pop() else {
        panic!("no close last: {inbox:?}")
    };
    w.web[i].inbox = inbox;
    (w.take_json(i), (code, reason))
}

#[test]
fn legacy_client_learns_who_is_online_when_it_joins() {
    let mut w = GatewayNet::new();
    w.add_native("bob");
    legacy(&mut w, "/ws?name=carol");
    let dave = legacy_raw(&mut w, "/ws?name=dave");
    // One line, before anything else, naming everyone the welcome named (dave too).
    assert_eq!(
        w.take_json(dave),
        [json!({"src":"server","dst":"","msg":"online (3): bob, carol, dave"})]
    );
    // Alone: just itself.
    let mut w = GatewayNet::new();
    let erin = legacy_raw(&mut w, "/ws?name=erin");
    assert_eq!(
        w.take_json(erin),
        [json!({"src":"server","dst":"","msg":"online (1): erin"})]
    );
}

#[test]
fn legacy_client_is_told_in_a_line_why_it_is_kicked_or_shut_out() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave");
    let erin = legacy(&mut w, "/ws?name=erin");
    w.take_json(dave);
    w.hub.kick("dave", "spamming").unwrap();
    w.pump();
    let (lines, close) = farewell(&mut w, dave);
    assert_eq!(
        lines,
        [json!({"src":"server","dst":"dave","msg":"goodbye: kicked: spamming"})]
    );
    assert_eq!(close.0, CloseCode::POLICY_VIOLATION);

    w.hub.shutdown("maintenance at noon");
    w.pump();
    let (lines, close) = farewell(&mut w, erin);
    assert_eq!(
        lines,
        [
            json!({"src":"server","dst":"","msg":"dave left"}),
            json!({"src":"server","dst":"erin","msg":"goodbye: shutdown: maintenance at noon"})
        ]
    );
    assert_eq!(close, (CloseCode::GOING_AWAY, "maintenance at noon".into()));
}

#[test]
fn legacy_client_is_told_in_a_line_when_it_is_rate_limited() {
    let config = HubConfig {
        message_rate: 1,
        message_burst: 1,
        rate_limit_grace: Duration::ZERO,
        ..HubConfig::default()
    };
    let mut w = GatewayNet::with_config(config);
    let dave = legacy(&mut w, "/ws?name=dave");
    for _ in 0..50 {
        if w.web[dave].gw.is_ws_closed() {
            break;
        }
        w.ws_text(dave, "flood");
        w.run_for(Duration::from_millis(10), Duration::from_millis(10));
    }
    let (lines, _) = farewell(&mut w, dave);
    let last = lines.last().expect("a line before the close");
    assert_eq!(last["dst"], "dave");
    assert!(
        last["msg"].as_str().unwrap().contains("rate-limited"),
        "{lines:?}"
    );
}

#[test]
fn legacy_client_is_told_in_a_line_when_its_message_is_too_big() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave");
    w.ws_text(dave, &"x".repeat(DEFAULT_MAX_FRAME as usize + 1));
    let (lines, close) = farewell(&mut w, dave);
    assert_eq!(
        lines,
        [json!({"src":"server","dst":"dave",
                "msg":"error: frame-too-large: message larger than the frame limit"})]
    );
    assert_eq!(close.0, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(w.hub.peer_count(), 0);
}

#[test]
fn legacy_client_named_from_the_query_chats_with_a_native_client() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let dave = legacy(&mut w, "/ws?name=dave");
    assert_eq!(w.hub.peer_count(), 2);
    assert!(
        w.take_json(dave).is_empty(),
        "welcome is not forwarded as it is"
    );

    w.native[bob].session.send_text("", "hi all").unwrap();
    w.native[bob].session.send_text("dave", "hi dave").unwrap();
    w.pump();
    assert_eq!(
        w.take_json(dave),
        [
            json!({"src":"bob","dst":"","msg":"hi all"}),
            json!({"src":"bob","dst":"dave","msg":"hi dave"}),
        ]
    );

    // A bare line goes to everyone; an object with dst to one peer.
    w.ws_text(dave, "hello from dave");
    w.ws_text(dave, r#"{"dst":"bob","msg":"just you"}"#);
    assert_eq!(
        texts(&w.take_events(bob)),
        [
            ("dave".into(), false, "hello from dave".into()),
            ("dave".into(), true, "just you".into())
        ]
    );

    // Presence as a line from the server.
    let erin = w.add_native("erin");
    assert_eq!(
        w.take_json(dave),
        [json!({"src":"server","dst":"","msg":"erin joined"})]
    );
    w.native[erin].session.goodbye(ErrorCode::Normal, "");
    w.pump();
    assert_eq!(
        w.take_json(dave),
        [json!({"src":"server","dst":"","msg":"erin left"})]
    );
}

#[test]
fn legacy_spoofed_src_is_ignored() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let eve = legacy(&mut w, "/?name=eve");
    w.take_events(bob);
    w.ws_text(eve, r#"{"src":"bob","dst":"bob","msg":"it is me, bob"}"#);
    assert_eq!(
        texts(&w.take_events(bob)),
        [("eve".into(), true, "it is me, bob".into())]
    );
}

#[test]
fn legacy_unknown_addressee_is_told_by_the_server() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave");
    w.ws_text(dave, r#"{"dst":"nobody","msg":"?"}"#);
    let got = w.take_json(dave);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["src"].as_str(), got[0]["dst"].as_str()),
        (Some("server"), Some("dave"))
    );
    assert!(got[0]["msg"].as_str().unwrap().starts_with("unknown-peer"));
}

#[test]
fn legacy_refused_name_is_told_in_one_line_then_closed_with_1008_and_the_reason() {
    let mut w = GatewayNet::new();
    w.add_native("bob");
    let imp = legacy(&mut w, "/ws?name=Bob");
    let (lines, (code, reason)) = farewell(&mut w, imp);
    assert_eq!(
        lines,
        [json!({"src":"server","dst":"Bob","msg":"refused: name-taken: the name Bob is taken"})]
    );
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    assert_eq!(reason, "the name Bob is taken");
    assert!(w.web[imp].gw.native_finished());
    assert_eq!(w.hub.peer_count(), 1);
}

#[test]
fn silent_legacy_client_stays_alive_through_pings() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave");
    // Only the hub's timers run: the hub pings, the gateway answers.
    w.run_timers(Duration::from_secs(120), Duration::from_secs(1), false);
    assert_eq!(w.hub.peer_count(), 1);
    assert!(!w.web[dave].gw.is_ws_closed());
}

#[test]
fn a_legacy_client_that_never_answers_the_gateways_probes_is_declared_dead() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave");
    w.web[dave].alive = false;
    // The gateway's own timers run too, and the client never answers its pings: it is
    // probed every interval and dropped at the timeout (10 s and 30 s by default).
    w.run_timers(Duration::from_secs(120), Duration::from_secs(1), true);
    let inbox = std::mem::take(&mut w.web[dave].inbox);
    assert!(
        matches!(&inbox[..], [WsMessage::Close { reason, .. }] if reason == "heartbeat-timeout"),
        "{inbox:?}"
    );
    assert!(w.web[dave].gw.is_ws_closed());
    assert_eq!(w.hub.peer_count(), 0);

    // The same silence with a browser that answers each probe: alive after two minutes.
    let mut w = GatewayNet::new();
    let erin = legacy(&mut w, "/ws?name=erin");
    w.run_timers(Duration::from_secs(120), Duration::from_secs(1), true);
    assert!(!w.web[erin].gw.is_ws_closed());
    assert_eq!(w.hub.peer_count(), 1);
}

#[test]
fn silent_legacy_client_in_a_busy_room_stays_alive() {
    // A server may leave a client it keeps busy unpinged (spec §6.6.1 only asks for pings
    // after silence); the gateway's own heartbeat then keeps the receive timeout away.
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let dave = legacy(&mut w, "/ws?name=dave");
    for _ in 0..60 {
        w.native[bob].session.send_text("", "chatter").unwrap();
        w.run_for(Duration::from_secs(2), Duration::from_secs(1));
    }
    assert_eq!(w.hub.peer_count(), 2);
    assert_eq!(w.take_json(dave).len(), 60);
    assert!(w.web[dave].gw.poll_timeout().is_some());
}

#[test]
fn legacy_gateway_declines_file_offers() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    legacy(&mut w, "/ws?name=dave");
    let id = w.native[bob]
        .session
        .offer_file("dave", "a.txt", 10, "text/plain")
        .unwrap();
    w.pump();
    let events = w.take_events(bob);
    let refusal = events.iter().find_map(|e| match e {
        Event::Transfer(TransferEvent::Finished {
            id: done,
            result: Err(failure),
            ..
        }) if *done == id => Some(failure.code),
        _ => None,
    });
    assert_eq!(refusal, Some(ErrorCode::Rejected), "{events:?}");
}

#[test]
fn a_websocket_that_never_speaks_is_closed_with_the_handshake_timeout() {
    // The hub heard not one byte, so it ends the session silently (spec §6.6.4); the
    // browser still learns why (§12.3).
    let mut w = GatewayNet::new();
    let quiet = w.add_web(GatewayMode::Tidings);
    w.run_for(Duration::from_secs(11), Duration::from_secs(1));
    assert_eq!(
        w.web[quiet].inbox.last(),
        Some(&WsMessage::Close {
            code: CloseCode::POLICY_VIOLATION,
            reason: "no message in time".into()
        }),
        "{:?}",
        w.web[quiet].inbox
    );
}

#[test]
fn vanished_legacy_client_is_dropped_at_the_timeout() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let dave = legacy(&mut w, "/ws?name=dave");
    w.web[dave].alive = false;
    w.take_events(bob);
    w.run_for(Duration::from_secs(29), Duration::from_secs(1));
    assert_eq!(w.hub.peer_count(), 2, "not before the timeout");
    w.run_for(Duration::from_secs(2), Duration::from_secs(1));
    assert_eq!(w.hub.peer_count(), 1);
    assert!(w.take_events(bob).iter().any(|e| matches!(e,
        Event::Presence { kind: PresenceKind::Left, name } if name == "dave")));
    assert!(matches!(w.web[dave].inbox.last(),
        Some(WsMessage::Close { code, .. }) if *code == CloseCode::GOING_AWAY));
}

#[test]
fn legacy_gateway_pings_the_hub_after_its_own_silence() {
    let t0 = Instant::now();
    let mut gw = Gateway::new(
        GatewayMode::Legacy {
            name: "dave".into(),
            room: None,
        },
        t0,
    );
    while gw.poll_native().is_some() {}
    assert_eq!(gw.poll_timeout(), None, "no heartbeat before the welcome");

    let welcome = Message::Welcome(Welcome {
        name: "dave".into(),
        server: "server".into(),
        heartbeat_ms: 10_000,
        timeout_ms: 30_000,
        max_frame: DEFAULT_MAX_FRAME,
        capabilities: 0,
        online: vec!["dave".into()],
    });
    let mut from_hub = BytesMut::from(&Preamble::CURRENT.to_bytes()[..]);
    welcome.encode(&mut from_hub);
    gw.handle_native(t0, from_hub.freeze());
    assert_eq!(
        gw.poll_ws(),
        Some(WsMessage::Text(
            r#"{"src":"server","dst":"","msg":"online (1): dave"}"#.into()
        )),
        "welcome becomes the online line"
    );
    assert_eq!(gw.poll_ws(), None);
    let due = gw.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(10));

    gw.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(gw.poll_native(), None, "not yet");
    gw.handle_timeout(due);
    let ping = gw.poll_native().unwrap();
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    dec.push(&ping);
    let msg = Message::decode(dec.next_frame().unwrap().unwrap()).unwrap();
    assert!(matches!(msg, Message::Ping { .. }), "{msg:?}");
    assert_eq!(gw.poll_timeout(), Some(due + Duration::from_secs(10)));
}

// ----- mode selection and a real WebSocket --------------------------------------------------

#[test]
fn mode_follows_subprotocol_query_and_origin() {
    let plain = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        GatewayMode::for_request(&request(plain), Some(TIDINGS_SUBPROTOCOL)),
        Some(GatewayMode::Tidings)
    );
    assert_eq!(GatewayMode::for_request(&request(plain), None), None);
    assert_eq!(
        GatewayMode::for_request(&request(plain), Some("chat")),
        None
    );
    let other = "GET /?name=a HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    assert_eq!(
        GatewayMode::for_request(&request(other), None),
        None,
        "a client that wanted another subprotocol is not a legacy client"
    );
    let qt = "GET / HTTP/1.1\r\nHost: x\r\nOrigin: C1\r\n\r\n";
    assert_eq!(legacy_name(&request(qt)).as_deref(), Some("C1"));
    let both = "GET /?name=z%20z&x HTTP/1.1\r\nHost: x\r\nOrigin: C1\r\n\r\n";
    assert_eq!(legacy_name(&request(both)).as_deref(), Some("z z"));
    let bad = "GET /?name=%zz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(legacy_name(&request(bad)), None);
    // A room only when asked for, and then whatever was asked for (the hub judges it).
    assert_eq!(legacy_room(&request(both)), None);
    let room = "GET /ws?room=a+b&name=c HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        GatewayMode::for_request(&request(room), None),
        Some(GatewayMode::Legacy {
            name: "c".into(),
            room: Some("a b".into())
        })
    );
    let odd = "GET /ws?name=c&room=%zz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(legacy_room(&request(odd)).as_deref(), Some("%zz"));
    let bare = "GET /ws?name=c&room HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(legacy_room(&request(bare)).as_deref(), Some(""));
}

#[test]
fn json_over_a_real_websocket_pair() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default(), now);
    let conn = hub.connect(now);
    let mut n = 0u8;
    let mut browser = WsConnection::client(WsConfig::default(), move || {
        n = n.wrapping_add(1);
        [n, 7, 7, 7]
    });
    let mut server = WsConnection::server(WsConfig::default());
    let mut gw = Gateway::new(GatewayMode::Tidings, now);

    browser.send_text(HELLO_ALICE).unwrap();
    browser.send_text(r#"{"type":"list-request"}"#).unwrap();
    let mut received = Vec::new();
    for _ in 0..10 {
        while let Some(b) = browser.poll_transmit() {
            server.handle_input(now, &b);
        }
        while let Some(e) = server.poll_event() {
            gw.handle_ws_event(now, e);
        }
        while let Some(b) = gw.poll_native() {
            hub.handle_input(now, conn, &b);
        }
        while hub.poll_ready().is_some() {}
        while let Some(b) = hub.poll_transmit(conn) {
            gw.handle_native(now, b);
        }
        gw.write_to(now, &mut server).unwrap();
        while let Some(b) = server.poll_transmit() {
            browser.handle_input(now, &b);
        }
        while let Some(e) = browser.poll_event() {
            let WsEvent::Text(t) = e else { panic!("{e:?}") };
            received.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["type"], "welcome");
    assert_eq!(received[1], json!({"type":"peer-list","names":["alice"]}));
}

#[test]
fn qt_style_client_from_upgrade_request_to_chat() {
    // What a runtime does with a plain `QWebSocket("C1")` client: read the request, accept
    // the upgrade (no subprotocol offered, none chosen), pick the mode, then pump.
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let raw = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
               Origin: C1\r\n\r\n";
    let head = request(raw);
    let accepted = head.accept_websocket(&[TIDINGS_SUBPROTOCOL]).unwrap();
    assert!(accepted.response.starts_with(b"HTTP/1.1 101"));
    let mode = GatewayMode::for_request(&head, accepted.protocol.as_deref()).unwrap();
    assert_eq!(
        mode,
        GatewayMode::Legacy {
            name: "C1".into(),
            room: None
        }
    );

    let c1 = w.add_web(mode);
    w.ws_text(c1, "hello from C1");
    assert_eq!(
        texts(&w.take_events(bob)),
        [("C1".into(), false, "hello from C1".into())]
    );
    w.native[bob].session.send_text("C1", "hi C1").unwrap();
    w.pump();
    assert_eq!(
        w.take_json(c1),
        [
            json!({"src":"server","dst":"","msg":"online (2): bob, C1"}),
            json!({"src":"bob","dst":"C1","msg":"hi C1"})
        ]
    );
}

// ----- legacy clients in a room (`?room=`, spec §12.4) ---------------------------------------

/// A line from the server participant to everyone, as legacy clients read it.
fn server_line(msg: &str) -> Value {
    json!({"src":"server","dst":"","msg":msg})
}

#[test]
fn legacy_client_with_a_room_hears_and_speaks_only_in_that_room() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let carol = legacy(&mut w, "/ws?name=carol");
    let dave = legacy_raw(&mut w, "/ws?name=dave&room=team");
    assert_eq!(w.take_json(dave), [server_line("online (1): dave")]);
    let erin = legacy_raw(&mut w, "/ws?name=erin&room=T%D0%95AM");
    // Who is online is the room's members (the room as first spelled), not the lobby's.
    assert_eq!(w.take_json(erin), [server_line("online (2): dave, erin")]);
    assert_eq!(w.take_json(dave), [server_line("erin joined")]);
    assert_eq!(w.hub.room_members("team").unwrap(), ["dave", "erin"]);
    let lobby = w.hub.room_members("lobby").unwrap();
    assert_eq!(lobby, ["bob", "carol"], "left the default room");
    w.take_json(carol);
    w.take_events(bob);

    // The room's chat stays in the room, the lobby's in the lobby.
    w.ws_text(dave, "hi team");
    w.native[bob].session.send_text("", "hi lobby").unwrap();
    w.pump();
    assert_eq!(
        w.take_json(erin),
        [json!({"src":"dave","dst":"","msg":"hi team"})]
    );
    assert_eq!(w.take_json(dave), Vec::<Value>::new(), "no echo, no lobby");
    assert_eq!(
        w.take_json(carol),
        [json!({"src":"bob","dst":"","msg":"hi lobby"})],
        "a legacy client without a room is what it always was"
    );
    assert_eq!(texts(&w.take_events(bob)), []);

    // Private messages cross rooms, both ways.
    w.ws_text(dave, r#"{"dst":"bob","msg":"psst"}"#);
    w.native[bob].session.send_text("erin", "hi erin").unwrap();
    w.pump();
    assert_eq!(
        texts(&w.take_events(bob)),
        [("dave".into(), true, "psst".into())]
    );
    assert_eq!(
        w.take_json(erin),
        [json!({"src":"bob","dst":"erin","msg":"hi erin"})]
    );

    // The operator in the room, then a member leaving, as lines from the server.
    w.hub.say_in("team", "meeting at noon").unwrap();
    w.pump();
    assert_eq!(w.take_json(dave), [server_line("meeting at noon")]);
    w.ws(
        erin,
        WsEvent::Close {
            code: CloseCode::NORMAL,
            reason: Utf8Bytes::from(""),
        },
    );
    assert_eq!(w.take_json(dave), [server_line("erin left")]);
    assert!(
        w.take_json(carol).is_empty(),
        "the lobby hears nothing of the room"
    );
}

#[test]
fn legacy_client_joining_the_default_room_by_name_stays_in_it() {
    let mut w = GatewayNet::new();
    let bob = w.add_native("bob");
    let dave = legacy_raw(&mut w, "/ws?name=dave&room=Lobby");
    assert_eq!(w.take_json(dave), [server_line("online (2): bob, dave")]);
    w.take_events(bob);
    w.ws_text(dave, "hi");
    w.native[bob].session.send_text("", "hi dave").unwrap();
    w.pump();
    assert_eq!(
        texts(&w.take_events(bob)),
        [("dave".into(), false, "hi".into())]
    );
    assert_eq!(
        w.take_json(dave),
        [json!({"src":"bob","dst":"","msg":"hi dave"})]
    );
}

#[test]
fn legacy_text_said_before_the_room_is_joined_is_said_in_the_room() {
    let mut w = GatewayNet::new();
    let erin = legacy(&mut w, "/ws?name=erin&room=team");
    let mode = GatewayMode::Legacy {
        name: "dave".into(),
        room: Some("team".into()),
    };
    let mut gw = Gateway::for_hub(mode, DEFAULT_MAX_FRAME, w.hub.name(), w.now);
    gw.handle_ws_event(w.now, WsEvent::Text(Utf8Bytes::from("early")));
    let to_nobody = r#"{"dst":"nobody","msg":"?"}"#;
    gw.handle_ws_event(w.now, WsEvent::Text(Utf8Bytes::from(to_nobody)));
    let dave = w.add_gateway(gw, sim::gateway::Output::Plain);
    let got = w.take_json(dave);
    assert_eq!(got.len(), 2, "{got:?}");
    // The private line went at once and failed on its own, without ending the join.
    assert!(got[0]["msg"].as_str().unwrap().starts_with("unknown-peer"));
    assert_eq!(
        got[1],
        server_line("online (2): erin, dave"),
        "told who is here, not that it is a non-member"
    );
    assert!(!w.web[dave].gw.is_ws_closed());
    assert_eq!(
        w.take_json(erin),
        [
            server_line("dave joined"),
            json!({"src":"dave","dst":"","msg":"early"})
        ]
    );
}

#[test]
fn legacy_refused_room_is_told_in_one_line_then_closed() {
    let operator_only = HubConfig {
        rooms: RoomConfig {
            creation: RoomCreation::Operator,
            ..RoomConfig::default()
        },
        ..HubConfig::default()
    };
    let long = format!("/ws?name=dave&room={}", "r".repeat(256));
    for (config, target, says) in [
        (
            HubConfig::default(),
            "/ws?name=dave&room=no+way",
            "refused: room-refused: \"no way\" is not a room name",
        ),
        (
            HubConfig::default(),
            "/ws?name=dave&room=",
            "refused: room-refused: \"\" is not a room name",
        ),
        (
            HubConfig::default(),
            "/ws?name=dave&room=%zz",
            "refused: room-refused: \"%zz\" is not a room name",
        ),
        (HubConfig::default(), &long, "refused: room-refused"),
        (
            operator_only,
            "/ws?name=dave&room=team",
            "refused: room-refused: there is no room #team",
        ),
    ] {
        let mut w = GatewayNet::with_config(config);
        let bob = w.add_native("bob");
        let dave = legacy_raw(&mut w, target);
        let (lines, (code, _)) = farewell(&mut w, dave);
        assert_eq!(lines.len(), 1, "{target}: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["src"], "server", "{line}");
        let msg = line["msg"].as_str().unwrap();
        assert!(msg.starts_with(says), "{target}: {msg}");
        assert_eq!(code, CloseCode::POLICY_VIOLATION);
        assert!(w.web[dave].gw.native_finished());
        assert_eq!(w.hub.peer_count(), 1, "{target}: gone from the hub");
        assert_eq!(w.hub.room_members("lobby").unwrap(), ["bob"]);
        w.take_events(bob);
    }
}

#[test]
fn legacy_client_removed_from_its_room_is_told_and_closed() {
    let mut w = GatewayNet::new();
    let dave = legacy(&mut w, "/ws?name=dave&room=team");
    let erin = legacy(&mut w, "/ws?name=erin&room=team");
    w.take_json(dave);
    w.hub.remove_member("team", "dave").unwrap();
    w.pump();
    let (lines, (code, _)) = farewell(&mut w, dave);
    assert_eq!(
        lines,
        [json!({"src":"server","dst":"dave",
                "msg":"goodbye: room-refused: the operator removed you from #team"})]
    );
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    assert_eq!(w.hub.peer_count(), 1);
    assert_eq!(w.take_json(erin), [server_line("dave left")]);
}
