//! The async client: one task owns the session and the socket, the handle talks to it over
//! channels, and disk jobs run on a disk thread of the connection's own, beside the socket.
//!
//! ```no_run
//! use tidings_smol::{Client, ClientConfig, ClientEvent};
//! smol::block_on(async {
//!     let client = Client::connect("127.0.0.1:9988", "alice", ClientConfig::default()).await?;
//!     client.say("hello, everyone").await?;
//!     while let Some(event) = client.next_event().await {
//!         if let ClientEvent::Text { from, text, .. } = event {
//!             println!("{from}: {text}");
//!         }
//!     }
//!     Ok::<(), tidings_smol::Error>(())
//! })?;
//! # Ok::<(), tidings_smol::Error>(())
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_net::{AsyncToSocketAddrs, TcpStream};
use futures_lite::{future, AsyncRead, AsyncWrite, Stream};
use tidings_core::transfer::TransferId;
use tidings_core::ErrorCode;
use tidings_host::client::{Agent, ClientOutput, Command, JOBS_IN_FLIGHT};
use tidings_host::files::{DiskDone, DiskJob, Source, Ticket};
use tidings_host::outgoing::{Outgoing, MAX_SLICES};

use crate::tls::Connection;
use crate::{ClientConfig, ClientEvent, Error};

/// Where the answer to one [`Command`] goes.
type Reply = Sender<Result<Option<TransferId>, Error>>;

