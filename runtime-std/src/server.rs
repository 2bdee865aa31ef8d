//! A thread-per-connection server: every connection has a reader thread and a writer thread;
//! one timer thread and one disk thread serve them all. The hub sits behind one mutex,
//! held only while it computes (never during socket or disk I/O).
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
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::hub::{ConnId, FileHandle};

use crate::client::write_all;
use tidings_disk::OpenSource;
use tidings_host::files::{DiskJob, Source, Ticket};
use tidings_host::server::{
    ConnLimit, Host, ServerConfig, ServerEvent, ServerOutput, REFUSAL_TIME,
};
use tidings_host::Error;

/// How long a shutdown waits for goodbyes to be flushed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Most bytes a writer takes from the hub before writing them (one vectored write's worth).
const WRITE_BATCH: usize = 256 << 10;

/// Operator events kept when nobody reads them; newer ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

struct Inner {
    host: Host,
    /// The deadline the timer thread sleeps until.
    armed: Option<Instant>,
    writers: HashMap<ConnId, SyncSender<()>>,
    /// The source address each connection was admitted under, released when it ends.
    addrs: HashMap<ConnId, IpAddr>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the timer thread (paired with `inner`).
    timer: Condvar,
    /// Signalled when a connection is removed (paired with `inner`).
    gone: Condvar,
    /// Signalled when the hub reports connections ready again (paired with `inner`): a
    /// reader that the hub paused (full event queue, or a client over its message rate)
    /// waits on it before reading more.
    readable: Condvar,
    /// Jobs for the disk thread, one after another.
    disk: mpsc::Sender<(Ticket<FileHandle>, DiskJob)>,
    events: SyncSender<ServerEvent>,
    event_rx: Mutex<Receiver<ServerEvent>>,
    stopping: AtomicBool,
    addr: SocketAddr,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    disk_rx: Receiver<(Ticket<FileHandle>, DiskJob)>,
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
        let shown = addr.to_string();
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind {
            addr: shown,
            source,
        })?;
        let (disk, disk_rx) = mpsc::channel();
        let (events, event_rx) = mpsc::sync_channel(EVENT_BACKLOG);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                host: Host::new(config, Instant::now()),
                armed: None,
                writers: HashMap::new(),
                addrs: HashMap::new(),
            }),
            timer: Condvar::new(),
            gone: Condvar::new(),
            readable: Condvar::new(),
            disk,
            events,
            event_rx: Mutex::new(event_rx),
            stopping: AtomicBool::new(false),
            addr: listener.local_addr()?,
        });
        Ok(Server {
            listener,
            shared,
            disk_rx,
        })
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
    /// most 5 s later). Connections beyond the limits of [`ServerConfig`] are turned away:
    /// a native client gets `error server-full` with the reason, anything else is closed.
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
            if let Err(e) = start_conn(&self.shared, stream, peer.ip()) {
                // Out of threads or descriptors: this connection is dropped, the rest served.
                let _ = e;
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut inner = self.shared.inner.lock().unwrap();
        while inner.host.hub_ref().connection_count() > 0 {
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
/// [`Host::start_refusal`]): a client that opens with the native preamble's first byte gets
/// [`ConnLimit::native_refusal`]; then what it still sends is drained for a moment so the
/// close does not reset the connection before the answer is read.
fn refuse(shared: &Arc<Shared>, stream: TcpStream, limit: ConnLimit) {
    let s = shared.clone();
    let answer = move || {
        let deadline = Instant::now() + REFUSAL_TIME;
        let mut stream = stream;
        let mut first = [0u8; 1];
        let _ = stream.set_read_timeout(Some(REFUSAL_TIME));
        let _ = stream.set_write_timeout(Some(REFUSAL_TIME));
        if matches!(stream.read(&mut first), Ok(1) if first[0] == 0x89)
            && stream.write_all(&limit.native_refusal()).is_ok()
        {
            let _ = stream.shutdown(Shutdown::Write);
            let mut sink = [0u8; 4096];
            let mut drained = 0;
            while drained < 64 << 10 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match stream.read(&mut sink) {
                    Ok(n) if n > 0 => drained += n,
                    _ => break,
                }
            }
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

fn start_conn(shared: &Arc<Shared>, stream: TcpStream, ip: IpAddr) -> std::io::Result<()> {
    let set_up = stream.set_nodelay(true).and_then(|()| stream.try_clone());
    let reader = match set_up {
        Ok(reader) => reader,
        Err(e) => {
            shared.inner.lock().unwrap().host.release(ip);
            return Err(e);
        }
    };
    let (wake, wake_rx) = mpsc::sync_channel(1);
    let id = {
        let mut inner = shared.inner.lock().unwrap();
        let id = inner.host.hub().connect(Instant::now());
        inner.writers.insert(id, wake);
        inner.addrs.insert(id, ip);
        shared.after(&mut inner);
        id
    };
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("tidings-r{id}"))
        .spawn(move || read_loop(s, reader, id));
    if spawned.is_err() {
        shared.finish_conn(id, &stream);
        return spawned.map(drop);
    }
    let s = shared.clone();
    std::thread::Builder::new()
        .name(format!("tidings-w{id}"))
        .spawn(move || write_loop(s, stream, id, wake_rx))
        .map(drop)
}

impl Shared {
    /// The host's outputs after any input ([`Host::poll_output`]): wake writers, hand disk
    /// jobs to the disk thread, pass on events, re-arm the timer.
    fn after(&self, inner: &mut MutexGuard<'_, Inner>) {
        let inner = &mut **inner;
        let mut ready = false;
        loop {
            match inner.host.poll_output() {
                ServerOutput::Ready(conn) => {
                    ready = true;
                    if let Some(w) = inner.writers.get(&conn) {
                        let _ = w.try_send(());
                    }
                }
                ServerOutput::Disk(ticket, job) => {
                    let _ = self.disk.send((ticket, job));
                }
                // When nobody reads the operator events, new ones are dropped.
                ServerOutput::Event(ev) => {
                    let _ = self.events.try_send(ev);
                }
                ServerOutput::Wait(next) => {
                    if next.is_some() && (inner.armed.is_none() || next < inner.armed) {
                        self.timer.notify_one();
                    }
                    break;
                }
            }
        }
        if ready {
            // Few readers are ever paused; waking all to re-check is simpler than a
            // condition variable per connection.
            self.readable.notify_all();
        }
    }

    fn finish_conn(&self, id: ConnId, stream: &TcpStream) {
        let _ = stream.shutdown(Shutdown::Both);
        let mut inner = self.inner.lock().unwrap();
        inner.writers.remove(&id);
        if let Some(ip) = inner.addrs.remove(&id) {
            inner.host.release(ip);
        }
        inner.host.hub().remove(id);
        self.after(&mut inner);
        self.gone.notify_all();
        self.readable.notify_all();
    }
}

fn read_loop(shared: Arc<Shared>, mut stream: TcpStream, id: ConnId) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        {
            // Read only while the hub wants input: it pauses a connection whose event
            // queue is full or that sends faster than its message rate (and disconnects one
            // that is read regardless).
            let mut inner = shared.inner.lock().unwrap();
            while !inner.host.hub_ref().wants_input(id) {
                if inner.host.hub_ref().is_finished(id) || shared.stopping.load(Ordering::Relaxed) {
                    return;
                }
                inner = shared.readable.wait(inner).unwrap();
            }
        }
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {
                let mut inner = shared.inner.lock().unwrap();
                inner.host.hub().handle_input(Instant::now(), id, &buf[..n]);
                shared.after(&mut inner);
            }
            _ => {
                let mut inner = shared.inner.lock().unwrap();
                inner.host.hub().handle_eof(Instant::now(), id);
                shared.after(&mut inner);
                return;
            }
        }
    }
}

