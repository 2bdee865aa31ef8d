//! A thread-per-connection server: every connection has a reader thread and a writer thread;
//! one timer thread and one disk thread serve them all. The hub sits behind one mutex,
//! held only while it computes (never during socket or disk I/O).
//!
//! Its one port serves what [`tidings_host::arrival`] tells apart by the first bytes:
//! native clients, WebSocket clients on [`WS_PATH`](tidings_host::arrival::WS_PATH) (binary,
//! JSON and plain legacy chat, bridged to the hub by the core's gateway), and plain HTTP
//! `GET`s of the web page given with [`Server::with_web`]; with TLS
//! ([`ServerConfig::tls`]) each of them inside TLS too (`tls://`, `https://`, `wss://`), as
//! [`entrance`] decides. Each accepted connection's thread first reads its first bytes
//! (with TLS: the handshake, then the first decrypted bytes, and an HTTP request head)
//! under [`WebConfig::head_timeout`], then becomes its reader.
//!
//! This is the simple server for scripts, tests and small groups; for thousands of
//! connections use `tidings-smol`'s.
//!
//! ```no_run
//! use tidings_std::{Server, ServerConfig};
//! let server = Server::bind("127.0.0.1:0", ServerConfig::default())?;
//! println!("listening on {}", server.local_addr());
//! let handle = server.handle();
//! std::thread::spawn(move || server.run());
//! handle.say(None, "hello from the server")?;
//! handle.shutdown("bye");
//! # Ok::<(), tidings_std::Error>(())
//! ```

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tidings_core::gateway::RenderCache;
use tidings_core::hub::FileHandle;
use tidings_host::accounts::VerifyJob;
use tidings_host::arrival::{entrance, Entrance, Visitor, WebConfig, LINGER_TIME};
use tidings_host::files::{DiskJob, Source, Ticket};
use tidings_host::server::{ConnLimit, Host, ServerConfig, ServerEvent, REFUSAL_TIME};
use tidings_host::Error;

use crate::shared::{Admitted, Inner, Shared};
use crate::tls::Stream;
use crate::{native, web};

/// How long a shutdown waits for goodbyes to be flushed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Operator events kept when nobody reads them; newer ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    disk_rx: Receiver<(Ticket<FileHandle>, DiskJob)>,
    verify_rx: Receiver<VerifyJob>,
    web: Arc<WebConfig>,
}

