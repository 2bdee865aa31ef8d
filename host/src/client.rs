//! The client's application logic around a [`Session`], shared by the blocking client of
//! `tidings-std` and the async client of `tidings-smol`: it turns session events into
//! [`ClientEvent`]s and its file work into [`DiskJob`]s, and never blocks or does any I/O
//! itself.
//!
//! A driver loops: feed socket bytes / timeouts / commands in, call [`Agent::process`], run
//! the jobs from [`Agent::next_job`] and hand each result to [`Agent::job_done`] (then
//! `process` again), write [`Agent::poll_transmit`] out (handing written bytes back with
//! [`Agent::recycle`]), deliver [`Agent::poll_event`], and sleep until input, a command, a
//! finished job or [`Agent::poll_timeout`].
//!
//! Jobs may run at the same time, overlapping disk and socket, as long as their results are
//! reported in the order the jobs were taken: reads answer the session in file order, and a
//! finished download is only moved in place after every write of it was reported.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tidings_core::session::RoomEvent;
use tidings_core::session::{Closed, Config, Event, SendError, Session};
use tidings_core::transfer::{Direction, IncomingOffer, Progress, TransferEvent, TransferId};
use tidings_core::wire::{capability, login_method, MemberKind, PresenceKind, Secret};
use tidings_core::ErrorCode;

use crate::files::{DiskDone, DiskJob, Download, Files, JobKind, Source, Ticket};
use crate::rooms::{same_name, Rooms};
use crate::tls::ClientTls;
use crate::Error;

/// Settings of a client (both runtimes).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Session settings (limits, heartbeat, transfer window).
    pub session: Config,
    /// Where received files go; `None` rejects every offer.
    pub download_dir: Option<PathBuf>,
    /// Accept every offer at once (otherwise [`ClientEvent::Offered`] waits for
    /// an accept or reject command).
    pub accept_files: bool,
    /// How long a connection that ended on our side (goodbye, a timeout, a protocol error)
    /// may still take to write out what is queued and to finish the disk work in flight
    /// before it is dropped regardless: a server that stopped reading would otherwise keep
    /// the connection, and a `close` waiting for it, forever. Default 5 s.
    pub close_timeout: Duration,
    /// Connect with TLS (`tls://`); `None` (the default) connects in plaintext.
    pub tls: Option<ClientTls>,
    /// Log in to the account of the name with this password (a `login` before `hello`,
    /// spec §6.2); `None` (the default) sends none. A server takes a password only over TLS
    /// or from loopback (`auth-insecure` otherwise). Never shown by `Debug`.
    pub password: Option<Secret>,
    /// Log in with this session token instead (`login` method 2), from an earlier
    /// [`ClientEvent::Token`]; it wins over [`ClientConfig::password`]. A server that
    /// refuses it (`auth-failed`: expired, or the server restarted) wants the password
    /// again. Never shown by `Debug`.
    pub token: Option<Secret>,
}

impl ClientConfig {
    /// This config for a connection to `peer`: the password and token dropped when they
    /// would cross the network in the clear (plaintext to an address that is not loopback).
    /// The server would refuse them there (`auth-insecure`, spec §11), but only after they
    /// had been seen on the way, so a client never sends them.
    pub fn for_peer(mut self, peer: std::net::IpAddr) -> ClientConfig {
        if !crate::accounts::password_allowed(peer, self.tls.is_some()) {
            self.password = None;
            self.token = None;
        }
        self
    }
}