fn write_loop(shared: Arc<Shared>, mut stream: TcpStream, id: ConnId, wake: Receiver<()>) {
    let mut out: Vec<Bytes> = Vec::new();
    let mut broken = false;
    loop {
        let finished = {
            // Take bytes only as the socket accepts them: what stays in the hub is what its
            // slow-consumer bound and relay window see (the hub's backpressure point).
            let mut inner = shared.inner.lock().unwrap();
            let mut held = 0;
            while held < WRITE_BATCH || broken {
                let Some(b) = inner.host.hub().poll_transmit(id) else {
                    break;
                };
                if !broken {
                    held += b.len();
                    out.push(b);
                }
            }
            shared.after(&mut inner);
            out.is_empty() && inner.host.hub_ref().is_finished(id)
        };
        if finished {
            shared.finish_conn(id, &stream);
            return;
        }
        if !out.is_empty() {
            if write_all(&mut stream, &mut out).is_err() {
                broken = true;
                out.clear();
                let mut inner = shared.inner.lock().unwrap();
                inner.host.hub().handle_eof(Instant::now(), id);
                shared.after(&mut inner);
            }
            continue;
        }
        if wake.recv().is_err() {
            // The server forgot this connection (it was removed): nothing more to write.
            shared.finish_conn(id, &stream);
            return;
        }
    }
}