/// A connected async client. Commands return once the session has queued them; what happens
/// next arrives as [`ClientEvent`]s from [`Client::next_event`].
pub struct Client {
    name: String,
    server: String,
    online: Vec<String>,
    peer_addr: SocketAddr,
    commands: Sender<(Command, Reply)>,
    events: Receiver<ClientEvent>,
    task: Option<smol::Task<()>>,
    /// Cleared by the driver as soon as the session ends, before the events reporting it.
    open: Arc<AtomicBool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

impl Client {
    /// Connects to `addr`, asks for `name`, and returns once the server accepted it. A
    /// refusal (name taken …) is [`Error::Refused`]; a server that closes the connection,
    /// does not answer within the handshake timeout (`config.session.handshake_timeout`) or
    /// is not a tidings server is [`Error::Handshake`]. The timeout counts from the call:
    /// an address that does not accept the TCP connection in time is [`Error::Io`]
    /// (`TimedOut`). The connection is driven by a task on smol's global executor.
    pub async fn connect(
        addr: impl AsyncToSocketAddrs,
        name: &str,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        let close_timeout = config.close_timeout;
        let handshake_timeout = config.session.handshake_timeout;
        let started = Instant::now();
        let tls = config.tls.clone();
        Agent::check_name(name)?;
        // An address that drops our SYNs (a firewall, a full backlog) would take the OS's
        // minutes: the handshake timeout counts from here, connecting included.
        let stream = future::or(TcpStream::connect(addr), async {
            Timer::after(handshake_timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:.1} s", handshake_timeout.as_secs_f64()),
            ))
        })
        .await?;
        stream.set_nodelay(true)?;
        let peer_addr = stream.peer_addr()?;
        let agent = Agent::new(name, config.for_peer(peer_addr.ip()), started)?;
        let mut stream = match tls {
            None => Connection::Plain(stream),
            Some(tls) => Connection::Tls(Box::new((stream, tls.start()?))),
        };
        // TLS first, within what is left of the handshake timeout: a certificate that does
        // not check out is reported as such.
        let left = handshake_timeout.saturating_sub(started.elapsed());
        future::or(
            async {
                stream
                    .handshake()
                    .await
                    .map_err(|e| Error::Tls(e.to_string()))
            },
            async {
                Timer::after(left).await;
                Err(Error::tls_timed_out(handshake_timeout))
            },
        )
        .await?;
        let (commands, command_rx) = async_channel::bounded(16);
        let (event_tx, events) = async_channel::unbounded();
        let open = Arc::new(AtomicBool::new(true));
        let task = smol::spawn(drive(
            agent,
            stream,
            Commands(Box::pin(command_rx)),
            event_tx,
            Ending {
                open: open.clone(),
                close_timeout,
                deadline: None,
            },
        ));
        let mut client = Client {
            name: String::new(),
            server: String::new(),
            online: Vec::new(),
            peer_addr,
            commands,
            events,
            task: Some(task),
            open,
        };
        let (name, server, online) = tidings_host::client::joined(client.events.recv().await.ok())?;
        client.name = name;
        client.server = server;
        client.online = online;
        Ok(client)
    }

    /// Our registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server participant's name.
    pub fn server_name(&self) -> &str {
        &self.server
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Who was in the default room when we joined (on a server without rooms: online),
    /// ourselves included.
    pub fn online_at_join(&self) -> &[String] {
        &self.online
    }

    /// Whether the session is still open. It turns false as soon as the session ends (the
    /// connection lost, a heartbeat timeout, a goodbye either way), before the events that
    /// report the end are delivered: a [`ClientEvent::TransferFailed`] received while this
    /// is false failed because the connection ended, and [`ClientEvent::Closed`] follows.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Hands `command` to the task that owns the session and waits for its answer.
    async fn call(&self, command: Command) -> Result<Option<TransferId>, Error> {
        let (tx, rx) = async_channel::bounded(1);
        let closed = || Error::Closed {
            code: ErrorCode::PeerLost,
            reason: "the connection is closed".into(),
        };
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| closed())?;
        rx.recv().await.map_err(|_| closed())?
    }

    /// Chat text to everyone.
    pub async fn say(&self, text: &str) -> Result<(), Error> {
        self.say_to("", text).await
    }

    /// Private text to `peer` (empty: everyone).
    pub async fn say_to(&self, peer: &str, text: &str) -> Result<(), Error> {
        let (to, text) = (peer.to_string(), text.to_string());
        self.call(Command::Say { to, text }).await.map(drop)
    }

    /// Asks who is online; [`ClientEvent::PeerList`] answers.
    pub async fn request_list(&self) -> Result<(), Error> {
        self.call(Command::RequestList).await.map(drop)
    }

    /// Enters `room` (creating it, if the server lets us): [`ClientEvent::RoomEntered`]
    /// answers with its members, or a [`ClientEvent::Notice`] with the refusal. A server
    /// that does not speak rooms: [`Error::Send`] at once.
    pub async fn join(&self, room: &str) -> Result<(), Error> {
        self.call(Command::Join(room.to_string())).await.map(drop)
    }

    /// Leaves `room`: [`ClientEvent::RoomExited`] answers, or a `not-member`
    /// [`ClientEvent::Notice`].
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        self.call(Command::Leave(room.to_string())).await.map(drop)
    }

    /// Says `text` to the other members of `room` (a `not-member` [`ClientEvent::Notice`]
    /// when we are not one).
    pub async fn say_in(&self, room: &str, text: &str) -> Result<(), Error> {
        let (room, text) = (room.to_string(), text.to_string());
        self.call(Command::SayIn { room, text }).await.map(drop)
    }

    /// Asks which rooms exist; [`ClientEvent::RoomList`] answers.
    pub async fn request_rooms(&self) -> Result<(), Error> {
        self.call(Command::RequestRooms).await.map(drop)
    }

    /// Offers the file at `path` to `peer` (empty: the server). Fails before anything is
    /// sent when the file cannot be opened.
    pub async fn send_file(&self, peer: &str, path: impl AsRef<Path>) -> Result<TransferId, Error> {
        let path = path.as_ref().to_path_buf();
        let source = blocking::unblock(move || tidings_disk::open_to_send(&path)).await?;
        self.send_source(peer, source).await
    }

    /// Offers an already opened [`Source`] to `peer`: a file under a relative path
    /// ([`OpenSource::open_as`](tidings_disk::OpenSource::open_as)) or an empty folder
    /// ([`OpenSource::folder`](tidings_disk::OpenSource::folder)), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub async fn send_source(&self, peer: &str, source: Source) -> Result<TransferId, Error> {
        let to = peer.to_string();
        let started = self.call(Command::Send { to, source }).await?;
        Ok(started.expect("a send starts a transfer"))
    }

    /// Accepts a waiting offer (resuming a kept partial file).
    pub async fn accept(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Accept(id)).await.map(drop)
    }

    /// Declines a waiting offer.
    pub async fn reject(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Reject(id)).await.map(drop)
    }

    /// Abandons a transfer.
    pub async fn cancel(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Cancel(id)).await.map(drop)
    }

    /// The next event; `None` after [`ClientEvent::Closed`] was delivered.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        self.events.recv().await.ok()
    }

    /// A clone of the event stream, for a task of its own.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.clone()
    }

    /// Says goodbye, transmits what is queued and waits for the connection to close.
    ///
    /// Returns at once when the connection is already gone. On a live connection it takes
    /// as long as writing the goodbye and what was queued before it, and at most
    /// [`ClientConfig::close_timeout`] (default 5 s; a server that stopped reading), after
    /// which the connection is dropped.
    pub async fn close(mut self) {
        let _ = self.call(Command::Quit).await;
        if let Some(task) = self.task.take() {
            task.await;
        }
    }

    /// Drops the connection at once, without goodbye (as a crash would).
    pub async fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.cancel().await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Say goodbye in the background; the task ends by itself once flushed, or after
            // the close timeout.
            let (tx, _rx) = async_channel::bounded(1);
            let _ = self.commands.try_send((Command::Quit, tx));
            task.detach();
        }
    }
}

