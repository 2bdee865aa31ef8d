//! The session state machine: one end of one connection, client or server side.
//!
//! # Calling contract
//!
//! A [`Session`] never performs I/O. The driver (a runtime, or your own event loop) feeds it
//! inputs and pulls outputs:
//!
//! * **Inputs**: [`Session::handle_input`] with bytes read from the connection,
//!   [`Session::handle_eof`] when the peer closed its side, [`Session::handle_timeout`] when
//!   the deadline from [`Session::poll_timeout`] has passed, and commands (send text, offer a
//!   file, accept, …). Every input takes `now`, the driver's monotonic clock.
//! * **Outputs**, after *every* input or command, in this order:
//!   1. [`Session::poll_transmit`] until `None`: write the bytes to the connection, in order
//!      (several may be gathered into one vectored write);
//!   2. [`Session::poll_event`] until `None`: act on each event (file reads and writes included,
//!      which may queue more output: go back to 1 after acting);
//!   3. [`Session::poll_timeout`]: arm one timer for the returned instant. It returns `now`
//!      whenever output or events are already queued, so a driver that loops until the deadline
//!      is in the future never leaves work behind.
//!
//! When [`Event::Closed`] has been seen and `poll_transmit` returns `None`, close the
//! connection. Before reading from the socket, check [`Session::wants_input`]: it turns false
//! while the application has not polled its events, which is how a slow application slows
//! its peer (TCP flow control does the rest).
//!
//! ```
//! use std::time::Instant;
//! use tidings_core::session::{Config, Event, Session};
//! use tidings_core::wire::Utf8;
//!
//! let now = Instant::now(); // the driver's clock; the core never reads it itself
//! let mut client = Session::client(Config::default(), "alice", now).unwrap();
//! let mut server = Session::server(Config::default(), now);
//!
//! // Move bytes both ways until neither side has anything to say.
//! fn pump(a: &mut Session, b: &mut Session, now: Instant) {
//!     loop {
//!         let mut moved = false;
//!         while let Some(bytes) = a.poll_transmit() { b.handle_input(now, &bytes); moved = true; }
//!         while let Some(bytes) = b.poll_transmit() { a.handle_input(now, &bytes); moved = true; }
//!         if !moved { break; }
//!     }
//! }
//!
//! pump(&mut client, &mut server, now);
//! // The server application (normally the hub) decides on the name.
//! let Some(Event::Hello(hello)) = server.poll_event() else { panic!() };
//! server.accept_hello(hello.name.clone(), Utf8::from("server"), vec![hello.name]).unwrap();
//! pump(&mut client, &mut server, now);
//! assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
//!
//! client.send_text("", "hello, everyone").unwrap();
//! pump(&mut client, &mut server, now);
//! let Some(Event::Text { peer, text, .. }) = server.poll_event() else { panic!() };
//! assert_eq!((peer.as_str(), text.as_str()), ("", "hello, everyone"));
//! ```

mod config;
mod event;
mod output;
mod transfers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use crate::error::SendError;
pub use config::Config;
pub use event::{Closed, Event, Login, RoomEvent, RoomRequest};
pub(crate) use output::{Lane, COPY_LIMIT};

use crate::name::{validate_name, NameError};
use crate::transfer::Transfers;
use crate::wire::{
    capability, FrameDecoder, Hello, Message, Preamble, Utf8, Welcome, MAX_FRAME_CEILING,
    MIN_MAX_FRAME, PREAMBLE_LEN, PROTOCOL_VERSION,
};
use crate::{ErrorCode, ProtocolError};

/// Which end of the connection a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects, sends hello, receives welcome.
    Client,
    /// Accepts, receives hello, sends welcome.
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's preamble.
    Preamble,
    /// Preamble done; waiting for hello (server) or welcome (client).
    Handshake,
    /// Server: hello received, the application has not answered yet (the driver reads
    /// nothing more until it has: a hub judging a login holds the connection here; a
    /// message that came already is `unexpected-message`, spec §6.2).
    PendingAccept,
    /// Messages flow.
    Open,
    /// Finished; only queued output remains.
    Closed,
}