/// The default [`ClientConfig::close_timeout`].
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            session: Config::default(),
            download_dir: None,
            accept_files: false,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            tls: None,
            password: None,
            token: None,
        }
    }
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted our name.
    Connected {
        /// Our registered name.
        name: String,
        /// The server's own participant name.
        server: String,
        /// Who is in the default room (on a server without rooms: online), ourselves
        /// included.
        online: Vec<String>,
    },
    /// Chat text: private, or a line in the default room (everyone's chat on a server
    /// without rooms). Lines in other rooms are [`ClientEvent::RoomText`].
    Text {
        /// The sender.
        from: String,
        /// Addressed to us alone (else: said in the default room).
        private: bool,
        /// The message.
        text: String,
    },
    /// Binary data with a media type.
    Blob {
        /// The sender.
        from: String,
        /// Addressed to us alone.
        private: bool,
        /// Such as `image/png`.
        media_type: String,
        /// The bytes.
        data: Bytes,
    },
    /// The server's session token, right after [`ClientEvent::Connected`] when we logged
    /// in: set it as [`ClientConfig::token`] to log in with it next time (a reconnection)
    /// instead of the password. Never shown by `Debug`.
    Token(Secret),
    /// Someone came into the default room (on a server without rooms: came online).
    Joined(String),
    /// Someone left the default room or went away (on a server without rooms: went away).
    Left(String),
    /// The answer to a list request: everyone online on the server.
    PeerList(Vec<String>),
    /// A line said in `room`, a room other than the default room (whose lines are
    /// [`ClientEvent::Text`], as from a server without rooms). Only from a server that
    /// speaks rooms, as every `Room…` event.
    RoomText {
        /// The room, as the server spells it.
        room: String,
        /// The sender, stamped by the server.
        from: String,
        /// The message.
        text: String,
    },
    /// We are in `room`: the answer to our join (joining a room we are in answers it again,
    /// a refresh), and for the default room right after [`ClientEvent::Connected`].
    RoomEntered {
        /// The room, as the server spells it.
        room: String,
        /// Its members, ourselves last.
        members: Vec<String>,
        /// It is the server's default room (every client starts in it).
        default: bool,
    },
    /// Someone else came into `room` (not the default room: that is
    /// [`ClientEvent::Joined`]).
    RoomJoined {
        /// The room.
        room: String,
        /// Who.
        name: String,
    },
    /// Someone else left `room`, went offline, or was removed by the operator (not the
    /// default room: that is [`ClientEvent::Left`]).
    RoomLeft {
        /// The room.
        room: String,
        /// Who.
        name: String,
        /// The operator removed them.
        removed: bool,
    },
    /// We are no longer in `room`: our leave is done, or the operator removed us from it or
    /// closed it (`removed`).
    RoomExited {
        /// The room.
        room: String,
        /// The operator's doing, not our leave.
        removed: bool,
    },
    /// The answer to a room list request: the server's rooms, largest first.
    RoomList(Vec<RoomCount>),
    /// The server reported a problem with something we sent (an unknown peer …). Room
    /// requests are refused this way too, with `room-refused` (an invalid name, a room only
    /// the operator may open, one we were removed from), `not-member` (a line to or a leave
    /// of a room we are not in) or `limit-exceeded` (a full room, too many rooms).
    Notice {
        /// What.
        code: ErrorCode,
        /// Detail.
        text: String,
    },
    /// A file is offered; answer with accept or reject (unless files are accepted at once).
    Offered {
        /// Transfer id.
        id: TransferId,
        /// Who offers it.
        from: String,
        /// Safe base name.
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// A transfer began moving bytes from `offset` (non-zero: it resumes).
    Started {
        /// Transfer id.
        id: TransferId,
        /// Sending or receiving.
        direction: Direction,
        /// The other side.
        peer: String,
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// First byte transferred now.
        offset: u64,
    },
    /// How far a transfer has come.
    Progress(Progress),
    /// Our offer `id` is relayed by the server to `peer`, who sees it as transfer `relay_id`
    /// (the `relayed` extension): the number to show people, on both sides.
    Relayed {
        /// Our transfer id.
        id: TransferId,
        /// The receiver.
        peer: String,
        /// The id the receiver sees.
        relay_id: TransferId,
    },
    /// A resumed transfer re-reads the part both sides already have, to hash it, before any
    /// new byte moves: `done` of `total` bytes of the kept part checked. Reported at most
    /// every percent, and once at the end.
    Checking {
        /// Transfer id.
        id: TransferId,
        /// Sending (hashing our file's prefix) or receiving (hashing the kept `.part`).
        direction: Direction,
        /// Bytes checked so far.
        done: u64,
        /// The length of the kept part.
        total: u64,
    },
    /// Our file arrived and the receiver confirmed its digest.
    Sent {
        /// Transfer id.
        id: TransferId,
        /// The receiver (empty: the server participant).
        peer: String,
        /// File name.
        name: String,
        /// SHA-256.
        digest: [u8; 32],
    },
    /// A file arrived, its digest matched, and it lies at `path`.
    Received {
        /// Transfer id.
        id: TransferId,
        /// Final location.
        path: PathBuf,
        /// SHA-256.
        digest: [u8; 32],
    },
    /// A transfer ended without success.
    TransferFailed {
        /// Transfer id.
        id: TransferId,
        /// Sending or receiving.
        direction: Direction,
        /// Why.
        code: ErrorCode,
        /// Detail.
        reason: String,
        /// Whether the other side ended it.
        by_peer: bool,
        /// The partial file kept for a later resume.
        kept: Option<PathBuf>,
    },
    /// The connection ended; always the last event.
    Closed {
        /// Why.
        code: ErrorCode,
        /// Detail.
        reason: String,
        /// Whether the server ended it.
        by_peer: bool,
    },
}

/// One room of a [`ClientEvent::RoomList`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCount {
    /// The room's name as the server spells it.
    pub name: String,
    /// Its members when the list was made.
    pub members: u32,
}

#[derive(Debug, Clone)]
struct Info {
    peer: String,
    name: String,
    size: u64,
    /// The resume offset: reads below it hash the kept part.
    resume: u64,
    /// The last [`ClientEvent::Checking`] reported, in percent of `resume`.
    checked_pct: u64,
}

impl Info {
    fn new(peer: String, name: String, size: u64) -> Info {
        Info {
            peer,
            name,
            size,
            resume: 0,
            checked_pct: 0,
        }
    }
}

/// Most rooms a client believes it is in: a server that says more is not believed (a
/// server's own limit is 100 by default).
const MAX_ROOMS: usize = 1000;

/// Most disk jobs [`Agent::poll_output`] hands out before the first of them is reported: a
/// sender's reads are never held back by it (the session asks for at most a window of
/// 256 KiB chunks), and a receiver keeps 1 MiB of writes queued rather than a whole window
/// (8 and 3 measured the same CPU on the 1 GiB relay).
pub const JOBS_IN_FLIGHT: usize = 4;

/// What a client driver does next, from [`Agent::poll_output`].
#[derive(Debug)]
pub enum ClientOutput {
    /// Bytes to write to the socket, in order; hand them back with [`Agent::recycle`] once
    /// written.
    Transmit(Bytes),
    /// A disk job to run where blocking is allowed; report it with [`Agent::job_done`], in
    /// the order the jobs were handed out.
    Disk(Ticket<TransferId>, DiskJob),
    /// An event for the application.
    Event(ClientEvent),
    /// Nothing more until input, a command, a job's result, or this deadline (then call
    /// [`Agent::handle_timeout`]; `None`: no deadline).
    Wait(Option<Instant>),
}

/// What the application asks of a client, for drivers that pass requests to the task or
/// thread that owns the [`Agent`]; see [`Agent::command`].
#[derive(Debug)]
pub enum Command {
    /// Chat `text` to `to` (empty: everyone).
    Say {
        /// The peer, or empty for everyone.
        to: String,
        /// The message.
        text: String,
    },
    /// Ask who is online ([`ClientEvent::PeerList`] answers).
    RequestList,
    /// Enter a room ([`ClientEvent::RoomEntered`] answers, or a [`ClientEvent::Notice`]).
    Join(String),
    /// Leave a room ([`ClientEvent::RoomExited`] answers, or a [`ClientEvent::Notice`]).
    Leave(String),
    /// Say `text` in `room` (to its other members).
    SayIn {
        /// The room.
        room: String,
        /// The message.
        text: String,
    },
    /// Ask which rooms exist ([`ClientEvent::RoomList`] answers).
    RequestRooms,
    /// Offer an opened file or folder entry to `to` (empty: the server).
    Send {
        /// The receiver, or empty for the server.
        to: String,
        /// What to send.
        source: Source,
    },
    /// Accept a waiting offer.
    Accept(TransferId),
    /// Decline a waiting offer.
    Reject(TransferId),
    /// Abandon a transfer.
    Cancel(TransferId),
    /// Say goodbye and close.
    Quit,
}

