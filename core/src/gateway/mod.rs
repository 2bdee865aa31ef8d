//! The WebSocket ↔ native bridge: carries one hub connection over one WebSocket, sans-IO
//! (spec §12).
//!
//! A server that accepts WebSocket upgrades on its tidings port creates one [`Gateway`] per
//! upgraded connection, next to its [`WsConnection`] and its hub [`ConnId`](crate::hub::ConnId).
//! The gateway turns what the browser sends into the native bytes the
//! [`Hub`](crate::hub::Hub) reads, and what the hub sends into WebSocket messages, in one of
//! three modes ([`GatewayMode`]):
//!
//! * **binary** (`tidings.v1`, binary messages): the native stream both ways, untouched and
//!   without copying;
//! * **JSON** (`tidings.v1`, text messages): one [`crate::json`] object per message; the
//!   gateway sends the native preamble for the client and drops the hub's;
//! * **legacy** (no subprotocol): a plain chat client named by `?name=` or `Origin`, in the
//!   default room or, with `?room=`, in that room (the gateway speaks protocol 1.1 for it,
//!   joins the room, leaves the default one and shows the room as the default room is shown
//!   to the others); the gateway registers it, translates bare text and `{"src","dst","msg"}` objects, tells it
//!   in such lines who is online when it joins and why its connection ends (before every
//!   close but a dead client's), and keeps the heartbeats for it: it answers the hub's pings, pings the hub after its own
//!   silence, and pings a silent client over the WebSocket, dropping it from the hub when
//!   it stops answering.
//!
//! # Calling contract
//!
//! * **Create** with [`Gateway::new`] once the upgrade is accepted, with the mode from
//!   [`GatewayMode::for_request`], right after [`Hub::connect`](crate::hub::Hub::connect).
//! * **Inputs**: every [`WsEvent`] of the connection goes to [`Gateway::handle_ws_event`];
//!   every chunk [`Hub::poll_transmit`](crate::hub::Hub::poll_transmit) returns for this
//!   connection goes to [`Gateway::handle_native`] (a server with many WebSocket clients
//!   uses [`Gateway::forward_native`] or [`Gateway::handle_native_cached`] with one
//!   [`RenderCache`] for all of them, so that a broadcast is rendered once); when the hub reports the connection
//!   finished ([`Hub::is_finished`](crate::hub::Hub::is_finished)), call
//!   [`Gateway::handle_native_eof`]; when the instant of [`Gateway::poll_timeout`] has come,
//!   [`Gateway::handle_timeout`].
//! * **Outputs**, after every input: [`Gateway::poll_native`] until `None`, each chunk to
//!   [`Hub::handle_input`](crate::hub::Hub::handle_input); then, once
//!   [`Gateway::native_finished`] is true, [`Hub::handle_eof`](crate::hub::Hub::handle_eof)
//!   (once). [`Gateway::poll_ws`] until `None` (or [`Gateway::write_to`]), each message to
//!   the [`WsConnection`] (text, binary, ping); a [`WsMessage::Close`] is the last one and
//!   starts the close handshake. Re-arm the timer at [`Gateway::poll_timeout`].
//!
//! The gateway holds only what one input produced until it is polled; its backpressure is
//! the hub's (take bytes from the hub only as the WebSocket drains) and the WebSocket's
//! message limit ([`crate::ws::WsConfig::max_message_size`], which should not be far above
//! the frame limit: a JSON text longer than the frame limit is refused anyway).
//!
//! # Example: a browser speaking JSON, in memory
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use tidings_core::gateway::{Gateway, GatewayMode, WsMessage};
//! use tidings_core::hub::{Hub, HubConfig};
//! use tidings_core::ws::{Utf8Bytes, WsEvent};
//!
//! let now = Instant::now();
//! let mut hub = Hub::new(HubConfig::default(), now);
//! let conn = hub.connect(now);
//! let mut gw = Gateway::new(GatewayMode::Tidings, now);
//!
//! // Moves bytes between the gateway and the hub until nothing moves; returns what the
//! // browser would receive.
//! let pump = |hub: &mut Hub, gw: &mut Gateway| {
//!     let mut to_browser = Vec::new();
//!     loop {
//!         let mut moved = false;
//!         while let Some(b) = gw.poll_native() { hub.handle_input(now, conn, &b); moved = true; }
//!         while hub.poll_ready().is_some() {}
//!         while let Some(b) = hub.poll_transmit(conn) { gw.handle_native(now, b); moved = true; }
//!         while let Some(m) = gw.poll_ws() { to_browser.push(m); }
//!         if !moved { return to_browser; }
//!     }
//! };
//!
//! // The browser's first message is text, so this connection speaks JSON.
//! let hello = r#"{"type":"hello","name":"alice","capabilities":0,"max_frame":1048576}"#;
//! gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(hello)));
//! assert_eq!(gw.mode(), &GatewayMode::Json);
//! let got = pump(&mut hub, &mut gw);
//! let WsMessage::Text(welcome) = &got[0] else { panic!() };
//! assert!(welcome.starts_with(r#"{"type":"welcome","name":"alice""#));
//! ```

mod cache;
mod heartbeat;
mod legacy;
mod mode;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use cache::{RenderCache, RenderStats};
pub use mode::{legacy_name, legacy_room, GatewayMode};

