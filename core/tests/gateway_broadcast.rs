//! A broadcast through WebSocket gateways sharing one `RenderCache`: the line is rendered
//! once per carriage, every recipient still gets exactly its line, and recipients on the
//! message path share one buffer.

use std::time::Instant;

use tidings_core::gateway::{Gateway, GatewayMode, RenderCache, RenderStats, WsMessage};
use tidings_core::hub::{ConnId, Hub, HubConfig};
use tidings_core::json::to_json;
use tidings_core::wire::{Message, Utf8};
use tidings_core::ws::{Utf8Bytes, WsConfig, WsConnection, WsEvent};

/// How a client's gateway hands the hub's output on.
enum Path {
    /// `handle_native_cached`, then `poll_ws`: the texts themselves are observed.
    Messages,
    /// `forward_native` into a server `WsConnection`, whose bytes a client `WsConnection`
    /// reads back: what a browser would receive.
    Socket {
        server: Box<WsConnection>,
        browser: Box<WsConnection>,
    },
}

struct Web {
    conn: ConnId,
    gw: Gateway,
    path: Path,
    /// Texts received, with the address of their buffer (message path only).
    got: Vec<(String, Option<*const u8>)>,
}

struct World {
    now: Instant,
    hub: Hub,
    cache: RenderCache,
    web: Vec<Web>,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        World {
            now,
            hub: Hub::new(HubConfig::default(), now),
            cache: RenderCache::new(),
            web: Vec::new(),
        }
    }

    fn add(&mut self, mode: GatewayMode, socket: bool) -> usize {
        let conn = self.hub.connect(self.now);
        let path = if socket {
            Path::Socket {
                server: Box::new(WsConnection::server(WsConfig::default())),
                browser: Box::new(WsConnection::client(WsConfig::default(), || [7, 7, 7, 7])),
            }
        } else {
            Path::Messages
        };
        let gw = Gateway::new(mode, self.now);
        self.web.push(Web {
            conn,
            gw,
            path,
            got: Vec::new(),
        });
        self.pump();
        self.web.len() - 1
    }

    fn legacy(&mut self, name: &str, socket: bool) -> usize {
        let mode = GatewayMode::Legacy {
            name: name.to_string(),
        };
        self.add(mode, socket)
    }

    fn json(&mut self, name: &str) -> usize {
        let i = self.add(GatewayMode::Json, false);
        let hello =
            format!(r#"{{"type":"hello","name":"{name}","capabilities":0,"max_frame":1048576}}"#);
        self.say(i, &hello);
        i
    }

    /// Browser `i` sends a text message.
    fn say(&mut self, i: usize, text: &str) {
        let event = WsEvent::Text(Utf8Bytes::from(text.to_string()));
        self.web[i].gw.handle_ws_event(self.now, event);
        self.pump();
    }

    fn pump(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for w in &mut self.web {
                while let Some(b) = w.gw.poll_native() {
                    self.hub.handle_input(now, w.conn, &b);
                    moved = true;
                }
            }
            while self.hub.poll_ready().is_some() {}
            while self.hub.poll_event().is_some() {}
            for w in &mut self.web {
                while let Some(b) = self.hub.poll_transmit(w.conn) {
                    moved = true;
                    match &mut w.path {
                        Path::Messages => w.gw.handle_native_cached(now, b, &mut self.cache),
                        Path::Socket { server, .. } => {
                            w.gw.forward_native(now, b, &mut self.cache, server)
                                .unwrap()
                        }
                    }
                }
                match &mut w.path {
                    Path::Messages => {
                        while let Some(m) = w.gw.poll_ws() {
                            let WsMessage::Text(t) = m else {
                                panic!("unexpected {m:?}")
                            };
                            w.got.push((t.to_string(), Some(t.as_bytes().as_ptr())));
                        }
                    }
                    Path::Socket { server, browser } => {
                        assert!(w.gw.poll_ws().is_none(), "forward_native wrote everything");
                        while let Some(bytes) = server.poll_transmit() {
                            browser.handle_input(now, &bytes);
                        }
                        while let Some(e) = browser.poll_event() {
                            let WsEvent::Text(t) = e else {
                                panic!("unexpected {e:?}")
                            };
                            w.got.push((t.to_string(), None));
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn take(&mut self, i: usize) -> Vec<(String, Option<*const u8>)> {
        std::mem::take(&mut self.web[i].got)
    }

    fn stats_since(&self, before: RenderStats) -> (u64, u64) {
        let now = self.cache.stats();
        (now.renders - before.renders, now.hits - before.hits)
    }
}

#[test]
fn gateway_broadcast_renders_once_per_carriage_and_everyone_gets_the_right_line() {
    let mut w = World::new();
    // Legacy clients on both output paths, and JSON clients.
    let legacy: Vec<usize> = ["ann", "bob", "cy", "dee", "eve", "fay"]
        .iter()
        .enumerate()
        .map(|(k, name)| w.legacy(name, k >= 3))
        .collect();
    let json: Vec<usize> = ["jo", "kim", "lu"].iter().map(|n| w.json(n)).collect();
    for i in 0..w.web.len() {
        w.take(i);
    }

    let line = "quote \" backslash \\ newline \n tab \t ünïcode";
    let before = w.cache.stats();
    w.say(legacy[0], line);

    // One rendering per carriage; every other recipient reused it.
    let (renders, hits) = w.stats_since(before);
    assert_eq!(renders, 2, "one legacy and one JSON rendering");
    assert_eq!(hits, (5 - 1) + (3 - 1));

    let want_legacy = serde_json::json!({"src": "ann", "dst": "", "msg": line}).to_string();
    let want_json = to_json(&Message::Text {
        peer: Utf8::from("ann"),
        private: false,
        text: Utf8::from(line),
    });
    assert!(w.take(legacy[0]).is_empty(), "the sender gets nothing back");
    let mut addresses = Vec::new();
    for &i in &legacy[1..] {
        let got = w.take(i);
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
        let got = w.take(i);
        assert_eq!(got.len(), 1, "client {i}: {got:?}");
        assert_eq!(got[0].0, want_json);
        json_addresses.extend(got[0].1);
    }
    assert!(json_addresses.windows(2).all(|p| p[0] == p[1]));
    assert_ne!(json_addresses[0], addresses[0]);

    // A second, different line is a new rendering, not the first one reused.
    let before = w.cache.stats();
    w.say(legacy[4], "second");
    assert_eq!(w.stats_since(before), (2, 6));
    for &i in legacy.iter().filter(|&&i| i != legacy[4]) {
        let got = w.take(i);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, r#"{"src":"eve","dst":"","msg":"second"}"#);
    }
    for &i in &json {
        let got = w.take(i);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].0,
            r#"{"type":"text","peer":"eve","private":false,"text":"second"}"#
        );
    }

    // A private text names its recipient: rendered for it alone, never stored.
    let before = w.cache.stats();
    w.say(legacy[1], r#"{"dst":"dee","msg":"psst"}"#);
    assert_eq!(w.stats_since(before), (0, 0));
    assert_eq!(
        w.take(legacy[3]),
        vec![(
            r#"{"src":"bob","dst":"dee","msg":"psst"}"#.to_string(),
            None
        )]
    );
    for i in 0..w.web.len() {
        let got = w.take(i);
        assert!(got.is_empty(), "client {i} got a private line: {got:?}");
    }
}

#[test]
fn gateway_broadcast_without_a_cache_is_the_same_text() {
    // The uncached path (`handle_native`) and the cached one agree byte for byte.
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default(), now);
    let mut cache = RenderCache::new();
    let mut gws: Vec<(ConnId, Gateway, Vec<String>)> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let conn = hub.connect(now);
            let mode = GatewayMode::Legacy {
                name: n.to_string(),
            };
            (conn, Gateway::new(mode, now), Vec::new())
        })
        .collect();
    let mut pump = |hub: &mut Hub, gws: &mut Vec<(ConnId, Gateway, Vec<String>)>| loop {
        let mut moved = false;
        for (k, (conn, gw, got)) in gws.iter_mut().enumerate() {
            while let Some(b) = gw.poll_native() {
                hub.handle_input(now, *conn, &b);
                moved = true;
            }
            while hub.poll_ready().is_some() {}
            while let Some(b) = hub.poll_transmit(*conn) {
                if k == 1 {
                    gw.handle_native(now, b);
                } else {
                    gw.handle_native_cached(now, b, &mut cache);
                }
                moved = true;
            }
            while let Some(WsMessage::Text(t)) = gw.poll_ws() {
                got.push(t.to_string());
            }
        }
        while hub.poll_event().is_some() {}
        if !moved {
            return;
        }
    };
    pump(&mut hub, &mut gws);
    for g in gws.iter_mut() {
        g.2.clear();
    }
    gws[0]
        .1
        .handle_ws_event(now, WsEvent::Text(Utf8Bytes::from("x\u{1}y")));
    pump(&mut hub, &mut gws);
    let want = r#"{"src":"a","dst":"","msg":"x\u0001y"}"#;
    assert_eq!(gws[1].2, vec![want.to_string()]);
    assert_eq!(gws[2].2, vec![want.to_string()]);
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
