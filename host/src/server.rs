//! The server's application logic around a [`Hub`], shared by the thread-per-connection
//! server of `tidings-std` and the async server of `tidings-smol`: hub events become
//! [`ServerEvent`]s, the server participant's file work becomes [`DiskJob`]s (the inbox, and files the
//! operator sends). It performs no I/O and never blocks.
//!
//! A driver, after every input, command, transmit or timeout: wakes the writer of each
//! connection from [`Hub::poll_ready`], calls [`Host::process`], runs the jobs from
//! [`Host::next_job`] one after another (off any async executor) reporting each with
//! [`Host::job_done`], and delivers [`Host::poll_event`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tidings_core::cluster::{ClusterInput, ClusterOutput};
use tidings_core::hub::{ConnId, FileHandle, Hub, HubConfig, HubError, HubEvent};
use tidings_core::transfer::{Direction, Progress, TransferEvent};
use tidings_core::wire::{Message, Preamble, Utf8};
use tidings_core::ErrorCode;

use crate::accounts::{
    password_allowed, Backoff, Judgement, Policy, Tokens, Verdict, VerifyJob, AUTH_FAILED,
};
use crate::files::{DiskDone, DiskJob, Download, Files, JobKind, Source, Ticket};
use crate::tls::TlsServerConfig;

/// Settings of a server (both runtimes).
///
/// The three connection limits are checked when a connection is accepted, before any of its
/// bytes are read; a connection beyond one of them is turned away with the reason
/// ([`ConnLimit`]) and reported as [`ServerEvent::ConnectionRefused`]. 0 means no limit.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The hub's settings (server name, session limits, heartbeat, peer limit). Its `inbox`
    /// flag is set from [`ServerConfig::inbox`].
    pub hub: HubConfig,
    /// Where files offered to the server itself are stored (accepted at once, resumed from
    /// kept partial files, never overwriting); `None` refuses them.
    pub inbox: Option<PathBuf>,
    /// Most open connections at once, in every phase (a socket is a file descriptor: keep
    /// this below the process's descriptor limit). Default 12 000: the hub's 10 000 peers
    /// plus room for connections in their handshake.
    pub max_connections: usize,
    /// Most open connections from one source address (IPv6: one /64 network, which one
    /// host usually owns whole). Default 256.
    pub max_per_address: usize,
    /// Most connections not yet registered at once: still at the door, reading an HTTP
    /// request head, in the WebSocket handshake or before `hello` is answered. Bounds what
    /// slow openers ("slowloris") can hold, each for at most the handshake timeout.
    /// Default 1024.
    pub max_handshaking: usize,
    /// TLS on the port (`tls://`, `https://`, `wss://`); `None` (the default) serves
    /// plaintext only. Reload the certificate with [`TlsServerConfig::reload`]: new
    /// connections get the new one. See [`crate::arrival::entrance`].
    pub tls: Option<TlsServerConfig>,
    /// With [`ServerConfig::tls`], whether plaintext clients are served too on the same
    /// port. Default false: a plaintext client is refused with an answer that says to use
    /// TLS. Meant for moving clients over to TLS, or a port only reachable over loopback.
    pub allow_plaintext: bool,
    /// Accounts (issue #16): with a policy, a registered name is admitted only to the
    /// client that logs in with its password, and unregistered names only if
    /// [`Policy::guests`]; passwords are taken only over TLS or from loopback. Passwords are
    /// checked off the event loop ([`ServerOutput::Verify`]). `None` (the default): every
    /// valid name is admitted, and a `login` is read and ignored.
    pub accounts: Option<Policy>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hub: HubConfig::default(),
            inbox: None,
            max_connections: 12_000,
            max_per_address: 256,
            max_handshaking: 1024,
            tls: None,
            allow_plaintext: false,
            accounts: None,
        }
    }
}

/// The connection limit that turned a connection away (see [`ServerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnLimit {
    /// [`ServerConfig::max_connections`].
    Total,
    /// [`ServerConfig::max_per_address`].
    PerAddress,
    /// [`ServerConfig::max_handshaking`].
    Handshaking,
}

impl ConnLimit {
    /// The reason given to the client and the operator.
    pub fn reason(self) -> &'static str {
        match self {
            ConnLimit::Total => "the server has too many connections",
            ConnLimit::PerAddress => "too many connections from your address",
            ConnLimit::Handshaking => "too many connections are opening at once; retry shortly",
        }
    }

    /// What a native client that is turned away receives: the server's preamble, then a
    /// fatal `error` `server-full` (12) with [`ConnLimit::reason`] (spec §3.3: the error
    /// explaining an early close follows the preamble).
    pub fn native_refusal(self) -> Bytes {
        let mut out = BytesMut::new();
        out.extend_from_slice(&Preamble::CURRENT.to_bytes());
        Message::Error {
            code: ErrorCode::ServerFull,
            text: Utf8::from(self.reason()),
        }
        .encode(&mut out);
        out.freeze()
    }
}

impl std::fmt::Display for ConnLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Refusals being answered at once, at most; beyond this a refused connection is closed
/// without an answer, so answering refusals cannot itself use up descriptors.
pub const MAX_REFUSING: usize = 64;

/// How long a refused connection is kept to show what it is and read its answer.
pub const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// At most one [`ServerEvent::ConnectionRefused`] per this period; the others are counted.
const REFUSAL_REPORT_PERIOD: Duration = Duration::from_secs(1);

/// Reports of one kind to the operator, at most one per [`REFUSAL_REPORT_PERIOD`]: when the
/// last went out, and how many since were only counted.
#[derive(Debug, Default)]
struct Reports {
    last: Option<Instant>,
    unreported: u64,
}

