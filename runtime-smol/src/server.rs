//! The async server: one hub; native connections as records its event loop polls itself
//! ([`native`](crate::native)); a task per WebSocket connection, one timer task and one
//! disk task on a single-threaded `LocalExecutor`. The thread sleeps in its own event loop
//! (`epoll/`: edge-triggered `epoll`, through mio) when nothing is runnable.
//!
//! # Why one thread
//!
//! Every input of every connection goes through the one [`Hub`](tidings_core::hub::Hub):
//! with a work-stealing pool, each read would take a shared lock on it and the threads would
//! mostly queue on that lock (and bounce its cache lines between cores). On one thread the
//! hub is an `Rc<RefCell<_>>`, borrowed only between awaits, with no atomics on the hot
//! path; the second core is left to the kernel's TCP work and to the `blocking` pool, where
//! every disk read and write of the server's own transfers runs, so the executor never waits
//! for a disk. A connection gathers all bytes its session has queued into one vectored
//! write.
//!
//! # One event loop
//!
//! Everything of the server thread waits on its own event loop (`epoll/`): the listening
//! socket, every connection socket from its first byte on, the hub's timer and the WebSocket
//! connections' timers. async-io's reactor, which other threads drive, is not used on this
//! thread; a wake-up from another thread comes only for what does come from one (a
//! [`ServerHandle`] command, a finished disk job), through the executor and the loop's
//! notifier.
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
//! # One port for natives, WebSocket and the page
//!
//! Each accepted socket first goes through its arrival (`arrival.rs`, deciding with
//! [`tidings_host::arrival`]; see [`WebConfig`]): native clients,
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
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_net::AsyncToSocketAddrs;
use futures_lite::future;
use smol::LocalExecutor;
use tidings_core::cluster::{ClusterInput, ClusterOutput};
use tidings_core::hub::FileHandle;
use tidings_core::ErrorCode;
use tidings_host::accounts::VerifyJob;
use tidings_host::files::Source;
use tidings_host::server::{Host, ServerConfig, ServerEvent};

use crate::arrival::{serve_arrival, Arrivals};
use crate::epoll::{EventLoop, LoopTimer};
use crate::native::NativeConns;
use crate::shared::{Outlets, Scratch, Shared};
use crate::Error;
use crate::WebConfig;

/// A request to the server thread from a [`ServerHandle`]: runs there with the host.
type Cmd = Box<dyn FnOnce(&mut Host) + Send>;

/// How long a shutdown waits for goodbyes to be flushed before closing what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Operator events kept when nobody reads them; older ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

/// A bound, not yet running server.
pub struct Server {
    listener: std::net::TcpListener,
    config: ServerConfig,
    cmds: Receiver<Cmd>,
    stop: Receiver<()>,
    events: Sender<ServerEvent>,
    handle: ServerHandle,
    web: WebConfig,
    cluster: Option<ClusterLink>,
}