use cache::TextForm;

use heartbeat::Heartbeat;

use crate::json::{from_json_limited, to_json};
use crate::name::name_key;
use crate::wire::{
    capability, frame_type, Frame, FrameDecoder, Hello, MemberKind, Message, Preamble,
    PresenceKind, Utf8, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_FRAME_CEILING, PREAMBLE_LEN,
};
use crate::ws::{CloseCode, Utf8Bytes, WsConnection, WsEvent, WsSendError, MAX_CLOSE_REASON};
use crate::ErrorCode;

/// A message for the WebSocket, from [`Gateway::poll_ws`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// Send as a text message. A broadcast rendered through a [`RenderCache`] is the same
    /// shared buffer for every recipient.
    Text(Utf8Bytes),
    /// Send as a binary message.
    Binary(Bytes),
    /// Send a ping with this payload (the legacy mode checks that a silent client is
    /// still there; the WebSocket answers pongs by itself).
    Ping(Bytes),
    /// Close the WebSocket with this code and reason (at most 123 bytes); nothing follows.
    Close {
        /// The close code: 1000 normal, 1001 server shutdown or a legacy client that
        /// stopped answering, 1003 the wrong kind of message, 1008 refused or a protocol
        /// error, 1009 a text beyond the frame limit, 1011 the hub sent bytes the gateway
        /// could not read.
        code: CloseCode,
        /// For people.
        reason: String,
    },
}

/// Where the legacy mode stands with the hub.
#[derive(Debug)]
struct LegacyState {
    /// The registered name (private texts to it come back with `dst` set to it).
    name: String,
    /// The server participant's name, the `src` of presence lines; known from `welcome`.
    server: String,
    heartbeat: Heartbeat,
    next_nonce: u64,
    /// The room of `?room=`, if the client asked for one.
    room: Option<LegacyRoom>,
}

/// A legacy client's own room (spec §12.4): the gateway speaks 1.1 to the hub for it, joins
/// the room and leaves the default room, and shows it the room as a 1.0 client sees the
/// default room.
#[derive(Debug)]
struct LegacyRoom {
    /// As the client asked for it until the hub answers the join, then as the hub spells it
    /// (every later message about the room carries that spelling).
    name: Utf8,
    /// `name_key` of the name asked for: the hub's answer may be spelled differently.
    key: String,
    /// The default room, from the first `room-members` after `welcome`; left once the client
    /// is in its room (unless they are the same room).
    default: Option<Utf8>,
    joined: bool,
    /// What the client said before it was in the room, sent once it is (a `room-text` before
    /// the join would be refused as from a non-member), and those messages' bytes.
    held: Vec<Message>,
    held_len: usize,
}

/// One WebSocket connection's bridge to the hub. See the [module docs](self).
#[derive(Debug)]
pub struct Gateway {
    mode: GatewayMode,
    /// The frame limit: JSON texts and the frames built from them stay within it.
    max_frame: u32,
    to_hub: VecDeque<Bytes>,
    to_ws: VecDeque<WsMessage>,
    /// The hub's output, reframed (JSON and legacy modes).
    from_hub: FrameDecoder,
    hub_preamble_seen: bool,
    /// Hub output that arrived before the first data message chose the mode.
    held: Vec<Bytes>,
    /// The client side is over: no more bytes toward the hub.
    client_done: bool,
    /// A close was queued or received: nothing more goes to the WebSocket.
    ws_closed: bool,
    goodbye_sent: bool,
    /// How to close the WebSocket when the hub ends the connection (JSON mode): from the
    /// hub's last `refused`, `goodbye` or fatal `error`.
    close_hint: Option<(CloseCode, String)>,
    legacy: Option<LegacyState>,
}

impl Gateway {
    /// A gateway with the default frame limit (1 MiB, the hub's default) and no server
    /// participant name. `now` is the runtime's clock.
    pub fn new(mode: GatewayMode, now: Instant) -> Gateway {
        Gateway::for_hub(mode, DEFAULT_MAX_FRAME, "", now)
    }

    /// A gateway in front of a hub whose frame limit is `max_frame` (use the hub's
    /// `session.max_frame`: JSON texts and the frames made from them may be that long) and
    /// whose server participant is `server_name` ([`Hub::name`](crate::hub::Hub::name)): a
    /// legacy client whose name is refused before `welcome` hears it from that name (the
    /// `src` of the line, spec §12.4).
    pub fn for_hub(mode: GatewayMode, max_frame: u32, server_name: &str, now: Instant) -> Gateway {
        let mut gw = Gateway {
            mode: GatewayMode::Tidings,
            max_frame,
            to_hub: VecDeque::new(),
            to_ws: VecDeque::new(),
            from_hub: FrameDecoder::new(MAX_FRAME_CEILING),
            hub_preamble_seen: false,
            held: Vec::new(),
            client_done: false,
            ws_closed: false,
            goodbye_sent: false,
            close_hint: None,
            legacy: None,
        };
        match mode {
            GatewayMode::Tidings | GatewayMode::Binary => gw.mode = mode,
            GatewayMode::Json => gw.become_json(now),
            GatewayMode::Legacy { name, room } => gw.start_legacy(name, room, server_name, now),
        }
        gw
    }