impl Reports {
    /// `Some(unreported since the last report)` when a report is due at `now`; otherwise
    /// the occurrence is counted and `None`.
    fn due(&mut self, now: Instant) -> Option<u64> {
        let due = self.last.map_or(true, |last| {
            now.saturating_duration_since(last) >= REFUSAL_REPORT_PERIOD
        });
        if !due {
            self.unreported += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

/// Counts of open connections, by source address, for the limits of [`ServerConfig`].
#[derive(Debug, Default)]
struct Admission {
    max_connections: usize,
    max_per_address: usize,
    max_handshaking: usize,
    open: usize,
    by_addr: HashMap<IpAddr, usize>,
    refusing: usize,
    /// The refusals' reports.
    reports: Reports,
}

/// Whether `code` refuses a login (reported as [`ServerEvent::LoginRefused`]).
fn is_login_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AuthRequired | ErrorCode::AuthFailed | ErrorCode::AuthInsecure
    )
}

/// The key an address is counted under: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by /64.
fn addr_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// `0` means no limit.
fn over(count: usize, max: usize) -> bool {
    max != 0 && count >= max
}

/// What happened on the server, for the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A client joined.
    Joined {
        /// Its name.
        name: String,
        /// Peers online now.
        online: usize,
    },
    /// A client left.
    Left {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
        /// Peers still online.
        online: usize,
    },
    /// A connection was turned away by a connection limit before it reached the hub (see
    /// [`Host::refused`]).
    ConnectionRefused {
        /// Where it came from.
        addr: SocketAddr,
        /// The limit it met.
        limit: ConnLimit,
        /// Refusals since the previous such event that were not reported one by one.
        unreported: u64,
    },
    /// A connection's TLS failed before it reached the hub: a handshake the server refused
    /// (no protocol in common, a malformed or oversized hello, a TLS client's alert about
    /// our certificate), a handshake not finished in time, a plaintext client on a TLS port,
    /// or a TLS client on a plaintext port (see [`Host::tls_failed`]).
    TlsFailed {
        /// Where it came from.
        addr: SocketAddr,
        /// What went wrong, in words.
        reason: String,
        /// Failures since the previous such event that were not reported one by one.
        unreported: u64,
    },
    /// A login was refused (`auth-required`, `auth-failed`, `auth-insecure`): at most one
    /// such event a second, the others counted, so that guessing cannot flood the log.
    LoginRefused {
        /// The name it asked for.
        name: String,
        /// Where it came from (unknown for a connection made without its peer).
        addr: Option<IpAddr>,
        /// Why.
        code: ErrorCode,
        /// Login refusals since the previous such event that were not reported one by one.
        unreported: u64,
    },
    /// A client was refused at hello (for a reason other than its login).
    Refused {
        /// The name it asked for.
        name: String,
        /// Why.
        code: ErrorCode,
    },
    /// Another node of the cluster was heard for the first time (`up`), or stopped or fell
    /// silent (its users left every list).
    Node {
        /// The node's name.
        node: String,
        /// Heard, or gone.
        up: bool,
    },
    /// The cluster's broker was lost (`up` false: users of other nodes are out of reach) or
    /// reached again.
    ClusterLink {
        /// Whether the broker can be reached now.
        up: bool,
    },
    /// Chat the server participant sees (broadcasts and text to the server).
    Text {
        /// The sender.
        from: String,
        /// Addressed to the server alone.
        private: bool,
        /// The message.
        text: String,
    },
    /// A file offered to the server was accepted into the inbox from `offset`, or a file the
    /// server offered was accepted by its receiver.
    Started {
        /// Which transfer.
        handle: FileHandle,
        /// Sending or receiving.
        direction: Direction,
        /// The client at the other end.
        peer: String,
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// First byte moved now (non-zero: resumed).
        offset: u64,
    },
    /// How far a transfer of the server has come.
    Progress {
        /// Which transfer.
        handle: FileHandle,
        /// The client at the other end.
        peer: String,
        /// Progress.
        progress: Progress,
    },
    /// A file arrived in the inbox, digest confirmed.
    Received {
        /// Which transfer.
        handle: FileHandle,
        /// The sender.
        peer: String,
        /// Where it lies.
        path: PathBuf,
    },
    /// A file the server sent arrived, digest confirmed.
    Sent {
        /// Which transfer.
        handle: FileHandle,
        /// The receiver.
        peer: String,
    },
    /// A transfer of the server failed.
    TransferFailed {
        /// Which transfer.
        handle: FileHandle,
        /// The client at the other end.
        peer: String,
        /// Why.
        code: ErrorCode,
        /// Detail.
        reason: String,
    },
}

/// What a server driver does next, from [`Host::poll_output`].
#[derive(Debug)]
pub enum ServerOutput {
    /// The connection has output queued or its state changed (the hub closed it, or it may
    /// read again): its writer takes the output ([`Hub::poll_transmit`]) and ends the
    /// connection once [`Hub::is_finished`].
    Ready(ConnId),
    /// A disk job of the server's own transfers, to run where blocking is allowed; report
    /// it with [`Host::job_done`].
    Disk(Ticket<FileHandle>, DiskJob),
    /// A password to check ([`ServerConfig::accounts`]): run [`VerifyJob::run`] where
    /// blocking is allowed (it takes tens of milliseconds), one job after another, and hand
    /// the result to [`Host::verified`].
    Verify(VerifyJob),
    /// Something for the cluster's broker ([`tidings_core::hub::HubConfig::cluster`]): a
    /// message to publish, a subject to hear or leave, a name to claim or release. Answers
    /// come back through [`Host::cluster_input`].
    Cluster(ClusterOutput),
    /// An event for the operator.
    Event(ServerEvent),
    /// Nothing more until input, a command, a job's result, or this deadline (then call
    /// [`Hub::handle_timeout`]; `None`: no deadline).
    Wait(Option<Instant>),
}

/// What the operator's events tell about a transfer of the server: the client at the other
/// end, the file's name and size.
#[derive(Debug, Clone, Default)]
struct Info {
    peer: String,
    name: String,
    size: u64,
}

/// The hub with the server participant's files; see the [module docs](self).
#[derive(Debug)]
pub struct Host {
    hub: Hub,
    files: Files<FileHandle>,
    events: VecDeque<ServerEvent>,
    jobs: VecDeque<(Ticket<FileHandle>, DiskJob)>,
    /// Each transfer of the server, for the operator's events (a received file's until it
    /// is in place).
    info: HashMap<FileHandle, Info>,
    admission: Admission,
    /// The reports of [`Host::tls_failed`].
    tls_reports: Reports,
    /// [`ServerConfig::accounts`].
    policy: Option<Policy>,
    /// With accounts: each connection's peer, from [`Host::connect_from`].
    peers: HashMap<ConnId, Peer>,
    /// Password checks waiting for the driver's worker, handed out one at a time.
    verifies: VecDeque<VerifyJob>,
    /// A check was handed out and its verdict has not come back yet.
    verify_running: bool,
    /// Failed logins slow further tries.
    backoff: Backoff,
    /// With accounts: the session tokens this server issues and takes.
    tokens: Option<Tokens>,
    /// With accounts: the connections admitted by a login → the name they logged in as.
    logged_in: HashMap<ConnId, String>,
    /// The reports of refused logins.
    login_reports: Reports,
}