/// The ends a cluster driver (such as `tidings-nats`) gives a server that is one node of a
/// cluster ([`tidings_core::hub::HubConfig::cluster`]). The driver runs elsewhere (its own
/// thread); the server never waits for it.
#[derive(Debug)]
pub struct ClusterLink {
    /// Messages to publish: bounded, and when it is full the server drops what does not fit
    /// (chat across nodes is at most once; presence that is lost is asked for again).
    pub outputs: Sender<ClusterOutput>,
    /// Everything else the hub asks of the broker (subjects to hear or leave, names to
    /// claim or release): never dropped. It holds at most what the connections in their
    /// handshake and those leaving ask for.
    pub control: Sender<ClusterOutput>,
    /// What the broker answers.
    pub inputs: Receiver<ClusterInput>,
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
        let bind = async {
            let addrs = async_net::resolve(addr).await?;
            std::net::TcpListener::bind(&addrs[..])
        };
        let listener = bind.await.map_err(|source| Error::Bind {
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
            web: WebConfig::default(),
            cluster: None,
        })
    }

    /// Sets how the port treats WebSocket and plain HTTP visitors (the web page, timeouts);
    /// see [`WebConfig`]. Native clients are not affected.
    pub fn with_web(mut self, web: WebConfig) -> Server {
        self.web = web;
        self
    }

    /// Makes the server one node of a cluster through `link` (its configuration must have
    /// [`tidings_core::hub::HubConfig::cluster`] set, or nothing goes through the link).
    pub fn with_cluster(mut self, link: ClusterLink) -> Server {
        self.cluster = Some(link);
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
    /// Everything runs on this one thread: the hub, the native connections, the other tasks
    /// on a `LocalExecutor`, and the thread's own event loop (the listening and connection
    /// sockets and the timers), which sleeps in `epoll_wait` when nothing is runnable.
    pub fn run_blocking(self) -> Result<(), Error> {
        let ex = Rc::new(LocalExecutor::new());
        let event_loop = EventLoop::new()?;
        let (timer_wake, timer_rx) = async_channel::bounded(1);
        let (disk_wake, disk_rx) = async_channel::bounded(1);
        let (verify_wake, verify_rx) = async_channel::bounded(1);
        let (conn_gone, gone_rx) = async_channel::bounded(1);
        let tls = (self.config.tls.clone(), self.config.allow_plaintext);
        let shared = Rc::new(Shared {
            // A finished session's output that the peer does not take goes after this long.
            linger_timeout: self.config.hub.session.heartbeat_timeout,
            host: RefCell::new(Host::new(self.config, Instant::now())),
            outputs: RefCell::new(HashMap::new()),
            scratch: Scratch::new(),
            outlets: Outlets {
                disk_jobs: RefCell::new(VecDeque::new()),
                disk_wake,
                verify_jobs: RefCell::new(VecDeque::new()),
                verify_wake,
                events: self.events,
                deadline: Cell::new(None),
                timer_armed: Cell::new(None),
                timer_wake,
                conn_gone,
                lingering: RefCell::new(VecDeque::new()),
                cluster: self
                    .cluster
                    .as_ref()
                    .map(|link| (link.outputs.clone(), link.control.clone())),
            },
            event_loop: event_loop.clone(),
        });
        let natives = Rc::new(NativeConns::default());
        let arrivals = Rc::new(Arrivals::new(
            shared.clone(),
            self.web,
            natives.clone(),
            Rc::downgrade(&ex),
            tls,
        ));
        let loop_shared = shared.clone();
        let listener = event_loop.listen(self.listener)?;
        let timers = event_loop.clone();
        let cmds = self.cmds;
        let stop = self.stop;
        let cluster_inputs = self.cluster.map(|link| link.inputs);
        let exec = ex.clone();
        let main = async move {
            // The host's first deadline, for the timer task.
            shared.after();
            exec.spawn(timer_task(shared.clone(), timer_rx)).detach();
            exec.spawn(disk_task(shared.clone(), disk_rx)).detach();
            exec.spawn(verify_task(shared.clone(), verify_rx)).detach();
            exec.spawn(command_task(shared.clone(), cmds)).detach();
            if let Some(inputs) = cluster_inputs {
                exec.spawn(cluster_task(shared.clone(), inputs)).detach();
            }
            loop {
                let accepted = future::or(
                    async { Some(future::poll_fn(|cx| listener.poll_accept(cx)).await) },
                    async {
                        let _ = stop.recv().await;
                        None
                    },
                )
                .await;
                match accepted {
                    Some(Ok((stream, peer))) => {
                        let _ = stream.set_nodelay(true);
                        let Ok(socket) = timers.register(stream) else {
                            continue; // closed: the client sees its connection end
                        };
                        // Its arrival checks the connection limits, sniffs the first bytes
                        // and joins the hub only then.
                        exec.spawn(serve_arrival(arrivals.clone(), socket, peer))
                            .detach();
                    }
                    // Out of descriptors and the like: keep serving who is connected.
                    Some(Err(_)) => {
                        let pause = Instant::now() + Duration::from_millis(50);
                        LoopTimer::new(&timers, Some(pause)).await;
                    }
                    None => break,
                }
            }
            drop(listener);
            let mut deadline = LoopTimer::new(&timers, Some(Instant::now() + SHUTDOWN_GRACE));
            while shared.host.borrow().connection_count() > 0 {
                let timed_out = future::or(async { gone_rx.recv().await.is_err() }, async {
                    (&mut deadline).await;
                    true
                })
                .await;
                if timed_out {
                    break;
                }
            }
        };
        event_loop.block_on(&ex, main, || natives.run_one(&loop_shared))?;
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
                h.shutdown("the server is shutting down")
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
        Ok(self.call(move |h| h.say(to.as_deref(), &text)).await??)
    }

    /// Who is online, sorted.
    pub async fn who(&self) -> Result<Vec<String>, Error> {
        self.call(|h| h.who()).await
    }

    /// The server participant says `text` to everyone in `room`.
    pub async fn say_in(&self, room: &str, text: &str) -> Result<(), Error> {
        let (room, text) = (room.to_string(), text.to_string());
        Ok(self.call(move |h| h.say_in(&room, &text)).await??)
    }

    /// Every room and its member count, largest first.
    pub async fn rooms(&self) -> Result<Vec<(String, u32)>, Error> {
        self.call(|h| h.rooms()).await
    }

    /// The other servers of the cluster this one hears, with their users' count, sorted by
    /// name; `None` when the server is not a cluster node.
    pub async fn cluster_nodes(&self) -> Result<Option<Vec<(String, usize)>>, Error> {
        self.call(|h| h.cluster_nodes()).await
    }

    /// The members of `room`, sorted; `None` for no such room.
    pub async fn room_members(&self, room: &str) -> Result<Option<Vec<String>>, Error> {
        let room = room.to_string();
        self.call(move |h| h.room_members(&room)).await
    }

    /// Opens `room` for good (kept while empty; with operator-only rooms, the only way a
    /// room comes to be).
    pub async fn open_room(&self, room: &str) -> Result<(), Error> {
        let room = room.to_string();
        Ok(self.call(move |h| h.open_room(&room)).await??)
    }

    /// Closes `room`: everyone in it is removed, and it is gone.
    pub async fn close_room(&self, room: &str) -> Result<(), Error> {
        let room = room.to_string();
        Ok(self.call(move |h| h.close_room(&room)).await??)
    }

    /// Removes `name` from `room`; its `join` of that room is refused while the room lives.
    pub async fn remove_member(&self, room: &str, name: &str) -> Result<(), Error> {
        let (room, name) = (room.to_string(), name.to_string());
        Ok(self.call(move |h| h.remove_member(&room, &name)).await??)
    }

    /// Disconnects the client called `name` with `kicked`.
    pub async fn kick(&self, name: &str, reason: &str) -> Result<(), Error> {
        let (name, reason) = (name.to_string(), reason.to_string());
        Ok(self.call(move |h| h.kick(&name, &reason)).await??)
    }

    /// Bans the name `name` (and its look-alikes) for `duration`, kicking its holder with
    /// `reason` if online; see [`tidings_core::hub::Hub::ban`].
    pub async fn ban(&self, name: &str, duration: Duration, reason: &str) -> Result<(), Error> {
        let (name, reason) = (name.to_string(), reason.to_string());
        self.call(move |h| h.ban(Instant::now(), &name, duration, &reason))
            .await
    }

    /// Lifts the ban of `name`; whether one was running.
    pub async fn unban(&self, name: &str) -> Result<bool, Error> {
        let name = name.to_string();
        self.call(move |h| h.unban(Instant::now(), &name)).await
    }

    /// Offers the file at `path` to the client `to`; progress arrives as events.
    pub async fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        let path = path.as_ref().to_path_buf();
        let source = blocking::unblock(move || tidings_disk::open_to_send(&path)).await?;
        self.send_source(to, source).await
    }

    /// Offers an already opened [`Source`] to the client `to`: a file under a relative path
    /// ([`OpenSource::open_as`](tidings_disk::OpenSource::open_as)) or an empty folder ([`OpenSource::folder`](tidings_disk::OpenSource::folder)), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub async fn send_source(&self, to: &str, source: Source) -> Result<FileHandle, Error> {
        let to = to.to_string();
        Ok(self.call(move |h| h.send_file(&to, source)).await??)
    }

    /// Replaces the accounts (a reloaded accounts file) and closes whoever no longer may
    /// have their name; the names closed. See [`Host::set_accounts`].
    pub async fn set_accounts(
        &self,
        accounts: tidings_host::accounts::Accounts,
    ) -> Result<Vec<String>, Error> {
        let accounts = std::sync::Arc::new(accounts);
        self.call(move |h| h.set_accounts(accounts)).await
    }

    /// Peers online now.
    pub async fn peer_count(&self) -> Result<usize, Error> {
        self.call(|h| h.peer_count()).await
    }

    /// Says goodbye (`shutdown`) to everyone, stops accepting, and lets [`Server::run`]
    /// finish once the goodbyes are flushed.
    pub async fn shutdown(&self, reason: &str) {
        let reason = reason.to_string();
        let _ = self.call(move |h| h.shutdown(&reason)).await;
        let _ = self.stop.try_send(());
    }
}