    /// The mode in use: [`GatewayMode::Tidings`] until the first data message of a
    /// `tidings.v1` connection, then [`GatewayMode::Binary`] or [`GatewayMode::Json`].
    pub fn mode(&self) -> &GatewayMode {
        &self.mode
    }

    // ----- inputs -----------------------------------------------------------------------

    /// An event of the WebSocket connection.
    pub fn handle_ws_event(&mut self, now: Instant, event: WsEvent) {
        if self.client_done {
            return;
        }
        if let Some(legacy) = &mut self.legacy {
            legacy.heartbeat.heard(now);
        }
        match event {
            WsEvent::Text(text) => match self.mode {
                GatewayMode::Tidings => {
                    self.become_json(now);
                    self.json_in(text.as_str());
                }
                GatewayMode::Json => self.json_in(text.as_str()),
                GatewayMode::Legacy { .. } => self.legacy_in(now, text.as_str()),
                GatewayMode::Binary => self.fail_client(
                    CloseCode::UNSUPPORTED_DATA,
                    ErrorCode::UnexpectedMessage,
                    "text message on a binary tidings connection",
                ),
            },
            WsEvent::Binary(data) => match self.mode {
                GatewayMode::Tidings => {
                    self.mode = GatewayMode::Binary;
                    for held in std::mem::take(&mut self.held) {
                        self.to_ws.push_back(WsMessage::Binary(held));
                    }
                    self.push_hub(now, data);
                }
                GatewayMode::Binary => self.push_hub(now, data),
                GatewayMode::Json | GatewayMode::Legacy { .. } => self.fail_client(
                    CloseCode::UNSUPPORTED_DATA,
                    ErrorCode::UnexpectedMessage,
                    "binary message on a text connection",
                ),
            },
            // The WebSocket layer answers pings itself; pongs only show the peer is alive.
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Close { .. } => {
                // The WebSocket already queued its answer; nothing more may be sent.
                self.ws_closed = true;
                self.say_goodbye(ErrorCode::Normal, "websocket closed");
                self.client_done = true;
            }
            WsEvent::Error(_) => {
                // The stream is broken mid-message: end of stream for the hub (spec §6.7.3).
                self.ws_closed = true;
                self.client_done = true;
            }
        }
    }

    /// Bytes the hub sent to this connection (from `Hub::poll_transmit`), in any pieces.
    ///
    /// Every message is rendered for this connection alone; a server with many WebSocket
    /// clients should use [`Gateway::handle_native_cached`].
    pub fn handle_native(&mut self, now: Instant, bytes: Bytes) {
        self.native_in(now, bytes, None);
    }

    /// [`Gateway::handle_native`], rendering broadcasts once for all gateways that share
    /// `cache` (one per server thread): a chat line the hub sent to a hundred WebSocket
    /// clients is turned into JSON once and its text shared, where each gateway would
    /// otherwise decode and escape it again. What each client receives is the same either
    /// way.
    pub fn handle_native_cached(&mut self, now: Instant, bytes: Bytes, cache: &mut RenderCache) {
        let mut sink = Sink { cache, ws: None };
        self.native_in(now, bytes, Some(&mut sink));
    }

    /// [`Gateway::handle_native_cached`] and then [`Gateway::write_to`] `ws`, in one step: the
    /// way for a server to pass on what the hub sent. A rendering found in `cache` is copied
    /// into the WebSocket's output straight from the cache, so a recipient of a broadcast
    /// costs neither a render nor a reference count. The order of messages is kept.
    ///
    /// # Errors
    ///
    /// As [`Gateway::write_to`]: `ws` refused a message (it is closed or failed); what the
    /// gateway could not write stays queued for [`Gateway::poll_ws`] or a later
    /// [`Gateway::write_to`]. The gateway's state still advanced with all of `bytes`.
    pub fn forward_native(
        &mut self,
        now: Instant,
        bytes: Bytes,
        cache: &mut RenderCache,
        ws: &mut WsConnection,
    ) -> Result<(), WsSendError> {
        let queued = self.write_to(now, ws);
        let mut sink = Sink {
            cache,
            ws: Some((ws, queued)),
        };
        self.native_in(now, bytes, Some(&mut sink));
        let (ws, result) = sink.ws.expect("set above");
        result?;
        self.write_to(now, ws)
    }

    fn native_in(&mut self, now: Instant, bytes: Bytes, sink: Option<&mut Sink<'_>>) {
        if self.ws_closed || bytes.is_empty() {
            return;
        }
        match self.mode {
            // Before the mode is known the hub can only have sent its preamble (or an
            // early error): a few bytes, kept until the client's first message.
            GatewayMode::Tidings => self.held.push(bytes),
            GatewayMode::Binary => self.to_ws.push_back(WsMessage::Binary(bytes)),
            GatewayMode::Json | GatewayMode::Legacy { .. } => self.hub_chunk(now, bytes, sink),
        }
    }