/// A client session with its files; see the [module docs](self).
#[derive(Debug)]
pub struct Agent {
    session: Session,
    files: Files<TransferId>,
    info: HashMap<TransferId, Info>,
    offers: HashMap<TransferId, IncomingOffer>,
    accept_files: bool,
    events: VecDeque<ClientEvent>,
    jobs: VecDeque<(Ticket<TransferId>, DiskJob)>,
    /// Jobs handed out by `next_job` and not yet reported.
    running: usize,
    /// `Closed`, held back while disk work is unfinished: a download whose digest matched
    /// just before the connection ended is still moved in place, and its `Received` must
    /// come before `Closed`, which is always the last event.
    closed: Option<ClientEvent>,
    /// The session ended because the server is gone or silent (its goodbye, the end of the
    /// stream, the heartbeat timeout): bytes still queued for it will never be read.
    server_gone: bool,
    /// The rooms we are in, kept from the events handed out.
    rooms: Rooms,
    /// The default room's name, from the first `room-members` that answers no join of
    /// ours (it follows `welcome`): its news are reported as a server without rooms reports
    /// everyone's.
    default_room: Option<String>,
    /// The rooms of our joins not answered yet, in the order sent: the server answers each,
    /// in order, with the room's members or a refusal.
    pending_joins: VecDeque<String>,
    /// The rooms we are in as the server spells them, as the events queued so far say
    /// (`rooms` follows the events handed out): news about any other room is a server's
    /// invention, dropped. Matched by [`same_name`], which needs no key for the server's
    /// own spelling (a room line is checked against it).
    inside: Vec<String>,
}

impl Agent {
    /// Whether `name` may be asked for at all (spec §6.1): what [`Agent::new`] checks
    /// first, for a runtime to say before it connects.
    pub fn check_name(name: &str) -> Result<(), crate::Error> {
        tidings_core::name::validate_name(name).map_err(|e| {
            crate::Error::Name(tidings_core::session::SendError::BadName(e).to_string())
        })
    }

    /// A client asking for `name`; its preamble and hello are queued. Give it the config
    /// [`ClientConfig::for_peer`] made for the address connected to.
    ///
    /// It announces rooms (capability `ROOMS`, protocol 1.1) on top of the config's
    /// capabilities, since it handles their events: against a server that speaks them it is
    /// in the server's default room and may join others; against one that does not, plain
    /// chat works as ever and room commands fail with "the server does not speak rooms".
    pub fn new(name: &str, mut config: ClientConfig, now: Instant) -> Result<Agent, crate::Error> {
        config.session.capabilities |= capability::ROOMS;
        let login = match (&config.token, &config.password) {
            (Some(t), _) => Some((login_method::TOKEN, t)),
            (None, Some(p)) => Some((login_method::PASSWORD, p)),
            (None, None) => None,
        };
        let session = match login {
            None => Session::client(config.session, name, now)
                .map_err(|e| crate::Error::Name(e.to_string()))?,
            Some((method, secret)) => {
                Session::client_with_login(config.session, name, method, secret.expose(), now)
                    .map_err(|e| crate::Error::Name(e.to_string()))?
            }
        };
        Ok(Agent {
            session,
            files: Files::new(config.download_dir),
            info: HashMap::new(),
            offers: HashMap::new(),
            accept_files: config.accept_files,
            events: VecDeque::new(),
            jobs: VecDeque::new(),
            running: 0,
            closed: None,
            server_gone: false,
            rooms: Rooms::new(),
            default_room: None,
            pending_joins: VecDeque::new(),
            inside: Vec::new(),
        })
    }

    /// The rooms we are in and their members, as of the events handed out so far.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// The session, for anything not wrapped here.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Carries out `command`; the transfer it started, for [`Command::Send`].
    ///
    /// # Errors
    ///
    /// What the session refused ([`SendError`]): a closed session, an unknown offer, a
    /// message too long.
    pub fn command(&mut self, command: Command) -> Result<Option<TransferId>, SendError> {
        match command {
            Command::Say { to, text } => self.say(&to, &text),
            Command::RequestList => self.request_list(),
            Command::Join(room) => self.join(&room),
            Command::Leave(room) => self.leave(&room),
            Command::SayIn { room, text } => self.say_in(&room, &text),
            Command::RequestRooms => self.request_rooms(),
            Command::Send { to, source } => return self.send_file(&to, source).map(Some),
            Command::Accept(id) => self.accept(id),
            Command::Reject(id) => self.reject(id),
            Command::Cancel(id) => self.cancel(id),
            Command::Quit => {
                self.quit();
                Ok(())
            }
        }
        .map(|()| None)
    }

    /// The one call a driver makes after any input, command, job result or timeout: the next
    /// thing to do, until [`ClientOutput::Wait`]. Session events are processed first, then
    /// disk jobs (at most [`JOBS_IN_FLIGHT`] unreported), transmits and application events
    /// are handed out in that order.
    pub fn poll_output(&mut self) -> ClientOutput {
        self.process();
        if self.running < JOBS_IN_FLIGHT {
            if let Some((ticket, job)) = self.next_job() {
                return ClientOutput::Disk(ticket, job);
            }
        }
        if let Some(bytes) = self.session.poll_transmit() {
            return ClientOutput::Transmit(bytes);
        }
        if let Some(event) = self.poll_event() {
            return ClientOutput::Event(event);
        }
        ClientOutput::Wait(self.poll_timeout())
    }

