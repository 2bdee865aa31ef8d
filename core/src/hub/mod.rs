//! The hub: the server side of tidings as a pure state machine — every connection's
//! [`Session`] (server role), the registry of names, chat routing, relayed file transfers and
//! the server's own participant.
//!
//! **For runtime authors (changes to the agreed API):** none of the agreed names changed.
//! Added: [`Hub::config`], [`Hub::queued_output`], [`Hub::peer_name`],
//! [`Hub::relay_buffered`] / [`Hub::relay_buffered_max`] / [`Hub::relay_buffered_peak`] /
//! [`Hub::relay_count`] / [`Hub::relay_committed`] / [`Hub::relay_waiting`],
//! [`Hub::dropped_events`] and [`Hub::try_new`]; for accounts, [`HubConfig::accounts`],
//! [`HubEvent::Verify`], [`Hub::allow`], [`Hub::deny`], [`Hub::send_token`],
//! [`Hub::is_verifying`], [`Hub::verifying_count`] and [`Hub::now`]. [`Hub::wants_input`] now also turns false
//! while a client is paused for its message rate: a runtime must check it before every read
//! (a paused connection is returned by [`Hub::poll_ready`] when it may be read again). One rule matters for memory: take bytes
//! from [`Hub::poll_transmit`] only as the socket accepts them (see step 1 below).
//!
//! # Calling contract
//!
//! Like a [`Session`], the hub performs no I/O. One hub serves every connection; the runtime
//! owns the sockets and the clock.
//!
//! * **A connection arrives**: [`Hub::connect`] returns its [`ConnId`]. The bytes on it are
//!   native tidings frames (a WebSocket runtime unwraps binary messages first).
//! * **Inputs**: [`Hub::handle_input`] (bytes read; read only while [`Hub::wants_input`]),
//!   [`Hub::handle_eof`], [`Hub::handle_timeout`] (when the instant from [`Hub::poll_timeout`]
//!   has come), and the commands of the server's participant ([`Hub::say`],
//!   [`Hub::offer_file`], [`Hub::kick`], [`Hub::shutdown`] …). Each takes effect at once,
//!   across every connection it touches.
//! * **Outputs**, after *every* input, command or [`Hub::poll_transmit`] call:
//!   1. [`Hub::poll_ready`] until `None`: each connection returned has new bytes to send or
//!      has finished; wake its writer. The writer takes bytes with [`Hub::poll_transmit`]
//!      **only as fast as its socket accepts them**: hold at most one vectored write's worth
//!      (say 256 KiB) outside the hub, write it, and take more once it is written; continue
//!      until `poll_transmit` returns `None` (taking bytes may let the hub queue more, for
//!      example the next piece of a relayed file). When [`Hub::is_finished`] is true and
//!      nothing taken is left unwritten, close the socket and call [`Hub::remove`].
//!
//!      `poll_transmit` is the hub's backpressure point. Bytes still inside the hub are what
//!      the slow-consumer bound and the relay window count; a writer that drains to `None`
//!      into its own unbounded buffer regardless of the socket defeats both (memory then
//!      grows with a stalled reader, and a relayed file flows into that buffer whole).
//!   2. [`Hub::poll_event`] until `None`: what happened, for the operator and the server's
//!      participant (file reads and writes of the server's own transfers included).
//!   3. [`Hub::poll_timeout`]: the one timer to arm, for all connections together, found in
//!      O(log n). It is `now` while hub events are waiting to be polled. It may come earlier
//!      than strictly needed (entries are moved lazily, and a firing with nothing due costs
//!      little), never later: a dead peer is found at its heartbeat timeout.
//!
//! Connection ids that are no longer known (removed) are ignored by every method, so a
//! runtime may race a close against a late read without harm.
//!
//! # What the hub does
//!
//! * **Names**: a hello is refused with `name-invalid` (spec §6.1), `name-taken` (compared
//!   by [`crate::name::name_key`]: case, full-width and look-alike letters folded; the
//!   server's own name is always taken) or `server-full`; otherwise
//!   the client gets `welcome` with everyone online and the others get `presence` joined,
//!   at once or gathered over [`HubConfig::presence_interval`].
//!   With [`HubConfig::accounts`] a valid hello first waits, unread, for the driver's
//!   verdict on the name and the `login` before it ([`HubEvent::Verify`] → [`Hub::allow`] or
//!   [`Hub::deny`]); the checks above are made when the verdict comes.
//!   When a registered connection closes, the others get `presence` left (the same way).
//! * **Chat**: text and blobs addressed to nobody go to every other client; addressed to a
//!   name, to that client only, marked private. The sender is always stamped with its
//!   registered name, so nobody can speak for someone else. An unknown addressee gets the
//!   sender an `error` frame `unknown-peer`; the connection stays open.
//! * **Message rate**: a client sending chat, list requests or offers faster than
//!   [`HubConfig::message_rate`] (beyond [`HubConfig::message_burst`]) is slowed — the hub
//!   stops taking its messages and [`Hub::wants_input`] turns false until its bucket has
//!   refilled — and disconnected with `rate-limited` if it is still over the rate after
//!   [`HubConfig::rate_limit_grace`]. File data and heartbeats do not count.
//! * **Slow consumers**: a client whose queued output reaches the session's bound is
//!   disconnected with `slow-consumer` and its queued output dropped, so one stalled reader
//!   never holds up (or grows the memory of) everyone else. All connections' queued chat
//!   output together stays within [`HubConfig::chat_budget`] ([`Hub::chat_queued`]): past
//!   it, the connections holding the most go the same way, largest first.
//! * **Relayed files**: an offer to another client is offered on to it under the sender's
//!   name; the receiver's accept (with its resume offset) is passed back, the sender's
//!   chunks are handed on as the receiver's connection asks for them, and the sender gets
//!   credit back only for bytes handed on, so the hub holds at most one transfer window per
//!   transfer ([`Hub::relay_buffered`]), and all relays together at most
//!   [`HubConfig::relay_budget`] (senders wait for credit when it is used up;
//!   [`Hub::relay_committed`]). The digest travels end to end; a cancel, reject or
//!   lost connection on either side ends the other side (`peer-lost` for a lost connection).
//! * **The server's participant**: it sees broadcasts and text addressed to it as
//!   [`HubEvent::Text`], speaks with [`Hub::say`], and exchanges files with clients through
//!   [`HubEvent::Transfer`] and the methods taking a [`FileHandle`].
//!
//! ```
//! use std::time::Instant;
//! use tidings_core::hub::{Hub, HubConfig, HubEvent};
//! use tidings_core::session::{Config, Event, Session};
//!
//! let now = Instant::now();
//! let mut hub = Hub::new(HubConfig::default(), now);
//! let conn = hub.connect(now);
//! let mut alice = Session::client(Config::default(), "alice", now).unwrap();
//!
//! // Move bytes both ways until nothing moves (a runtime does this with sockets).
//! let pump = |hub: &mut Hub, alice: &mut Session| loop {
//!     let mut moved = false;
//!     while let Some(b) = alice.poll_transmit() { hub.handle_input(now, conn, &b); moved = true; }
//!     while hub.poll_ready().is_some() {}
//!     while let Some(b) = hub.poll_transmit(conn) { alice.handle_input(now, &b); moved = true; }
//!     if !moved { break; }
//! };
//!
//! pump(&mut hub, &mut alice);
//! assert!(matches!(alice.poll_event(), Some(Event::Connected(w)) if w.server == "server"));
//! assert!(matches!(hub.poll_event(), Some(HubEvent::Joined { online: 1, .. })));
//!
//! alice.send_text("", "hello, everyone").unwrap();
//! pump(&mut hub, &mut alice);
//! let Some(HubEvent::Text { from, text, .. }) = hub.poll_event() else { panic!() };
//! assert_eq!((from.as_str(), text.as_str()), ("alice", "hello, everyone"));
//!
//! hub.say(Some("alice"), "welcome, alice").unwrap();
//! pump(&mut hub, &mut alice);
//! let Some(Event::Text { peer, private, text }) = alice.poll_event() else { panic!() };
//! assert_eq!((peer.as_str(), private, text.as_str()), ("server", true, "welcome, alice"));
//! ```

