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
use bytes::Bytes;
use futures_lite::{future, AsyncRead, AsyncWrite, Stream};
use tidings_core::transfer::TransferId;
use tidings_core::ErrorCode;
use tidings_disk::OpenSource;
use tidings_host::client::Agent;
use tidings_host::files::{DiskDone, DiskJob, Source, Ticket};

use crate::{ClientConfig, ClientEvent, Error};

type Call = Box<dyn FnOnce(&mut Agent) -> Result<u64, Error> + Send>;
type Reply = Sender<Result<u64, Error>>;

/// A connected async client. Commands return once the session has queued them; what happens
/// next arrives as [`ClientEvent`]s from [`Client::next_event`].
pub struct Client {
    name: String,
    server: String,
    online: Vec<String>,
    peer_addr: SocketAddr,
    calls: Sender<(Call, Reply)>,
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
        let agent = Agent::new(name, config, Instant::now())?;
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
        let (calls, call_rx) = async_channel::bounded(16);
        let (event_tx, events) = async_channel::unbounded();
        let open = Arc::new(AtomicBool::new(true));
        let task = smol::spawn(drive(
            agent,
            stream,
            Calls(Box::pin(call_rx)),
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
            calls,
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

    /// Who was online when we joined, ourselves included.
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

    async fn call(
        &self,
        f: impl FnOnce(&mut Agent) -> Result<u64, Error> + Send + 'static,
    ) -> Result<u64, Error> {
        let (tx, rx) = async_channel::bounded(1);
        let closed = || Error::Closed {
            code: ErrorCode::PeerLost,
            reason: "the connection is closed".into(),
        };
        self.calls
            .send((Box::new(f), tx))
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
        let (peer, text) = (peer.to_string(), text.to_string());
        self.call(move |a| Ok(a.say(&peer, &text).map(|()| 0)?))
            .await
            .map(drop)
    }

    /// Asks who is online; [`ClientEvent::PeerList`] answers.
    pub async fn request_list(&self) -> Result<(), Error> {
        self.call(|a| Ok(a.request_list().map(|()| 0)?))
            .await
            .map(drop)
    }

    /// Offers the file at `path` to `peer` (empty: the server). Fails before anything is
    /// sent when the file cannot be opened.
    pub async fn send_file(&self, peer: &str, path: impl AsRef<Path>) -> Result<TransferId, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = blocking::unblock({
            let path = path.clone();
            move || Source::open(&path)
        })
        .await;
        let source = opened.map_err(|source| Error::File { path, source })?;
        self.send_source(peer, source).await
    }

    /// Offers an already opened [`Source`] to `peer`: a file under a relative path
    /// ([`Source::open_as`]) or an empty folder ([`Source::folder`]), as found by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub async fn send_source(&self, peer: &str, source: Source) -> Result<TransferId, Error> {
        let peer = peer.to_string();
        self.call(move |a| Ok(a.send_file(&peer, source)?)).await
    }

    /// Accepts a waiting offer (resuming a kept partial file).
    pub async fn accept(&self, id: TransferId) -> Result<(), Error> {
        self.call(move |a| Ok(a.accept(id).map(|()| 0)?))
            .await
            .map(drop)
    }

    /// Declines a waiting offer.
    pub async fn reject(&self, id: TransferId) -> Result<(), Error> {
        self.call(move |a| Ok(a.reject(id).map(|()| 0)?))
            .await
            .map(drop)
    }

    /// Abandons a transfer.
    pub async fn cancel(&self, id: TransferId) -> Result<(), Error> {
        self.call(move |a| Ok(a.cancel(id).map(|()| 0)?))
            .await
            .map(drop)
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
        let _ = self
            .call(|a| {
                a.quit();
                Ok(0)
            })
            .await;
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
            let _ = self.calls.try_send((
                Box::new(|a| {
                    a.quit();
                    Ok(0)
                }),
                tx,
            ));
            task.detach();
        }
    }
}

enum Wake {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Call(Option<(Call, Reply)>),
    Job(Option<DiskDone>),
    Timer,
}