    /// Chat `text` to `to` (empty: everyone).
    pub fn say(&mut self, to: &str, text: &str) -> Result<(), SendError> {
        self.session.send_text(to, text)
    }

    /// Asks who is online ([`ClientEvent::PeerList`] answers).
    pub fn request_list(&mut self) -> Result<(), SendError> {
        self.session.request_peer_list()
    }

    /// Enters `room`, creating it if the server lets us ([`ClientEvent::RoomEntered`]
    /// answers, or a [`ClientEvent::Notice`] refusal).
    pub fn join(&mut self, room: &str) -> Result<(), SendError> {
        self.session.join(room)?;
        self.pending_joins.push_back(room.to_string());
        Ok(())
    }

    /// Leaves `room` ([`ClientEvent::RoomExited`] answers, or a `not-member`
    /// [`ClientEvent::Notice`]).
    pub fn leave(&mut self, room: &str) -> Result<(), SendError> {
        self.session.leave(room)
    }

    /// Says `text` to the other members of `room` (we hear no echo).
    pub fn say_in(&mut self, room: &str, text: &str) -> Result<(), SendError> {
        self.session.send_room_text(room, text)
    }

    /// Asks which rooms exist ([`ClientEvent::RoomList`] answers).
    pub fn request_rooms(&mut self) -> Result<(), SendError> {
        self.session.request_room_list()
    }

    /// Offers an opened file to `to` (empty: the server itself).
    pub fn send_file(&mut self, to: &str, source: Source) -> Result<TransferId, SendError> {
        let id = self
            .session
            .offer_file(to, &source.name, source.size, &source.media_type)?;
        self.info.insert(
            id,
            Info::new(to.to_string(), source.name.clone(), source.size),
        );
        self.files.add_source(id, source);
        Ok(id)
    }

    /// Accepts a waiting offer into the download folder, resuming a kept partial file: the
    /// disk makes the download ready first ([`DiskJob::Prepare`]), then the offer is
    /// accepted ([`ClientEvent::Started`]), or refused with the reason the disk gave.
    pub fn accept(&mut self, id: TransferId) -> Result<(), SendError> {
        let offer = self
            .offers
            .remove(&id)
            .ok_or(SendError::Invalid("no such offer is waiting"))?;
        match self.files.prepare_download(&offer.name, offer.size) {
            Ok(job) => {
                let kind = JobKind::Prepare;
                self.jobs.push_back((Ticket { key: id, kind }, job));
                Ok(())
            }
            Err(reason) => self
                .session
                .reject_offer(id, ErrorCode::StorageFailed, &reason),
        }
    }

    /// An accepted offer's download is ready: accept it from the kept part.
    fn prepared(&mut self, id: TransferId, download: Download) -> Result<(), SendError> {
        let offset = download.offset;
        self.files.add_download(id, download);
        if let Err(e) = self.session.accept_offer(id, offset) {
            // The offer ended meanwhile (its end has its own event): keep the part.
            self.files.finish_failed(id);
            return Err(e);
        }
        let Some(info) = self.info.get_mut(&id) else {
            return Ok(());
        };
        info.resume = offset;
        self.events.push_back(ClientEvent::Started {
            id,
            direction: Direction::Receive,
            peer: info.peer.clone(),
            name: info.name.clone(),
            size: info.size,
            offset,
        });
        Ok(())
    }

    /// Declines a waiting offer.
    pub fn reject(&mut self, id: TransferId) -> Result<(), SendError> {
        self.offers.remove(&id);
        self.session
            .reject_offer(id, ErrorCode::Rejected, "declined by the receiver")
    }

    /// Abandons a transfer.
    pub fn cancel(&mut self, id: TransferId) -> Result<(), SendError> {
        self.session
            .cancel_transfer(id, ErrorCode::Cancelled, "cancelled by the user")
    }

    /// Says goodbye; transmit what is queued, then close.
    pub fn quit(&mut self) {
        self.session.goodbye(ErrorCode::Normal, "bye");
    }

