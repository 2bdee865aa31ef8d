//! The async server: one hub; native connections as records its event loop polls itself
//! ([`native`](crate::native)); a task per WebSocket connection, one timer task and one
//! disk task on a single-threaded `LocalExecutor`. The thread sleeps in the connection
//! sockets' own event loop (`reactor.rs`: edge-triggered `epoll`) when nothing is runnable.
//!
//! # Why one thread
//!
//! Every input of every connection goes through the one [`Hub`]: with a work-stealing pool,
//! each read would take a shared lock on it and the threads would mostly queue on that lock
//! (and bounce its cache lines between cores). On one thread the hub is an `Rc<RefCell<_>>`,
//! borrowed only between awaits, with no atomics on the hot path; the second core is left to
//! the kernel's TCP work and to the `blocking` pool, where every disk read and write of the
//! server's own transfers runs, so the executor never waits for a disk. A connection
//! gathers all bytes its session has queued into one vectored write. The hub's timer is the
//! event loop's own (`epoll_wait` sleeps until it is due). What is not on the hot path
//! stays on async-io, whose reactor other threads drive (the thread awaiting
//! [`Server::run`], or async-io's own): the listening socket, the door's first reads and the
//! WebSocket tasks' timers; what they wake reaches this thread as a wake-up from another
//! thread.
//!
//! # Who writes
//!
//! When an input gives output to one or two connections only (a private message, a reply),
//! the connection that handled the input writes it to their sockets at once, without
//! blocking; the recipient itself is woken only if its socket is full or its state changed.
//! When many get output (a broadcast, a join's `presence`), every recipient is woken and
//! gathers what several inputs queued into one write. An idle native connection costs a
//! small record, its session (no buffers kept once drained) and its socket's registration:
//! about 1.0 KiB of server memory in `tidings serve` (bench/RESULTS.md, row idle; the
//! binary's allocator, jemalloc, matters as much as these records: see its `memory.rs`).
//!
//! # One port, three doors
//!
//! Each accepted socket first goes through the [door](crate::WebConfig): native clients,
//! WebSocket clients (`/ws`, bridged to the hub by the core's gateway) and plain HTTP
//! requests for the web page share the listening port; see [`Server::with_web`].
//!
//! ```no_run
//! use tidings_smol::{Server, ServerConfig};
//! smol::block_on(async {
//!     let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
//!     println!("listening on {}", server.local_addr());
//!     let handle = server.handle(); // say, kick, send files, shut down — from anywhere
//!     server.run().await
//! })?;
//! # Ok::<(), tidings_smol::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use async_net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use futures_lite::future;
use smol::LocalExecutor;
use tidings_core::hub::{ConnId, FileHandle};
use tidings_core::ErrorCode;
use tidings_disk::OpenSource;
use tidings_host::files::Source;
use tidings_host::server::{Host, ServerConfig, ServerEvent};

use crate::door::door_task;
use crate::doorbell::{Gather, WakeTx, WRITE_PIECES};
use crate::native::Natives;
use crate::reactor::{Reactor, Socket};
use crate::Error;
use crate::WebConfig;

type Cmd = Box<dyn FnOnce(&mut Host) + Send>;

/// How long a shutdown waits for goodbyes to be flushed before closing what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Most connections written to directly by the connection whose input gave them output (see
/// [`WakeTx::write_now`]); beyond this they are woken to write.
const DIRECT_WRITES: usize = 2;

/// Operator events kept when nobody reads them; older ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    cmds: Receiver<Cmd>,
    stop: Receiver<()>,
    events: Sender<ServerEvent>,
    handle: ServerHandle,
    doors: WebConfig,
}