fn timer_loop(shared: Arc<Shared>) {
    let mut inner = shared.inner.lock().unwrap();
    loop {
        let now = Instant::now();
        let next = inner.host.hub_ref().poll_timeout();
        inner.armed = next;
        if shared.stopping.load(Ordering::SeqCst) && inner.host.hub_ref().connection_count() == 0 {
            return;
        }
        match next {
            Some(d) if d <= now => {
                inner.host.hub().handle_timeout(now);
                shared.after(&mut inner);
            }
            Some(d) => inner = shared.timer.wait_timeout(inner, d - now).unwrap().0,
            None => inner = shared.timer.wait(inner).unwrap(),
        }
    }
}

fn disk_loop(shared: Arc<Shared>, jobs: Receiver<(Ticket<FileHandle>, DiskJob)>) {
    loop {
        match jobs.recv_timeout(Duration::from_secs(1)) {
            Ok((ticket, job)) => {
                let done = tidings_disk::run(job);
                let mut inner = shared.inner.lock().unwrap();
                inner.host.job_done(ticket, done);
                shared.after(&mut inner);
            }
            // `Shared` holds the sender, so the channel never closes while this thread
            // runs: it ends once the server stopped and its last connection is gone.
            Err(RecvTimeoutError::Timeout) => {
                let inner = shared.inner.lock().unwrap();
                if shared.stopping.load(Ordering::SeqCst)
                    && inner.host.hub_ref().connection_count() == 0
                {
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
        Ok(self.with(|h| h.hub().say(to, text))?)
    }

    /// Who is online, sorted.
    pub fn who(&self) -> Vec<String> {
        self.with(|h| h.hub().who().iter().map(|n| n.to_string()).collect())
    }

    /// Disconnects the client called `name` with `kicked`.
    pub fn kick(&self, name: &str, reason: &str) -> Result<(), Error> {
        Ok(self.with(|h| h.hub().kick(name, reason))?)
    }

    /// Bans the name `name` (and its look-alikes) for `duration`, kicking its holder with
    /// `reason` if online; see [`tidings_core::hub::Hub::ban`].
    pub fn ban(&self, name: &str, duration: Duration, reason: &str) {
        self.with(|h| h.hub().ban(Instant::now(), name, duration, reason))
    }

    /// Lifts the ban of `name`; whether one was running.
    pub fn unban(&self, name: &str) -> bool {
        self.with(|h| h.hub().unban(Instant::now(), name))
    }

    /// Offers the file at `path` to the client `to`.
    pub fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        let path = path.as_ref();
        let source = Source::open(path).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        self.send_source(to, source)
    }

    /// Offers an already opened [`Source`] to the client `to`: a file under a relative path
    /// ([`Source::open_as`]) or an empty folder ([`Source::folder`]), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub fn send_source(&self, to: &str, source: Source) -> Result<FileHandle, Error> {
        Ok(self.with(|h| h.send_file(to, source))?)
    }

    /// Peers online now.
    pub fn peer_count(&self) -> usize {
        self.with(|h| h.hub_ref().peer_count())
    }

    /// Says goodbye to everyone, stops accepting, and lets [`Server::run`] return once the
    /// goodbyes are flushed.
    pub fn shutdown(&self, reason: &str) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.with(|h| h.hub().shutdown(reason));
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
        self.shared.timer.notify_all();
        self.shared.readable.notify_all();
    }
}
