//! [`GatewayNet`]: a hub with WebSocket clients behind [`Gateway`]s and native client
//! sessions, driven as a runtime drives them, in virtual time. A browser is its gateway's
//! WebSocket side: the test hands it [`WsEvent`]s and reads what it received in `inbox`.

use std::time::{Duration, Instant};

use serde_json::Value;
use tidings_core::gateway::{Gateway, GatewayMode, RenderCache, WsMessage};
use tidings_core::hub::{ConnId, Hub, HubConfig};
use tidings_core::session::{Config, Event, Session};
use tidings_core::wire::DEFAULT_MAX_FRAME;
use tidings_core::ws::{Utf8Bytes, WsConfig, WsConnection, WsEvent};

/// How a gateway hands the hub's output on to its browser.
pub enum Output {
    /// `handle_native`, then `poll_ws`.
    Plain,
    /// `handle_native_cached` with the net's one [`RenderCache`], then `poll_ws`: the texts
    /// themselves reach the inbox (recipients of a broadcast share their buffer).
    Cached,
    /// `forward_native` (with the cache) into a server `WsConnection`, whose bytes a client
    /// `WsConnection` reads back: what a browser would receive.
    Socket {
        server: Box<WsConnection>,
        browser: Box<WsConnection>,
    },
}

/// A WebSocket client as the hub sees it through a gateway.
pub struct WebClient {
    pub conn: ConnId,
    pub gw: Gateway,
    pub output: Output,
    /// What the browser received (pings it answered are not kept).
    pub inbox: Vec<WsMessage>,
    /// `Hub::handle_eof` was called.
    pub eof_to_hub: bool,
    /// The hub finished the connection and the gateway was told.
    pub eof_from_hub: bool,
    /// Whether the browser answers WebSocket pings (a live one does).
    pub alive: bool,
}

/// A native client session.
pub struct NativeClient {
    pub conn: ConnId,
    pub session: Session,
    pub events: Vec<Event>,
}

/// A hub, its WebSocket and native clients, and virtual time.
pub struct GatewayNet {
    pub now: Instant,
    pub hub: Hub,
    /// The renderings shared by every gateway with [`Output::Cached`] or [`Output::Socket`].
    pub cache: RenderCache,
    pub web: Vec<WebClient>,
    pub native: Vec<NativeClient>,
}

impl Default for GatewayNet {
    fn default() -> Self {
        GatewayNet::new()
    }
}

impl GatewayNet {
    pub fn new() -> GatewayNet {
        GatewayNet::with_config(HubConfig::default())
    }

    pub fn with_config(config: HubConfig) -> GatewayNet {
        let now = Instant::now();
        GatewayNet {
            now,
            hub: Hub::new(config, now),
            cache: RenderCache::new(),
            web: Vec::new(),
            native: Vec::new(),
        }
    }

    /// A WebSocket client in `mode` whose gateway speaks for the hub, as a server's does (a
    /// refusal comes from the server participant).
    pub fn add_web(&mut self, mode: GatewayMode) -> usize {
        let gw = Gateway::for_hub(mode, DEFAULT_MAX_FRAME, self.hub.name(), self.now);
        self.add_gateway(gw, Output::Plain)
    }

    /// A WebSocket client with gateway `gw` and `output`.
    pub fn add_gateway(&mut self, gw: Gateway, output: Output) -> usize {
        let conn = self.hub.connect(self.now);
        self.web.push(WebClient {
            conn,
            gw,
            output,
            inbox: Vec::new(),
            eof_to_hub: false,
            eof_from_hub: false,
            alive: true,
        });
        self.pump();
        self.web.len() - 1
    }

    /// An [`Output::Socket`] with a fixed masking key for the browser.
    pub fn socket() -> Output {
        Output::Socket {
            server: Box::new(WsConnection::server(WsConfig::default())),
            browser: Box::new(WsConnection::client(WsConfig::default(), || [7, 7, 7, 7])),
        }
    }

    pub fn add_native(&mut self, name: &str) -> usize {
        let conn = self.hub.connect(self.now);
        let session = Session::client(Config::default(), name, self.now).unwrap();
        self.native.push(NativeClient {
            conn,
            session,
            events: Vec::new(),
        });
        self.pump();
        self.native.len() - 1
    }

    /// A WebSocket event from browser `i`.
    pub fn ws(&mut self, i: usize, event: WsEvent) {
        self.web[i].gw.handle_ws_event(self.now, event);
        self.pump();
    }