/// Controls a server from any thread or task: the server participant's chat and files,
/// kicking, and shutdown. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    cmds: Sender<Cmd>,
    stop: Sender<()>,
    events: Receiver<ServerEvent>,
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
    pub async fn bind(
        addr: impl AsyncToSocketAddrs + ToString,
        config: ServerConfig,
    ) -> Result<Server, Error> {
        let shown = addr.to_string();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: shown,
                source,
            })?;
        let (cmd_tx, cmds) = async_channel::unbounded();
        let (stop_tx, stop) = async_channel::bounded(1);
        let (events, event_rx) = async_channel::bounded(EVENT_BACKLOG);
        let handle = ServerHandle {
            addr: listener.local_addr()?,
            cmds: cmd_tx,
            stop: stop_tx,
            events: event_rx,
        };
        Ok(Server {
            listener,
            config,
            cmds,
            stop,
            events,
            handle,
            doors: WebConfig::default(),
        })
    }

    /// Sets how the port treats WebSocket and plain HTTP visitors (the web page, timeouts);
    /// see [`WebConfig`]. Native clients are not affected.
    pub fn with_web(mut self, doors: WebConfig) -> Server {
        self.doors = doors;
        self
    }

    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// A handle to control the running server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Accepts and serves connections until [`ServerHandle::shutdown`]; then every client is
    /// told goodbye, output is flushed (for at most 5 s) and the future completes.
    ///
    /// The server runs on a thread of its own ([`Server::run_blocking`]); this future waits
    /// for it, so any executor may poll it. Dropping the future stops the server as
    /// [`ServerHandle::shutdown`] does, without waiting for it.
    pub async fn run(self) -> Result<(), Error> {
        let stop = StopOnDrop(Some(self.handle.clone()));
        let (done_tx, done) = async_channel::bounded(1);
        std::thread::Builder::new()
            .name("tidings-server".into())
            .spawn(move || {
                let _ = done_tx.send_blocking(self.run_blocking());
            })?;
        let result = done
            .recv()
            .await
            .unwrap_or_else(|_| Err(Error::Io(io::Error::other("the server thread panicked"))));
        stop.disarm();
        result
    }

    /// [`Server::run`] on the calling thread, which it keeps until the server stops.
    ///
    /// Everything runs on this one thread (see the [module docs](self)): the hub, the native
    /// connections, the other tasks on a `LocalExecutor`, and the event loop of the
    /// connection sockets, which sleeps in `epoll_wait` when nothing is runnable.
    pub fn run_blocking(self) -> Result<(), Error> {
        let ex = Rc::new(LocalExecutor::new());
        let reactor = Reactor::new()?;
        let (timer_wake, timer_rx) = async_channel::bounded(1);
        let (disk_wake, disk_rx) = async_channel::bounded(1);
        let (gone_wake, gone_rx) = async_channel::bounded(1);
        let state = Rc::new(State {
            host: RefCell::new(Host::new(self.config, Instant::now())),
            writers: RefCell::new(HashMap::new()),
            timer_wake,
            disk_wake,
            gone_wake,
            armed: Cell::new(None),
            read_buf: RefCell::new(vec![0u8; 64 << 10]),
            gather: RefCell::new(Vec::with_capacity(WRITE_PIECES)),
            events: self.events,
            ready: RefCell::new(Vec::new()),
            doors: Rc::new(self.doors),
            executor: Rc::downgrade(&ex),
            reactor: reactor.clone(),
            natives: Natives::default(),
        });
        Natives::reset_thread();
        let loop_state = state.clone();
        let listener = self.listener;
        let cmds = self.cmds;
        let stop = self.stop;
        let exec = ex.clone();
        let main = async move {
            exec.spawn(timer_task(state.clone(), timer_rx)).detach();
            exec.spawn(disk_task(state.clone(), disk_rx)).detach();
            exec.spawn(command_task(state.clone(), cmds)).detach();
            loop {
                let accepted = future::or(async { Some(listener.accept().await) }, async {
                    let _ = stop.recv().await;
                    None
                })
                .await;
                match accepted {
                    Some(Ok((stream, peer))) => {
                        let _ = stream.set_nodelay(true);
                        // The door checks the connection limits, sniffs the first bytes and
                        // joins the hub only then.
                        exec.spawn(door_task(state.clone(), stream, peer)).detach();
                    }
                    // Out of descriptors and the like: keep serving who is connected.
                    Some(Err(_)) => {
                        Timer::after(Duration::from_millis(50)).await;
                    }
                    None => break,
                }
            }
            drop(listener);
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while state.host.borrow().hub_ref().connection_count() > 0 {
                let timed_out = future::or(async { gone_rx.recv().await.is_err() }, async {
                    Timer::at(deadline).await;
                    true
                })
                .await;
                if timed_out {
                    break;
                }
            }
        };
        reactor.block_on(&ex, main, || loop_state.natives.run_one(&loop_state))?;
        Ok(())
    }
}

/// Shuts the server down when [`Server::run`]'s future is dropped before the server ended.
struct StopOnDrop(Option<ServerHandle>);