    /// Bytes from the socket (copied into the session's receive buffer;
    /// [`Agent::input_buffer`] avoids that copy).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.session.handle_input(now, bytes);
    }

    /// The session's receive buffer with room for at least `at_least` more bytes, for a
    /// driver that reads (or decrypts) straight into it; `None` once the session is closed.
    /// Append only received bytes, then call [`Agent::handle_received`] with their count (the
    /// contract of `Session::input_buffer`).
    pub fn input_buffer(&mut self, at_least: usize) -> Option<&mut BytesMut> {
        self.session.input_buffer(at_least)
    }

    /// The driver appended `n` received bytes to [`Agent::input_buffer`].
    pub fn handle_received(&mut self, now: Instant, n: usize) {
        self.session.handle_received(now, n);
    }

    /// The socket reached its end.
    pub fn handle_eof(&mut self, now: Instant) {
        self.session.handle_eof(now);
    }

    /// The deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }

    /// Bytes to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.session.poll_transmit()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        let ev = match self.events.pop_front() {
            Some(ev) => ev,
            None if self.running == 0 && self.jobs.is_empty() => self.closed.take()?,
            None => return None,
        };
        // Kept as handed out, so that what the application was told and `rooms()` agree.
        self.rooms.apply(&ev);
        Some(ev)
    }

    /// Gives up on the jobs handed out and not reported (a driver dropping a connection
    /// whose disk work does not finish in time), so that [`ClientEvent::Closed`] is
    /// delivered without waiting for them.
    pub fn abandon_jobs(&mut self) {
        self.running = 0;
        self.jobs.clear();
    }

    /// When to call [`Agent::handle_timeout`]; `None` once closed and drained.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Whether the socket should be read now.
    pub fn wants_input(&self) -> bool {
        self.session.wants_input()
    }

    /// Whether the session ended (goodbye either way, the connection lost, a timeout or a
    /// protocol error), whether or not its last bytes are transmitted yet.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Whether the session ended because the server is gone or stopped answering (its
    /// goodbye, the end of the stream, the heartbeat timeout): a driver drops what it still
    /// holds to write instead of lingering for the close timeout.
    pub fn server_gone(&self) -> bool {
        self.server_gone
    }

    /// Whether the session closed and everything was transmitted.
    pub fn is_finished(&self) -> bool {
        self.session.is_closed() && self.session.queued_output() == 0 && self.jobs.is_empty()
    }

    /// The next disk job; run it (blocking is fine off an async executor) and report it with
    /// [`Agent::job_done`]. Several may run at once; report them in the order they were
    /// taken (see the [module docs](self)).
    pub fn next_job(&mut self) -> Option<(Ticket<TransferId>, DiskJob)> {
        let job = self.jobs.pop_front()?;
        self.running += 1;
        Some(job)
    }

    /// Bytes from [`Agent::poll_transmit`] that were written to the socket: a file chunk's
    /// buffer goes back to the pool that disk reads take from (see [`BufferPool`]).
    ///
    /// [`BufferPool`]: crate::files::BufferPool
    pub fn recycle(&self, written: Bytes) {
        self.files.buffers().give(written);
    }

    /// Reports a job's result.
    pub fn job_done(&mut self, ticket: Ticket<TransferId>, done: DiskDone) {
        self.running = self.running.saturating_sub(1);
        let id = ticket.key;
        let outcome = match (ticket.kind, done) {
            (JobKind::Prepare, DiskDone::Prepared(Ok(download))) => self.prepared(id, download),
            (JobKind::Prepare, DiskDone::Prepared(Err(reason))) => {
                self.session
                    .reject_offer(id, ErrorCode::StorageFailed, &reason)
            }
            (JobKind::Read { offset }, DiskDone::Read(Ok(data))) => {
                self.checked(id, offset + data.len() as u64);
                self.session.provide_data(id, offset, data)
            }
            (JobKind::Read { .. }, DiskDone::Read(Err(e))) => {
                self.session.read_failed(id, &e.to_string())
            }
            (JobKind::Write, DiskDone::Written(Ok(len))) => self.session.data_written(id, len),
            (JobKind::Write, DiskDone::Written(Err(e))) => {
                self.session.write_failed(id, &e.to_string())
            }
            (JobKind::Finalize { digest }, DiskDone::Finalized(Ok(path))) => {
                self.events
                    .push_back(ClientEvent::Received { id, path, digest });
                Ok(())
            }
            (JobKind::Finalize { .. }, DiskDone::Finalized(Err(e))) => {
                self.events.push_back(ClientEvent::TransferFailed {
                    id,
                    direction: Direction::Receive,
                    code: ErrorCode::StorageFailed,
                    reason: format!("cannot move the finished file in place: {e}"),
                    by_peer: false,
                    kept: None,
                });
                Ok(())
            }
            _ => Ok(()),
        };
        // A transfer that ended meanwhile (cancelled, connection closed) refuses the answer;
        // its end was reported through its own event.
        let _ = outcome;
    }

    /// A read up to `end` was done: below the resume offset it hashed the kept part, which
    /// is reported as [`ClientEvent::Checking`] at most every percent.
    fn checked(&mut self, id: TransferId, end: u64) {
        let Some(info) = self.info.get_mut(&id) else {
            return;
        };
        if end > info.resume || info.resume == 0 {
            return;
        }
        let pct = (u128::from(end) * 100 / u128::from(info.resume)) as u64;
        if pct == info.checked_pct && end < info.resume {
            return;
        }
        info.checked_pct = pct;
        let direction = if self.offers.contains_key(&id) || self.files.is_download(id) {
            Direction::Receive
        } else {
            Direction::Send
        };
        self.events.push_back(ClientEvent::Checking {
            id,
            direction,
            done: end,
            total: info.resume,
        });
    }

    /// Pulls every session event: application events are queued for
    /// [`Agent::poll_event`], file work for [`Agent::next_job`].
    pub fn process(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            self.on_event(ev);
        }
    }

    fn on_event(&mut self, ev: Event) {
        let out = match ev {
            Event::Token(token) => ClientEvent::Token(token),
            Event::Connected(w) => ClientEvent::Connected {
                name: w.name.to_string(),
                server: w.server.to_string(),
                online: w.online.iter().map(|n| n.to_string()).collect(),
            },
            Event::Text {
                peer,
                private,
                text,
            } => ClientEvent::Text {
                from: peer.to_string(),
                private,
                text: text.to_string(),
            },
            Event::Blob {
                peer,
                private,
                media_type,
                data,
            } => ClientEvent::Blob {
                from: peer.to_string(),
                private,
                media_type: media_type.to_string(),
                data,
            },
            Event::Presence { kind, name } => match kind {
                PresenceKind::Joined => ClientEvent::Joined(name.to_string()),
                PresenceKind::Left => ClientEvent::Left(name.to_string()),
            },
            Event::PeerList(names) => {
                ClientEvent::PeerList(names.iter().map(|n| n.to_string()).collect())
            }
            Event::PeerError { code, text } => {
                if matches!(code, ErrorCode::RoomRefused | ErrorCode::LimitExceeded) {
                    // The refusal of our oldest join (the server answers them in order).
                    self.pending_joins.pop_front();
                }
                ClientEvent::Notice {
                    code,
                    text: text.to_string(),
                }
            }
            Event::Room(r) => match self.on_room(r) {
                Some(ev) => ev,
                None => return,
            },
            Event::Transfer(t) => match self.on_transfer(t) {
                Some(ev) => ev,
                None => return,
            },
            Event::Closed(how) => {
                self.server_gone = match how {
                    Closed::Local { code, .. } => code == ErrorCode::HeartbeatTimeout,
                    Closed::Peer { .. } | Closed::StreamEnded => true,
                };
                let (code, reason, by_peer) = match how {
                    Closed::Local { code, reason } => (code, reason.to_string(), false),
                    Closed::Peer { code, reason } => (code, reason.to_string(), true),
                    Closed::StreamEnded => (
                        ErrorCode::PeerLost,
                        "the connection was lost".to_string(),
                        true,
                    ),
                };
                self.closed = Some(ClientEvent::Closed {
                    code,
                    reason,
                    by_peer,
                });
                return;
            }
            // Server-side events never reach a client session.
            Event::Hello(_) | Event::PeerListRequested | Event::RoomRequest(_) => return,
        };
        self.events.push_back(out);
    }

    /// Room news as events: the default room's chat and membership as a server without
    /// rooms reports everyone's ([`ClientEvent::Text`], [`ClientEvent::Joined`],
    /// [`ClientEvent::Left`]), so that an application written for those sees the same
    /// chat either way; other rooms' as `Room…` events.
    fn is_inside(&self, room: &str) -> bool {
        self.inside.iter().any(|r| same_name(r, room))
    }

    /// `None` for news a server invents: about a room we are not in, a list we did not ask
    /// for, ourselves joining.
    fn on_room(&mut self, ev: RoomEvent) -> Option<ClientEvent> {
        if let RoomEvent::Members { room, .. } = &ev {
            let asked = self.pending_joins.iter().position(|r| same_name(r, room));
            if let Some(i) = asked {
                self.pending_joins.remove(i);
            }
            let refresh = self.is_inside(room);
            if asked.is_none() && !refresh {
                // Not the answer to a join, nor a room we are in: the default room's, the
                // first one after `welcome`, or nothing we believe.
                if self.default_room.is_some() || self.inside.len() >= MAX_ROOMS {
                    return None;
                }
                self.default_room = Some(room.to_string());
            }
            if self.inside.len() >= MAX_ROOMS && !refresh {
                return None;
            }
            if !refresh {
                self.inside.push(room.to_string());
            }
        }
        if let RoomEvent::Text { room, .. } | RoomEvent::Member { room, .. } = &ev {
            if !self.is_inside(room) {
                return None;
            }
        }
        let is_default = |room: &str| {
            self.default_room
                .as_deref()
                .is_some_and(|d| same_name(d, room))
        };
        Some(match ev {
            RoomEvent::Text { room, peer, text } if is_default(&room) => ClientEvent::Text {
                from: peer.to_string(),
                private: false,
                text: text.to_string(),
            },
            RoomEvent::Text { room, peer, text } => ClientEvent::RoomText {
                room: room.to_string(),
                from: peer.to_string(),
                text: text.to_string(),
            },
            RoomEvent::Members { room, names } => ClientEvent::RoomEntered {
                default: is_default(&room),
                room: room.to_string(),
                members: names.iter().map(|n| n.to_string()).collect(),
            },
            RoomEvent::Member { kind, room, name } => {
                let removed = kind == MemberKind::Removed;
                let (room, name) = (room.to_string(), name.to_string());
                if self.session.name().is_some_and(|me| same_name(me, &name)) {
                    if kind == MemberKind::Joined {
                        // We join by `room-members`; this is no news.
                        return None;
                    }
                    // About ourselves: our leave done, or the operator's removal.
                    self.inside.retain(|r| !same_name(r, &room));
                    return Some(ClientEvent::RoomExited { room, removed });
                }
                match (kind, is_default(&room)) {
                    (MemberKind::Joined, true) => ClientEvent::Joined(name),
                    (MemberKind::Joined, false) => ClientEvent::RoomJoined { room, name },
                    (_, true) => ClientEvent::Left(name),
                    (_, false) => ClientEvent::RoomLeft {
                        room,
                        name,
                        removed,
                    },
                }
            }
            RoomEvent::List(rooms) => ClientEvent::RoomList(
                rooms
                    .into_iter()
                    .map(|r| RoomCount {
                        name: r.name.to_string(),
                        members: r.members,
                    })
                    .collect(),
            ),
        })
    }

    fn on_transfer(&mut self, ev: TransferEvent) -> Option<ClientEvent> {
        match ev {
            TransferEvent::Offered(offer) => {
                let id = offer.id;
                let event = ClientEvent::Offered {
                    id,
                    from: offer.peer.to_string(),
                    name: offer.name.clone(),
                    size: offer.size,
                };
                self.info.insert(
                    id,
                    Info::new(offer.peer.to_string(), offer.name.clone(), offer.size),
                );
                self.offers.insert(id, offer);
                if self.files.dir().is_none() {
                    let _ = self.session.reject_offer(
                        id,
                        ErrorCode::StorageFailed,
                        "the receiver takes no files",
                    );
                    self.offers.remove(&id);
                } else if self.accept_files {
                    self.events.push_back(event);
                    let _ = self.accept(id);
                    return None;
                }
                Some(event)
            }
            TransferEvent::Accepted { id, offset } => {
                let info = self.info.get_mut(&id)?;
                info.resume = offset;
                let info = info.clone();
                Some(ClientEvent::Started {
                    id,
                    direction: Direction::Send,
                    peer: info.peer,
                    name: info.name,
                    size: info.size,
                    offset,
                })
            }
            TransferEvent::Read { id, offset, len } => {
                match self.files.read_job(id, offset, len) {
                    Some(job) => self.jobs.push_back((
                        Ticket {
                            key: id,
                            kind: JobKind::Read { offset },
                        },
                        job,
                    )),
                    None => {
                        let _ = self.session.read_failed(id, "no file for this transfer");
                    }
                }
                None
            }
            TransferEvent::Data { id, offset, data } => {
                match self.files.write_job(id, offset, data) {
                    Some(job) => self.jobs.push_back((
                        Ticket {
                            key: id,
                            kind: JobKind::Write,
                        },
                        job,
                    )),
                    None => {
                        let _ = self.session.write_failed(id, "no file for this transfer");
                    }
                }
                None
            }
            TransferEvent::Progress(p) => Some(ClientEvent::Progress(p)),
            TransferEvent::Relayed { id, peer, relay_id } => Some(ClientEvent::Relayed {
                id,
                peer: peer.to_string(),
                relay_id,
            }),
            TransferEvent::SenderDone { .. } => None,
            TransferEvent::Finished {
                id,
                direction,
                result,
            } => {
                self.offers.remove(&id);
                let info = self.info.remove(&id);
                match result {
                    Ok(digest) => match direction {
                        Direction::Send => {
                            self.files.finish_ok(id);
                            let (peer, name) = info.map(|i| (i.peer, i.name)).unwrap_or_default();
                            Some(ClientEvent::Sent {
                                id,
                                peer,
                                name,
                                digest,
                            })
                        }
                        Direction::Receive => {
                            if let Some(job) = self.files.finish_ok(id) {
                                self.jobs.push_back((
                                    Ticket {
                                        key: id,
                                        kind: JobKind::Finalize { digest },
                                    },
                                    job,
                                ));
                            }
                            None
                        }
                    },
                    Err(f) => {
                        let kept = if f.code == ErrorCode::DigestMismatch {
                            // Its bytes are wrong: not kept for a resume.
                            if let Some(job) = self.files.discard(id) {
                                let kind = JobKind::Discard;
                                self.jobs.push_back((Ticket { key: id, kind }, job));
                            }
                            None
                        } else {
                            self.files.finish_failed(id)
                        };
                        Some(ClientEvent::TransferFailed {
                            id,
                            direction,
                            code: f.code,
                            reason: f.reason.to_string(),
                            by_peer: f.by_peer,
                            kept,
                        })
                    }
                }
            }
        }
    }
}