/// A connection's peer, for accounts.
#[derive(Debug, Clone, Copy)]
struct Peer {
    ip: IpAddr,
    /// Whether a password may travel on it ([`password_allowed`]).
    secure: bool,
}

impl Host {
    /// A host for `config`, starting at `now`.
    pub fn new(mut config: ServerConfig, now: Instant) -> Host {
        config.hub.inbox = config.inbox.is_some();
        config.hub.accounts = config.accounts.is_some();
        let policy = config.accounts.as_ref();
        let backoff = policy.map_or_else(Backoff::default, |p| Backoff::new(p.backoff));
        Host {
            tokens: policy.map(|p| Tokens::new(now, p.token_lifetime)),
            backoff,
            policy: config.accounts,
            peers: HashMap::new(),
            verifies: VecDeque::new(),
            verify_running: false,
            logged_in: HashMap::new(),
            login_reports: Reports::default(),
            hub: Hub::new(config.hub, now),
            files: Files::new(config.inbox),
            events: VecDeque::new(),
            jobs: VecDeque::new(),
            info: HashMap::new(),
            tls_reports: Reports::default(),
            admission: Admission {
                max_connections: config.max_connections,
                max_per_address: config.max_per_address,
                max_handshaking: config.max_handshaking,
                ..Admission::default()
            },
        }
    }

    /// The one call a driver makes after any input, command, job result or timeout: the next
    /// thing to do, until [`ServerOutput::Wait`]. Connections with output come first (taking
    /// output can make others ready: a relay's sender given credit, so a driver calls again
    /// after writing), then the hub's events are processed into disk jobs and operator events.
    pub fn poll_output(&mut self) -> ServerOutput {
        if let Some(conn) = self.hub.poll_ready() {
            return ServerOutput::Ready(conn);
        }
        // Processing answers the server's own transfers, which may give connections output.
        self.process();
        if let Some(conn) = self.hub.poll_ready() {
            return ServerOutput::Ready(conn);
        }
        if let Some(out) = self.hub.poll_cluster() {
            return ServerOutput::Cluster(out);
        }
        if let Some((ticket, job)) = self.jobs.pop_front() {
            return ServerOutput::Disk(ticket, job);
        }
        let job = self.next_verify();
        // Checks refused unchecked on the way gave connections output and events.
        self.process();
        if let Some(conn) = self.hub.poll_ready() {
            if let Some(job) = job {
                self.verifies.push_front(job);
                self.verify_running = false;
            }
            return ServerOutput::Ready(conn);
        }
        if let Some(job) = job {
            return ServerOutput::Verify(job);
        }
        if let Some(event) = self.events.pop_front() {
            return ServerOutput::Event(event);
        }
        ServerOutput::Wait(self.hub.poll_timeout())
    }