    /// The hub finished this connection: the WebSocket is closed after what was queued.
    pub fn handle_native_eof(&mut self) {
        if !self.client_done {
            // The hub ended a legacy connection without a word (its own messages close the
            // WebSocket first): the client still gets a line rather than a silent close.
            self.legacy_say_why(
                "goodbye",
                ErrorCode::Normal,
                "the server closed the connection",
            );
        }
        self.client_done = true;
        let (code, reason) = self
            .close_hint
            .take()
            .or_else(|| self.held_close())
            .unwrap_or_else(|| {
                if self.mode == GatewayMode::Tidings {
                    // No message came, so the hub heard not one byte and closed silently
                    // (spec §6.6.4); a client that did upgrade is still told why (§12.3).
                    close_for(ErrorCode::HeartbeatTimeout, "no message in time")
                } else {
                    (CloseCode::NORMAL, String::new())
                }
            });
        self.close_ws(code, &reason);
    }

    /// The close for a hub that ended the session before the client's first message told
    /// the mode (say, a handshake timeout): its held `error`, `refused` or `goodbye`
    /// decides the close code, as it would have in any mode (spec §12.3).
    fn held_close(&self) -> Option<(CloseCode, String)> {
        let mut dec = FrameDecoder::new(MAX_FRAME_CEILING);
        for b in &self.held {
            dec.push(b);
        }
        dec.take_prefix(PREAMBLE_LEN)?;
        let mut close = None;
        while let Ok(Some(frame)) = dec.next_frame() {
            match Message::decode(frame) {
                Ok(Message::Refused { code, reason } | Message::Goodbye { code, reason }) => {
                    close = Some(close_for(code, &reason));
                }
                Ok(Message::Error { code, text }) if code.is_fatal() => {
                    close = Some(close_for(code, &text));
                }
                _ => {}
            }
        }
        close
    }