/// Disk jobs handed to a connection's disk thread at once. The thread works while this task
/// serves the socket, so reading the file, hashing, writing the socket (and, receiving,
/// writing the file) overlap instead of taking turns. Four is the default read-ahead (four
/// 256 KiB chunks), so a sender's reads are never held back here; a receiver keeps 1 MiB of
/// writes queued rather than a whole window (8 and 3 measured the same CPU on the 1 GiB
/// relay).
const JOBS_IN_FLIGHT: usize = 4;

/// A connection's disk thread: runs its jobs one after the other, in the order given, and
/// sends each result back. One thread rather than the shared pool: results come back in
/// order by construction, and writes to one file never contend for its inode lock (parallel
/// `pwrite`s to one file spun on it for 4 % of a receiver's CPU). Started on the first job,
/// so chat-only connections have none.
struct DiskThread {
    jobs: async_channel::Sender<DiskJob>,
    results: Pin<Box<Receiver<DiskDone>>>,
}

impl DiskThread {
    fn start() -> io::Result<DiskThread> {
        let (jobs, job_rx) = async_channel::bounded::<DiskJob>(JOBS_IN_FLIGHT);
        let (done_tx, results) = async_channel::bounded(JOBS_IN_FLIGHT);
        std::thread::Builder::new()
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
        })
    }
}

/// Bytes read from the socket at once to begin with (chat needs little) …
const READ_BUF_MIN: usize = 64 << 10;
/// … and at most, once reads fill the buffer (a file arriving): a 256 KiB chunk then takes
/// one or two reads instead of four or five.
const READ_BUF_MAX: usize = 256 << 10;

/// Most pieces gathered into one vectored write.
const MAX_SLICES: usize = 64;

/// The driver's end of the command channel. However the driver ends (it returned, the task
/// was cancelled, it panicked), dropping this closes the channel and drops the commands still
/// queued in it, with their reply senders, so that every caller waiting for a reply gets
/// [`Error::Closed`] at once. async-channel keeps queued items for as long as any handle
/// lives, and the [`Client`] holds a sender: without this, a `close` whose goodbye was
/// queued just as the connection died waited forever for a reply nobody would send.
struct Calls(Pin<Box<Receiver<(Call, Reply)>>>);