mod announce;
mod chat;
mod cluster;
mod conn_table;
mod files;
mod rate;
mod relay;
mod rooms;
mod roster;
mod timers;
mod types;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use rooms::{RoomConfig, RoomCreation};
pub use types::{ConnId, FileHandle, HubConfig, HubConfigError, HubError, HubEvent};

use crate::session::{Config as SessionConfig, Event, Session};
use crate::wire::Utf8;
use crate::ErrorCode;
use announce::Announcements;
use conn_table::ConnTable;
use rate::rate_limits;
use relay::Relays;
use rooms::Rooms;
use timers::Timers;

/// Most hub events kept for the operator. Chat seen by the server's participant is dropped
/// beyond this (counted in [`Hub::dropped_events`]) rather than slowing every client.
const MAX_HUB_EVENTS: usize = 4096;

/// One connection.
#[derive(Debug)]
struct Conn {
    session: Session,
    /// The deadline this connection has in [`Timers`].
    deadline: Option<Instant>,
    /// Queued in `Hub::dirty` (its events must be processed).
    dirty: bool,
    /// Queued in `Hub::ready` (its writer must be woken).
    ready: bool,
    /// Closed by the hub as a slow consumer: whatever it had queued is dropped.
    discard: bool,
    /// Its `Closed` event was processed (name released, others told).
    gone: bool,
    /// Its writer was woken after the session closed (once is enough).
    close_reported: bool,
    /// It is in the default room (every client is when welcomed; a 1.1 client may leave).
    /// Kept here rather than in a member table: every connection is in it, and a table
    /// entry would cost an idle connection more than this byte.
    in_default_room: bool,
    /// The first item of the default room's pending membership news it has not heard
    /// (see `announce`).
    heard: u32,
    /// When the hub first saw the session closed.
    closed_at: Option<Instant>,
    /// The [`Hub::timer_round`] in which [`Hub::handle_timeout`] last ran this session's
    /// timers (a number rather than an instant: 8 bytes of every connection).
    timers_round: u64,
    /// When bytes last arrived (the session's receive timeout counts from here).
    last_input: Instant,
    /// Its message-rate bucket.
    rate: rate::Bucket,
    /// Its queued chat output as last counted into `Hub::chat_queued` (0 once discarded).
    /// At most `max_queued_output` plus one frame, so 32 bits (of every connection).
    counted: u32,
}