    /// The instant of [`Gateway::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client_done {
            return;
        }
        let Some(legacy) = self.legacy.as_mut() else {
            return;
        };
        let due = legacy.heartbeat.fire(now);
        if due.client_dead {
            // The client vanished without closing: free its name as the hub would.
            self.say_goodbye(
                ErrorCode::HeartbeatTimeout,
                "the WebSocket client stopped answering",
            );
            self.client_done = true;
            self.close_ws(CloseCode::GOING_AWAY, "heartbeat-timeout");
            return;
        }
        if due.ping_hub {
            let nonce = legacy.next_nonce;
            legacy.next_nonce += 1;
            self.send_hub(now, &Message::Ping { nonce });
        }
        if due.probe_client && !self.ws_closed {
            self.to_ws.push_back(WsMessage::Ping(Bytes::new()));
        }
    }

    // ----- outputs ----------------------------------------------------------------------

    /// The next bytes for `Hub::handle_input` of this connection.
    pub fn poll_native(&mut self) -> Option<Bytes> {
        self.to_hub.pop_front()
    }

    /// Whether the client side is over (the WebSocket closed or failed, or the gateway gave
    /// up on the client): once [`Gateway::poll_native`] is drained, call `Hub::handle_eof`.
    pub fn native_finished(&self) -> bool {
        self.client_done
    }

    /// The next message for the WebSocket.
    pub fn poll_ws(&mut self) -> Option<WsMessage> {
        self.to_ws.pop_front()
    }

    /// Drains [`Gateway::poll_ws`] into `ws` (text and binary without copying large
    /// payloads, close, which starts `ws`'s close timer at `now`).
    ///
    /// # Errors
    ///
    /// `ws` refused a message (it is closed or failed): that message and the ones after it
    /// stay queued.
    pub fn write_to(&mut self, now: Instant, ws: &mut WsConnection) -> Result<(), WsSendError> {
        while let Some(msg) = self.to_ws.pop_front() {
            let result = match &msg {
                // Small texts are copied next to their header (one contiguous write for many
                // messages), large ones are queued by reference.
                WsMessage::Text(text) => ws.send_text_bytes(text.clone()),
                WsMessage::Binary(data) => ws.send_binary_bytes(data.clone()),
                WsMessage::Ping(data) => ws.send_ping(data),
                WsMessage::Close { code, reason } => ws.close(now, *code, reason),
            };
            if let Err(e) = result {
                self.to_ws.push_front(msg);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether a close was queued for the WebSocket or received from it.
    pub fn is_ws_closed(&self) -> bool {
        self.ws_closed
    }

    /// When [`Gateway::handle_timeout`] must run. Only a legacy gateway has a timer, once
    /// the hub welcomed it: its heartbeat toward the hub, its pings to a silent client, and
    /// the client's timeout. `None` otherwise.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.client_done {
            return None;
        }
        self.legacy.as_ref()?.heartbeat.deadline()
    }

    // ----- mode set-up ----------------------------------------------------------------

    fn become_json(&mut self, now: Instant) {
        self.mode = GatewayMode::Json;
        self.to_hub.push_back(Bytes::from_static(&PREAMBLE));
        for held in std::mem::take(&mut self.held) {
            self.from_hub.push(&held);
        }
        // The hub's preamble (and any early error) may already be here.
        self.drain_hub(now, None);
    }

    fn start_legacy(
        &mut self,
        name: String,
        room: Option<String>,
        server_name: &str,
        now: Instant,
    ) {
        self.mode = GatewayMode::Legacy {
            name: name.clone(),
            room: room.clone(),
        };
        // Names the native fields cannot carry are refused here, in the words the hub
        // would use; everything else is the hub's to judge.
        let unsendable = |s: &str| s.is_empty() || s.len() > u8::MAX as usize;
        let refusal = if unsendable(&name) {
            Some(ErrorCode::NameInvalid)
        } else if room.as_deref().is_some_and(|r| r.len() > u8::MAX as usize) {
            Some(ErrorCode::RoomRefused)
        } else {
            None
        };
        if let Some(code) = refusal {
            let line = legacy::render(server_name, "", &legacy::farewell_line("refused", code, ""));
            self.to_ws.push_back(WsMessage::Text(line.into()));
            self.client_done = true;
            self.close_ws(CloseCode::POLICY_VIOLATION, code.name());
            return;
        }
        let room = room.map(|room| LegacyRoom {
            key: name_key(&room),
            name: Utf8::from(room),
            default: None,
            joined: false,
            held: Vec::new(),
            held_len: 0,
        });
        // Only a client with a room needs protocol 1.1; without one the hub sees the 1.0
        // client it always saw.
        let capabilities = if room.is_some() { capability::ROOMS } else { 0 };
        self.legacy = Some(LegacyState {
            name: name.clone(),
            server: server_name.to_string(),
            heartbeat: Heartbeat::new(now),
            next_nonce: 1,
            room,
        });
        self.to_hub.push_back(Bytes::from_static(&PREAMBLE));
        self.send_hub(
            now,
            &Message::Hello(Hello {
                name: Utf8::from(name),
                capabilities,
                max_frame: DEFAULT_MAX_FRAME,
            }),
        );
    }

    // ----- client → hub -----------------------------------------------------------------

    fn push_hub(&mut self, now: Instant, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if let Some(legacy) = &mut self.legacy {
            legacy.heartbeat.sent(now);
        }
        self.to_hub.push_back(bytes);
    }

    fn send_hub(&mut self, now: Instant, msg: &Message) {
        let mut out = BytesMut::with_capacity(msg.encoded_len());
        msg.encode(&mut out);
        self.push_hub(now, out.freeze());
    }

    fn json_in(&mut self, text: &str) {
        match from_json_limited(text, self.max_frame) {
            Ok(msg) => {
                if matches!(msg, Message::Goodbye { .. }) {
                    self.goodbye_sent = true;
                }
                // The decoded base64 of a blob or chunk is handed on as it is, not copied
                // again into the frame.
                let mut head = BytesMut::new();
                let payload = msg.encode_split(&mut head, SPLIT_PAYLOAD);
                self.to_hub.push_back(head.freeze());
                self.to_hub.extend(payload);
            }
            Err(e) => {
                // Tell the client in its own terms, then leave the hub as a client would.
                let error = Message::Error {
                    code: e.code,
                    text: Utf8::from_static(e.detail),
                };
                self.to_ws
                    .push_back(WsMessage::Text(to_json(&error).into()));
                self.say_goodbye(e.code, e.detail);
                self.client_done = true;
                self.close_ws(CloseCode::POLICY_VIOLATION, &e.to_string());
            }
        }
    }

    fn legacy_in(&mut self, now: Instant, text: &str) {
        // Checked before parsing: the hub would close the connection for an oversized frame,
        // and parsing never makes a text longer.
        if text.len() > self.max_frame as usize {
            return self.refuse_oversized();
        }
        let (peer, text) = legacy::parse_client_text(text);
        if peer.len() > u8::MAX as usize {
            // No name is that long, and the native field could not carry it whole.
            if let Some(legacy) = &self.legacy {
                let line =
                    legacy::render(&legacy.server, &legacy.name, "unknown-peer: no such peer");
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            return;
        }
        let room = self.legacy.as_mut().and_then(|l| l.room.as_mut());
        let msg = match room {
            Some(room) if peer.is_empty() => Message::RoomText {
                room: room.name.clone(),
                peer,
                text,
            },
            _ => Message::Text {
                peer,
                private: false,
                text,
            },
        };
        let len = msg.encoded_len() - HEADER_LEN;
        if len > self.max_frame as usize {
            return self.refuse_oversized();
        }
        if let Some(room) = self.legacy.as_mut().and_then(|l| l.room.as_mut()) {
            if !room.joined && matches!(msg, Message::RoomText { .. }) {
                // Held until the join is answered; as much as one frame, like any queue
                // of the client's that the hub has not yet taken.
                room.held_len += len;
                if room.held_len > self.max_frame as usize {
                    return self.fail_client(
                        CloseCode::POLICY_VIOLATION,
                        ErrorCode::RateLimited,
                        "too much said before the room was joined",
                    );
                }
                room.held.push(msg);
                return;
            }
        }
        self.send_hub(now, &msg);
    }

    fn refuse_oversized(&mut self) {
        self.fail_client(
            CloseCode::MESSAGE_TOO_BIG,
            ErrorCode::FrameTooLarge,
            "message larger than the frame limit",
        );
    }

    /// The client broke the mode's rules: close the WebSocket and leave the hub.
    fn fail_client(&mut self, close: CloseCode, code: ErrorCode, reason: &'static str) {
        self.legacy_say_why("error", code, reason);
        self.say_goodbye(code, reason);
        self.client_done = true;
        self.close_ws(close, reason);
    }

    /// Queues a native `goodbye` toward the hub, once, in the modes that frame the
    /// client's messages. The binary mode cannot add a frame (the client may have stopped
    /// mid-frame), so there only the end of stream is passed on (spec §6.7.3).
    fn say_goodbye(&mut self, code: ErrorCode, reason: &str) {
        let framed = matches!(self.mode, GatewayMode::Json | GatewayMode::Legacy { .. });
        if !framed || self.goodbye_sent || self.client_done {
            return;
        }
        self.goodbye_sent = true;
        let msg = Message::Goodbye {
            code,
            reason: Utf8::from(reason),
        };
        let mut out = BytesMut::with_capacity(msg.encoded_len());
        msg.encode(&mut out);
        self.to_hub.push_back(out.freeze());
    }

    // ----- hub → client -----------------------------------------------------------------

    /// A chunk of the hub's output (JSON and legacy modes). Whole frames at the front of a
    /// chunk that starts at a frame boundary (the usual case: the hub hands out whole frames)
    /// are read in place; only the rest is copied into the decoder.
    fn hub_chunk(&mut self, now: Instant, bytes: Bytes, mut sink: Option<&mut Sink<'_>>) {
        let mut at = 0;
        if self.hub_preamble_seen && self.from_hub.buffered() == 0 {
            while let Some(total) = whole_frame(&bytes[at..]) {
                let (kind, start, end) = (bytes[at + 4], at + HEADER_LEN, at + total);
                at = end;
                self.hub_frame(now, kind, &bytes[start..end], sink.as_deref_mut(), || {
                    bytes.slice(start..end)
                });
                if self.ws_closed {
                    return;
                }
            }
        }
        if at < bytes.len() {
            self.from_hub.push(&bytes[at..]);
            self.drain_hub(now, sink);
        }
    }

    /// Every whole frame in the decoder.
    fn drain_hub(&mut self, now: Instant, mut sink: Option<&mut Sink<'_>>) {
        while let Some(frame) = self.next_hub_frame() {
            let Frame { kind, body } = frame;
            self.hub_frame(now, kind, &body, sink.as_deref_mut(), || body.clone());
            if self.ws_closed {
                return;
            }
        }
    }

    /// One frame from the hub: `kind` and `body`, which `take_body` hands out as `Bytes` for
    /// decoding (a cache hit needs no decoding).
    fn hub_frame(
        &mut self,
        now: Instant,
        kind: u8,
        body: &[u8],
        sink: Option<&mut Sink<'_>>,
        take_body: impl FnOnce() -> Bytes,
    ) {
        let form = match self.mode {
            GatewayMode::Json => TextForm::Json,
            _ => TextForm::Legacy,
        };
        // Only chat and presence are broadcast; nothing else is worth a lookup. A room's
        // chat and members are the same JSON for every member; a legacy client sees only
        // its own room's, so those are rendered for it alone.
        let sink = sink.filter(|_| {
            let broadcast = match kind {
                frame_type::TEXT | frame_type::BLOB | frame_type::PRESENCE => true,
                frame_type::ROOM_TEXT | frame_type::MEMBER => form == TextForm::Json,
                _ => false,
            };
            broadcast && RenderCache::admits(body)
        });
        if let Some(sink) = sink {
            if self.cached(now, sink, form, kind, body) {
                return;
            }
            let Some(msg) = self.decode_hub(kind, take_body()) else {
                return;
            };
            if let Some(text) = shared_rendering(form, &msg) {
                sink.cache.insert(form, kind, body, text.clone());
                self.to_ws.push_back(WsMessage::Text(text));
            } else {
                self.hub_message(now, form, msg);
            }
            return;
        }
        if let Some(msg) = self.decode_hub(kind, take_body()) {
            self.hub_message(now, form, msg);
        }
    }

    /// Sends the stored rendering of the frame, if there is one: straight into the WebSocket
    /// when the sink has it (after what is queued, to keep the order), else as a message.
    fn cached(
        &mut self,
        now: Instant,
        sink: &mut Sink<'_>,
        form: TextForm,
        kind: u8,
        body: &[u8],
    ) -> bool {
        match &mut sink.ws {
            Some((ws, result)) => {
                let Some(r) = sink.cache.get_ref(form, kind, body) else {
                    return false;
                };
                if result.is_ok() {
                    *result = self
                        .write_to(now, ws)
                        .and_then(|()| ws.send_text_framed(&r.text, &r.frame));
                }
                if result.is_err() {
                    // Kept for a later `write_to`, like everything `ws` would not take.
                    self.to_ws.push_back(WsMessage::Text(r.text.clone()));
                }
                true
            }
            None => match sink.cache.get_ref(form, kind, body) {
                Some(r) => {
                    self.to_ws.push_back(WsMessage::Text(r.text.clone()));
                    true
                }
                None => false,
            },
        }
    }

    /// A frame from the hub as a message; `None` (and the WebSocket closed) if it cannot be
    /// read.
    fn decode_hub(&mut self, kind: u8, body: Bytes) -> Option<Message> {
        match Message::decode(Frame { kind, body }) {
            Ok(msg) => Some(msg),
            Err(_) => {
                self.hub_broken();
                None
            }
        }
    }

    fn hub_message(&mut self, now: Instant, form: TextForm, msg: Message) {
        match form {
            TextForm::Json => self.json_out(msg),
            TextForm::Legacy => self.legacy_out(now, msg),
        }
    }

    fn json_out(&mut self, msg: Message) {
        match &msg {
            Message::Refused { code, reason } | Message::Goodbye { code, reason } => {
                self.close_hint = Some(close_for(*code, reason));
            }
            Message::Error { code, text } if code.is_fatal() => {
                self.close_hint = Some(close_for(*code, text));
            }
            _ => {}
        }
        self.to_ws.push_back(WsMessage::Text(to_json(&msg).into()));
    }

    /// The next whole frame from the hub, its preamble skipped. Bytes the gateway cannot
    /// read (which a correct hub never sends) close the WebSocket with 1011.
    fn next_hub_frame(&mut self) -> Option<Frame> {
        if self.ws_closed {
            return None;
        }
        if !self.hub_preamble_seen {
            self.from_hub.take_prefix(PREAMBLE_LEN)?;
            self.hub_preamble_seen = true;
        }
        match self.from_hub.next_frame() {
            Ok(frame) => frame,
            Err(_) => {
                self.hub_broken();
                None
            }
        }
    }

    fn hub_broken(&mut self) {
        self.say_goodbye(ErrorCode::Malformed, "gateway could not read the server");
        self.client_done = true;
        self.close_ws(CloseCode::INTERNAL_ERROR, "unreadable server output");
    }

    fn legacy_out(&mut self, now: Instant, msg: Message) {
        let Some(legacy) = self.legacy.as_mut() else {
            return;
        };
        match msg {
            Message::Welcome(w) => {
                legacy.server = w.server.to_string();
                legacy.heartbeat.start(w.heartbeat_ms, w.timeout_ms);
                if let Some(room) = &legacy.room {
                    // Who is online is the room's members, known once it is joined.
                    if w.capabilities & capability::ROOMS == 0 {
                        return self.legacy_quit(
                            "refused",
                            ErrorCode::RoomRefused,
                            "this server has no rooms",
                        );
                    }
                    let join = Message::Join {
                        room: room.name.clone(),
                    };
                    return self.send_hub(now, &join);
                }
                // Later joins and leaves come as presence lines; who was already here
                // comes as one line now, or the client would never know of them.
                let line = legacy::render(&legacy.server, "", &legacy::online_line(&w.online));
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::RoomMembers { room, names } => {
                let Some(own) = &mut legacy.room else {
                    return;
                };
                if own.joined {
                    // A refresh nobody asked for: the client already knows.
                    return;
                }
                if name_key(&room) != own.key {
                    // The first room event of a 1.1 session: the default room's members.
                    own.default.get_or_insert(room);
                    return;
                }
                own.joined = true;
                own.name = room;
                let held = std::mem::take(&mut own.held);
                let leave = own.default.take().map(|room| Message::Leave { room });
                let line = legacy::render(&legacy.server, "", &legacy::online_line(&names));
                self.to_ws.push_back(WsMessage::Text(line.into()));
                // Said before the join, so said in the room now; then out of the default
                // room, whose chat the client would otherwise never see nor be able to leave.
                for msg in held.iter().chain(&leave) {
                    self.send_hub(now, msg);
                }
            }
            // Only the client's own room is chat to it (the default room's, before it is
            // left, is not).
            Message::RoomText { room, peer, text }
                if legacy
                    .room
                    .as_ref()
                    .is_some_and(|own| own.joined && own.name == room) =>
            {
                let line = legacy::render(&peer, "", &text);
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::Member { kind, room, name } => {
                let Some(own) = legacy.room.as_ref().filter(|o| o.joined && o.name == room) else {
                    return;
                };
                if name_key(&name) == name_key(&legacy.name) {
                    if kind == MemberKind::Removed {
                        // Removed from its only room (or the room closed): a legacy client
                        // has nowhere else to be.
                        let why = format!("the operator removed you from #{}", own.name);
                        self.legacy_quit("goodbye", ErrorCode::RoomRefused, &why);
                    }
                    return;
                }
                let kind = match kind {
                    MemberKind::Joined => PresenceKind::Joined,
                    MemberKind::Left | MemberKind::Removed => PresenceKind::Left,
                };
                let line = legacy::presence_line(&legacy.server, kind, &name);
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::Text {
                peer,
                private,
                text,
            } => {
                let dst = if private { legacy.name.as_str() } else { "" };
                let line = legacy::render(&peer, dst, &text);
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::Presence { kind, name } => {
                let line = legacy::presence_line(&legacy.server, kind, &name);
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::Ping { nonce } => self.send_hub(now, &Message::Pong { nonce }),
            Message::Error { code, text }
                if matches!(code, ErrorCode::RoomRefused | ErrorCode::LimitExceeded)
                    && legacy.room.as_ref().is_some_and(|own| !own.joined) =>
            {
                // Before the client is in its room the only room request is the join: a
                // refused room is told like a refused name, and the client leaves.
                self.legacy_quit("refused", code, &text);
            }
            Message::Error { code, text } if !code.is_fatal() => {
                let line = format!("{}: {}", code.name(), text);
                let line = legacy::render(&legacy.server, &legacy.name, &line);
                self.to_ws.push_back(WsMessage::Text(line.into()));
            }
            Message::Refused { code, reason } => self.legacy_farewell("refused", code, &reason),
            Message::Error { code, text } => self.legacy_farewell("error", code, &text),
            Message::Goodbye { code, reason } => self.legacy_farewell("goodbye", code, &reason),
            // A legacy client cannot take files: decline at once so the sender is not left
            // waiting for the offer timeout.
            Message::Offer(offer) => self.send_hub(
                now,
                &Message::Reject {
                    id: offer.id,
                    code: ErrorCode::Rejected,
                    reason: Utf8::from_static("this client takes no files"),
                },
            ),
            // Blobs, lists, pongs, extensions: nothing a legacy client can show.
            _ => {}
        }
    }

    /// The hub ended a legacy client's connection with a `refused`, `goodbye` or fatal
    /// `error` (`kind`): one readable line saying why, then the close. A Qt client shows
    /// text messages but not close reasons, so without the line it sees a silent disconnect.
    fn legacy_farewell(&mut self, kind: &str, code: ErrorCode, reason: &str) {
        self.legacy_say_why(kind, code, reason);
        let (close, reason) = close_for(code, reason);
        self.client_done = true;
        self.close_ws(close, &reason);
    }

    /// The gateway ends a legacy client's session itself (its room was refused or taken
    /// away): one line saying why, a `goodbye` to the hub, the close.
    fn legacy_quit(&mut self, kind: &str, code: ErrorCode, reason: &str) {
        self.legacy_say_why(kind, code, reason);
        self.say_goodbye(ErrorCode::Normal, reason);
        self.client_done = true;
        let (close, reason) = close_for(code, reason);
        self.close_ws(close, &reason);
    }

    /// Queues the line of [`Gateway::legacy_farewell`] (legacy mode, WebSocket open).
    fn legacy_say_why(&mut self, kind: &str, code: ErrorCode, reason: &str) {
        let Some(legacy) = &self.legacy else {
            return;
        };
        if self.ws_closed {
            return;
        }
        let msg = legacy::farewell_line(kind, code, reason);
        let line = legacy::render(&legacy.server, &legacy.name, &msg);
        self.to_ws.push_back(WsMessage::Text(line.into()));
    }

    fn close_ws(&mut self, code: CloseCode, reason: &str) {
        if self.ws_closed {
            return;
        }
        self.ws_closed = true;
        self.to_ws.push_back(WsMessage::Close {
            code,
            reason: cut(reason, MAX_CLOSE_REASON).to_string(),
        });
    }
}

/// Where renderings of the hub's frames may come from and go to.
struct Sink<'a> {
    cache: &'a mut RenderCache,
    /// The WebSocket to copy cached renderings into ([`Gateway::forward_native`]), and
    /// whether it has taken everything so far.
    ws: Option<(&'a mut WsConnection, Result<(), WsSendError>)>,
}

const PREAMBLE: [u8; PREAMBLE_LEN] = Preamble::CURRENT.to_bytes();

/// Payloads at least this large are queued toward the hub by reference, not copied.
const SPLIT_PAYLOAD: usize = 1024;

/// The WebSocket close for a hub's `refused`, `goodbye` or fatal `error`: 1000 for a normal
/// goodbye, 1001 for a shutdown, 1008 otherwise; the reason is the hub's, or the code's name.
fn close_for(code: ErrorCode, reason: &str) -> (CloseCode, String) {
    let ws_code = match code.canonical() {
        ErrorCode::Normal => CloseCode::NORMAL,
        ErrorCode::Shutdown => CloseCode::GOING_AWAY,
        _ => CloseCode::POLICY_VIOLATION,
    };
    let reason = if reason.is_empty() && code != ErrorCode::Normal {
        code.name().to_string()
    } else {
        reason.to_string()
    };
    (ws_code, reason)
}

/// The length of the whole frame at the front of `bytes` (header included), if it is all
/// there and within the ceiling (a larger one goes to the decoder, which reports it).
fn whole_frame(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    if len > MAX_FRAME_CEILING {
        return None;
    }
    let total = HEADER_LEN + len as usize;
    (bytes.len() >= total).then_some(total)
}

/// The WebSocket text of `msg` in `mode` if it depends on nothing but the message (so
/// one rendering serves every recipient; see [`RenderCache`]): in the JSON mode `text`,
/// `blob`, `presence`, `room-text` and `member`; in the legacy one a `text` to everyone (a private one names the
/// recipient, presence lines name the server). `None` for everything else.
fn shared_rendering(form: TextForm, msg: &Message) -> Option<Utf8Bytes> {
    match (form, msg) {
        (
            TextForm::Json,
            Message::Text { .. }
            | Message::Blob { .. }
            | Message::Presence { .. }
            | Message::RoomText { .. }
            | Message::Member { .. },
        ) => Some(to_json(msg).into()),
        (
            TextForm::Legacy,
            Message::Text {
                peer,
                private: false,
                text,
            },
        ) => Some(legacy::render(peer, "", text).into()),
        _ => None,
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