    /// Decides whether a connection just accepted from `ip` may be served, before any of its
    /// bytes are read, and counts it if so (then [`Host::release`] it when it closes).
    ///
    /// # Errors
    ///
    /// The limit it would exceed: answer it (with [`ConnLimit::native_refusal`] or an HTTP
    /// `503`) only if [`Host::start_refusal`] allows, and report it with [`Host::refused`].
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), ConnLimit> {
        let a = &mut self.admission;
        let key = addr_key(ip);
        // Every admitted connection not registered in the hub is still in its handshake.
        let handshaking = a.open.saturating_sub(self.hub.peer_count());
        if over(a.open, a.max_connections) {
            return Err(ConnLimit::Total);
        }
        if over(a.by_addr.get(&key).copied().unwrap_or(0), a.max_per_address) {
            return Err(ConnLimit::PerAddress);
        }
        if over(handshaking, a.max_handshaking) {
            return Err(ConnLimit::Handshaking);
        }
        a.open += 1;
        *a.by_addr.entry(key).or_insert(0) += 1;
        Ok(())
    }

    /// A connection admitted from `ip` closed.
    pub fn release(&mut self, ip: IpAddr) {
        let a = &mut self.admission;
        let key = addr_key(ip);
        a.open = a.open.saturating_sub(1);
        if let Some(n) = a.by_addr.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                a.by_addr.remove(&key);
            }
        }
    }

    /// Connections admitted and not yet released.
    pub fn open_connections(&self) -> usize {
        self.admission.open
    }

    /// Whether a refused connection may be answered now (at most [`MAX_REFUSING`] at once);
    /// if true, call [`Host::end_refusal`] when done. If false, close it at once.
    pub fn start_refusal(&mut self) -> bool {
        if self.admission.refusing >= MAX_REFUSING {
            return false;
        }
        self.admission.refusing += 1;
        true
    }

    /// A refusal started with [`Host::start_refusal`] is over.
    pub fn end_refusal(&mut self) {
        self.admission.refusing = self.admission.refusing.saturating_sub(1);
    }

    /// Reports a connection from `addr` turned away by `limit` as a
    /// [`ServerEvent::ConnectionRefused`], at most one per second: the refusals in between
    /// are counted in the next event's `unreported`, so a flood cannot flood the log.
    pub fn refused(&mut self, addr: SocketAddr, limit: ConnLimit, now: Instant) {
        let Some(unreported) = self.admission.reports.due(now) else {
            return;
        };
        self.events.push_back(ServerEvent::ConnectionRefused {
            addr,
            limit,
            unreported,
        });
    }

    /// Reports a connection from `addr` whose TLS failed (`reason`) as a
    /// [`ServerEvent::TlsFailed`], at most one per second like [`Host::refused`]: scanners and
    /// misconfigured clients cannot flood the log, and the count of the others is kept.
    pub fn tls_failed(&mut self, addr: SocketAddr, reason: &str, now: Instant) {
        let Some(unreported) = self.tls_reports.due(now) else {
            return;
        };
        self.events.push_back(ServerEvent::TlsFailed {
            addr,
            reason: reason.to_string(),
            unreported,
        });
    }

    /// The hub itself, for what the methods below do not cover (counters, configuration);
    /// the drivers in this repository need only those methods.
    pub fn hub(&mut self) -> &mut Hub {
        &mut self.hub
    }

    /// The hub, read-only.
    pub fn hub_ref(&self) -> &Hub {
        &self.hub
    }

    // A connection's inputs and outputs, for drivers: the hub's, unchanged (see `Hub`).

    /// A new connection, admitted by [`Host::admit`]; see [`Hub::connect`]. Its peer is
    /// unknown: with accounts it may not carry a password (`auth-insecure`); drivers use
    /// [`Host::connect_from`].
    pub fn connect(&mut self, now: Instant) -> ConnId {
        self.hub.connect(now)
    }

    /// A new connection from `peer`, over TLS or not, admitted by [`Host::admit`]: with
    /// accounts, a password is taken on it only over TLS or from a loopback address
    /// ([`password_allowed`]).
    pub fn connect_from(&mut self, now: Instant, peer: IpAddr, tls: bool) -> ConnId {
        let conn = self.hub.connect(now);
        if self.policy.is_some() {
            let secure = password_allowed(peer, tls);
            self.peers.insert(conn, Peer { ip: peer, secure });
        }
        conn
    }

    /// Replaces the accounts (a reloaded accounts file), keeping the guest rule, and closes
    /// with `kicked` whoever no longer may have their name: a user logged in under a name
    /// that is no longer registered or whose password changed, and a guest whose name is now
    /// registered. Returns the names closed. Session tokens of removed users and of changed
    /// passwords stop working (a token names the password's credential). Without accounts at start this does nothing: accounts cannot be turned
    /// on while running.
    pub fn set_accounts(
        &mut self,
        accounts: std::sync::Arc<crate::accounts::Accounts>,
    ) -> Vec<String> {
        let Some(policy) = &mut self.policy else {
            return Vec::new();
        };
        let old = std::mem::replace(&mut policy.accounts, accounts.clone());
        let mut closed = Vec::new();
        let owners: std::collections::HashSet<String> = self
            .logged_in
            .values()
            .map(|n| tidings_core::name::name_key(n))
            .collect();
        for name in self.hub.who() {
            let key = tidings_core::name::name_key(&name);
            let reason = match (owners.contains(&key), accounts.credential(&name)) {
                (true, None) => format!("the account {name} was removed"),
                (true, Some(now)) if old.credential(&name).as_ref() != Some(&now) => {
                    format!("the password of {name} was changed")
                }
                (false, Some(_)) => format!("the name {name} is now registered to someone"),
                _ => continue,
            };
            if self.hub.kick(&name, &reason).is_ok() {
                closed.push(name.to_string());
            }
        }
        closed
    }

    /// The result of a [`ServerOutput::Verify`] job: the connection is admitted (if its
    /// name is still free) or refused with `auth-failed`, and the failure counts toward
    /// the backoff of its source and name ([`Backoff`]). A connection that closed meanwhile
    /// is ignored (its result still counts: closing early does not dodge the backoff).
    pub fn verified(&mut self, verdict: Verdict) {
        self.verify_running = false;
        self.judged(verdict);
    }

    /// Applies a verdict (of a password check, or of a token checked inline).
    fn judged(&mut self, verdict: Verdict) {
        // Checked against the accounts as they are now: a file reloaded while the check
        // waited may have removed the user or changed the password.
        let current = self
            .policy
            .as_ref()
            .and_then(|p| p.accounts.credential(&verdict.name));
        let ok = verdict.ok && verdict.credential.is_some() && verdict.credential == current;
        if let Some(source) = verdict.source {
            if ok {
                self.backoff.succeeded(&verdict.name);
            } else {
                self.backoff.failed(source, &verdict.name, self.hub.now());
            }
        }
        if !ok {
            self.hub
                .deny(verdict.conn, ErrorCode::AuthFailed, AUTH_FAILED);
            return;
        }
        // Admitted (unless the name was taken meanwhile); after a password, a token for next
        // time (a token login keeps its own, which does not renew itself).
        if self.hub.allow(verdict.conn) && self.hub.peer_name(verdict.conn).is_some() {
            self.logged_in.insert(verdict.conn, verdict.name.clone());
            if let (Some(tokens), Some(credential), true) =
                (&self.tokens, &current, verdict.by_password)
            {
                let token = tokens.issue(&verdict.name, credential, self.hub.now());
                let _ = self.hub.send_token(verdict.conn, &token);
            }
        }
    }

    /// Bytes read from `conn`; see [`Hub::handle_input`].
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        self.hub.handle_input(now, conn, bytes);
    }

    /// `conn`'s receive buffer, to read the socket straight into; see [`Hub::input_buffer`].
    pub fn input_buffer(&mut self, conn: ConnId, at_least: usize) -> Option<&mut BytesMut> {
        self.hub.input_buffer(conn, at_least)
    }

    /// `n` bytes were appended to [`Host::input_buffer`]; see [`Hub::handle_received`].
    pub fn handle_received(&mut self, now: Instant, conn: ConnId, n: usize) {
        self.hub.handle_received(now, conn, n);
    }

    /// `conn` reached its end of stream (or failed); see [`Hub::handle_eof`].
    pub fn handle_eof(&mut self, now: Instant, conn: ConnId) {
        self.hub.handle_eof(now, conn);
    }

    /// The deadline of [`ServerOutput::Wait`] passed; see [`Hub::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.hub.handle_timeout(now);
    }

    /// Bytes to write to `conn`, in order; see [`Hub::poll_transmit`].
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Bytes> {
        self.hub.poll_transmit(conn)
    }

    /// Whether `conn`'s socket should be read now; see [`Hub::wants_input`].
    pub fn wants_input(&self, conn: ConnId) -> bool {
        self.hub.wants_input(conn)
    }

    /// Whether `conn` is done and everything for it was written; see [`Hub::is_finished`].
    pub fn is_finished(&self, conn: ConnId) -> bool {
        self.hub.is_finished(conn)
    }

    /// Forgets `conn` once its socket is closed; see [`Hub::remove`].
    pub fn remove(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
        self.logged_in.remove(&conn);
        self.hub.remove(conn);
    }

    /// Connections the hub holds, joined or not.
    pub fn connection_count(&self) -> usize {
        self.hub.connection_count()
    }

    // The server participant, for the operator: the hub's chat commands.

    /// Peers online, sorted; see [`Hub::who`].
    pub fn who(&self) -> Vec<String> {
        self.hub.who().iter().map(|n| n.to_string()).collect()
    }

    /// Peers online now.
    pub fn peer_count(&self) -> usize {
        self.hub.peer_count()
    }

    /// The server participant says `text` to `to` (`None`: everyone); see [`Hub::say`].
    pub fn say(&mut self, to: Option<&str>, text: &str) -> Result<(), HubError> {
        self.hub.say(to, text)
    }

    /// The server participant says `text` in `room`; see [`Hub::say_in`].
    pub fn say_in(&mut self, room: &str, text: &str) -> Result<(), HubError> {
        self.hub.say_in(room, text)
    }

    /// Every room and its member count, largest first; see [`Hub::rooms`].
    pub fn rooms(&self) -> Vec<(String, u32)> {
        let rooms = self.hub.rooms();
        rooms
            .into_iter()
            .map(|r| (r.name.to_string(), r.members))
            .collect()
    }

    /// The other servers of the cluster and their users' count, sorted by name; `None`
    /// without [`HubConfig::cluster`] (see [`Hub::cluster_nodes`]).
    pub fn cluster_nodes(&self) -> Option<Vec<(String, usize)>> {
        self.hub.config().cluster.as_ref()?;
        let nodes = self.hub.cluster_nodes();
        Some(nodes.into_iter().map(|(n, u)| (n.to_string(), u)).collect())
    }

    /// The members of `room`, sorted (`None`: no such room); see [`Hub::room_members`].
    pub fn room_members(&self, room: &str) -> Option<Vec<String>> {
        let names = self.hub.room_members(room)?;
        Some(names.iter().map(|n| n.to_string()).collect())
    }

    /// Opens `room` for good (kept while empty); see [`Hub::open_room`].
    pub fn open_room(&mut self, room: &str) -> Result<(), HubError> {
        self.hub.open_room(room)
    }

    /// Closes `room`, removing everyone in it; see [`Hub::close_room`].
    pub fn close_room(&mut self, room: &str) -> Result<(), HubError> {
        self.hub.close_room(room)
    }

    /// Removes `name` from `room` and keeps it out; see [`Hub::remove_member`].
    pub fn remove_member(&mut self, room: &str, name: &str) -> Result<(), HubError> {
        self.hub.remove_member(room, name)
    }

    /// Disconnects the client called `name`; see [`Hub::kick`].
    pub fn kick(&mut self, name: &str, reason: &str) -> Result<(), HubError> {
        self.hub.kick(name, reason)
    }

    /// Bans `name` and its look-alikes for `duration`; see [`Hub::ban`].
    pub fn ban(&mut self, now: Instant, name: &str, duration: Duration, reason: &str) {
        self.hub.ban(now, name, duration, reason);
    }

    /// Lifts the ban of `name`; whether one was running. See [`Hub::unban`].
    pub fn unban(&mut self, now: Instant, name: &str) -> bool {
        self.hub.unban(now, name)
    }

    /// Says goodbye to everyone and refuses newcomers; see [`Hub::shutdown`].
    pub fn shutdown(&mut self, reason: &str) {
        self.hub.shutdown(reason);
    }

    /// Offers an opened file from the server to the client `to`.
    pub fn send_file(&mut self, to: &str, source: Source) -> Result<FileHandle, HubError> {
        let handle = self.hub.offer_file(to, &source.name, source.size, "")?;
        self.info.insert(
            handle,
            Info {
                peer: to.to_string(),
                name: source.name.clone(),
                size: source.size,
            },
        );
        self.files.add_source(handle, source);
        Ok(handle)
    }

    /// The next operator event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next disk job (run them in order, one at a time).
    pub fn next_job(&mut self) -> Option<(Ticket<FileHandle>, DiskJob)> {
        self.jobs.pop_front()
    }

    /// Whether disk jobs are waiting.
    pub fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Reports a job's result to the hub.
    pub fn job_done(&mut self, ticket: Ticket<FileHandle>, done: DiskDone) {
        let h = ticket.key;
        let result = match (ticket.kind, done) {
            (JobKind::Prepare, DiskDone::Prepared(Ok(download))) => {
                self.prepared(h, download);
                Ok(())
            }
            (JobKind::Prepare, DiskDone::Prepared(Err(reason))) => {
                self.hub.reject_offer(h, &reason)
            }
            (JobKind::Read { offset }, DiskDone::Read(Ok(data))) => {
                self.hub.provide_data(h, offset, data)
            }
            (JobKind::Read { .. }, DiskDone::Read(Err(e))) => {
                self.hub.read_failed(h, &e.to_string())
            }
            (JobKind::Write, DiskDone::Written(Ok(len))) => self.hub.data_written(h, len),
            (JobKind::Write, DiskDone::Written(Err(e))) => self.hub.write_failed(h, &e.to_string()),
            (JobKind::Finalize { .. }, DiskDone::Finalized(placed)) => {
                let peer = self.info.remove(&h).unwrap_or_default().peer;
                self.events.push_back(match placed {
                    Ok(path) => ServerEvent::Received {
                        handle: h,
                        peer,
                        path,
                    },
                    Err(e) => ServerEvent::TransferFailed {
                        handle: h,
                        peer,
                        code: ErrorCode::StorageFailed,
                        reason: format!("cannot move the finished file in place: {e}"),
                    },
                });
                Ok(())
            }
            _ => Ok(()),
        };
        // A transfer that ended meanwhile refuses the answer; its end has its own event.
        let _ = result;
    }

    /// A file offered to the server is ready to arrive: accept it from the kept part.
    fn prepared(&mut self, handle: FileHandle, download: Download) {
        let offset = download.offset;
        self.files.add_download(handle, download);
        if self.hub.accept_offer(handle, offset).is_err() {
            // The offer ended meanwhile (its end has its own event): keep the part.
            self.files.finish_failed(handle);
            return;
        }
        let info = self.info.get(&handle).cloned().unwrap_or_default();
        self.events.push_back(ServerEvent::Started {
            handle,
            direction: Direction::Receive,
            peer: info.peer,
            name: info.name,
            size: info.size,
            offset,
        });
    }

    /// An input from the cluster's broker (see [`ServerOutput::Cluster`]).
    pub fn cluster_input(&mut self, now: Instant, input: ClusterInput) {
        self.hub.cluster_input(now, input);
    }

    /// Pulls every hub event into operator events and disk jobs.
    pub fn process(&mut self) {
        while let Some(ev) = self.hub.poll_event() {
            let out = match ev {
                HubEvent::Joined { name, online, .. } => ServerEvent::Joined {
                    name: name.to_string(),
                    online,
                },
                HubEvent::Left {
                    name,
                    reason,
                    online,
                    ..
                } => ServerEvent::Left {
                    name: name.to_string(),
                    reason,
                    online,
                },
                HubEvent::Refused { conn, name, code } if is_login_code(code) => {
                    let Some(unreported) = self.login_reports.due(self.hub.now()) else {
                        continue;
                    };
                    ServerEvent::LoginRefused {
                        name: name.to_string(),
                        addr: self.peers.get(&conn).map(|p| p.ip),
                        code,
                        unreported,
                    }
                }
                HubEvent::Refused { name, code, .. } => ServerEvent::Refused {
                    name: name.to_string(),
                    code,
                },
                HubEvent::Text {
                    from,
                    private,
                    text,
                } => ServerEvent::Text {
                    from: from.to_string(),
                    private,
                    text: text.to_string(),
                },
                HubEvent::Blob { .. } => continue,
                HubEvent::Verify { conn, name, login } => {
                    self.judge(conn, &name, login);
                    continue;
                }
                HubEvent::Node { node, up } => ServerEvent::Node {
                    node: node.to_string(),
                    up,
                },
                HubEvent::ClusterLink { up } => ServerEvent::ClusterLink { up },
                HubEvent::Transfer {
                    handle,
                    peer,
                    event,
                } => match self.on_transfer(handle, peer.to_string(), event) {
                    Some(ev) => ev,
                    None => continue,
                },
            };
            self.events.push_back(out);
        }
    }

    /// The next password check for the driver's worker, once the last one's verdict came:
    /// checks are handed out one at a time, so that those of connections that closed while
    /// waiting (a flood of logins outlasting the handshake timeout) are dropped unrun, and
    /// those whose source or name began to wait meanwhile ([`Backoff`]) are refused
    /// unchecked, instead of costing a hash each.
    fn next_verify(&mut self) -> Option<VerifyJob> {
        if self.verify_running {
            return None;
        }
        while let Some(job) = self.verifies.pop_front() {
            let conn = job.conn();
            if !self.hub.is_verifying(conn) {
                continue;
            }
            let now = self.hub.now();
            let waits = self
                .peers
                .get(&conn)
                .is_some_and(|p| self.backoff.blocked(addr_key(p.ip), job.name(), now));
            if waits {
                self.hub.deny(conn, ErrorCode::AuthFailed, AUTH_FAILED);
                continue;
            }
            self.verify_running = true;
            return Some(job);
        }
        None
    }

    /// A hello waits for its verdict: allow, refuse, or queue the password check.
    fn judge(&mut self, conn: ConnId, name: &str, login: Option<tidings_core::session::Login>) {
        let Some(policy) = &self.policy else {
            // The hub asks only when accounts are on.
            self.hub.allow(conn);
            return;
        };
        let peer = self.peers.get(&conn).copied();
        let secure = peer.is_some_and(|p| p.secure);
        let waits =
            peer.is_some_and(|p| self.backoff.blocked(addr_key(p.ip), name, self.hub.now()));
        if login.is_some() && secure && waits {
            // Too many failures from there or for this name: refused unchecked.
            self.hub.deny(conn, ErrorCode::AuthFailed, AUTH_FAILED);
            return;
        }
        // A session token is checked here, at once (an HMAC, not a slow hash); it is good
        // only while its name is still registered.
        let token = login
            .as_ref()
            .filter(|l| secure && l.method == tidings_core::wire::login_method::TOKEN);
        if let (Some(l), Some(tokens)) = (token, &self.tokens) {
            let credential = policy.accounts.credential(name);
            let ok = credential
                .as_deref()
                .is_some_and(|c| tokens.check(l.secret.expose(), name, c, self.hub.now()));
            let name = name.to_owned();
            let verdict = Verdict {
                conn,
                name,
                ok,
                credential: credential.filter(|_| ok),
                by_password: false,
                source: peer.map(|p| addr_key(p.ip)),
            };
            self.judged(verdict);
            return;
        }
        match policy.judge(conn, name, login, secure) {
            Judgement::Allow => {
                self.hub.allow(conn);
            }
            Judgement::Deny(code, reason) => {
                self.hub.deny(conn, code, &reason);
            }
            Judgement::Verify(job) => {
                let source = peer.map(|p| addr_key(p.ip));
                self.verifies.push_back(job.from(source));
            }
        }
    }

    fn on_transfer(
        &mut self,
        handle: FileHandle,
        peer: String,
        event: TransferEvent,
    ) -> Option<ServerEvent> {
        let ticket = |kind| Ticket { key: handle, kind };
        match event {
            TransferEvent::Offered(offer) => {
                self.info.insert(
                    handle,
                    Info {
                        peer,
                        name: offer.name.clone(),
                        size: offer.size,
                    },
                );
                // Accepted (or refused) once the disk made the download ready.
                match self.files.prepare_download(&offer.name, offer.size) {
                    Ok(job) => self.jobs.push_back((ticket(JobKind::Prepare), job)),
                    Err(reason) => {
                        let _ = self.hub.reject_offer(handle, &reason);
                    }
                }
                None
            }
            TransferEvent::Accepted { offset, .. } => {
                let info = self.info.get(&handle).cloned().unwrap_or_default();
                Some(ServerEvent::Started {
                    handle,
                    direction: Direction::Send,
                    peer,
                    name: info.name,
                    size: info.size,
                    offset,
                })
            }
            TransferEvent::Read { offset, len, .. } => {
                match self.files.read_job(handle, offset, len) {
                    Some(job) => self.jobs.push_back((ticket(JobKind::Read { offset }), job)),
                    None => {
                        let _ = self.hub.read_failed(handle, "no file for this transfer");
                    }
                }
                None
            }
            TransferEvent::Data { offset, data, .. } => {
                match self.files.write_job(handle, offset, data) {
                    Some(job) => self.jobs.push_back((ticket(JobKind::Write), job)),
                    None => {
                        let _ = self.hub.write_failed(handle, "no file for this transfer");
                    }
                }
                None
            }
            TransferEvent::Progress(progress) => Some(ServerEvent::Progress {
                handle,
                peer,
                progress,
            }),
            TransferEvent::SenderDone { .. } | TransferEvent::Relayed { .. } => None,
            TransferEvent::Finished {
                direction, result, ..
            } => self.on_finished(handle, peer, direction, result),
        }
    }

    fn on_finished(
        &mut self,
        handle: FileHandle,
        peer: String,
        direction: Direction,
        result: Result<[u8; 32], tidings_core::transfer::TransferFailure>,
    ) -> Option<ServerEvent> {
        match result {
            Ok(digest) => {
                let job = self.files.finish_ok(handle);
                match (direction, job) {
                    (Direction::Receive, Some(job)) => {
                        // The file's info stays until it is in place (`job_done`).
                        let kind = JobKind::Finalize { digest };
                        self.jobs.push_back((Ticket { key: handle, kind }, job));
                        None
                    }
                    _ => {
                        self.info.remove(&handle);
                        Some(ServerEvent::Sent { handle, peer })
                    }
                }
            }
            Err(f) => {
                self.info.remove(&handle);
                if f.code == ErrorCode::DigestMismatch {
                    // Its bytes are wrong: not kept for a resume.
                    if let Some(job) = self.files.discard(handle) {
                        let kind = JobKind::Discard;
                        self.jobs.push_back((Ticket { key: handle, kind }, job));
                    }
                } else {
                    self.files.finish_failed(handle);
                }
                Some(ServerEvent::TransferFailed {
                    handle,
                    peer,
                    code: f.code,
                    reason: f.reason.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(max_connections: usize, max_per_address: usize, max_handshaking: usize) -> Host {
        Host::new(
            ServerConfig {
                max_connections,
                max_per_address,
                max_handshaking,
                ..ServerConfig::default()
            },
            Instant::now(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_limit_is_checked_and_released() {
        let mut h = host(3, 2, 0);
        assert_eq!(h.admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(h.admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(h.admit(ip("10.0.0.1")), Err(ConnLimit::PerAddress));
        assert_eq!(h.admit(ip("10.0.0.2")), Ok(()));
        assert_eq!(h.admit(ip("10.0.0.3")), Err(ConnLimit::Total));
        h.release(ip("10.0.0.1"));
        assert_eq!(h.open_connections(), 2);
        assert_eq!(h.admit(ip("10.0.0.1")), Ok(()));
        // Unregistered connections all count as handshaking.
        let mut h = host(0, 0, 2);
        assert_eq!(h.admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(h.admit(ip("10.0.0.2")), Ok(()));
        assert_eq!(h.admit(ip("10.0.0.3")), Err(ConnLimit::Handshaking));
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let mut h = host(0, 1, 0);
        assert_eq!(h.admit(ip("2001:db8:1:2::1")), Ok(()));
        // Another address of the same /64 is the same host.
        assert_eq!(
            h.admit(ip("2001:db8:1:2:ffff::9")),
            Err(ConnLimit::PerAddress)
        );
        assert_eq!(h.admit(ip("2001:db8:1:3::1")), Ok(()));
        assert_eq!(h.admit(ip("192.0.2.7")), Ok(()));
        assert_eq!(h.admit(ip("::ffff:192.0.2.7")), Err(ConnLimit::PerAddress));
        h.release(ip("::ffff:192.0.2.7"));
        assert_eq!(h.admit(ip("192.0.2.7")), Ok(()));
    }

    #[test]
    fn refusals_are_reported_at_most_once_a_second() {
        let mut h = host(1, 0, 0);
        let addr: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..5 {
            h.refused(addr, ConnLimit::Total, t0 + Duration::from_millis(i * 100));
        }
        h.refused(addr, ConnLimit::Total, t0 + Duration::from_millis(1000));
        let events: Vec<_> = std::iter::from_fn(|| h.poll_event()).collect();
        assert_eq!(
            events,
            vec![
                ServerEvent::ConnectionRefused {
                    addr,
                    limit: ConnLimit::Total,
                    unreported: 0
                },
                ServerEvent::ConnectionRefused {
                    addr,
                    limit: ConnLimit::Total,
                    unreported: 4
                },
            ]
        );
    }

    #[test]
    fn at_most_max_refusing_are_answered_at_once() {
        let mut h = host(1, 0, 0);
        for _ in 0..MAX_REFUSING {
            assert!(h.start_refusal());
        }
        assert!(!h.start_refusal());
        h.end_refusal();
        assert!(h.start_refusal());
    }

    #[test]
    fn native_refusal_is_preamble_then_error_server_full() {
        let bytes = ConnLimit::PerAddress.native_refusal();
        assert_eq!(&bytes[..8], &Preamble::CURRENT.to_bytes());
        let mut dec = tidings_core::wire::FrameDecoder::new(1 << 20);
        dec.push(&bytes[8..]);
        let msg = Message::decode(dec.next_frame().unwrap().unwrap()).unwrap();
        assert_eq!(
            msg,
            Message::Error {
                code: ErrorCode::ServerFull,
                text: Utf8::from("too many connections from your address"),
            }
        );
    }

    /// A host with accounts: alice, password `pw`, no guests.
    fn host_with_alice(now: Instant) -> Host {
        use crate::accounts::{Accounts, Policy};
        let mut accounts = Accounts::default();
        accounts.set("alice", "pw").unwrap();
        let config = ServerConfig {
            accounts: Some(Policy {
                accounts: std::sync::Arc::new(accounts),
                guests: false,
                token_lifetime: crate::accounts::TOKEN_LIFETIME,
                backoff: crate::accounts::BackoffLimits::default(),
            }),
            ..ServerConfig::default()
        };
        Host::new(config, now)
    }

    /// A client's first bytes: preamble, `login` with `password`, hello as alice.
    fn alice_logging_in(password: &str) -> BytesMut {
        use tidings_core::wire::{login_method, Hello, Secret};
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
        Message::Login {
            method: login_method::PASSWORD,
            secret: Secret::new(password),
        }
        .encode(&mut wire);
        Message::Hello(Hello {
            name: "alice".into(),
            capabilities: 0,
            max_frame: 1 << 20,
        })
        .encode(&mut wire);
        wire
    }

    /// Drains the host, running password checks at once: (jobs run, operator events).
    fn drain_verifying(host: &mut Host) -> (usize, Vec<ServerEvent>) {
        let mut jobs = 0;
        let mut events = Vec::new();
        loop {
            match host.poll_output() {
                ServerOutput::Verify(job) => {
                    jobs += 1;
                    host.verified(job.run());
                }
                ServerOutput::Event(e) => events.push(e),
                ServerOutput::Wait(_) => break,
                _ => {}
            }
        }
        (jobs, events)
    }

    /// The first message the host sent `conn` after its preamble.
    fn first_answer(host: &mut Host, conn: ConnId) -> Message {
        let mut out = BytesMut::new();
        while let Some(b) = host.poll_transmit(conn) {
            out.extend_from_slice(&b);
        }
        let mut dec = tidings_core::wire::FrameDecoder::new(1 << 20);
        dec.push(&out[tidings_core::wire::PREAMBLE_LEN..]);
        Message::decode(dec.next_frame().unwrap().unwrap()).unwrap()
    }

    /// The whole host with a synthetic peer address: the runtimes' tests can connect only
    /// over loopback, so the non-loopback plaintext rule is tested here, through
    /// `Host::connect_from`, the policy and the hub's verifying state.
    #[test]
    fn the_host_refuses_a_password_over_plaintext_from_elsewhere() {
        let now = Instant::now();
        let mut host = host_with_alice(now);
        let wire = alice_logging_in("pw");
        // (peer, tls) → what the hello gets.
        let cases = [
            ("10.0.0.9", false, Some(ErrorCode::AuthInsecure)),
            ("2001:db8::7", false, Some(ErrorCode::AuthInsecure)),
            ("10.0.0.9", true, None),
            ("127.0.0.1", false, None),
        ];
        for (peer, tls, want) in cases {
            let conn = host.connect_from(now, peer.parse().unwrap(), tls);
            host.handle_input(now, conn, &wire);
            let (jobs, _) = drain_verifying(&mut host);
            let msg = first_answer(&mut host, conn);
            match want {
                Some(code) => {
                    assert_eq!(jobs, 0, "no hashing for an insecure password");
                    assert!(
                        matches!(msg, Message::Refused { code: c, .. } if c == code),
                        "{peer} tls={tls}: {msg:?}"
                    );
                }
                None => {
                    assert_eq!(jobs, 1);
                    assert!(
                        matches!(msg, Message::Welcome(_)),
                        "{peer} tls={tls}: {msg:?}"
                    );
                    host.remove(conn);
                }
            }
        }
    }

    /// A guess whose connection closes while its check runs still counts: closing early
    /// does not dodge the backoff.
    #[test]
    fn a_guess_that_hangs_up_during_its_check_still_counts() {
        let t0 = Instant::now();
        let mut host = host_with_alice(t0);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..4 {
            let conn = host.connect_from(t0, ip, true);
            host.handle_input(t0, conn, &alice_logging_in("wrong"));
            let job = loop {
                match host.poll_output() {
                    ServerOutput::Verify(job) => break job,
                    ServerOutput::Wait(_) => panic!("no check was handed out"),
                    _ => {}
                }
            };
            host.remove(conn);
            host.verified(job.run());
            drain_verifying(&mut host);
        }
        // The right password from there, too soon: refused without a check.
        let conn = host.connect_from(t0, ip, true);
        host.handle_input(t0, conn, &alice_logging_in("pw"));
        let (jobs, _) = drain_verifying(&mut host);
        assert_eq!(jobs, 0);
        assert!(matches!(
            first_answer(&mut host, conn),
            Message::Refused {
                code: ErrorCode::AuthFailed,
                ..
            }
        ));
    }

    /// Failed logins make their source and name wait: the fifth try within the backoff is
    /// refused unchecked (no verify job), even with the right password; time heals it.
    #[test]
    fn failed_logins_back_off_and_are_reported_without_flooding() {
        use crate::accounts::FIRST_BACKOFF;

        let t0 = Instant::now();
        let mut host = host_with_alice(t0);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        // One login from `ip` (over TLS) at `now`: (verify jobs run, refusal code, events).
        let try_login = |host: &mut Host, password: &str, now: Instant| {
            let conn = host.connect_from(now, ip, true);
            host.handle_input(now, conn, &alice_logging_in(password));
            let (jobs, events) = drain_verifying(host);
            let code = match first_answer(host, conn) {
                Message::Refused { code, .. } => Some(code),
                _ => None,
            };
            host.remove(conn);
            (jobs, code, events)
        };
        let mut reported = 0;
        for _ in 0..4 {
            let (jobs, code, events) = try_login(&mut host, "wrong", t0);
            assert_eq!((jobs, code), (1, Some(ErrorCode::AuthFailed)));
            reported += events
                .iter()
                .filter(|e| matches!(e, ServerEvent::LoginRefused { .. }))
                .count();
        }
        assert_eq!(reported, 1, "one report a second, the rest counted");
        // The right password, too soon: refused without a check.
        let (jobs, code, _) = try_login(&mut host, "pw", t0);
        assert_eq!((jobs, code), (0, Some(ErrorCode::AuthFailed)));
        // Once the wait is over it is checked, and admitted.
        let later = t0 + FIRST_BACKOFF + Duration::from_millis(1);
        let (jobs, code, events) = try_login(&mut host, "pw", later);
        assert_eq!((jobs, code), (1, None));
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerEvent::Joined { .. })));
        // A success clears the slate: a wrong password is checked again at once.
        let (jobs, code, events) = try_login(&mut host, "wrong", later);
        assert_eq!((jobs, code), (1, Some(ErrorCode::AuthFailed)));
        assert!(
            events.iter().any(|e| matches!(e,
                ServerEvent::LoginRefused { unreported: 4, addr: Some(a), .. } if *a == ip)),
            "{events:?}"
        );
    }

    /// Checks go to the worker one at a time: a burst of logins from one source costs a
    /// hash only until the backoff begins (the rest are refused unchecked when their turn
    /// comes), and the check of a connection that closed while waiting is never run.
    #[test]
    fn password_checks_are_handed_out_one_at_a_time() {
        let now = Instant::now();
        let mut host = host_with_alice(now);
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        let conns: Vec<ConnId> = (0..8)
            .map(|_| {
                let conn = host.connect_from(now, ip, true);
                host.handle_input(now, conn, &alice_logging_in("wrong"));
                conn
            })
            .collect();
        // The last one gives up before its turn.
        host.remove(conns[7]);
        let mut held = None;
        loop {
            match host.poll_output() {
                ServerOutput::Verify(job) => {
                    assert!(held.is_none(), "a second check before the first's verdict");
                    held = Some(job);
                }
                ServerOutput::Wait(_) => break,
                _ => {}
            }
        }
        let mut run = 0;
        while let Some(job) = held.take() {
            run += 1;
            host.verified(job.run());
            loop {
                match host.poll_output() {
                    ServerOutput::Verify(job) => held = Some(job),
                    ServerOutput::Wait(_) => break,
                    _ => {}
                }
            }
        }
        assert_eq!(
            run, 4,
            "three free failures and the one that starts the wait"
        );
        for &conn in &conns[..7] {
            assert!(
                matches!(
                    first_answer(&mut host, conn),
                    Message::Refused {
                        code: ErrorCode::AuthFailed,
                        ..
                    }
                ),
                "every guess is refused alike"
            );
        }
    }
}