/// The server side of tidings as a pure state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// `config.session`, normalized once and shared by every session (not copied into each).
    session_config: Arc<SessionConfig>,
    server_name: Utf8,
    now: Instant,
    /// Every connection, side by side (it also hands out the ids).
    conns: ConnTable<Conn>,
    /// `name_key` of a registered name → its connection, ordered so that lists come sorted.
    names: BTreeMap<String, ConnId>,
    /// Every room and who is in it.
    rooms: Rooms,
    /// The default room's membership news not yet told to everyone.
    announcements: Announcements,
    /// `name_key` of a banned name → when its ban ends ([`Hub::ban`]). Only the operator
    /// adds to it; ended bans are dropped at the next ban.
    bans: BTreeMap<String, Instant>,
    timers: Timers,
    /// Counts the changes of the instant [`Hub::handle_timeout`] runs at (the runtime's clock
    /// never goes back); the last instant is `timer_now`.
    timer_round: u64,
    timer_now: Instant,
    /// Connections whose session may have events to process.
    dirty: VecDeque<ConnId>,
    /// Connections whose writer must be woken.
    ready: VecDeque<ConnId>,
    /// A room line's recipients that speak rooms, and those that do not (1.0 clients, in
    /// the default room), kept between lines (the first also lists the members a batch of
    /// presence news goes to): a list of thousands allocated each time is a large block for
    /// nothing.
    targets: (Vec<ConnId>, Vec<ConnId>),
    events: VecDeque<HubEvent>,
    dropped_events: u64,
    relays: Relays,
    /// The most bytes any single relay ever held.
    relay_peak: usize,
    /// Queued chat output of every connection, as last counted (see
    /// [`HubConfig::chat_budget`]).
    chat_queued: usize,
    /// The id of the next offer the server makes on any connection (odd, increasing): one
    /// counter for the whole server, so that a relayed transfer has the same number on the
    /// receiver's connection that the sender is told in `relayed` (spec §10 rule 8).
    next_offer_id: u64,
    /// Transfers of the server's participant → the client at the other end.
    own: HashMap<FileHandle, Utf8>,
    /// With [`HubConfig::accounts`]: connections whose hello waits for a verdict → the name
    /// they asked for.
    verifying: HashMap<ConnId, Utf8>,
    /// With [`HubConfig::cluster`]: this node's part of the cluster.
    cluster: Option<Box<cluster::Cluster>>,
    shutting_down: bool,
}

