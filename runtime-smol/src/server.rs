//! The async server: one hub, one task per connection, one timer task, one disk task, all
//! on a single-threaded `LocalExecutor`, whose thread sleeps in the connection sockets' own
//! event loop (`reactor.rs`: edge-triggered `epoll`) when no task is runnable.
//!
//! # Why one thread
//!
//! Every input of every connection goes through the one [`Hub`]: with a work-stealing pool,
//! each read would take a shared lock on it and the threads would mostly queue on that lock
//! (and bounce its cache lines between cores). On one thread the hub is an `Rc<RefCell<_>>`,
//! borrowed only between awaits, with no atomics on the hot path; the second core is left to
//! the kernel's TCP work and to the `blocking` pool, where every disk read and write of the
//! server's own transfers runs, so the executor never waits for a disk. A connection task
//! gathers all bytes its session has queued into one vectored write. What is not on the hot
//! path stays on async-io, whose reactor other threads drive (the thread awaiting
//! [`Server::run`], or async-io's own): the listening socket, the door's first reads and the
//! timers; what they wake reaches this thread as a wake-up from another thread.
//!
//! # Who writes
//!
//! When an input gives output to one or two connections only (a private message, a reply),
//! the task that handled the input writes it to their sockets at once, without blocking;
//! the recipient's own task is woken only if its socket is full or its state changed. When
//! many get output (a broadcast, a join's `presence`), every recipient's task is woken and
//! gathers what several inputs queued into one write. An idle connection costs a small task,
//! its session (no buffers kept once drained) and its socket's registration: about 2 KiB of
//! server memory in `tidings serve`, which also gives freed heap memory back to the system
//! (bench/RESULTS.md, row idle; without that, what a burst of joins freed stays resident).
//!
//! # One port, three doors
//!
//! Each accepted socket first goes through the [door](crate::DoorConfig): native clients,
//! WebSocket clients (`/ws`, bridged to the hub by the core's gateway) and plain HTTP
//! requests for the web page share the listening port; see [`Server::with_doors`].
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

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use async_net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use bytes::{Bytes, BytesMut};
use futures_lite::{future, Stream};
use smol::LocalExecutor;
use tidings_core::hub::{ConnId, FileHandle};
use tidings_core::ErrorCode;
use tidings_std::files::Source;
use tidings_std::host::{Host, ServerConfig, ServerEvent};

use crate::client::advance;
use crate::door::{door_task, Admitted, DoorConfig};
use crate::reactor::{remember, Reactor, Socket};
use crate::Error;

type Cmd = Box<dyn FnOnce(&mut Host) + Send>;

/// How long a shutdown waits for goodbyes to be flushed before closing what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Most bytes a connection task takes from the hub ahead of its socket (one vectored write).
pub(crate) const WRITE_BATCH: usize = 256 << 10;