impl Drop for Calls {
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

async fn drive(
    mut agent: Agent,
    mut stream: TcpStream,
    mut calls: Calls,
    events: Sender<ClientEvent>,
    mut ending: Ending,
) {
    // What to write, and how much of the front piece is written already (pieces are not
    // re-sliced, so a chunk's buffer is whole again when it goes back to the read pool).
    let mut out: VecDeque<Bytes> = VecDeque::new();
    let mut head = 0;
    // Tickets of the jobs on the disk thread, oldest first; results arrive in this order.
    let mut jobs: VecDeque<Ticket<TransferId>> = VecDeque::new();
    let mut disk: Option<DiskThread> = None;
    let mut buf = vec![0u8; READ_BUF_MIN];
    let mut timer = Timer::never();
    // Re-arming a timer costs a trip through the reactor: only do it when the deadline moves.
    let mut armed: Option<Instant> = None;
    let mut calls_open = true;
    loop {
        agent.process();
        while jobs.len() < JOBS_IN_FLIGHT {
            let Some((ticket, job)) = agent.next_job() else {
                break;
            };
            if disk.is_none() {
                match DiskThread::start() {
                    Ok(d) => disk = Some(d),
                    Err(_) => {
                        // No thread to be had: run it here, as a blocking runtime would.
                        agent.job_done(ticket, tidings_disk::run(job));
                        agent.process();
                        continue;
                    }
                }
            }
            let Some(d) = &disk else { break };
            // Never full (at most JOBS_IN_FLIGHT jobs are queued, running or answered); closed
            // only if a job panicked, which is passed on as awaiting the job would have.
            d.jobs.try_send(job).expect("the disk thread stopped");
            jobs.push_back(ticket);
        }
        while let Some(b) = agent.poll_transmit() {
            out.push_back(b);
        }
        if agent.server_gone() && !out.is_empty() {
            // Nobody will read it (a server that stopped reading would hold the close for
            // the whole close timeout): only the disk work is waited for.
            out.clear();
            head = 0;
        }
        let now = Instant::now();
        if agent.is_closed() && ending.deadline.is_none() {
            // Cleared before the events that report the end are delivered (see is_open).
            ending.open.store(false, Ordering::Release);
            ending.deadline = Some(now + ending.close_timeout);
        }
        while let Some(ev) = agent.poll_event() {
            let _ = events.try_send(ev);
        }
        // In-flight jobs finish first: a receiver's last writes belong in the partial file;
        // but a peer that stopped reading, or a stuck disk, gets the close timeout, no more.
        if agent.is_finished() && out.is_empty() && jobs.is_empty() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        if ending.deadline.is_some_and(|d| now >= d) {
            // Closed was held back for the unfinished jobs: deliver it now.
            agent.abandon_jobs();
            while let Some(ev) = agent.poll_event() {
                let _ = events.try_send(ev);
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        // The session's own deadline, or the end of lingering, whichever is first.
        let deadline = match (agent.poll_timeout(), ending.deadline) {
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
                    return Poll::Ready(Wake::Job(done));
                }
            }
            if !out.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (i, b) in out.iter().take(MAX_SLICES).enumerate() {
                    slices[i] = IoSlice::new(if i == 0 { &b[head..] } else { b });
                    n += 1;
                }
                if let Poll::Ready(r) = Pin::new(&mut stream).poll_write_vectored(cx, &slices[..n])
                {
                    return Poll::Ready(Wake::Wrote(r));
                }
            }
            if wants_input {
                if let Poll::Ready(r) = Pin::new(&mut stream).poll_read(cx, &mut buf) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if calls_open {
                // Polled as a stream, so its listener survives between polls (no
                // allocation per wait).
                if let Poll::Ready(c) = calls.0.as_mut().poll_next(cx) {
                    return Poll::Ready(Wake::Call(c));
                }
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            Poll::Pending
        })
        .await;
        let now = Instant::now();
        match wake {
            Wake::Wrote(Ok(n)) if n > 0 => {
                head = written(&mut out, head, n, |b| agent.recycle(b));
            }
            Wake::Wrote(_) | Wake::Read(Err(_)) | Wake::Read(Ok(0)) => {
                out.clear();
                head = 0;
                agent.handle_eof(now);
            }
            Wake::Read(Ok(n)) => {
                agent.handle_input(now, &buf[..n]);
                if n == buf.len() && buf.len() < READ_BUF_MAX {
                    buf.resize(buf.len() * 2, 0);
                }
            }
            Wake::Job(done) => {
                // The disk thread only stops early when a job panicked: pass that on, as
                // awaiting the job would have.
                let done = done.expect("the disk thread stopped");
                if let Some(ticket) = jobs.pop_front() {
                    agent.job_done(ticket, done);
                }
            }
            Wake::Call(Some((f, reply))) => {
                let _ = reply.try_send(f(&mut agent));
            }
            Wake::Call(None) => {
                // Every handle is gone: nobody will read events; leave politely.
                calls_open = false;
                agent.quit();
            }
            Wake::Timer => {
                armed = None;
                agent.handle_timeout(now);
            }
        }
    }
}

/// Accounts for `n` more written bytes of `out`, whose front piece had `head` bytes written:
/// whole pieces go to `done`, and the new front's written length is returned.
fn written(
    out: &mut VecDeque<Bytes>,
    mut head: usize,
    mut n: usize,
    mut done: impl FnMut(Bytes),
) -> usize {
    while let Some(front) = out.front() {
        let left = front.len() - head;
        if n < left {
            return head + n;
        }
        n -= left;
        head = 0;
        if let Some(b) = out.pop_front() {
            done(b);
        }
    }
    0
}

/// Drops `n` written bytes from the front of `out`.
pub(crate) fn advance(out: &mut Vec<Bytes>, mut n: usize) {
    let mut whole = 0;
    for b in out.iter_mut() {
        if n >= b.len() {
            n -= b.len();
            whole += 1;
        } else {
            *b = b.slice(n..);
            break;
        }
    }
    out.drain(..whole);
}