/// What woke the client's task.
enum ClientWake {
    /// Bytes read into the driver's buffer.
    Read(io::Result<usize>),
    /// Bytes read straight into the session's buffer ([`Agent::input_buffer`]).
    Received(io::Result<usize>),
    Wrote(io::Result<usize>),
    Command(Option<(Command, Reply)>),
    Job(Option<DiskDone>),
    Timer,
}

/// A connection's disk thread: runs its jobs one after the other, in the order given, and
/// sends each result back. The thread works while the task serves the socket, so reading the
/// file, hashing, writing the socket (and, receiving, writing the file) overlap instead of
/// taking turns; the agent hands out at most [`JOBS_IN_FLIGHT`] jobs not yet reported. One thread rather than the shared pool: results come back in
/// order by construction, and writes to one file never contend for its inode lock (parallel
/// `pwrite`s to one file spun on it for 4 % of a receiver's CPU). Started on the first job,
/// so chat-only connections have none.
struct DiskThread {
    jobs: async_channel::Sender<DiskJob>,
    results: Pin<Box<Receiver<DiskDone>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// However the connection ends (closed, aborted, its task cancelled), its disk work ends
/// with it: the queued jobs are left undone, as a crash would leave them, and the one being
/// run (one positioned read or write of a chunk) is waited for. Without the wait, a write
/// landing after `Client::abort` returned grew the partial file that a resume had just
/// looked at.
impl Drop for DiskThread {
    fn drop(&mut self) {
        self.jobs.close();
        self.results.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl DiskThread {
    fn start() -> io::Result<DiskThread> {
        let (jobs, job_rx) = async_channel::bounded::<DiskJob>(JOBS_IN_FLIGHT);
        let (done_tx, results) = async_channel::bounded(JOBS_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("tidings-disk".into())
            .spawn(move || {
                while let Ok(job) = job_rx.recv_blocking() {
                    // The connection is gone (aborted): leave the queued jobs undone, as a
                    // crash would.
                    if done_tx.is_closed() || done_tx.send_blocking(tidings_disk::run(job)).is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(DiskThread {
            jobs,
            results: Box::pin(results),
            thread: Some(thread),
        })
    }
}

/// Bytes read from the socket at once to begin with (chat needs little) …
const READ_BUF_MIN: usize = 64 << 10;
/// … and at most, once reads fill the buffer (a file arriving): a 256 KiB chunk then takes
/// one or two reads instead of four or five.
const READ_BUF_MAX: usize = 256 << 10;

/// The driver's end of the command channel. However the driver ends (it returned, the task
/// was cancelled, it panicked), dropping this closes the channel and drops the commands still
/// queued in it, with their reply senders, so that every caller waiting for a reply gets
/// [`Error::Closed`] at once. async-channel keeps queued items for as long as any handle
/// lives, and the [`Client`] holds a sender: without this, a `close` whose goodbye was
/// queued just as the connection died waited forever for a reply nobody would send.
struct Commands(Pin<Box<Receiver<(Command, Reply)>>>);

impl Drop for Commands {
    fn drop(&mut self) {
        self.0.close();
        while self.0.try_recv().is_ok() {}
    }
}

/// How the driver ends: the flag [`Client::is_open`] reads, and how long a connection that
/// ended on our side may linger (writing its last bytes, finishing disk work).
struct Ending {
    open: Arc<AtomicBool>,
    close_timeout: Duration,
    /// When the lingering connection is dropped regardless; set when the session ends.
    deadline: Option<Instant>,
}

/// Drives the session: the agent's outputs to the socket, the disk thread and the event
/// channel ([`Agent::poll_output`]); the socket's bytes, commands, job results and timeouts
/// back to the agent.
async fn drive(
    mut agent: Agent,
    mut stream: Connection,
    mut commands: Commands,
    events: Sender<ClientEvent>,
    mut ending: Ending,
) {
    // What to write (pieces leave whole, so a chunk's buffer can go back to the read pool).
    let mut out = Outgoing::default();
    // Tickets of the jobs on the disk thread, oldest first; results arrive in this order.
    let mut jobs: VecDeque<Ticket<TransferId>> = VecDeque::new();
    let mut disk: Option<DiskThread> = None;
    // How much one read takes: grows while reads fill it. Over TLS the plaintext goes
    // straight into the session's buffer and `buf` stays empty.
    let mut read_size = READ_BUF_MIN;
    let mut buf = Vec::new();
    let mut timer = Timer::never();
    // Re-arming a timer costs a trip through the reactor: only do it when the deadline moves.
    let mut armed: Option<Instant> = None;
    let mut commands_open = true;
    loop {
        let wait = loop {
            match agent.poll_output() {
                ClientOutput::Disk(ticket, job) => {
                    if disk.is_none() {
                        match DiskThread::start() {
                            Ok(d) => disk = Some(d),
                            Err(_) => {
                                // No thread to be had: run it here, as a blocking runtime
                                // would.
                                agent.job_done(ticket, tidings_disk::run(job));
                                continue;
                            }
                        }
                    }
                    let Some(d) = &disk else { continue };
                    // Never full (the agent hands out at most JOBS_IN_FLIGHT unreported
                    // jobs); closed only if a job panicked, which is passed on as awaiting
                    // the job would have.
                    d.jobs.try_send(job).expect("the disk thread stopped");
                    jobs.push_back(ticket);
                }
                ClientOutput::Transmit(b) => out.push(b),
                ClientOutput::Event(ev) => {
                    if agent.is_closed() && ending.deadline.is_none() {
                        // Cleared before the events that report the end are delivered (see
                        // is_open).
                        ending.open.store(false, Ordering::Release);
                        ending.deadline = Some(Instant::now() + ending.close_timeout);
                    }
                    let _ = events.try_send(ev);
                }
                ClientOutput::Wait(deadline) => break deadline,
            }
        };
        if agent.server_gone() && !out.is_empty() {
            // Nobody will read it (a server that stopped reading would hold the close for
            // the whole close timeout): only the disk work is waited for.
            out.clear();
        }
        let now = Instant::now();
        if agent.is_closed() && ending.deadline.is_none() {
            ending.open.store(false, Ordering::Release);
            ending.deadline = Some(now + ending.close_timeout);
        }
        // In-flight jobs finish first: a receiver's last writes belong in the partial file;
        // but a peer that stopped reading, or a stuck disk, gets the close timeout, no more.
        if agent.is_finished() && out.is_empty() && jobs.is_empty() {
            stream.shutdown();
            return;
        }
        if ending.deadline.is_some_and(|d| now >= d) {
            // Closed was held back for the unfinished jobs: deliver it now.
            agent.abandon_jobs();
            loop {
                match agent.poll_output() {
                    ClientOutput::Event(ev) => {
                        let _ = events.try_send(ev);
                    }
                    // Nothing is written or run any more.
                    ClientOutput::Transmit(_) => {}
                    ClientOutput::Disk(..) => agent.abandon_jobs(),
                    ClientOutput::Wait(_) => break,
                }
            }
            stream.shutdown();
            return;
        }
        // The session's own deadline, or the end of lingering, whichever is first.
        let deadline = match (wait, ending.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match deadline {
            Some(d) if d <= now => {
                agent.handle_timeout(now);
                continue;
            }
            next if next == armed => {}
            Some(d) => {
                timer.set_at(d);
                armed = Some(d);
            }
            None => {
                timer = Timer::never();
                armed = None;
            }
        }
        let wants_input = agent.wants_input();
        let wake = future::poll_fn(|cx| {
            // Results are taken in the order the jobs were started (see `Agent::next_job`).
            if let (false, Some(d)) = (jobs.is_empty(), disk.as_mut()) {
                if let Poll::Ready(done) = d.results.as_mut().poll_next(cx) {
                    return Poll::Ready(ClientWake::Job(done));
                }
            }
            if !out.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = out.slices(&mut slices);
                if let Poll::Ready(r) = Pin::new(&mut stream).poll_write_vectored(cx, &slices[..n])
                {
                    return Poll::Ready(ClientWake::Wrote(r));
                }
            }
            if wants_input {
                // Over TLS the plaintext is decrypted straight into the session's buffer.
                let direct = match agent.input_buffer(read_size) {
                    Some(into) if stream.is_tls() => {
                        let room = into.capacity() - into.len();
                        stream.poll_read_into(cx, into, room)
                    }
                    _ => None,
                };
                match direct {
                    Some(Poll::Ready(r)) => return Poll::Ready(ClientWake::Received(r)),
                    Some(Poll::Pending) => {}
                    None => {
                        buf.resize(read_size, 0);
                        if let Poll::Ready(r) = Pin::new(&mut stream).poll_read(cx, &mut buf) {
                            return Poll::Ready(ClientWake::Read(r));
                        }
                    }
                }
            }
            if commands_open {
                // Polled as a stream, so its listener survives between polls (no
                // allocation per wait).
                if let Poll::Ready(c) = commands.0.as_mut().poll_next(cx) {
                    return Poll::Ready(ClientWake::Command(c));
                }
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(ClientWake::Timer);
            }
            Poll::Pending
        })
        .await;
        let now = Instant::now();
        match wake {
            ClientWake::Wrote(Ok(n)) if n > 0 => {
                out.advance(n, |b| agent.recycle(b));
            }
            ClientWake::Wrote(_)
            | ClientWake::Read(Err(_) | Ok(0))
            | ClientWake::Received(Err(_) | Ok(0)) => {
                out.clear();
                agent.handle_eof(now);
            }
            ClientWake::Read(Ok(n)) => {
                agent.handle_input(now, &buf[..n]);
                if n >= read_size {
                    read_size = (read_size * 2).min(READ_BUF_MAX);
                }
            }
            ClientWake::Received(Ok(n)) => {
                agent.handle_received(now, n);
                if n >= read_size {
                    read_size = (read_size * 2).min(READ_BUF_MAX);
                }
            }
            ClientWake::Job(done) => {
                // The disk thread only stops early when a job panicked: pass that on, as
                // awaiting the job would have.
                let done = done.expect("the disk thread stopped");
                if let Some(ticket) = jobs.pop_front() {
                    agent.job_done(ticket, done);
                }
            }
            ClientWake::Command(Some((command, reply))) => {
                let _ = reply.try_send(agent.command(command).map_err(Error::from));
            }
            ClientWake::Command(None) => {
                // Every handle is gone: nobody will read events; leave politely.
                commands_open = false;
                agent.quit();
            }
            ClientWake::Timer => {
                armed = None;
                agent.handle_timeout(now);
            }
        }
    }
}