impl Rooms {
    /// Takes in one event; events that are not about rooms change nothing. The default
    /// room's news arrive as [`ClientEvent::Joined`] and [`ClientEvent::Left`] and count for
    /// it.
    pub fn apply(&mut self, ev: &ClientEvent) {
        match ev {
            ClientEvent::Connected { .. } | ClientEvent::Closed { .. } => self.clear(),
            ClientEvent::RoomEntered {
                room,
                members,
                default,
            } => self.entered(room, members, *default),
            ClientEvent::RoomExited { room, .. } => self.exited(room),
            ClientEvent::RoomJoined { room, name } => self.joined(room, name),
            ClientEvent::RoomLeft { room, name, .. } => self.left(room, name),
            ClientEvent::Joined(name) => {
                if let Some(default) = self.default_room().map(str::to_string) {
                    self.joined(&default, name);
                }
            }
            ClientEvent::Left(name) => {
                if let Some(default) = self.default_room().map(str::to_string) {
                    self.left(&default, name);
                }
            }
            _ => {}
        }
    }
}

/// What the first event of a new connection says: joined as (name, server name, who is
/// online), refused by the server ([`Error::Refused`]: it answered in tidings, with a
/// reason), or no tidings handshake at all ([`Error::Handshake`]: the connection closed
/// before welcome, nothing came within the handshake timeout, or the bytes were not
/// tidings). Both clients wait for it in `connect`.
pub fn joined(first: Option<ClientEvent>) -> Result<(String, String, Vec<String>), Error> {
    match first {
        Some(ClientEvent::Connected {
            name,
            server,
            online,
        }) => Ok((name, server, online)),
        // A stream that ended is reported as `peer-lost` by the peer (see `on_event`); a
        // server never refuses with that code.
        Some(ClientEvent::Closed {
            code: ErrorCode::PeerLost,
            by_peer: true,
            ..
        }) => Err(Error::Handshake {
            code: ErrorCode::PeerLost,
            reason: "the connection closed during the handshake".into(),
        }),
        Some(ClientEvent::Closed {
            code,
            reason,
            by_peer: true,
        }) => Err(Error::Refused { code, reason }),
        Some(ClientEvent::Closed { code, reason, .. }) => Err(Error::Handshake { code, reason }),
        _ => Err(Error::Handshake {
            code: ErrorCode::PeerLost,
            reason: "the connection ended during the handshake".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::wire::Message;

    /// Moves bytes both ways until neither side has any to send.
    fn pump(agent: &mut Agent, server: &mut Session, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(b) = agent.poll_transmit() {
                server.handle_input(now, &b);
                moved = true;
            }
            while let Some(b) = server.poll_transmit() {
                agent.handle_input(now, &b);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Agent `ann` and a server session with `capabilities`, through the handshake up to
    /// the server's acceptance (not yet pumped back to the agent); also the capabilities the
    /// agent's hello asked for.
    fn handshake(capabilities: u32, now: Instant) -> (Agent, Session, u32) {
        let mut agent = Agent::new("ann", ClientConfig::default(), now).unwrap();
        let config = Config {
            capabilities,
            ..Config::default()
        };
        let mut server = Session::server(config, now);
        pump(&mut agent, &mut server, now);
        let hello = std::iter::from_fn(|| server.poll_event())
            .find_map(|e| match e {
                Event::Hello(h) => Some(h),
                _ => None,
            })
            .expect("a hello");
        server
            .accept_hello(hello.name.clone(), "srv".into(), vec![hello.name])
            .unwrap();
        (agent, server, hello.capabilities)
    }

    #[test]
    fn a_server_without_rooms_chats_as_ever_and_refuses_room_commands_clearly() {
        let now = Instant::now();
        // A 1.0 server: the default capabilities, no ROOMS.
        let (mut agent, mut server, asked) = handshake(capability::DEFAULT, now);
        assert_ne!(asked & capability::ROOMS, 0, "the agent opts in");
        pump(&mut agent, &mut server, now);
        agent.process();
        assert!(matches!(
            agent.poll_event(),
            Some(ClientEvent::Connected { .. })
        ));
        assert!(!agent.session().rooms());

        for refused in [
            agent.join("team"),
            agent.leave("team"),
            agent.say_in("team", "hi"),
            agent.request_rooms(),
        ] {
            let e = refused.unwrap_err();
            assert_eq!(e.to_string(), "the server does not speak rooms");
        }
        // Plain chat both ways, as 1.0.
        agent.say("", "hello").unwrap();
        // From the server, the peer field names the sender: bob's line to everyone.
        server.send_text("bob", "welcome").unwrap();
        pump(&mut agent, &mut server, now);
        assert!(std::iter::from_fn(|| server.poll_event())
            .any(|e| matches!(e, Event::Text { text, .. } if &*text == "hello")));
        agent.process();
        assert_eq!(
            agent.poll_event(),
            Some(ClientEvent::Text {
                from: "bob".into(),
                private: false,
                text: "welcome".into()
            })
        );
        assert_eq!(agent.rooms().iter().count(), 0);
        assert_eq!(agent.rooms().default_room(), None);
    }

    #[test]
    fn room_news_a_server_invents_is_not_believed() {
        let now = Instant::now();
        let (mut agent, mut server, _) = handshake(capability::ALL, now);
        let members = |room: &str, names: &[&str]| Message::RoomMembers {
            room: room.into(),
            names: names.iter().map(|&n| n.into()).collect(),
        };
        let member = |kind, room: &str, name: &str| Message::Member {
            kind,
            room: room.into(),
            name: name.into(),
        };
        // The default room's list, then news about rooms we never joined and a list we
        // never asked for, ourselves "joining", and a room we did join.
        server.send(&members("lobby", &["ann"])).unwrap();
        server
            .send(&member(MemberKind::Joined, "secret", "eve"))
            .unwrap();
        server.send(&members("other", &["eve", "ann"])).unwrap();
        server
            .send(&member(MemberKind::Joined, "lobby", "ann"))
            .unwrap();
        server
            .send(&Message::RoomText {
                room: "other".into(),
                peer: "eve".into(),
                text: "psst".into(),
            })
            .unwrap();
        pump(&mut agent, &mut server, now);
        agent.process();
        agent.join("team").unwrap();
        server.send(&members("TEAM", &["bob", "ann"])).unwrap();
        server
            .send(&member(MemberKind::Joined, "team", "carl"))
            .unwrap();
        pump(&mut agent, &mut server, now);
        agent.process();
        let events: Vec<ClientEvent> = std::iter::from_fn(|| agent.poll_event()).collect();
        let rooms: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::RoomEntered { room, .. } => Some(room.as_str()),
                ClientEvent::RoomJoined { room, .. } | ClientEvent::RoomText { room, .. } => {
                    Some(room.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(rooms, ["lobby", "TEAM", "team"], "{events:?}");
        assert!(!events
            .iter()
            .any(|e| matches!(e, ClientEvent::Joined(n) if n == "ann")));
        assert_eq!(agent.rooms().default_room(), Some("lobby"));
        assert_eq!(
            agent.rooms().get("team").unwrap().members(),
            ["ann", "bob", "carl"]
        );
        assert!(!agent.rooms().contains("other"));
    }

    #[test]
    fn secrets_go_only_where_they_cannot_be_read_on_the_way() {
        let with_secrets = || ClientConfig {
            password: Some(Secret::new("pw")),
            token: Some(Secret::new("t")),
            ..ClientConfig::default()
        };
        let remote = with_secrets().for_peer("192.0.2.7".parse().unwrap());
        assert!(
            remote.password.is_none() && remote.token.is_none(),
            "plaintext, remote"
        );
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let c = with_secrets().for_peer(local.parse().unwrap());
            assert!(c.password.is_some() && c.token.is_some(), "{local}");
        }
    }

    fn entered(room: &str, members: &[&str], default: bool) -> ClientEvent {
        ClientEvent::RoomEntered {
            room: room.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            default,
        }
    }

    #[test]
    fn members_follow_the_news_and_a_room_goes_when_we_leave_it() {
        let mut rooms = Rooms::new();
        rooms.apply(&entered("lobby", &["bob", "me"], true));
        rooms.apply(&entered("Team", &["me"], false));
        rooms.apply(&ClientEvent::Joined("carol".into()));
        rooms.apply(&ClientEvent::Left("bob".into()));
        rooms.apply(&ClientEvent::RoomJoined {
            room: "TEAM".into(),
            name: "dave".into(),
        });
        // A second join news of one name (any spelling) lists it once, as first spelled.
        rooms.apply(&ClientEvent::RoomJoined {
            room: "team".into(),
            name: "DAVE".into(),
        });
        assert_eq!(rooms.get("lobby").unwrap().members(), ["carol", "me"]);
        assert_eq!(rooms.get("team").unwrap().members(), ["dave", "me"]);
        assert_eq!(rooms.get("team").unwrap().name, "Team");
        assert!(rooms.is_default("LOBBY") && !rooms.is_default("team"));

        rooms.apply(&ClientEvent::RoomLeft {
            room: "team".into(),
            name: "dave".into(),
            removed: true,
        });
        assert_eq!(rooms.get("team").unwrap().members(), ["me"]);
        rooms.apply(&ClientEvent::RoomExited {
            room: "team".into(),
            removed: false,
        });
        assert!(!rooms.contains("team") && rooms.contains("lobby"));
        // Our leaving the default room: it is gone, and still known as the default.
        rooms.apply(&ClientEvent::RoomExited {
            room: "lobby".into(),
            removed: false,
        });
        rooms.apply(&ClientEvent::Joined("erin".into()));
        assert_eq!(rooms.iter().count(), 0);
        assert_eq!(rooms.default_room(), Some("lobby"));
    }
}