impl Hub {
    /// A hub with no connections. `now` is the runtime's clock.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid ([`HubConfig::validate`]: the server's name breaks the
    /// naming rules). Use [`Hub::try_new`] to get the error instead.
    pub fn new(config: HubConfig, now: Instant) -> Hub {
        match Hub::try_new(config, now) {
            Ok(hub) => hub,
            Err(e) => panic!("{e}"),
        }
    }

    /// A hub with no connections, or why its configuration cannot be used.
    ///
    /// # Errors
    ///
    /// [`HubConfigError::ServerName`] if the server's name breaks the naming rules of spec
    /// §6.1 (clients could not address it, and it might not fit `welcome`).
    pub fn try_new(config: HubConfig, now: Instant) -> Result<Hub, HubConfigError> {
        config.validate()?;
        let mut session_config = Arc::new(config.session.clone());
        // A hub always speaks rooms (spec §6.10); each client chooses whether it does.
        Arc::make_mut(&mut session_config).capabilities |= crate::wire::capability::ROOMS;
        SessionConfig::normalize(&mut session_config);
        let rooms = Rooms::new(&config.rooms);
        let cluster = (config.cluster.clone()).map(|c| Box::new(cluster::Cluster::new(c, now)));
        let mut hub = Hub {
            session_config,
            server_name: Utf8::from(config.server_name.as_str()),
            config,
            now,
            conns: ConnTable::default(),
            names: BTreeMap::new(),
            rooms,
            announcements: Announcements::default(),
            bans: BTreeMap::new(),
            timers: Timers::default(),
            timer_round: 1,
            timer_now: now,
            dirty: VecDeque::new(),
            ready: VecDeque::new(),
            targets: (Vec::new(), Vec::new()),
            events: VecDeque::new(),
            dropped_events: 0,
            relays: Relays::default(),
            relay_peak: 0,
            chat_queued: 0,
            next_offer_id: 1,
            own: HashMap::new(),
            verifying: HashMap::new(),
            cluster,
            shutting_down: false,
        };
        // A node starting says hello with its (empty) roster: the others answer with theirs.
        hub.cluster_ask(now);
        Ok(hub)
    }

    /// The settings in force.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The runtime's clock as the hub last saw it (the latest `now` given to any input).
    pub fn now(&self) -> Instant {
        self.now
    }

    // ----- connections ------------------------------------------------------------------

    /// A connection was accepted; its bytes go to [`Hub::handle_input`] under the returned id.
    /// The session waits for the client's preamble and hello (within the handshake timeout).
    pub fn connect(&mut self, now: Instant) -> ConnId {
        self.now = now;
        let conn = Conn {
            session: Session::server(self.session_config.clone(), now),
            deadline: None,
            dirty: false,
            ready: false,
            discard: false,
            counted: 0,
            in_default_room: false,
            heard: 0,
            gone: false,
            close_reported: false,
            closed_at: None,
            timers_round: 0,
            last_input: now,
            rate: rate::Bucket::new(&rate_limits(&self.config), now),
        };
        let id = self.conns.insert(conn);
        self.refresh(id);
        id
    }