impl StopOnDrop {
    /// The server ended: nothing to stop.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // What `ServerHandle::shutdown` does, without waiting for it.
            let _ = handle.cmds.try_send(Box::new(|h: &mut Host| {
                h.hub().shutdown("the server is shutting down")
            }));
            let _ = handle.stop.try_send(());
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Operator events (joins, leaves, chat to the server, the server's transfers). Every
    /// clone of the receiver takes events from the same queue.
    pub fn events(&self) -> Receiver<ServerEvent> {
        self.events.clone()
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Host) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = async_channel::bounded(1);
        let gone = || Error::Closed {
            code: ErrorCode::Shutdown,
            reason: "the server is not running".into(),
        };
        self.cmds
            .send(Box::new(move |h| {
                let _ = tx.try_send(f(h));
            }))
            .await
            .map_err(|_| gone())?;
        rx.recv().await.map_err(|_| gone())
    }

    /// The server participant says `text` to `to` (`None`: everyone).
    pub async fn say(&self, to: Option<&str>, text: &str) -> Result<(), Error> {
        let (to, text) = (to.map(str::to_string), text.to_string());
        Ok(self
            .call(move |h| h.hub().say(to.as_deref(), &text))
            .await??)
    }

    /// Who is online, sorted.
    pub async fn who(&self) -> Result<Vec<String>, Error> {
        self.call(|h| h.hub().who().iter().map(|n| n.to_string()).collect())
            .await
    }

    /// Disconnects the client called `name` with `kicked`.
    pub async fn kick(&self, name: &str, reason: &str) -> Result<(), Error> {
        let (name, reason) = (name.to_string(), reason.to_string());
        Ok(self.call(move |h| h.hub().kick(&name, &reason)).await??)
    }

    /// Bans the name `name` (and its look-alikes) for `duration`, kicking its holder with
    /// `reason` if online; see [`tidings_core::hub::Hub::ban`].
    pub async fn ban(&self, name: &str, duration: Duration, reason: &str) -> Result<(), Error> {
        let (name, reason) = (name.to_string(), reason.to_string());
        self.call(move |h| h.hub().ban(Instant::now(), &name, duration, &reason))
            .await
    }

    /// Lifts the ban of `name`; whether one was running.
    pub async fn unban(&self, name: &str) -> Result<bool, Error> {
        let name = name.to_string();
        self.call(move |h| h.hub().unban(Instant::now(), &name))
            .await
    }

    /// Offers the file at `path` to the client `to`; progress arrives as events.
    pub async fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = blocking::unblock({
            let path = path.clone();
            move || Source::open(&path)
        })
        .await;
        let source = opened.map_err(|source| Error::File { path, source })?;
        self.send_source(to, source).await
    }

    /// Offers an already opened [`Source`] to the client `to`: a file under a relative path
    /// ([`Source::open_as`]) or an empty folder ([`Source::folder`]), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub async fn send_source(&self, to: &str, source: Source) -> Result<FileHandle, Error> {
        let to = to.to_string();
        Ok(self.call(move |h| h.send_file(&to, source)).await??)
    }

    /// Peers online now.
    pub async fn peer_count(&self) -> Result<usize, Error> {
        self.call(|h| h.hub_ref().peer_count()).await
    }

    /// Says goodbye (`shutdown`) to everyone, stops accepting, and lets [`Server::run`]
    /// finish once the goodbyes are flushed.
    pub async fn shutdown(&self, reason: &str) {
        let reason = reason.to_string();
        let _ = self.call(move |h| h.hub().shutdown(&reason)).await;
        let _ = self.stop.try_send(());
    }
}

/// What the tasks of one server share (all on one thread).
pub(crate) struct State {
    pub(crate) host: RefCell<Host>,
    pub(crate) writers: RefCell<HashMap<ConnId, WakeTx>>,
    timer_wake: Sender<()>,
    disk_wake: Sender<()>,
    gone_wake: Sender<()>,
    /// The deadline the timer task sleeps until.
    armed: Cell<Option<Instant>>,
    /// One read buffer for every connection: a task reads into it and hands the bytes to the
    /// hub before it yields, so with one thread nobody else can touch it in between (and ten
    /// thousand idle connections do not each hold 64 KiB). Only a busy connection (its last
    /// read was at least `DIRECT_MIN`) reads straight into its own receive buffer in the hub
    /// instead, saving the copy out of this one.
    pub(crate) read_buf: RefCell<Vec<u8>>,
    /// Where a native connection gathers its output for one vectored write, as it writes
    /// (see [`Doorbell::flush`](crate::doorbell::Doorbell::flush)).
    pub(crate) gather: Gather,
    events: Sender<ServerEvent>,
    /// Scratch list of the connections the hub reported ready.
    ready: RefCell<Vec<ConnId>>,
    /// How the port treats non-native visitors.
    pub(crate) doors: Rc<WebConfig>,
    /// The executor the server's tasks run on (weak: its tasks hold this state).
    executor: Weak<LocalExecutor<'static>>,
    /// Where connection sockets are registered once the door hands them on.
    reactor: Rc<Reactor>,
    /// The native connections, which the event loop polls itself.
    pub(crate) natives: Natives,
}