/// Runs the hub's timers when due, and cuts off finished connections whose peer stopped
/// taking their output ([`Shared::linger`]); sleeps on a [timer of the event loop](LoopTimer)
/// until the next, or until an input moved it earlier (`wake`).
async fn timer_task(shared: Rc<Shared>, wake: Receiver<()>) {
    let mut timer = LoopTimer::new(&shared.event_loop, None);
    loop {
        let hub_next = shared.outlets.deadline.get();
        let linger_next = shared.outlets.lingering.borrow().front().map(|(at, _)| *at);
        let next = match (hub_next, linger_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        shared.outlets.timer_armed.set(next);
        let now = Instant::now();
        if linger_next.is_some_and(|d| d <= now) {
            shared.cut_lingering(now);
        }
        if hub_next.is_some_and(|d| d <= now) {
            shared.host.borrow_mut().handle_timeout(now);
            shared.after();
        }
        if next.is_some_and(|d| d <= now) {
            // Let the connections run before looking again.
            future::yield_now().await;
            continue;
        }
        timer.set(next);
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

/// Runs the server's disk jobs one after another on the `blocking` pool, in the order the
/// host handed them out ([`Outlets::disk_jobs`]).
async fn disk_task(shared: Rc<Shared>, wake: Receiver<()>) {
    job_task(
        shared,
        wake,
        |o| &o.disk_jobs,
        |(ticket, job)| (ticket, tidings_disk::run(job)),
        |host, (ticket, done)| host.job_done(ticket, done),
    )
    .await;
}

/// Runs the password checks of accounts one after another on the `blocking` pool (off the
/// server's thread: each takes tens of milliseconds), feeding each verdict back to the host.
/// One at a time, so logins use at most one core.
async fn verify_task(shared: Rc<Shared>, wake: Receiver<()>) {
    job_task(
        shared,
        wake,
        |o| &o.verify_jobs,
        VerifyJob::run,
        Host::verified,
    )
    .await;
}

/// Takes the jobs from `queue` in order, runs each on the `blocking` pool and feeds its
/// result to the host; sleeps on `wake` while the queue is empty.
async fn job_task<J: Send + 'static, D: Send + 'static>(
    shared: Rc<Shared>,
    wake: Receiver<()>,
    queue: fn(&Outlets) -> &RefCell<VecDeque<J>>,
    run: fn(J) -> D,
    feed: fn(&mut Host, D),
) {
    loop {
        let job = queue(&shared.outlets).borrow_mut().pop_front();
        match job {
            Some(job) => {
                let done = blocking::unblock(move || run(job)).await;
                feed(&mut shared.host.borrow_mut(), done);
                shared.after();
            }
            None => {
                if wake.recv().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Most inputs from the broker taken in one turn of the server's loop.
const CLUSTER_BATCH: usize = 256;

/// Hands what the cluster's broker says to the host: what has arrived meanwhile in one turn
/// (up to [`CLUSTER_BATCH`]), so that a busy room's lines from other nodes cost one round of
/// writes to its members, not one per line.
async fn cluster_task(shared: Rc<Shared>, inputs: Receiver<ClusterInput>) {
    while let Ok(input) = inputs.recv().await {
        {
            let mut host = shared.host.borrow_mut();
            let now = Instant::now();
            host.cluster_input(now, input);
            for _ in 1..CLUSTER_BATCH {
                let Ok(more) = inputs.try_recv() else { break };
                host.cluster_input(now, more);
            }
        }
        shared.after();
    }
}

/// Runs the requests of [`ServerHandle`]s.
async fn command_task(shared: Rc<Shared>, cmds: Receiver<Cmd>) {
    let cmds = Requests(cmds);
    while let Ok(cmd) = cmds.0.recv().await {
        cmd(&mut shared.host.borrow_mut());
        shared.after();
    }
}

/// The server's end of the request channel. However the server ends, dropping this closes
/// the channel and drops the requests still queued in it, with their reply senders, so a
/// caller waiting for a reply gets "not running" at once. async-channel keeps queued items
/// for as long as any handle lives, and every [`ServerHandle`] holds a sender: without this,
/// a request sent just as the server finished (a second `shutdown`) waited forever.
struct Requests(Receiver<Cmd>);

impl Drop for Requests {
    fn drop(&mut self) {
        self.0.close();
        while self.0.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests that race the end of the server (sent while it shuts down, or just after)
    /// are answered or refused, never left waiting: the server drops what it did not run.
    #[test]
    fn requests_racing_the_end_of_the_server_get_an_answer() {
        for _ in 0..20 {
            let server =
                smol::block_on(Server::bind("127.0.0.1:0", ServerConfig::default())).unwrap();
            let handle = server.handle();
            let thread = std::thread::spawn(move || server.run_blocking());
            smol::block_on(async {
                let ask = |calls: &mut Vec<smol::Task<()>>| {
                    for _ in 0..100 {
                        let h = handle.clone();
                        calls.push(smol::spawn(async move {
                            let _ = h.peer_count().await;
                        }));
                    }
                };
                let mut calls = Vec::new();
                ask(&mut calls);
                handle.shutdown("bye").await;
                ask(&mut calls);
                for call in calls {
                    let answered = future::or(
                        async {
                            call.await;
                            true
                        },
                        async {
                            async_io::Timer::after(Duration::from_secs(10)).await;
                            false
                        },
                    )
                    .await;
                    assert!(answered, "a request was left waiting for an answer");
                }
            });
            thread.join().unwrap().unwrap();
        }
    }
}