/// One end of a tidings connection, as a pure state machine. See the [module docs](self) for
/// the calling contract and an example.
#[derive(Debug)]
pub struct Session {
    role: Role,
    state: State,
    /// Shared with every session made from the same `Arc` (a hub's sessions).
    config: Arc<Config>,
    decoder: FrameDecoder,
    control: Lane,
    /// File data (chunks and `done`), made with the first such frame and let go once drained
    /// on a quiet connection (most connections never send a file, and a hub holds thousands
    /// of sessions).
    data: Option<Box<Lane>>,
    events: VecDeque<Event>,
    transfers: Transfers,
    peer_max_frame: u32,
    /// The capability bits of the peer's `hello` or `welcome` (0 until then).
    peer_capabilities: u32,
    now: Instant,
    last_rx: Instant,
    last_tx: Instant,
    handshake_deadline: Option<Instant>,
    pings_sent: u64,
    name: Option<Utf8>,
    preamble_sent: bool,
    /// Server: the client's `login`, from its arrival until the application takes it at
    /// `hello` (boxed: most sessions never hold one).
    login: Option<Box<Login>>,
}

impl Session {
    /// A client that will ask for `name`. The preamble and hello are queued at once.
    pub fn client(
        config: impl Into<Arc<Config>>,
        name: &str,
        now: Instant,
    ) -> Result<Session, NameError> {
        validate_name(name)?;
        Ok(Session::client_opening(config.into(), name, None, now))
    }

    /// A client that logs in to the account `name` with `password` (spec §6.2): the
    /// preamble, `login` (method password) and hello are queued at once.
    ///
    /// # Errors
    ///
    /// [`SendError::BadName`] if `name` breaks the naming rules, [`SendError::TooLarge`] if
    /// the password is longer than [`crate::wire::MAX_SECRET`] bytes.
    pub fn client_with_password(
        config: impl Into<Arc<Config>>,
        name: &str,
        password: &str,
        now: Instant,
    ) -> Result<Session, SendError> {
        let method = crate::wire::login_method::PASSWORD;
        Session::client_with_login(config, name, method, password, now)
    }

    /// A client that logs in to the account `name` with `secret` checked by `method`
    /// ([`crate::wire::login_method`]: a password, or a session token from
    /// [`Event::Token`]): the preamble, `login` and hello are queued at once.
    ///
    /// # Errors
    ///
    /// As [`Session::client_with_password`].
    pub fn client_with_login(
        config: impl Into<Arc<Config>>,
        name: &str,
        method: u8,
        secret: &str,
        now: Instant,
    ) -> Result<Session, SendError> {
        validate_name(name).map_err(SendError::BadName)?;
        if secret.len() > crate::wire::MAX_SECRET {
            return Err(SendError::TooLarge);
        }
        let login = Message::Login {
            method,
            secret: crate::wire::Secret::new(secret),
        };
        Ok(Session::client_opening(
            config.into(),
            name,
            Some(&login),
            now,
        ))
    }

    /// A client session with its preamble, its `login` if any, and its hello queued, in
    /// that order (spec §6.2); `name` is valid.
    fn client_opening(
        config: Arc<Config>,
        name: &str,
        login: Option<&Message>,
        now: Instant,
    ) -> Session {
        let mut s = Session::new(Role::Client, config, now);
        s.send_preamble();
        if let Some(login) = login {
            s.queue(login);
        }
        s.queue(&Message::Hello(Hello {
            name: Utf8::from(name),
            capabilities: s.config.capabilities,
            max_frame: s.config.max_frame,
        }));
        s
    }

    /// The server side of a connection just accepted. It sends its preamble after the
    /// client's has arrived.
    ///
    /// Sessions made from clones of one `Arc<Config>` share it rather than each holding a
    /// copy (a hub does this for all of its sessions).
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Session {
        Session::new(Role::Server, config.into(), now)
    }