impl State {
    /// Runs `task` as a task of its own on the server's executor (nothing, once the server
    /// is being torn down).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        if let Some(ex) = self.executor.upgrade() {
            ex.spawn(task).detach();
        }
    }

    /// Takes a socket the door read from off async-io's reactor and registers it with the
    /// server's own ([`Reactor`]), for the connection.
    pub(crate) fn adopt(&self, stream: TcpStream) -> io::Result<Rc<Socket>> {
        let shared: Arc<Async<std::net::TcpStream>> = stream.into();
        let io =
            Arc::try_unwrap(shared).map_err(|_| io::Error::other("the socket is still shared"))?;
        self.reactor.register(io.into_inner()?)
    }

    /// A connection is over: its socket closes, its doorbell goes, the hub forgets it, and a
    /// shutdown waiting for the last connection hears of it.
    pub(crate) fn close(&self, id: ConnId, io: &Socket) {
        io.shutdown();
        self.writers.borrow_mut().remove(&id);
        self.host.borrow_mut().hub().remove(id);
        self.after();
        let _ = self.gone_wake.try_send(());
    }

    /// The hub's outputs after any input: wake writers, process events, queue disk work,
    /// re-arm the timer.
    pub(crate) fn after(&self) {
        let mut host = self.host.borrow_mut();
        let writers = self.writers.borrow();
        let mut ready = self.ready.borrow_mut();
        let mut wake_ready = |host: &mut Host| loop {
            // A few connections given output (a private message, a reply) are written at
            // once; many (a broadcast) are rung, so each task gathers what several inputs
            // queued for it into one write instead of one system call per message.
            ready.clear();
            while let Some(conn) = host.hub().poll_ready() {
                ready.push(conn);
            }
            if ready.is_empty() {
                return;
            }
            let direct = ready.len() <= DIRECT_WRITES;
            for &conn in ready.iter() {
                if let Some(w) = writers.get(&conn) {
                    if !(direct && w.write_now(&self.gather, host, conn)) {
                        w.wake();
                    }
                }
            }
            // Taking output from the hub can make other connections ready (a relay's
            // sender given credit): until none is.
        };
        wake_ready(&mut host);
        // Processing answers the server's own transfers, which may give connections output.
        host.process();
        wake_ready(&mut host);
        if host.has_jobs() {
            let _ = self.disk_wake.try_send(());
        }
        while let Some(ev) = host.poll_event() {
            // When nobody reads the operator events, new ones are dropped rather than kept.
            let _ = self.events.try_send(ev);
        }
        let next = host.hub_ref().poll_timeout();
        let armed = self.armed.get();
        if next.is_some() && (armed.is_none() || next < armed) {
            let _ = self.timer_wake.try_send(());
        }
    }
}

/// Runs the hub's timers when due; sleeps on the event loop's
/// [alarm](Reactor::poll_alarm) until the next, or until an input moved it earlier (`wake`).
async fn timer_task(state: Rc<State>, wake: Receiver<()>) {
    loop {
        let next = state.host.borrow().hub_ref().poll_timeout();
        state.armed.set(next);
        let now = Instant::now();
        if next.is_some_and(|d| d <= now) {
            state.host.borrow_mut().hub().handle_timeout(now);
            state.after();
            // Let the connections run before looking again.
            future::yield_now().await;
            continue;
        }
        let closed = future::or(async { wake.recv().await.is_err() }, async {
            future::poll_fn(|cx| state.reactor.poll_alarm(cx, next)).await;
            false
        })
        .await;
        if closed {
            return;
        }
    }
}

async fn disk_task(state: Rc<State>, wake: Receiver<()>) {
    loop {
        let job = state.host.borrow_mut().next_job();
        match job {
            Some((ticket, job)) => {
                let done = blocking::unblock(move || tidings_disk::run(job)).await;
                state.host.borrow_mut().job_done(ticket, done);
                state.after();
            }
            None => {
                if wake.recv().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn command_task(state: Rc<State>, cmds: Receiver<Cmd>) {
    while let Ok(cmd) = cmds.recv().await {
        cmd(&mut state.host.borrow_mut());
        state.after();
    }
}