/// Controls a server from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl Server {
    /// Binds the listening socket. A port in use is [`Error::Bind`] naming the address.
    pub fn bind(
        addr: impl ToSocketAddrs + ToString,
        config: ServerConfig,
    ) -> Result<Server, Error> {
        if config.hub.cluster.is_some() {
            let why = "a cluster node runs on the smol runtime (tidings-smol), not this one";
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                why,
            )));
        }
        let shown = addr.to_string();
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind {
            addr: shown,
            source,
        })?;
        let (disk, disk_rx) = mpsc::channel();
        let (verify, verify_rx) = mpsc::channel();
        let (events, event_rx) = mpsc::sync_channel(EVENT_BACKLOG);
        let write_timeout = Some(config.hub.session.heartbeat_timeout).filter(|d| !d.is_zero());
        let (tls, allow_plaintext) = (config.tls.clone(), config.allow_plaintext);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                host: Host::new(config, Instant::now()),
                armed: None,
                writers: HashMap::new(),
                addrs: HashMap::new(),
                renders: RenderCache::new(),
            }),
            timer: Condvar::new(),
            gone: Condvar::new(),
            readable: Condvar::new(),
            disk,
            verify,
            events,
            event_rx: Mutex::new(event_rx),
            stopping: AtomicBool::new(false),
            addr: listener.local_addr()?,
            write_timeout,
            tls,
            allow_plaintext,
        });
        Ok(Server {
            listener,
            shared,
            disk_rx,
            verify_rx,
            web: Arc::new(WebConfig::default()),
        })
    }

    /// Sets how the port treats what is not a native connection (the web page, WebSocket
    /// limits) and how long any new connection may take to show what it is; see
    /// [`WebConfig`]. By default there is no page (every `GET` but the WebSocket path is a
    /// `404`).
    pub fn with_web(mut self, web: WebConfig) -> Server {
        self.web = Arc::new(web);
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A handle to control the running server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until [`ServerHandle::shutdown`]; returns once the goodbyes are flushed (at
    /// most 5 s later). Connections beyond the limits of [`ServerConfig`] are turned away
    /// with [`Visitor::refusal`]: a native client gets `error server-full` with the reason,
    /// an HTTP one `503` with the reason, anything else is closed.
    pub fn run(self) -> Result<(), Error> {
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("tidings-timer".into())
            .spawn(move || timer_loop(shared))?;
        let shared = self.shared.clone();
        let disk_rx = self.disk_rx;
        std::thread::Builder::new()
            .name("tidings-disk".into())
            .spawn(move || disk_loop(shared, disk_rx))?;
        let shared = self.shared.clone();
        let verify_rx = self.verify_rx;
        std::thread::Builder::new()
            .name("tidings-verify".into())
            .spawn(move || verify_loop(shared, verify_rx))?;
        for stream in self.listener.incoming() {
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let Ok(peer) = stream.peer_addr() else {
                continue;
            };
            let refused = {
                let mut inner = self.shared.inner.lock().unwrap();
                match inner.host.admit(peer.ip()) {
                    Ok(()) => None,
                    Err(limit) => {
                        inner.host.refused(peer, limit, Instant::now());
                        let answer = inner.host.start_refusal();
                        self.shared.after(&mut inner);
                        Some((limit, answer))
                    }
                }
            };
            if let Some((limit, answer)) = refused {
                // Beyond the refusals answered at once, the socket is just closed.
                if answer {
                    refuse(&self.shared, stream, limit);
                }
                continue;
            }
            let admitted = Admitted::new(self.shared.clone(), peer.ip());
            let (shared, web) = (self.shared.clone(), self.web.clone());
            // Out of threads: this connection is dropped (and its place freed), the rest
            // served.
            let _ = std::thread::Builder::new()
                .name("tidings-conn".into())
                .spawn(move || arrive(shared, &web, stream, admitted));
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut inner = self.shared.inner.lock().unwrap();
        while inner.host.connection_count() > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            inner = self
                .shared
                .gone
                .wait_timeout(inner, deadline - now)
                .unwrap()
                .0;
        }
        drop(inner);
        self.shared.timer.notify_all();
        Ok(())
    }
}

/// Answers a refused connection on a thread of its own (counted by
/// [`Host::start_refusal`]) with [`Visitor::refusal`], once its first bytes show what it is
/// (within [`REFUSAL_TIME`]).
fn refuse(shared: &Arc<Shared>, stream: TcpStream, limit: ConnLimit) {
    let s = shared.clone();
    let answer = move || {
        let deadline = Instant::now() + REFUSAL_TIME;
        // Refused before any TLS: a TLS visitor is just closed (it has no plaintext answer).
        let mut stream = Stream::Plain(stream);
        let refusal = web::first_bytes(&mut stream, deadline)
            .ok()
            .and_then(|(visitor, _)| visitor.refusal(limit));
        if let Some(refusal) = refusal {
            web::answer(&mut stream, &[refusal], deadline, deadline);
        }
        drop(stream);
        s.inner.lock().unwrap().host.end_refusal();
    };
    let spawned = std::thread::Builder::new()
        .name("tidings-refuse".into())
        .spawn(answer);
    if spawned.is_err() {
        shared.inner.lock().unwrap().host.end_refusal();
    }
}

/// Serves one admitted connection on its own thread: reads its first bytes (by
/// [`WebConfig::head_timeout`], else drops it without an answer) and serves it as what they
/// show, as [`entrance`] decides: TLS started (its handshake within the same deadline, and
/// the decrypted first bytes read again), a plaintext visitor refused on a TLS-only port.
fn arrive(shared: Arc<Shared>, web: &WebConfig, stream: TcpStream, admitted: Admitted) {
    let deadline = Instant::now() + web.head_timeout;
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let peer = stream.peer_addr();
    let mut stream = Stream::Plain(stream);
    let mut inside_tls = false;
    // What went wrong with TLS, for the operator (`Host::tls_failed`).
    let tls_failed = |why: &str| {
        if let Ok(peer) = peer {
            let mut inner = shared.inner.lock().unwrap();
            inner.host.tls_failed(peer, why, Instant::now());
            shared.after(&mut inner);
        }
    };
    let (visitor, first) = loop {
        let (visitor, first) = match web::first_bytes(&mut stream, deadline) {
            Ok(found) => found,
            Err(e) => {
                if inside_tls {
                    tls_failed(&e.to_string());
                }
                return;
            }
        };
        let tls = shared.tls.as_ref();
        match entrance(tls, shared.allow_plaintext, visitor, inside_tls) {
            Entrance::Serve(visitor) => break (visitor, first),
            Entrance::StartTls(mut tls) => {
                // (`entrance` never starts TLS inside TLS.)
                let Stream::Plain(socket) = stream else {
                    return;
                };
                // The sniffed bytes are the start of the handshake, which then runs through
                // the reads that follow, within the same deadline; the records it writes
                // too, rather than for as long as a silent peer likes.
                let received = tls.received(&first);
                stream = Stream::tls(socket, *tls);
                let left = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = &received {
                    tls_failed(&e.to_string());
                }
                if received.is_err()
                    || left.is_zero()
                    || stream.set_write_timeout(Some(left)).is_err()
                {
                    // The alert that says why, if the socket takes it at once.
                    stream.shutdown(Shutdown::Both);
                    return;
                }
                inside_tls = true;
            }
            Entrance::Refuse { answer, why } => {
                tls_failed(why);
                if let Some(answer) = answer {
                    let linger = Instant::now() + LINGER_TIME;
                    web::answer(&mut stream, &[answer], deadline, linger);
                }
                return;
            }
        }
    };
    match visitor {
        Visitor::Http => web::serve(shared, web, stream, admitted, &first, deadline),
        // An unknown visitor gets the native session's `error bad-preamble`. (`Tls` is
        // never served: `entrance` starts it, refuses it, or calls it `Unknown` inside TLS.)
        Visitor::Native | Visitor::Unknown | Visitor::Tls => {
            if stream.set_read_deadline(None).is_ok() {
                native::serve(shared, stream, admitted, &first);
            }
        }
    }
}

fn timer_loop(shared: Arc<Shared>) {
    let mut inner = shared.inner.lock().unwrap();
    loop {
        let now = Instant::now();
        let next = inner.host.hub_ref().poll_timeout();
        inner.armed = next;
        if shared.stopping.load(Ordering::SeqCst) && inner.host.connection_count() == 0 {
            return;
        }
        match next {
            Some(d) if d <= now => {
                inner.host.handle_timeout(now);
                shared.after(&mut inner);
            }
            Some(d) => inner = shared.timer.wait_timeout(inner, d - now).unwrap().0,
            None => inner = shared.timer.wait(inner).unwrap(),
        }
    }
}

/// Runs the disk jobs one after another, off the connections' threads.
fn disk_loop(shared: Arc<Shared>, jobs: Receiver<(Ticket<FileHandle>, DiskJob)>) {
    worker_loop(
        shared,
        jobs,
        |(ticket, job)| (ticket, tidings_disk::run(job)),
        |host, (ticket, done)| host.job_done(ticket, done),
    );
}

/// Runs the password checks of accounts one after another, off the connections' threads and
/// without the host's lock (each takes tens of milliseconds), and feeds each verdict back.
fn verify_loop(shared: Arc<Shared>, jobs: Receiver<VerifyJob>) {
    worker_loop(shared, jobs, VerifyJob::run, Host::verified);
}

/// A worker thread: runs each job (without the host's lock), then feeds its result to the
/// host. It ends once the server stopped and its last connection is gone (`Shared` holds
/// the sender, so the channel never closes while it runs).
fn worker_loop<J, D>(
    shared: Arc<Shared>,
    jobs: Receiver<J>,
    run: impl Fn(J) -> D,
    feed: impl Fn(&mut Host, D),
) {
    loop {
        match jobs.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => {
                let done = run(job);
                let mut inner = shared.inner.lock().unwrap();
                feed(&mut inner.host, done);
                shared.after(&mut inner);
            }
            Err(RecvTimeoutError::Timeout) => {
                let inner = shared.inner.lock().unwrap();
                if shared.stopping.load(Ordering::SeqCst) && inner.host.connection_count() == 0 {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    fn with<R>(&self, f: impl FnOnce(&mut Host) -> R) -> R {
        let mut inner = self.shared.inner.lock().unwrap();
        let r = f(&mut inner.host);
        self.shared.after(&mut inner);
        r
    }

    /// The next operator event within `timeout`.
    pub fn next_event_timeout(&self, timeout: Duration) -> Option<ServerEvent> {
        self.shared
            .event_rx
            .lock()
            .unwrap()
            .recv_timeout(timeout)
            .ok()
    }

    /// The server participant says `text` to `to` (`None`: everyone).
    pub fn say(&self, to: Option<&str>, text: &str) -> Result<(), Error> {
        Ok(self.with(|h| h.say(to, text))?)
    }

    /// Who is online, sorted.
    pub fn who(&self) -> Vec<String> {
        self.with(|h| h.who())
    }

    /// Disconnects the client called `name` with `kicked`.
    pub fn kick(&self, name: &str, reason: &str) -> Result<(), Error> {
        Ok(self.with(|h| h.kick(name, reason))?)
    }

    /// Bans the name `name` (and its look-alikes) for `duration`, kicking its holder with
    /// `reason` if online; see [`tidings_core::hub::Hub::ban`].
    pub fn ban(&self, name: &str, duration: Duration, reason: &str) {
        self.with(|h| h.ban(Instant::now(), name, duration, reason))
    }

    /// Lifts the ban of `name`; whether one was running.
    pub fn unban(&self, name: &str) -> bool {
        self.with(|h| h.unban(Instant::now(), name))
    }

    /// Offers the file at `path` to the client `to`.
    pub fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        let source = tidings_disk::open_to_send(path.as_ref())?;
        self.send_source(to, source)
    }

    /// Offers an already opened [`Source`] to the client `to`: a file under a relative path
    /// ([`OpenSource::open_as`](tidings_disk::OpenSource::open_as)) or an empty folder ([`OpenSource::folder`](tidings_disk::OpenSource::folder)), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub fn send_source(&self, to: &str, source: Source) -> Result<FileHandle, Error> {
        Ok(self.with(|h| h.send_file(to, source))?)
    }

    /// Peers online now.
    pub fn peer_count(&self) -> usize {
        self.with(|h| h.peer_count())
    }

    /// Replaces the accounts (a reloaded accounts file) and closes whoever no longer may
    /// have their name; the names closed. See [`Host::set_accounts`].
    pub fn set_accounts(&self, accounts: tidings_host::accounts::Accounts) -> Vec<String> {
        let accounts = std::sync::Arc::new(accounts);
        self.with(|h| h.set_accounts(accounts))
    }

    /// Says goodbye to everyone, stops accepting, and lets [`Server::run`] return once the
    /// goodbyes are flushed.
    pub fn shutdown(&self, reason: &str) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.with(|h| h.shutdown(reason));
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
        self.shared.timer.notify_all();
        self.shared.readable.notify_all();
    }
}