    fn new(role: Role, mut config: Arc<Config>, now: Instant) -> Session {
        Config::normalize(&mut config);
        Session {
            role,
            state: State::Preamble,
            decoder: FrameDecoder::new(config.max_frame),
            control: Lane::default(),
            data: None,
            events: VecDeque::new(),
            // Our offers' ids: even on the client, odd on the server (spec §7.1).
            transfers: Transfers::new(match role {
                Role::Client => 0,
                Role::Server => 1,
            }),
            peer_max_frame: MIN_MAX_FRAME,
            peer_capabilities: 0,
            now,
            last_rx: now,
            last_tx: now,
            handshake_deadline: Some(now + config.handshake_timeout),
            pings_sent: 0,
            name: None,
            preamble_sent: false,
            login: None,
            config,
        }
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The registered name (client: from welcome; server: as accepted), once known.
    pub fn name(&self) -> Option<&Utf8> {
        self.name.as_ref()
    }

    /// Whether hello/welcome completed and the session has not closed.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the session ended ([`Event::Closed`] is or was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the driver should read more bytes now (see the module docs): not once closed,
    /// not while the event queue is full, and not while a hello waits for its answer.
    pub fn wants_input(&self) -> bool {
        !matches!(self.state, State::Closed | State::PendingAccept)
            && self.events.len() < self.config.max_queued_events
    }

    /// Server: the client's `login`, if one came before its hello. Taken once: the session
    /// keeps no copy of the secret.
    pub fn take_login(&mut self) -> Option<Login> {
        self.login.take().map(|l| *l)
    }

    /// The settings in force (a client's heartbeat values are the server's after welcome).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes queued for transmission and not yet taken by [`Session::poll_transmit`].
    pub fn queued_output(&self) -> usize {
        self.control.len() + self.data_len()
    }

    /// Bytes of everything but file data queued that this session holds on its own (the
    /// hub's chat budget counts these). A frame queued shared with other sessions, not
    /// copied (a broadcast line, a batch of presence news), is one buffer for all of them
    /// and counts for none: counted once per recipient, a batch told to ten thousand members
    /// would pass the budget at once and disconnect them, though it is held only once.
    pub(crate) fn queued_control(&self) -> usize {
        self.control.len() - self.control.shared_len()
    }

    /// Bytes of file data queued.
    fn data_len(&self) -> usize {
        Lane::len_of(&self.data)
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Bytes received from the connection, in any pieces (copied into the receive buffer;
    /// [`Session::input_buffer`] avoids that copy).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(buf) = self.input_buffer(bytes.len()) {
            buf.extend_from_slice(bytes);
        }
        self.handle_received(now, bytes.len());
    }

    /// The receive buffer with room for at least `at_least` more bytes, for a driver that
    /// reads the connection straight into it (its spare capacity) instead of into a buffer
    /// of its own; `None` once the session is closed (nothing more is read).
    ///
    /// Append only bytes read from the connection, remove none, then call
    /// [`Session::handle_received`] with their count. `at_least` is the driver's read size:
    /// the buffer grows by what is received, never by a length a peer declared. As with
    /// [`Session::handle_input`], read only while [`Session::wants_input`] holds, so the
    /// buffer holds at most one frame plus one read.
    pub fn input_buffer(&mut self, at_least: usize) -> Option<&mut BytesMut> {
        (self.state != State::Closed).then(|| self.decoder.read_buf(at_least))
    }

    /// The driver appended `n` received bytes to [`Session::input_buffer`]: decodes them.
    pub fn handle_received(&mut self, now: Instant, n: usize) {
        self.now = now;
        if self.state == State::Closed || n == 0 {
            return;
        }
        self.last_rx = now;
        self.process_input();
    }

    /// The peer closed its sending side (read returned 0).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.state == State::Closed {
            return;
        }
        self.process_input();
        if self.state == State::Closed {
            return;
        }
        match self.decoder.finish() {
            Err(e) => self.close_local(e.code, e.detail),
            Ok(()) => self.finish(Closed::StreamEnded),
        }
    }

    /// The timer armed from [`Session::poll_timeout`] fired (early or late calls are fine).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.state == State::Closed {
            return;
        }
        if self.events.is_empty() && self.events.capacity() > 0 {
            // Timers run when the connection is quiet: an idle session keeps no event queue
            // (a busy one keeps it between timers, so events cost no allocation each).
            self.events = VecDeque::new();
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            if self.role == Role::Server && !self.preamble_sent && self.decoder.peek().is_empty() {
                // Not one byte arrived: nothing shows that the peer speaks tidings, so it is
                // not answered in tidings either (spec §6.6.4).
                return self.finish(Closed::Local {
                    code: ErrorCode::HeartbeatTimeout,
                    reason: Utf8::from_static("no byte received in time"),
                });
            }
            return self.fail(
                ErrorCode::HeartbeatTimeout,
                "handshake not completed in time",
            );
        }
        if self.state != State::Open {
            return;
        }
        if now >= self.last_rx + self.config.heartbeat_timeout {
            return self.fail(
                ErrorCode::HeartbeatTimeout,
                "nothing received from the peer",
            );
        }
        if now >= self.last_tx + self.config.heartbeat_interval {
            self.release_spare();
            self.pings_sent += 1;
            let nonce = self.pings_sent;
            self.queue(&Message::Ping { nonce });
        }
        let mut out = self.outbox();
        out.transfers.handle_timeout(now, out.cfg, &mut out.io);
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next bytes to write to the connection. Control and chat frames always go before
    /// file data.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(data) = self.data.as_mut().filter(|d| d.mid_frame()) {
            // A chunk's head went out; its payload must follow before any control frame.
            return data.pop();
        }
        self.control
            .pop()
            .or_else(|| self.data.as_mut().and_then(|d| d.pop()))
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() && self.state == State::Open {
            // File reads are asked for lazily, when the data lane has room.
            let mut out = self.outbox();
            out.transfers.request_reads(out.cfg, &mut out.io);
        }
        let ev = self.events.pop_front();
        if self.events.len() < self.config.max_queued_events / 2 && self.decoder.buffered() > 0 {
            // Input paused by a full event queue resumes once the application caught up.
            self.process_input();
        }
        ev
    }

    /// When [`Session::handle_timeout`] must be called next: `now` if anything is queued,
    /// `None` once the session is closed and drained.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.control.is_empty() || self.data_len() > 0 || !self.events.is_empty() {
            return Some(self.now);
        }
        if self.state == State::Closed {
            return None;
        }
        if self.state == State::Open
            && self
                .transfers
                .wants_reads(&self.config.transfer, self.data_len())
        {
            return Some(self.now);
        }
        let mut next = self.handshake_deadline;
        if self.state == State::Open {
            let hb = (self.last_tx + self.config.heartbeat_interval)
                .min(self.last_rx + self.config.heartbeat_timeout);
            next = Some(next.map_or(hb, |n| n.min(hb)));
            if let Some(t) = self.transfers.next_deadline(&self.config.transfer) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    // ----- commands: handshake ------------------------------------------------------------

    /// Server: accept the client under `name` (normally the name it asked for). `online` is
    /// the list sent in welcome (include the client itself).
    pub fn accept_hello(
        &mut self,
        name: Utf8,
        server: Utf8,
        online: Vec<Utf8>,
    ) -> Result<(), SendError> {
        let welcome = self.welcome(name.clone(), server, online);
        self.welcomed(name, &welcome, None)
    }

    /// [`Session::accept_hello`] with the list of who is online already encoded: `count`
    /// names as `str8` entries (the hub keeps its default room's members so).
    pub(crate) fn accept_hello_listed(
        &mut self,
        name: Utf8,
        server: Utf8,
        (count, entries): (u32, &[u8]),
    ) -> Result<(), SendError> {
        let welcome = self.welcome(name.clone(), server, Vec::new());
        self.welcomed(name, &welcome, Some((count, entries)))
    }

    fn welcome(&self, name: Utf8, server: Utf8, online: Vec<Utf8>) -> Message {
        Message::Welcome(Welcome {
            name,
            server,
            heartbeat_ms: millis(self.config.heartbeat_interval),
            timeout_ms: millis(self.config.heartbeat_timeout),
            max_frame: self.config.max_frame,
            capabilities: self.config.capabilities,
            online,
        })
    }

    /// Sends `welcome` (with its list in `listing`, if encoded apart) and opens the session.
    fn welcomed(
        &mut self,
        name: Utf8,
        welcome: &Message,
        listing: Option<(u32, &[u8])>,
    ) -> Result<(), SendError> {
        if self.role != Role::Server || self.state != State::PendingAccept {
            return Err(SendError::Invalid("no hello is waiting for an answer"));
        }
        let listed = listing.map_or(0, |(_, entries)| entries.len());
        if welcome.encoded_len() + listed > self.peer_max_frame as usize + crate::wire::HEADER_LEN {
            return Err(SendError::TooLarge);
        }
        match listing {
            None => self.queue(welcome),
            Some(listing) => self.queue_listing(welcome, listing),
        }
        self.name = Some(name);
        self.state = State::Open;
        self.handshake_deadline = None;
        // The handshake's buffers (its event queue, ~450 bytes, and the hello's receive
        // buffer) go now, while the next connection's handshake can reuse them. Let go at
        // the first heartbeat instead, after the joins of thousands of others had allocated
        // around them, they stayed as holes that the heap could not give back.
        self.release_spare();
        Ok(())
    }

    /// Server: refuse the client (name taken, invalid, server full …) and close.
    pub fn refuse(&mut self, code: ErrorCode, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        self.queue(&Message::Refused {
            code,
            reason: Utf8::from(reason),
        });
        self.finish(Closed::Local {
            code,
            reason: Utf8::from(reason),
        });
    }

    /// Orderly close: sends goodbye, fails running transfers with `code`, and ends the
    /// session. Transmit what is queued (goodbye comes last: file data still queued is
    /// dropped, spec §6.7.1), then close the connection.
    pub fn goodbye(&mut self, code: ErrorCode, reason: &str) {
        self.close_local(code, reason);
    }

    // ----- commands: messages -------------------------------------------------------------

    /// Queues any message (the hub uses this to relay). Checks the state, the peer's frame
    /// limit and the output bound.
    pub fn send(&mut self, msg: &Message) -> Result<(), SendError> {
        self.check_send(msg.encoded_len())?;
        self.queue(msg);
        Ok(())
    }

    /// Whether a frame of `encoded_len` bytes (header included) may be queued now: the
    /// session is open, the body fits the peer's frame limit and the output bound holds.
    fn check_send(&self, encoded_len: usize) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        if encoded_len - crate::wire::HEADER_LEN > self.peer_max_frame as usize {
            return Err(SendError::TooLarge);
        }
        if self.control.len() + encoded_len > self.config.max_queued_output {
            return Err(SendError::QueueFull);
        }
        Ok(())
    }

    /// [`Session::send`] for a message already encoded as `frame` (one whole frame, header
    /// included, small enough that [`Session::send`] would copy it too): the same checks,
    /// and the frame is queued as it is, shared rather than copied when nothing else is
    /// queued. The hub encodes a broadcast once for all its recipients this way.
    pub(crate) fn send_frame(&mut self, frame: &Bytes) -> Result<(), SendError> {
        self.check_send(frame.len())?;
        self.send_preamble();
        self.control.push_shared(frame);
        self.last_tx = self.now;
        Ok(())
    }

    /// [`Session::send`] for a message whose list of names is `count` names encoded apart,
    /// as `str8` entries ([`Message::encode_listing`]).
    pub(crate) fn send_listing(
        &mut self,
        msg: &Message,
        listing: (u32, &[u8]),
    ) -> Result<(), SendError> {
        self.check_send(msg.encoded_len() + listing.1.len())?;
        self.queue_listing(msg, listing);
        Ok(())
    }

    /// Queues `frames`: whole frames, already encoded, each small enough to fit any peer's
    /// frame limit (the hub's batches of membership news). Only the state and the output
    /// bound are checked; shared rather than copied when nothing else is queued.
    pub(crate) fn send_frames(&mut self, frames: &Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        if self.control.len() + frames.len() > self.config.max_queued_output {
            return Err(SendError::QueueFull);
        }
        self.send_preamble();
        self.control.push_shared(frames);
        self.last_tx = self.now;
        Ok(())
    }

    /// Client: chat text to `to` (empty: everyone). Server: deliver text from `to` (the
    /// sender) — prefer [`Session::send`] with [`Message::Text`] there, to set `private`.
    pub fn send_text(&mut self, to: &str, text: &str) -> Result<(), SendError> {
        check_peer(to)?;
        self.send(&Message::Text {
            peer: Utf8::from(to),
            private: false,
            text: Utf8::from(text),
        })
    }

    /// Client: binary data with a media type to `to` (empty: everyone), sent without copying.
    pub fn send_blob(&mut self, to: &str, media_type: &str, data: Bytes) -> Result<(), SendError> {
        check_peer(to)?;
        if media_type.len() > u8::MAX as usize {
            return Err(SendError::Invalid("media type longer than 255 bytes"));
        }
        self.send(&Message::Blob {
            peer: Utf8::from(to),
            private: false,
            media_type: Utf8::from(media_type),
            data,
        })
    }

    /// Server only: tells the client that its offer `id` reaches `peer` as transfer
    /// `relay_id` (the `relayed` extension, spec §10 rule 8).
    pub fn send_relayed(&mut self, id: u64, peer: &str, relay_id: u64) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::Invalid("only servers relay offers"));
        }
        let msg = crate::wire::Relayed {
            id,
            peer: crate::wire::Utf8::from(peer),
            relay_id,
        }
        .to_message();
        self.send(&msg)
    }

    /// Client: ask who is online; the answer is [`Event::PeerList`].
    pub fn request_peer_list(&mut self) -> Result<(), SendError> {
        if self.role != Role::Client {
            return Err(SendError::Invalid("only clients ask for the peer list"));
        }
        self.send(&Message::ListRequest)
    }

    // ----- commands: rooms (spec §6.10) ----------------------------------------------------

    /// Whether both sides announced rooms (capability [`crate::wire::capability::ROOMS`]):
    /// only then may room messages be sent. Known once the session is open.
    pub fn rooms(&self) -> bool {
        self.config.capabilities & self.peer_capabilities & capability::ROOMS != 0
    }

    /// The capability bits the peer announced in its `hello` or `welcome` (0 before).
    pub fn peer_capabilities(&self) -> u32 {
        self.peer_capabilities
    }

    /// Client: enter `room` (creating it, if the server lets us). The answer is
    /// [`RoomEvent::Members`], or [`Event::PeerError`] with `room-refused` or
    /// `limit-exceeded`.
    pub fn join(&mut self, room: &str) -> Result<(), SendError> {
        self.check_room_command(room)?;
        self.send(&Message::Join {
            room: Utf8::from(room),
        })
    }

    /// Client: leave `room`; the answer is [`RoomEvent::Member`] `left` about ourselves, or
    /// [`Event::PeerError`] `not-member`.
    pub fn leave(&mut self, room: &str) -> Result<(), SendError> {
        self.check_room_command(room)?;
        self.send(&Message::Leave {
            room: Utf8::from(room),
        })
    }

    /// Client: say `text` to the other members of `room` (we must be one).
    pub fn send_room_text(&mut self, room: &str, text: &str) -> Result<(), SendError> {
        self.check_room_command(room)?;
        self.send(&Message::RoomText {
            room: Utf8::from(room),
            peer: Utf8::default(),
            text: Utf8::from(text),
        })
    }

    /// Client: ask which rooms exist; the answer is [`RoomEvent::List`].
    pub fn request_room_list(&mut self) -> Result<(), SendError> {
        self.check_room_command("-")?;
        self.send(&Message::RoomListRequest)
    }

    fn check_room_command(&self, room: &str) -> Result<(), SendError> {
        if self.role != Role::Client {
            return Err(SendError::Invalid("only clients send room requests"));
        }
        if self.state == State::Open && !self.rooms() {
            return Err(SendError::Invalid("the server does not speak rooms"));
        }
        if room.is_empty() || room.len() > u8::MAX as usize {
            return Err(SendError::Invalid("a room name is 1 to 255 bytes"));
        }
        Ok(())
    }

    // ----- internals ----------------------------------------------------------------------

    /// Lets go of the spare buffers a burst grew: the event queue's (the handshake's events
    /// take ~450 bytes), the lanes' queues of sealed pieces, an empty data lane and an empty
    /// receive buffer. Called when the server accepts a hello and when a heartbeat is sent
    /// or received, that is on quiet connections and at most once an interval or so, so an
    /// idle connection does not keep them for its whole life.
    fn release_spare(&mut self) {
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        self.control.release_spare();
        if self.data.as_ref().is_some_and(|d| d.is_empty()) {
            self.data = None;
        }
        self.decoder.release_spare();
    }

    /// Queues our preamble once. A client sends it at creation; a server answers the
    /// client's, or sends it in front of the error that explains why it is closing early, so
    /// that a peer always sees a well-formed stream.
    fn send_preamble(&mut self) {
        if !self.preamble_sent {
            self.preamble_sent = true;
            self.control.push_raw(&Preamble::CURRENT.to_bytes());
        }
    }

    fn queue(&mut self, msg: &Message) {
        self.send_preamble();
        self.control.push(msg);
        self.last_tx = self.now;
    }

    /// [`Session::queue`] for a message whose list of names is encoded apart
    /// ([`Message::encode_listing`]).
    fn queue_listing(&mut self, msg: &Message, (count, entries): (u32, &[u8])) {
        let mut frame = BytesMut::new();
        msg.encode_listing(count, entries, &mut frame);
        self.send_preamble();
        self.control.push_raw(&frame);
        self.last_tx = self.now;
    }

    fn process_input(&mut self) {
        if self.state == State::Preamble && !self.read_preamble() {
            return;
        }
        while self.state != State::Closed && self.events.len() < self.config.max_queued_events {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.fail(e.code, e.detail),
            };
            let result = Message::decode(frame).and_then(|msg| self.dispatch(msg));
            if let Err(e) = result {
                return self.fail(e.code, e.detail);
            }
        }
    }

    /// Consumes the peer's preamble; false while it is incomplete or after a failure.
    fn read_preamble(&mut self) -> bool {
        let preamble = match Preamble::parse(self.decoder.peek()) {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                self.fail(e.code, e.detail);
                return false;
            }
        };
        self.decoder.take_prefix(PREAMBLE_LEN);
        // Always answer with our own version, so a newer client learns what we speak.
        self.send_preamble();
        if preamble.version != PROTOCOL_VERSION {
            self.fail(
                ErrorCode::UnsupportedVersion,
                "the peer speaks another protocol version",
            );
            return false;
        }
        self.state = State::Handshake;
        true
    }

    fn dispatch(&mut self, msg: Message) -> Result<(), ProtocolError> {
        use Message as M;
        match (self.state, self.role, msg) {
            (_, _, M::Goodbye { code, reason }) => self.finish(Closed::Peer { code, reason }),
            (_, _, M::Error { code, text }) if code.is_fatal() => {
                self.finish(Closed::Peer { code, reason: text })
            }
            (State::Open, Role::Client, M::Extension { kind, body }) => {
                // An extension that cannot be decoded is ignored like an unknown one: it must
                // never end a version 1 session (spec §4.3).
                if let Some(Ok(r)) = crate::wire::Relayed::from_extension(kind, body) {
                    let mut out = self.outbox();
                    out.transfers.relayed(r, &mut out.io);
                }
            }
            (_, _, M::Extension { .. }) => {}
            (State::Handshake, Role::Server, M::Login { method, secret }) => {
                if self.login.is_some() {
                    return Err(ProtocolError::new(
                        ErrorCode::UnexpectedMessage,
                        "a second login",
                    ));
                }
                self.login = Some(Box::new(Login { method, secret }));
            }
            (State::Handshake, Role::Server, M::Hello(hello)) => {
                if hello.max_frame < MIN_MAX_FRAME {
                    return Err(malformed("announced frame limit below the minimum"));
                }
                self.peer_max_frame = hello.max_frame.min(MAX_FRAME_CEILING);
                self.peer_capabilities = hello.capabilities;
                self.state = State::PendingAccept;
                self.events.push_back(Event::Hello(hello));
            }
            (State::Handshake, Role::Client, M::Welcome(w)) => {
                if w.max_frame < MIN_MAX_FRAME || w.heartbeat_ms == 0 || w.timeout_ms == 0 {
                    return Err(malformed("welcome limits out of range"));
                }
                self.peer_max_frame = w.max_frame.min(MAX_FRAME_CEILING);
                self.peer_capabilities = w.capabilities;
                // The server's heartbeat settings replace ours. The settings are copied here if
                // shared (the transfers keep the copy they hold; heartbeats are not theirs).
                let config = Arc::make_mut(&mut self.config);
                config.heartbeat_interval =
                    core::time::Duration::from_millis(w.heartbeat_ms.into());
                config.heartbeat_timeout = core::time::Duration::from_millis(w.timeout_ms.into());
                self.name = Some(w.name.clone());
                self.state = State::Open;
                self.handshake_deadline = None;
                self.events.push_back(Event::Connected(w));
            }
            (State::Open, Role::Client, M::Token { token }) => {
                self.events.push_back(Event::Token(token))
            }
            (State::Handshake, Role::Client, M::Refused { code, reason }) => {
                self.finish(Closed::Peer { code, reason })
            }
            (
                State::Open,
                _,
                M::Text {
                    peer,
                    private,
                    text,
                },
            ) => self.events.push_back(Event::Text {
                peer,
                private,
                text,
            }),
            (
                State::Open,
                _,
                M::Blob {
                    peer,
                    private,
                    media_type,
                    data,
                },
            ) => self.events.push_back(Event::Blob {
                peer,
                private,
                media_type,
                data,
            }),
            (State::Open, _, M::Ping { nonce }) => {
                self.release_spare();
                self.queue(&M::Pong { nonce })
            }
            (State::Open, _, M::Pong { .. }) => self.release_spare(),
            (State::Open, _, M::Error { code, text }) => {
                self.events.push_back(Event::PeerError { code, text })
            }
            (State::Open, Role::Server, M::RoomText { room, peer, text }) if self.rooms() => {
                if !peer.is_empty() {
                    return Err(malformed("a client's room-text names a peer"));
                }
                self.events
                    .push_back(Event::RoomRequest(RoomRequest::Text { room, text }))
            }
            (State::Open, Role::Server, M::Join { room }) if self.rooms() => self
                .events
                .push_back(Event::RoomRequest(RoomRequest::Join(room))),
            (State::Open, Role::Server, M::Leave { room }) if self.rooms() => self
                .events
                .push_back(Event::RoomRequest(RoomRequest::Leave(room))),
            (State::Open, Role::Server, M::RoomListRequest) if self.rooms() => {
                self.events.push_back(Event::RoomRequest(RoomRequest::List))
            }
            (State::Open, Role::Client, M::RoomText { room, peer, text }) if self.rooms() => self
                .events
                .push_back(Event::Room(RoomEvent::Text { room, peer, text })),
            (State::Open, Role::Client, M::Member { kind, room, name }) if self.rooms() => self
                .events
                .push_back(Event::Room(RoomEvent::Member { kind, room, name })),
            (State::Open, Role::Client, M::RoomMembers { room, names }) if self.rooms() => self
                .events
                .push_back(Event::Room(RoomEvent::Members { room, names })),
            (State::Open, Role::Client, M::RoomList { rooms }) if self.rooms() => {
                self.events.push_back(Event::Room(RoomEvent::List(rooms)))
            }
            (State::Open, Role::Client, M::Presence { kind, name }) => {
                self.events.push_back(Event::Presence { kind, name })
            }
            (State::Open, Role::Client, M::PeerList { names }) => {
                self.events.push_back(Event::PeerList(names))
            }
            (State::Open, Role::Server, M::ListRequest) => {
                self.events.push_back(Event::PeerListRequested)
            }
            (
                State::Open,
                _,
                msg @ (M::Offer(_)
                | M::Accept { .. }
                | M::Reject { .. }
                | M::Chunk { .. }
                | M::Credit { .. }
                | M::Done { .. }
                | M::Cancel { .. }
                | M::Complete { .. }
                | M::Failed { .. }),
            ) => {
                let mut out = self.outbox();
                out.transfers.handle_message(msg, out.cfg, &mut out.io)?;
            }
            _ => {
                return Err(ProtocolError::new(
                    ErrorCode::UnexpectedMessage,
                    "message not allowed in this state or role",
                ))
            }
        }
        Ok(())
    }

    /// A protocol failure detected here: tell the peer why, then close.
    fn fail(&mut self, code: ErrorCode, detail: &'static str) {
        if self.state == State::Closed {
            return;
        }
        self.queue(&Message::Error {
            code,
            text: Utf8::from_static(detail),
        });
        self.finish(Closed::Local {
            code,
            reason: Utf8::from_static(detail),
        });
    }

    fn close_local(&mut self, code: ErrorCode, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        self.queue(&Message::Goodbye {
            code,
            reason: Utf8::from(reason),
        });
        self.finish(Closed::Local {
            code,
            reason: Utf8::from(reason),
        });
    }

    /// Ends the session: running transfers fail, then [`Event::Closed`] is queued.
    fn finish(&mut self, how: Closed) {
        self.state = State::Closed;
        self.login = None;
        // The transfers end with the session (spec §7.7), so their queued file data is of no
        // use to the peer, and the goodbye or error must be the last frame sent (§6.7): only
        // the rest of a chunk already begun still goes out.
        if let Some(data) = self.data.as_mut() {
            data.keep_frame_in_progress();
        }
        // A stream that ended, cleanly or inside a frame, lost the peer: that is what its
        // transfers report, so a receiver knows it may resume.
        let code = match how {
            Closed::StreamEnded
            | Closed::Local {
                code: ErrorCode::Truncated,
                ..
            } => ErrorCode::PeerLost,
            ref c => c.code(),
        };
        let mut out = self.outbox();
        out.transfers.abort_all(code, &mut out.io);
        self.events.push_back(Event::Closed(how));
    }
}

fn millis(d: core::time::Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

fn malformed(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::Malformed, detail)
}

fn check_peer(to: &str) -> Result<(), SendError> {
    if to.is_empty() {
        return Ok(());
    }
    validate_name(to).map_err(SendError::BadName)
}
