//! A broadcast through WebSocket gateways sharing one `RenderCache`: the line is rendered
//! once per mode, every recipient still gets exactly its line, and recipients on the
//! message path share one buffer.

mod sim;

use std::time::Instant;

use sim::gateway::{GatewayNet, Output};
use tidings_core::gateway::{Gateway, GatewayMode, RenderCache, RenderStats, WsMessage};
use tidings_core::json::to_json;
use tidings_core::wire::{Message, Utf8};
use tidings_core::ws::{WsConfig, WsConnection};

/// A gateway in `mode` whose output goes through the shared cache: as messages, or with
/// `socket` through a WebSocket pair.
fn add(w: &mut GatewayNet, mode: GatewayMode, socket: bool) -> usize {
    let output = if socket {
        GatewayNet::socket()
    } else {
        Output::Cached
    };
    let gw = Gateway::new(mode, w.now);
    w.add_gateway(gw, output)
}

fn legacy(w: &mut GatewayNet, name: &str, socket: bool) -> usize {
    let mode = GatewayMode::Legacy {
        name: name.to_string(),
        room: None,
    };
    add(w, mode, socket)
}

fn json(w: &mut GatewayNet, name: &str) -> usize {
    let i = add(w, GatewayMode::Json, false);
    let hello =
        format!(r#"{{"type":"hello","name":"{name}","capabilities":0,"max_frame":1048576}}"#);
    w.ws_text(i, &hello);
    i
}

/// Texts browser `i` received, with the address of their buffer (message path only).
fn take(w: &mut GatewayNet, i: usize) -> Vec<(String, Option<*const u8>)> {
    let socket = matches!(w.web[i].output, Output::Socket { .. });
    std::mem::take(&mut w.web[i].inbox)
        .into_iter()
        .map(|m| match m {
            WsMessage::Text(t) => (t.to_string(), (!socket).then(|| t.as_bytes().as_ptr())),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn stats_since(w: &GatewayNet, before: RenderStats) -> (u64, u64) {
    let now = w.cache.stats();
    (now.renders - before.renders, now.hits - before.hits)
}

#[test]
fn gateway_broadcast_renders_once_per_mode_and_everyone_gets_the_right_line() {
    let mut w = GatewayNet::new();
    // Legacy clients on both output paths, and JSON clients.
    let legacy: Vec<usize> = ["ann", "bob", "cy", "dee", "eve", "fay"]
        .iter()
        .enumerate()
        .map(|(k, name)| legacy(&mut w, name, k >= 3))
        .collect();
    let json: Vec<usize> = ["jo", "kim", "lu"]
        .iter()
        .map(|n| json(&mut w, n))
        .collect();
    for i in 0..w.web.len() {
        take(&mut w, i);
    }

    let line = "quote \" backslash \\ newline \n tab \t ünïcode";
    let before = w.cache.stats();
    w.ws_text(legacy[0], line);

    // One rendering per mode; every other recipient reused it.
    let (renders, hits) = stats_since(&w, before);
    assert_eq!(renders, 2, "one legacy and one JSON rendering");
    assert_eq!(hits, (5 - 1) + (3 - 1));

    let want_legacy = serde_json::json!({"src": "ann", "dst": "", "msg": line}).to_string();
    let want_json = to_json(&Message::Text {
        peer: Utf8::from("ann"),
        private: false,
        text: Utf8::from(line),
    });
    assert!(
        take(&mut w, legacy[0]).is_empty(),
        "the sender gets nothing back"
    );
    let mut addresses = Vec::new();
    for &i in &legacy[1..] {
        let got = take(&mut w, i);
        assert_eq!(got.len(), 1, "client {i}: {got:?}");
        let (text, address) = &got[0];
        // Key order is the Qt clients' (src, dst, msg); compare as JSON values and as text.
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).unwrap(),
            serde_json::from_str::<serde_json::Value>(&want_legacy).unwrap()
        );
        assert!(
            text.starts_with(r#"{"src":"ann","dst":"","msg":"quote \" backslash \\ newline \n"#)
        );
        addresses.extend(*address);
    }
    // The message-path recipients hold the very same buffer, not copies.
    assert_eq!(addresses.len(), 2);
    assert_eq!(addresses[0], addresses[1]);
    let mut json_addresses = Vec::new();
    for &i in &json {
        let got = take(&mut w, i);
        assert_eq!(got.len(), 1, "client {i}: {got:?}");
        assert_eq!(got[0].0, want_json);
        json_addresses.extend(got[0].1);
    }
    assert!(json_addresses.windows(2).all(|p| p[0] == p[1]));
    assert_ne!(json_addresses[0], addresses[0]);

    // A second, different line is a new rendering, not the first one reused.
    let before = w.cache.stats();
    w.ws_text(legacy[4], "second");
    assert_eq!(stats_since(&w, before), (2, 6));
    for &i in legacy.iter().filter(|&&i| i != legacy[4]) {
        let got = take(&mut w, i);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, r#"{"src":"eve","dst":"","msg":"second"}"#);
    }
    for &i in &json {
        let got = take(&mut w, i);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].0,
            r#"{"type":"text","peer":"eve","private":false,"text":"second"}"#
        );
    }

    // A private text names its recipient: rendered for it alone, never stored.
    let before = w.cache.stats();
    w.ws_text(legacy[1], r#"{"dst":"dee","msg":"psst"}"#);
    assert_eq!(stats_since(&w, before), (0, 0));
    assert_eq!(
        take(&mut w, legacy[3]),
        vec![(
            r#"{"src":"bob","dst":"dee","msg":"psst"}"#.to_string(),
            None
        )]
    );
    for i in 0..w.web.len() {
        let got = take(&mut w, i);
        assert!(got.is_empty(), "client {i} got a private line: {got:?}");
    }
}

#[test]
fn gateway_broadcast_without_a_cache_is_the_same_text() {
    // The uncached path (`handle_native`) and the cached one agree byte for byte.
    let mut w = GatewayNet::new();
    for (k, n) in ["a", "b", "c"].iter().enumerate() {
        let mode = GatewayMode::Legacy {
            name: n.to_string(),
            room: None,
        };
        let output = if k == 1 {
            Output::Plain
        } else {
            Output::Cached
        };
        let gw = Gateway::new(mode, w.now);
        w.add_gateway(gw, output);
    }
    for i in 0..3 {
        take(&mut w, i);
    }
    w.ws_text(0, "x\u{1}y");
    let want = r#"{"src":"a","dst":"","msg":"x\u0001y"}"#;
    let texts = |got: Vec<(String, Option<*const u8>)>| -> Vec<String> {
        got.into_iter().map(|(t, _)| t).collect()
    };
    assert_eq!(texts(take(&mut w, 1)), vec![want.to_string()]);
    assert_eq!(texts(take(&mut w, 2)), vec![want.to_string()]);
}

#[test]
fn gateway_forward_native_keeps_what_a_closed_websocket_refused() {
    use bytes::BytesMut;
    use tidings_core::wire::Preamble;
    use tidings_core::ws::CloseCode;

    let now = Instant::now();
    let mut cache = RenderCache::new();
    let msg = Message::Text {
        peer: Utf8::from("ann"),
        private: false,
        text: Utf8::from("hello"),
    };
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
    msg.encode(&mut wire);
    let wire = wire.freeze();
    // The first gateway renders the line (a miss), the second finds it (a hit): both keep it
    // queued when their WebSocket refuses it.
    for expected in [
        RenderStats {
            renders: 1,
            hits: 0,
        },
        RenderStats {
            renders: 1,
            hits: 1,
        },
    ] {
        let mut gw = Gateway::new(GatewayMode::Json, now);
        while gw.poll_native().is_some() {}
        let mut ws = WsConnection::server(WsConfig::default());
        ws.close(now, CloseCode::NORMAL, "").unwrap();
        assert!(gw
            .forward_native(now, wire.clone(), &mut cache, &mut ws)
            .is_err());
        assert_eq!(cache.stats(), expected);
        match gw.poll_ws() {
            Some(WsMessage::Text(t)) => assert_eq!(t, to_json(&msg).as_str()),
            other => panic!("expected the text, got {other:?}"),
        }
        assert_eq!(gw.poll_ws(), None);
    }
}

#[test]
fn room_lines_render_once_for_json_clients_and_legacy_ones_see_only_their_room() {
    let mut w = GatewayNet::new();
    // JSON clients speaking rooms, all in `team`; a legacy client in `team` and one in the
    // lobby, all through the shared cache.
    let json: Vec<usize> = ["jo", "kim", "lu"]
        .iter()
        .map(|name| {
            let i = add(&mut w, GatewayMode::Json, false);
            let hello = format!(
                r#"{{"type":"hello","name":"{name}","capabilities":4,"max_frame":1048576}}"#
            );
            w.ws_text(i, &hello);
            w.ws_text(i, r#"{"type":"join","room":"team"}"#);
            i
        })
        .collect();
    let in_team = add(
        &mut w,
        GatewayMode::Legacy {
            name: "ann".into(),
            room: Some("team".into()),
        },
        false,
    );
    let in_lobby = legacy(&mut w, "bob", false);
    for i in 0..w.web.len() {
        take(&mut w, i);
    }

    let before = w.cache.stats();
    w.ws_text(
        json[0],
        r#"{"type":"room-text","room":"team","peer":"","text":"hi team"}"#,
    );
    assert_eq!(
        stats_since(&w, before),
        (1, 1),
        "one JSON rendering, reused once"
    );
    let want = r#"{"type":"room-text","room":"team","peer":"jo","text":"hi team"}"#;
    let got: Vec<_> = json[1..].iter().map(|&i| take(&mut w, i)).collect();
    for g in &got {
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].0, want);
    }
    assert_eq!(got[0][0].1, got[1][0].1, "the same buffer");
    let texts: Vec<String> = take(&mut w, in_team).into_iter().map(|(t, _)| t).collect();
    assert_eq!(texts, [r#"{"src":"jo","dst":"","msg":"hi team"}"#]);
    assert!(take(&mut w, in_lobby).is_empty());
}