    /// Bytes read from connection `conn`, in any pieces.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        if let Some(buf) = self.input_buffer(conn, bytes.len()) {
            buf.extend_from_slice(bytes);
        }
        self.handle_received(now, conn, bytes.len());
    }

    /// `conn`'s receive buffer with room for at least `at_least` more bytes (`None` for an
    /// unknown or closed connection): a runtime reads the socket straight into its spare
    /// capacity, then calls [`Hub::handle_received`]. That saves [`Hub::handle_input`]'s copy
    /// of every received byte, and relayed chunk payloads go on to the receiver as slices of
    /// this buffer. Append only bytes read from the socket, remove none, and read only while
    /// [`Hub::wants_input`] holds (see [`Session::input_buffer`]).
    pub fn input_buffer(&mut self, conn: ConnId, at_least: usize) -> Option<&mut BytesMut> {
        self.conns.get_mut(&conn)?.session.input_buffer(at_least)
    }

    /// The runtime appended `n` bytes read from `conn` to [`Hub::input_buffer`]: they are
    /// processed as by [`Hub::handle_input`].
    pub fn handle_received(&mut self, now: Instant, conn: ConnId, n: usize) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.rate.input(&rate_limits(&self.config), now, n) {
            // Its runtime does not stop reading while the hub paused it: a flood.
            c.session
                .goodbye(ErrorCode::RateLimited, rate::PAUSED_INPUT_REASON);
        }
        c.session.handle_received(now, n);
        if n > 0 {
            c.last_input = now;
        }
        self.touch(conn);
        self.run();
    }

    /// The client closed its sending side (or the socket failed). The session ends (a
    /// registered client leaves) and whatever is queued should still be written.
    pub fn handle_eof(&mut self, now: Instant, conn: ConnId) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.session.handle_eof(now);
        self.touch(conn);
        self.run();
    }

    /// The timer armed from [`Hub::poll_timeout`] fired (early or late calls are fine): every
    /// connection whose deadline has come gets its heartbeat, handshake and transfer timers
    /// run. A dead client is closed, and everyone else sees it leave.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if now != self.timer_now {
            self.timer_round += 1;
            self.timer_now = now;
        }
        for id in self.timers.take_expired(now) {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            // The entry left the timer set: forget it, so refresh re-inserts whatever is next.
            c.deadline = None;
            if c.closed_at
                .is_some_and(|t| now >= t + self.config.session.heartbeat_timeout)
            {
                // Closed, yet its output never drained: the socket is stuck. Drop the output
                // so the runtime sees it finished and closes it.
                c.discard = true;
                c.close_reported = false;
            }
            c.rate.resume_if_due(now);
            c.session.handle_timeout(now);
            c.timers_round = self.timer_round;
            self.touch(id);
        }
        if self.announcements.due().is_some_and(|t| t <= now) {
            self.announce();
        }
        if self.cluster_deadline().is_some_and(|t| t <= now) {
            self.cluster_timeout(now);
        }
        self.run();
    }

    /// When [`Hub::handle_timeout`] must be called next: the earliest deadline of all
    /// connections (O(log n)) and of the membership news waiting to be told
    /// ([`HubConfig::presence_interval`]), or the last `now` while hub events wait to be
    /// polled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.events.is_empty() {
            return Some(self.now);
        }
        [
            self.timers.first(),
            self.announcements.due(),
            self.cluster_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next bytes to write to `conn`. Take them as the socket accepts them (never into
    /// an unbounded buffer: see the [module docs](self)), until `None`, whenever the
    /// connection was reported by [`Hub::poll_ready`]; then check [`Hub::poll_ready`] again
    /// (other connections may have been given work, for example relay credit for a sender).
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Bytes> {
        let c = self.conns.get_mut(&conn)?;
        if c.discard {
            return None;
        }
        if let Some(bytes) = c.session.poll_transmit() {
            self.recount(conn);
            return Some(bytes);
        }
        // The output drained. A session that now wants file data (or has events) says so by
        // a deadline of "now"; only then is there work to do before answering. A deadline
        // earlier than the filed entry (a handshake entry, then short heartbeats) must still
        // be filed, or a dead peer would be found only when the old entry fires.
        let filed = c.deadline;
        if c.session
            .poll_timeout()
            .map_or(true, |t| t > self.now && filed.is_some_and(|d| d <= t))
        {
            return None;
        }
        self.touch(conn);
        self.run();
        let c = self.conns.get_mut(&conn)?;
        if c.discard {
            return None;
        }
        let bytes = c.session.poll_transmit();
        self.recount(conn);
        bytes
    }

    /// A connection that got new output, or finished, since it was last returned. The same
    /// connection is not returned twice until it has been returned once.
    pub fn poll_ready(&mut self) -> Option<ConnId> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(c) = self.conns.get_mut(&id) {
                c.ready = false;
                return Some(id);
            }
        }
        None
    }

    /// Whether the runtime should read from `conn` now (false while its session's event
    /// queue is full, while it is paused for sending faster than
    /// [`HubConfig::message_rate`], or once it closed). When a pause ends the connection is
    /// returned by [`Hub::poll_ready`], so that its reader asks again. A runtime that keeps
    /// reading a paused connection regardless gets it disconnected with `rate-limited` once
    /// more than a read's worth arrives.
    pub fn wants_input(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.session.wants_input() && !c.rate.is_paused(self.now))
    }

    /// Whether `conn` is closed and has nothing left to transmit: close the socket and call
    /// [`Hub::remove`]. Unknown ids count as finished. A closed connection whose output does
    /// not drain within the heartbeat timeout has that output dropped and counts as finished
    /// then (its writer is woken once more).
    pub fn is_finished(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).map_or(true, |c| {
            c.session.is_closed() && (c.discard || c.session.queued_output() == 0)
        })
    }

    /// Forgets `conn`. If its session was still open (the runtime gave up on the socket),
    /// it ends first as if the stream had ended: a registered client leaves and its
    /// transfers fail on the other side with `peer-lost`.
    pub fn remove(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.session.is_closed() {
            c.session.handle_eof(self.now);
        }
        self.touch(conn);
        self.run();
        if let Some(c) = self.conns.remove(&conn) {
            self.chat_queued -= c.counted as usize;
            self.timers.reschedule(conn, c.deadline, None);
        }
    }

    // ----- accounts ---------------------------------------------------------------------

    /// The verdict on a [`HubEvent::Verify`]: `conn` may have the name it asked for. It is
    /// admitted now unless the name was taken meanwhile (`name-taken`), it is banned, the
    /// server is full or shutting down, exactly as a hello without accounts. Returns false
    /// (and does nothing) if `conn` waits for no verdict (it closed meanwhile, or was
    /// judged already).
    pub fn allow(&mut self, conn: ConnId) -> bool {
        let Some(name) = self.verifying.remove(&conn) else {
            return false;
        };
        if self
            .conns
            .get(&conn)
            .map_or(true, |c| c.session.is_closed())
        {
            return false;
        }
        self.admit(conn, name);
        self.touch(conn);
        self.run();
        true
    }

    /// The verdict on a [`HubEvent::Verify`]: `conn` is refused with `code` (such as
    /// `auth-required`, `auth-failed`, `auth-insecure`) and `reason`, and closes. Returns
    /// false (and does nothing) if `conn` waits for no verdict.
    pub fn deny(&mut self, conn: ConnId, code: ErrorCode, reason: &str) -> bool {
        let Some(name) = self.verifying.remove(&conn) else {
            return false;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.session.is_closed() {
            return false;
        }
        c.session.refuse(code, reason);
        self.emit(HubEvent::Refused { conn, name, code });
        self.touch(conn);
        self.run();
        true
    }

    /// Sends `conn` a session token (spec §6.2): right after [`Hub::allow`] admitted a
    /// client that logged in, so that it can log in with the token next time.
    ///
    /// # Errors
    ///
    /// The connection is not open (it closed, or was refused), or the token is longer than
    /// [`crate::wire::MAX_SECRET`] bytes.
    pub fn send_token(&mut self, conn: ConnId, token: &str) -> Result<(), HubError> {
        if token.len() > crate::wire::MAX_SECRET {
            return Err(HubError::Send(crate::session::SendError::TooLarge));
        }
        let msg = crate::wire::Message::Token {
            token: crate::wire::Secret::new(token),
        };
        let result = match self.conns.get_mut(&conn) {
            Some(c) => c.session.send(&msg).map_err(HubError::Send),
            None => Err(HubError::Send(crate::session::SendError::NotOpen)),
        };
        self.touch(conn);
        self.run();
        result
    }

    /// Connections whose hello waits for a verdict ([`HubConfig::accounts`]).
    pub fn verifying_count(&self) -> usize {
        self.verifying.len()
    }

    /// Whether `conn`'s hello still waits for a verdict (false once judged or closed).
    pub fn is_verifying(&self, conn: ConnId) -> bool {
        self.verifying.contains_key(&conn)
    }

    /// The next event for the operator or the server's participant.
    pub fn poll_event(&mut self) -> Option<HubEvent> {
        self.events.pop_front()
    }

    /// Connections accepted and not removed (including those still in the handshake).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Registered peers online.
    pub fn peer_count(&self) -> usize {
        self.names.len()
    }

    /// Bytes of relayed file data the hub holds, across all relays. Each relay holds at most
    /// its sender-side transfer window ([`crate::transfer::TransferConfig::window`]).
    pub fn relay_buffered(&self) -> usize {
        self.relays.buffered()
    }

    /// The most relayed bytes held for any single relay.
    pub fn relay_buffered_max(&self) -> usize {
        self.relays.max_buffered()
    }

    /// The most relayed bytes any single relay has held at any moment since the hub was
    /// created: a high-water mark to check the bound of [`Hub::relay_buffered`] against.
    pub fn relay_buffered_peak(&self) -> usize {
        self.relay_peak
    }

    /// Relayed transfers in progress.
    pub fn relay_count(&self) -> usize {
        self.relays.len()
    }

    /// Chat events for the server's participant dropped because the operator did not poll.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Bytes of chat output (all but file data) queued for every connection together and
    /// not yet taken by [`Hub::poll_transmit`]: within [`HubConfig::chat_budget`] after
    /// every call into the hub.
    pub fn chat_queued(&self) -> usize {
        self.chat_queued
    }

    /// Bytes queued for `conn` and not yet taken by [`Hub::poll_transmit`].
    pub fn queued_output(&self, conn: ConnId) -> usize {
        self.conns
            .get(&conn)
            .map_or(0, |c| c.session.queued_output())
    }

    /// The registered name of `conn`, once accepted.
    pub fn peer_name(&self, conn: ConnId) -> Option<&Utf8> {
        self.conns.get(&conn).and_then(|c| c.session.name())
    }

    // ----- internals ----------------------------------------------------------------------

    /// Marks `conn` for processing by [`Hub::run`].
    fn touch(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push_back(conn);
            }
        }
    }

    /// Processes the events of every touched connection (which may touch others), then
    /// updates deadlines and wakes writers.
    fn run(&mut self) {
        while let Some(id) = self.dirty.pop_front() {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            c.dirty = false;
            // Its events, as far as its message rate allows (see `rate`).
            self.drain_events(id);
            self.account(id);
            self.refresh(id);
        }
    }

    /// Brings `id`'s queued chat output into [`Hub::chat_queued`]; then, if the sum is past
    /// [`HubConfig::chat_budget`], disconnects the connections holding the most (this one
    /// included) with `slow-consumer` until it fits.
    fn account(&mut self, id: ConnId) {
        self.recount(id);
        let budget = self
            .config
            .chat_budget
            .max(self.config.session.max_queued_output);
        while self.chat_queued > budget {
            // Rare (only while readers fall behind by a budget's worth): a scan is cheaper
            // than keeping every connection ordered by what it holds.
            let largest = self
                .conns
                .iter()
                .filter(|(_, c)| !c.discard)
                .max_by_key(|(_, c)| c.counted)
                .map(|(id, _)| id);
            let Some(largest) = largest else { break };
            self.drop_slow_consumer(largest);
        }
    }

    /// Brings `id`'s queued chat output into [`Hub::chat_queued`] (a dropped slow consumer's
    /// counts as nothing: it is never written).
    fn recount(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let now = if c.discard {
            0
        } else {
            // Saturates only past 4 GiB per connection; the sum stays that of the counts.
            u32::try_from(c.session.queued_control()).unwrap_or(u32::MAX)
        };
        self.chat_queued = self.chat_queued + now as usize - c.counted as usize;
        c.counted = now;
    }

    /// Disconnects `id` with `slow-consumer`, dropping what it has queued: a client that does
    /// not read must never hold up the others, nor hold the server's memory.
    fn drop_slow_consumer(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.discard = true;
        c.session.goodbye(
            ErrorCode::SlowConsumer,
            "the client did not read its messages",
        );
        self.recount(id);
        self.touch(id);
    }

    /// Re-files `conn`'s deadline and wakes its writer if it has something to write or
    /// has finished.
    fn refresh(&mut self, id: ConnId) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.discard {
            // A dropped slow consumer: nothing of its output will be written.
            while c.session.poll_transmit().is_some() {}
        }
        let current = c.deadline.filter(|&t| t > now);
        let deadline = if c.session.is_closed() {
            let closed_at = *c.closed_at.get_or_insert(now);
            // A closed connection lingers until its writer drained it, but not forever.
            let stuck = !c.discard && c.session.queued_output() > 0;
            stuck.then(|| closed_at + self.config.session.heartbeat_timeout)
        } else {
            match c.session.poll_timeout() {
                Some(t) if t > now => Some(t),
                // A timer came due since the timers last ran (input was handled first): run
                // it at once.
                // (Not while paused by the message rate: then "now" only means events the
                // hub is holding back on purpose, and the pause's end is filed below.)
                Some(t)
                    if c.session.queued_output() == 0
                        && (c.timers_round, self.timer_now) != (self.timer_round, now)
                        && !c.rate.is_paused(now) =>
                {
                    Some(t)
                }
                // "Now" with output queued hides the session's timers (also the fallback
                // should a session report "now" right after its timers ran).
                Some(_) => {
                    // While output is queued the session sends nothing new, so its timers are
                    // no earlier than the next heartbeat interval or the receive timeout
                    // counted from the last input; transfer deadlines were filed before.
                    let hb = &self.config.session;
                    let bound =
                        (now + hb.heartbeat_interval).min(c.last_input + hb.heartbeat_timeout);
                    Some(current.map_or(bound, |t| t.min(bound)))
                }
                None => None,
            }
        };
        // A connection paused by its message rate is read again when the pause ends.
        let deadline = match (deadline, c.rate.paused_until()) {
            (Some(d), Some(p)) if !c.session.is_closed() => Some(d.min(p)),
            (None, Some(p)) if !c.session.is_closed() => Some(p),
            (d, _) => d,
        };
        // An earlier entry that is still ahead may stay: when it fires early the session has
        // nothing to do, and the entry moves to the true deadline then. This spares the timer
        // set two updates for every message sent (each moves the heartbeat deadline later).
        let keep = matches!((current, deadline), (Some(cur), Some(new)) if cur <= new);
        if !keep {
            self.timers.reschedule(id, c.deadline, deadline);
            c.deadline = deadline;
        }
        let closing = c.session.is_closed() && !c.close_reported;
        c.close_reported |= closing;
        // A pause that ended: the runtime must ask `wants_input` again.
        let resumed = c.rate.take_resumed();
        let wake = c.session.queued_output() > 0 || closing || resumed;
        if wake && !c.ready {
            c.ready = true;
            self.ready.push_back(id);
        }
    }

    fn on_event(&mut self, id: ConnId, ev: Event) {
        match ev {
            Event::Hello(hello) => self.on_hello(id, hello),
            Event::Text { peer, text, .. } => self.on_text(id, peer, text),
            Event::Blob {
                peer,
                media_type,
                data,
                ..
            } => self.on_blob(id, peer, media_type, data),
            Event::PeerListRequested => self.on_list_request(id),
            Event::RoomRequest(request) => self.on_room_request(id, request),
            Event::Transfer(t) => self.on_transfer(id, t),
            Event::Closed(how) => self.on_closed(id, how),
            // A client's non-fatal error report (an unknown transfer id …) needs no action;
            // the remaining events occur only in client sessions.
            Event::PeerError { .. }
            | Event::Connected(_)
            | Event::Token(_)
            | Event::Presence { .. }
            | Event::Room(_)
            | Event::PeerList(_) => {}
        }
    }

    /// Queues an operator event; chat is dropped when the operator does not keep up.
    fn emit(&mut self, ev: HubEvent) {
        let droppable = matches!(ev, HubEvent::Text { .. } | HubEvent::Blob { .. });
        if droppable && self.events.len() >= MAX_HUB_EVENTS {
            self.dropped_events += 1;
            return;
        }
        self.events.push_back(ev);
    }
}