/// Most connections written to directly by the task whose input gave them output (see
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
    doors: DoorConfig,
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
            doors: DoorConfig::default(),
        })
    }

    /// Sets how the port treats WebSocket and plain HTTP visitors (the web page, timeouts);
    /// see [`DoorConfig`]. Native clients are not affected.
    pub fn with_doors(mut self, doors: DoorConfig) -> Server {
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
    /// Everything runs on this one thread (see the [module docs](self)): the hub, a task per
    /// connection on a `LocalExecutor`, and the event loop of the connection sockets, which
    /// sleeps in `epoll_wait` when no task is runnable.
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
            events: self.events,
            ready: RefCell::new(Vec::new()),
            doors: Rc::new(self.doors),
            executor: Rc::downgrade(&ex),
            reactor: reactor.clone(),
        });
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
        reactor.block_on(&ex, main)?;
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

    /// Offers the file at `path` to the client `to`; progress arrives as events.
    pub async fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = blocking::unblock({
            let path = path.clone();
            move || Source::open(&path)
        })
        .await;
        let source = opened.map_err(|source| Error::File { path, source })?;
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
    pub(crate) gone_wake: Sender<()>,
    /// The deadline the timer task sleeps until.
    armed: Cell<Option<Instant>>,
    /// One read buffer for every connection: a task reads into it and hands the bytes to the
    /// hub before it yields, so with one thread nobody else can touch it in between (and ten
    /// thousand idle connections do not each hold 64 KiB). Only a busy connection (its last
    /// read was at least `DIRECT_MIN`) reads straight into its own receive buffer in the hub
    /// instead, saving the copy out of this one.
    pub(crate) read_buf: RefCell<Vec<u8>>,
    events: Sender<ServerEvent>,
    /// Scratch list of the connections the hub reported ready.
    ready: RefCell<Vec<ConnId>>,
    /// How the port treats non-native visitors.
    pub(crate) doors: Rc<DoorConfig>,
    /// The executor the server's tasks run on (weak: its tasks hold this state).
    executor: Weak<LocalExecutor<'static>>,
    /// Where connection sockets are registered once the door hands them on.
    reactor: Rc<Reactor>,
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
    /// server's own ([`Reactor`]), for the connection's task.
    pub(crate) fn adopt(&self, stream: TcpStream) -> io::Result<Rc<Socket>> {
        let shared: Arc<Async<std::net::TcpStream>> = stream.into();
        let io =
            Arc::try_unwrap(shared).map_err(|_| io::Error::other("the socket is still shared"))?;
        self.reactor.register(io.into_inner()?)
    }

    /// The hub's outputs after any input: wake writers, process events, queue disk work,
    /// re-arm the timer.
    pub(crate) fn after(&self) {
        let mut host = self.host.borrow_mut();
        let writers = self.writers.borrow();
        let mut ready = self.ready.borrow_mut();
        let mut wake_ready = |host: &mut Host| {
            // A few connections given output (a private message, a reply) are written at
            // once; many (a broadcast) are rung, so each task gathers what several inputs
            // queued for it into one write instead of one system call per message.
            ready.clear();
            while let Some(conn) = host.hub().poll_ready() {
                ready.push(conn);
            }
            let direct = ready.len() <= DIRECT_WRITES;
            for &conn in ready.iter() {
                if let Some(w) = writers.get(&conn) {
                    if !(direct && w.write_now(host, conn)) {
                        w.wake();
                    }
                }
            }
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

async fn timer_task(state: Rc<State>, wake: Receiver<()>) {
    loop {
        let next = state.host.borrow().hub_ref().poll_timeout();
        state.armed.set(next);
        let now = Instant::now();
        if next.is_some_and(|d| d <= now) {
            state.host.borrow_mut().hub().handle_timeout(now);
            state.after();
            // Let the connection tasks run before looking again.
            future::yield_now().await;
            continue;
        }
        let mut timer = match next {
            Some(d) => Timer::at(d),
            None => Timer::never(),
        };
        let closed = future::or(async { wake.recv().await.is_err() }, async {
            (&mut timer).await;
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
                let done = blocking::unblock(move || job.run()).await;
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

/// A read at least this large marks a busy connection: its next read goes straight into the
/// hub's receive buffer instead of the shared one.
const DIRECT_MIN: usize = 16 << 10;
/// The room a direct read is offered at least (more when the buffer has it).
const DIRECT_READ: usize = 64 << 10;

enum Wake {
    /// Read into the shared buffer.
    Read(io::Result<usize>),
    /// Read straight into the hub's receive buffer.
    Received(io::Result<usize>),
    Wrote(io::Result<usize>),
    Woken,
}

/// Serves one native connection, from the door's hand-off until its session ends.
///
/// Its arguments are all a pointer or two wide: they are held for the task's whole life
/// (twice, as rustc lays out an `async fn`), and ten thousand idle connections are ten
/// thousand of these tasks.
pub(crate) async fn conn_task(
    state: Rc<State>,
    io: Rc<Socket>,
    id: ConnId,
    mut wake: WakeRx,
    _admitted: Admitted,
) {
    let bell = wake.0.clone();
    // Other tasks may now write this connection's output straight to its socket.
    let _ = bell.socket.set(io.clone());
    // Whether the last read was large: then the next one goes straight into the hub's receive
    // buffer (see `poll_recv_direct`).
    let mut direct = false;
    let mut wake = Pin::new(&mut wake);
    loop {
        {
            let mut host = state.host.borrow_mut();
            bell.take_output(&mut host, id);
        }
        state.after();
        if bell.out.borrow().is_empty() && state.host.borrow().hub_ref().is_finished(id) {
            break;
        }
        let reading = !bell.read_done.get() && state.host.borrow().hub_ref().wants_input(id);
        bell.reading.set(reading);
        // A read is made only while the socket may hold data (see `Socket`): this task is
        // woken for every message the hub has for it, and a read at each wake-up would be a
        // system call that nearly always fails.
        let ev = future::poll_fn(|cx| {
            let out = bell.out.borrow();
            if !out.is_empty() {
                if let Poll::Ready(r) = poll_write_pieces(&io, cx, &out) {
                    return Poll::Ready(Wake::Wrote(r));
                }
            }
            #[cfg(unix)]
            if reading && direct {
                let mut host = state.host.borrow_mut();
                if let Some(buf) = host.hub().input_buffer(id, DIRECT_READ) {
                    if let Poll::Ready(r) = poll_recv_direct(&io, cx, buf) {
                        return Poll::Ready(Wake::Received(r));
                    }
                }
            }
            if reading && !direct {
                let mut buf = state.read_buf.borrow_mut();
                if let Poll::Ready(r) = io.poll_read(cx, &mut buf[..]) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if wake.as_mut().poll_next(cx).is_ready() {
                return Poll::Ready(Wake::Woken);
            }
            Poll::Pending
        })
        .await;
        let now = Instant::now();
        match ev {
            Wake::Read(Ok(n)) if n > 0 => {
                // (Only where `recv` into the hub's buffer exists.)
                direct = cfg!(unix) && n >= DIRECT_MIN;
                state
                    .host
                    .borrow_mut()
                    .hub()
                    .handle_input(now, id, &state.read_buf.borrow()[..n])
            }
            Wake::Received(Ok(n)) if n > 0 => {
                let mut host = state.host.borrow_mut();
                let hub = host.hub();
                hub.handle_received(now, id, n);
                if n < DIRECT_MIN {
                    // The burst is over: back to the shared buffer, and an empty receive
                    // buffer is let go, so an idle connection does not keep ~64 KiB.
                    direct = false;
                    if let Some(buf) = hub.input_buffer(id, 0) {
                        if buf.is_empty() {
                            *buf = BytesMut::new();
                        }
                    }
                }
            }
            Wake::Read(_) | Wake::Received(_) => {
                bell.read_done.set(true);
                state.host.borrow_mut().hub().handle_eof(now, id);
            }
            Wake::Wrote(Ok(n)) if n > 0 => advance(&mut bell.out.borrow_mut(), n),
            Wake::Wrote(_) => {
                // The peer is gone: drop what was queued for it and end its session.
                bell.broken.set(true);
                bell.out.borrow_mut().clear();
                state.host.borrow_mut().hub().handle_eof(now, id);
            }
            Wake::Woken => {}
        }
    }
    io.shutdown();
    state.writers.borrow_mut().remove(&id);
    state.host.borrow_mut().hub().remove(id);
    state.after();
    let _ = state.gone_wake.try_send(());
}

/// Reads `io` into the spare capacity of `buf` (the hub's receive buffer), so a received byte
/// is copied once, by the kernel, and relayed chunk payloads go on as slices of this buffer.
/// A read into the shared buffer plus `Hub::handle_input` copied each byte once more (a
/// fifth of the server's CPU time in a relay).
#[cfg(unix)]
fn poll_recv_direct(
    io: &Socket,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    use bytes::BufMut as _;
    let spare = buf.chunk_mut();
    let (at, len) = (spare.as_mut_ptr(), spare.len());
    let got = std::task::ready!(io.poll_read_with(cx, len, |fd| {
        // SAFETY: `recv` writes at most `len` bytes at `at`, the spare capacity the buffer owns
        // and that is valid for writes (uninitialised is fine: nothing reads it before the
        // kernel wrote it); `fd` is the live descriptor of `io`.
        let got = unsafe { libc::recv(fd, at.cast(), len, 0) };
        usize::try_from(got).map_err(|_| io::Error::last_os_error())
    }));
    if let Ok(n) = got {
        // SAFETY: the kernel initialised exactly the first `n` bytes of the spare capacity.
        unsafe { buf.advance_mut(n) };
    }
    Poll::Ready(got)
}

/// A connection task's doorbell: the hub has output for it (or it finished). A flag and the
/// task's waker, shared with [`State::writers`]; all on the server's one thread. An
/// `async_channel` per connection did the same for ~770 bytes of memory per connection.
///
/// For a native connection it also holds the bytes taken from the hub and not yet written,
/// and the socket: whichever task routes a message to a connection whose task has nothing
/// pending writes it there and then ([`WakeTx::write_now`]), rather than waking that task
/// to write it (a second task switch, and a failing read, per message delivered).
#[derive(Default)]
struct Doorbell {
    rung: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// Taken from the hub, not yet written, in order (native connections).
    out: RefCell<Vec<Bytes>>,
    /// The connection's socket, once its native connection task runs.
    socket: OnceCell<Rc<Socket>>,
    /// Writing failed: the output is dropped, only the task deals with it.
    broken: Cell<bool>,
    /// Whether the task waits for input now (it must be rung when that should change, e.g.
    /// when a client paused for its message rate may be read again).
    reading: Cell<bool>,
    /// The task saw the end of the input (it reads no more).
    read_done: Cell<bool>,
}

impl Doorbell {
    /// Takes output from the hub, but only as the socket accepts it (at most one vectored
    /// write's worth held): what stays in the hub is what its slow-consumer bound and relay
    /// window see (the hub's backpressure point). A broken connection's output is dropped.
    fn take_output(&self, host: &mut Host, id: ConnId) {
        let broken = self.broken.get();
        let mut out = self.out.borrow_mut();
        let mut held: usize = out.iter().map(Bytes::len).sum();
        while held < WRITE_BATCH || broken {
            let Some(b) = host.hub().poll_transmit(id) else {
                break;
            };
            if !broken {
                held += b.len();
                out.push(b);
            }
        }
    }
}

/// Rings a connection task's [doorbell](wake_pair); kept in [`State::writers`].
pub(crate) struct WakeTx(Rc<Doorbell>);

/// What a connection task polls (as a [`Stream`]) to learn that it was rung.
pub(crate) struct WakeRx(Rc<Doorbell>);

/// A new doorbell for one connection task.
pub(crate) fn wake_pair() -> (WakeTx, WakeRx) {
    let bell = Rc::new(Doorbell::default());
    (WakeTx(bell.clone()), WakeRx(bell))
}

impl WakeTx {
    /// Writes the connection's new output to its socket now, without blocking, when its task
    /// has nothing pending. True when that left the task nothing to do (all written, the
    /// session not finished, and the task's reading as the hub wants it); otherwise ring it.
    fn write_now(&self, host: &mut Host, id: ConnId) -> bool {
        let bell = &self.0;
        let Some(socket) = bell.socket.get() else {
            return false;
        };
        if bell.broken.get() || !bell.out.borrow().is_empty() {
            return false;
        }
        loop {
            bell.take_output(host, id);
            let mut out = bell.out.borrow_mut();
            if out.is_empty() {
                break;
            }
            while !out.is_empty() {
                let (slices, n) = io_slices(&out);
                match socket.try_write_vectored(&slices[..n]) {
                    Ok(n) if n > 0 => advance(&mut out, n),
                    // Full socket, or an error: the task waits for room, or finds the error.
                    _ => return false,
                }
            }
        }
        let hub = host.hub_ref();
        !hub.is_finished(id) && bell.reading.get() == (!bell.read_done.get() && hub.wants_input(id))
    }

    /// Rings: the task's next poll of its [`WakeRx`] is ready (several rings count as one).
    pub(crate) fn wake(&self) {
        self.0.rung.set(true);
        if let Some(w) = self.0.waker.take() {
            w.wake();
        }
    }
}

impl Stream for WakeRx {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<()>> {
        if self.0.rung.replace(false) {
            return Poll::Ready(Some(()));
        }
        remember(&self.0.waker, cx);
        Poll::Pending
    }
}

/// Pieces gathered into one vectored write: enough to fill a socket buffer with small frames.
const WRITE_PIECES: usize = 64;

/// Writes the front of `out` (up to [`WRITE_PIECES`] pieces) in one vectored write, without
/// allocating: both connection loops, native and WebSocket, write this way.
pub(crate) fn poll_write_pieces(
    io: &Socket,
    cx: &mut std::task::Context<'_>,
    out: &[Bytes],
) -> Poll<io::Result<usize>> {
    let (slices, n) = io_slices(out);
    io.poll_write_vectored(cx, &slices[..n])
}

/// The front of `out` (up to [`WRITE_PIECES`] pieces) as slices for one vectored write, and
/// how many there are, without allocating.
fn io_slices(out: &[Bytes]) -> ([IoSlice<'_>; WRITE_PIECES], usize) {
    let mut slices = [IoSlice::new(&[]); WRITE_PIECES];
    for (slice, piece) in slices.iter_mut().zip(out) {
        *slice = IoSlice::new(piece);
    }
    (slices, out.len().min(WRITE_PIECES))
}