    /// A text message from browser `i`.
    pub fn ws_text(&mut self, i: usize, text: &str) {
        self.ws(i, WsEvent::Text(Utf8Bytes::from(text.to_string())));
    }

    /// Moves bytes until nothing moves, as a runtime would.
    pub fn pump(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for n in &mut self.native {
                while let Some(b) = n.session.poll_transmit() {
                    self.hub.handle_input(now, n.conn, &b);
                    moved = true;
                }
            }
            for w in &mut self.web {
                while let Some(b) = w.gw.poll_native() {
                    self.hub.handle_input(now, w.conn, &b);
                    moved = true;
                }
                if w.gw.native_finished() && !w.eof_to_hub {
                    w.eof_to_hub = true;
                    self.hub.handle_eof(now, w.conn);
                    moved = true;
                }
            }
            while self.hub.poll_ready().is_some() {}
            for n in &mut self.native {
                while let Some(b) = self.hub.poll_transmit(n.conn) {
                    n.session.handle_input(now, &b);
                    moved = true;
                }
                while let Some(e) = n.session.poll_event() {
                    n.events.push(e);
                }
            }
            for w in &mut self.web {
                moved |= web_from_hub(&mut self.hub, &mut self.cache, w, now);
            }
            while self.hub.poll_event().is_some() {}
            if !moved {
                return;
            }
        }
    }

    /// Advances virtual time in steps, firing every timer that is due.
    pub fn run_for(&mut self, total: Duration, step: Duration) {
        self.run_timers(total, step, true);
    }

    /// As `run_for`; `gateways` false leaves the gateways' own timers unfired.
    pub fn run_timers(&mut self, total: Duration, step: Duration, gateways: bool) {
        let end = self.now + total;
        while self.now < end {
            self.now += step;
            self.hub.handle_timeout(self.now);
            for n in &mut self.native {
                n.session.handle_timeout(self.now);
            }
            for w in &mut self.web {
                if gateways && w.gw.poll_timeout().is_some_and(|t| t <= self.now) {
                    w.gw.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    /// Browser `i`'s text messages parsed as JSON, taken out of its inbox.
    pub fn take_json(&mut self, i: usize) -> Vec<Value> {
        std::mem::take(&mut self.web[i].inbox)
            .into_iter()
            .map(|m| match m {
                WsMessage::Text(t) => serde_json::from_str(&t).unwrap(),
                other => panic!("expected text, got {other:?}"),
            })
            .collect()
    }

    /// Native client `i`'s events, taken.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.native[i].events)
    }
}

/// The hub's output for browser `w`, through its gateway to its inbox. Returns whether
/// anything moved.
fn web_from_hub(hub: &mut Hub, cache: &mut RenderCache, w: &mut WebClient, now: Instant) -> bool {
    let mut moved = false;
    while let Some(b) = hub.poll_transmit(w.conn) {
        moved = true;
        match &mut w.output {
            Output::Plain => w.gw.handle_native(now, b),
            Output::Cached => w.gw.handle_native_cached(now, b, cache),
            Output::Socket { server, .. } => w.gw.forward_native(now, b, cache, server).unwrap(),
        }
    }
    if hub.is_finished(w.conn) && !w.eof_from_hub {
        w.eof_from_hub = true;
        w.gw.handle_native_eof();
        moved = true;
    }
    if let Output::Socket { server, browser } = &mut w.output {
        assert!(w.gw.poll_ws().is_none(), "forward_native wrote everything");
        while let Some(bytes) = server.poll_transmit() {
            browser.handle_input(now, &bytes);
        }
        while let Some(e) = browser.poll_event() {
            w.inbox.push(match e {
                WsEvent::Text(t) => WsMessage::Text(t),
                WsEvent::Binary(b) => WsMessage::Binary(b),
                WsEvent::Close { code, reason } => WsMessage::Close {
                    code,
                    reason: reason.to_string(),
                },
                other => panic!("unexpected {other:?}"),
            });
        }
        return moved;
    }
    while let Some(m) = w.gw.poll_ws() {
        match m {
            // A live browser's WebSocket answers at once.
            WsMessage::Ping(payload) if w.alive => {
                w.gw.handle_ws_event(now, WsEvent::Pong(payload));
                moved = true;
            }
            WsMessage::Ping(_) => {}
            other => w.inbox.push(other),
        }
    }
    moved
}
