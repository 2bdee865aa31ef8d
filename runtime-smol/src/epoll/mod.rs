//! The server thread's own event loop, not async-io's: its executor, its native
//! connections and the readiness of its connection sockets, on one `epoll` (through mio,
//! edge-triggered; on Windows mio's equivalent).
//!
//! This is the part of the server written for speed rather than as an example: an
//! integrator who wants to see how to drive the core from smol/async-io reads the
//! [client](crate::Client), which is a plain async-io adapter.
//!
//! # Why not async-io's reactor for the connections (measured)
//!
//! async-io registers every socket one-shot, so each wait for readability re-arms it with an
//! `epoll_ctl`, and each look at the sockets also sets a `timerfd`, re-arms it and re-arms
//! its notifier: at 10 000 private messages a second that was 4.4 system calls per message
//! relayed where two (one read, one write) do the work. Its own helper thread also takes the
//! reactor from a busy thread, so the server had to look at the sockets every 40 µs to keep
//! it. Here a socket is registered once, edge-triggered: the kernel reports each change of
//! readiness, a [`Socket`] remembers it until a read or write says `WouldBlock`, and a look
//! at the sockets is one `epoll_wait` (bench/RESULTS.md, session 4).
//!
//! The hub's timer is the loop's own too ([`EventLoop::poll_alarm`]): `epoll_wait` sleeps
//! until it is due. On async-io, moving it earlier woke async-io's thread to re-arm its
//! `timerfd`, and that thread woke this one: about 600 wake-ups a second of another thread on
//! the server's core at 10 000 private messages a second, each one a chance to preempt it.
//!
//! # Who is woken
//!
//! A socket or a connection's output is waited for by a [`Waiter`]: an executor task (its
//! waker) or a native connection, which is not a task but a record the loop polls itself
//! (its place in the server's table of native connections, see `native.rs`). Waking a
//! native connection queues its place on the loop ([`EventLoop::next_woken`]).
//!
//! Everything else (the listening socket, the door's first reads, the WebSocket tasks'
//! timers) stays on async-io, whose reactor another thread drives: what it wakes here
//! arrives through the executor and [`LoopWaker`], like any wake-up from another thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::Shutdown;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Token};
use slab::Slab;
use smol::LocalExecutor;

/// Turns (each polls at most one woken native connection and runs at most one task) between
/// two non-blocking looks at the sockets while anything stays runnable (as
/// tokio's current-thread runtime does), so readiness is collected without waiting for the
/// whole queue to drain.
const TASKS_PER_LOOK: usize = 61;

/// The token of the [`LoopWaker`]'s `eventfd`.
const WAKE: Token = Token(usize::MAX);

const READ: u8 = 1;
const WRITE: u8 = 2;
/// The peer ended its side: kept for good, so that an end of stream reported together with
/// the last data is read even after a short read forgot `READ` (no new edge would come).
const READ_CLOSED: u8 = 4;

/// Who waits for a [`Socket`] or a connection's output (see the [module docs](self)).
pub(crate) enum Waiter {
    Nobody,
    /// An executor task.
    Task(Waker),
    /// The native connection at this place in the server's table.
    Conn(usize),
}

/// On whose behalf a poll is made: the task of this waker, or the native connection at this
/// place. What is not ready yet wakes it later.
#[derive(Clone, Copy)]
pub(crate) enum Poller<'a> {
    Task(&'a Waker),
    Conn(usize),
}

impl<'a> From<&'a Context<'_>> for Poller<'a> {
    fn from(cx: &'a Context<'_>) -> Poller<'a> {
        Poller::Task(cx.waker())
    }
}

/// The `epoll` instance, the sockets registered with it, and the native connections woken.
pub(crate) struct EventLoop {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    sockets: RefCell<Slab<Weak<Socket>>>,
    waker: Arc<LoopWaker>,
    /// When the alarm is due, while its task waits ([`EventLoop::poll_alarm`]).
    alarm: Cell<Option<Instant>>,
    alarm_waker: Cell<Option<Waker>>,
    /// Native connections woken since the loop last looked.
    woken: RefCell<WokenConns>,
}

impl EventLoop {
    pub(crate) fn new() -> io::Result<Rc<EventLoop>> {
        let poll = mio::Poll::new()?;
        let notifier = mio::Waker::new(poll.registry(), WAKE)?;
        Ok(Rc::new(EventLoop {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            sockets: RefCell::new(Slab::new()),
            waker: Arc::new(LoopWaker {
                parked: AtomicBool::new(false),
                notifier,
            }),
            alarm: Cell::new(None),
            alarm_waker: Cell::new(None),
            woken: RefCell::new(WokenConns::default()),
        }))
    }

    /// Wakes `waiter`: its task, or its native connection's turn on this loop.
    pub(crate) fn wake(&self, waiter: Waiter) {
        match waiter {
            Waiter::Nobody => {}
            Waiter::Task(w) => w.wake(),
            Waiter::Conn(place) => self.woken.borrow_mut().push(place),
        }
    }

    /// The place of the native connection woken first, if any, taken off the queue.
    pub(crate) fn next_woken(&self) -> Option<usize> {
        self.woken.borrow_mut().pop()
    }

    /// Ready once `at` has come (never, for `None`); until then the loop wakes the task at
    /// `at`. The loop has one alarm: each poll sets it, for the one task that uses it (the
    /// hub's timers). It fires no earlier than `at`, and within a millisecond after it when
    /// the loop sleeps (`epoll_wait`'s resolution).
    pub(crate) fn poll_alarm(&self, cx: &mut Context<'_>, at: Option<Instant>) -> Poll<()> {
        if at.is_some_and(|at| at <= Instant::now()) {
            self.alarm.set(None);
            return Poll::Ready(());
        }
        self.alarm.set(at);
        remember(&self.alarm_waker, cx);
        Poll::Pending
    }

    /// How long the loop may sleep before the alarm is due (`None`: no alarm).
    fn until_alarm(&self) -> Option<Duration> {
        self.alarm
            .get()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Wakes the alarm's task if the alarm is due.
    fn ring_alarm(&self) {
        if self.alarm.get().is_some_and(|at| at <= Instant::now()) {
            self.alarm.set(None);
            if let Some(w) = self.alarm_waker.take() {
                w.wake();
            }
        }
    }

    /// Registers `stream` (made non-blocking) for reads and writes, edge-triggered.
    pub(crate) fn register(self: &Rc<Self>, stream: std::net::TcpStream) -> io::Result<Rc<Socket>> {
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        let mut sockets = self.sockets.borrow_mut();
        let entry = sockets.vacant_entry();
        let token = entry.key();
        self.poll.borrow().registry().register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let socket = Rc::new(Socket {
            stream,
            token,
            // Until the first read or write says otherwise (registration also reports the
            // present state, so nothing is missed either way).
            ready: Cell::new(READ | WRITE),
            awaited: Cell::new(0),
            waiter: Cell::new(Waiter::Nobody),
            event_loop: Rc::downgrade(self),
        });
        entry.insert(Rc::downgrade(&socket));
        Ok(socket)
    }

    /// Waits for readiness (at most `timeout`; `None`: until there is some or the loop is
    /// woken) and wakes the tasks and connections waiting for it.
    fn react(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut events = self.events.borrow_mut();
        let waited = self.poll.borrow_mut().poll(&mut events, timeout);
        // From here on a wake-up needs no `eventfd` write: the loop is about to run tasks.
        self.waker.parked.store(false, Ordering::SeqCst);
        match waited {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ring_alarm();
        let sockets = self.sockets.borrow();
        for event in events.iter() {
            let Some(socket) = sockets.get(event.token().0).and_then(Weak::upgrade) else {
                continue; // the loop's own waker, or a socket closed since
            };
            let mut ready = 0;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                ready |= READ;
            }
            if event.is_read_closed() {
                ready |= READ_CLOSED;
            }
            if event.is_writable() || event.is_write_closed() || event.is_error() {
                ready |= WRITE;
            }
            socket.ready.set(socket.ready.get() | ready);
            if ready & socket.awaited.get() != 0 {
                socket.awaited.set(0);
                self.wake(socket.waiter.replace(Waiter::Nobody));
            }
        }
        Ok(())
    }

    /// Runs `main` and the tasks spawned on `ex` on this thread until `main` completes,
    /// with `natives`: it polls one woken native connection ([`EventLoop::next_woken`]),
    /// false when none was woken (they are not tasks, see the [module docs](self)).
    ///
    /// Tasks and connections run while any are runnable, taking turns, with a non-blocking
    /// look at the sockets every [`TASKS_PER_LOOK`] turns; with none left the thread sleeps in
    /// `epoll_wait` until a socket is ready, a task is woken from another thread or the alarm
    /// is due.
    pub(crate) fn block_on<T: 'static>(
        &self,
        ex: &LocalExecutor<'static>,
        main: impl Future<Output = T> + 'static,
        mut natives: impl FnMut() -> bool,
    ) -> io::Result<T> {
        let main = ex.spawn(main);
        let waker = Waker::from(self.waker.clone());
        let mut cx = Context::from_waker(&waker);
        // Tasks run since the last look at the sockets.
        let mut ran = 0;
        loop {
            while ran < TASKS_PER_LOOK && (natives() | ex.try_tick()) {
                ran += 1;
            }
            if main.is_finished() {
                return Ok(futures_lite::future::block_on(main));
            }
            if ran >= TASKS_PER_LOOK {
                self.react(Some(Duration::ZERO))?;
                ran = 0;
                continue;
            }
            // Nothing runnable: ask the executor to wake us (the `tick` future stays
            // registered while the thread sleeps in `epoll_wait`), then sleep. A task woken
            // from another thread after `parked` is set writes the loop's notifier.
            self.waker.parked.store(true, Ordering::SeqCst);
            let mut tick = pin!(ex.tick());
            if tick.as_mut().poll(&mut cx).is_pending() {
                self.react(self.until_alarm())?;
                ran = 0;
            } else {
                // It ran a task that became runnable meanwhile.
                self.waker.parked.store(false, Ordering::SeqCst);
                ran += 1;
            }
        }
    }
}

/// Wakes the loop from another thread: the executor calls it when a task is scheduled while
/// the loop is about to sleep or sleeping.
struct LoopWaker {
    parked: AtomicBool,
    /// mio's cross-thread notifier (an `eventfd` on Linux).
    notifier: mio::Waker,
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.parked.load(Ordering::SeqCst) {
            let _ = self.notifier.wake();
        }
    }
}

/// A connection socket registered with the [`EventLoop`]: non-blocking I/O that says
/// `Pending` (and wakes its user later) where the socket would block.
pub(crate) struct Socket {
    stream: TcpStream,
    token: usize,
    /// READ and WRITE as last reported by the kernel and not yet refuted by a `WouldBlock`
    /// (or a short read), and READ_CLOSED once reported.
    ready: Cell<u8>,
    /// What `waiter` waits for: READ, WRITE or both. One waiter serves both directions,
    /// since one task (or native connection) uses a socket.
    awaited: Cell<u8>,
    waiter: Cell<Waiter>,
    event_loop: Weak<EventLoop>,
}

impl Socket {
    /// Runs `op` while the socket is ready for `dir`; on `WouldBlock` the readiness is
    /// forgotten and the socket's user waits for the kernel to report it again.
    fn poll_io<R>(
        &self,
        dir: u8,
        poller: Poller<'_>,
        mut op: impl FnMut(&TcpStream) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        // A read-closed socket stays readable: reads return what is left, then the end.
        let wanted = if dir == READ { READ | READ_CLOSED } else { dir };
        loop {
            if self.ready.get() & wanted == 0 {
                remember_waiter(&self.waiter, poller);
                self.awaited.set(self.awaited.get() | dir);
                return Poll::Pending;
            }
            match op(&self.stream) {
                // (Not at the end of the stream either, whatever was reported.)
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.forget(wanted),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    fn forget(&self, dir: u8) {
        self.ready.set(self.ready.get() & !dir);
    }

    /// Reads into `buf`.
    pub(crate) fn poll_read(&self, poller: Poller<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        let got = self.poll_io(READ, poller, |mut s| s.read(buf));
        self.after_read(got, len)
    }

    /// Reads with `op` (given the raw descriptor), as [`Socket::poll_read`] does.
    #[cfg(unix)]
    pub(crate) fn poll_read_with(
        &self,
        poller: Poller<'_>,
        len: usize,
        mut op: impl FnMut(std::os::fd::RawFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        use std::os::fd::AsRawFd as _;
        let got = self.poll_io(READ, poller, |s| op(s.as_raw_fd()));
        self.after_read(got, len)
    }

    /// A read that did not fill its `len` bytes took everything the socket had, so the
    /// readiness is forgotten at once rather than after one more read that fails (an end of
    /// stream that came with the data is kept in READ_CLOSED). Only where epoll reports
    /// each new arrival: mio on Windows reports again only after a `WouldBlock`.
    fn after_read(&self, got: Poll<io::Result<usize>>, len: usize) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &got {
            if cfg!(unix) && *n > 0 && *n < len {
                self.forget(READ);
            }
        }
        got
    }

    /// Writes what it can of `slices`.
    pub(crate) fn poll_write_vectored(
        &self,
        poller: Poller<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(WRITE, poller, |mut s| s.write_vectored(slices))
    }

    /// Writes what it can of `slices` now, without a task to wake (`WouldBlock` if nothing).
    pub(crate) fn try_write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = (&self.stream).write_vectored(slices);
        if matches!(&written, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.forget(WRITE);
        }
        written
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(event_loop) = self.event_loop.upgrade() {
            let _ = event_loop
                .poll
                .borrow()
                .registry()
                .deregister(&mut self.stream);
            event_loop.sockets.borrow_mut().try_remove(self.token);
        }
    }
}

/// Keeps `cx`'s waker in `slot` (without cloning it again if it is the one already there).
fn remember(slot: &Cell<Option<Waker>>, cx: &Context<'_>) {
    let waker = match slot.take() {
        Some(w) if w.will_wake(cx.waker()) => w,
        _ => cx.waker().clone(),
    };
    slot.set(Some(waker));
}

/// Keeps `poller` in `slot` as the one to wake (a task's waker is not cloned again if it is
/// the one already there).
pub(crate) fn remember_waiter(slot: &Cell<Waiter>, poller: Poller<'_>) {
    let waiter = match (slot.replace(Waiter::Nobody), poller) {
        (Waiter::Task(w), Poller::Task(p)) if w.will_wake(p) => Waiter::Task(w),
        (_, Poller::Task(p)) => Waiter::Task(p.clone()),
        (_, Poller::Conn(place)) => Waiter::Conn(place),
    };
    slot.set(waiter);
}

/// Places of woken native connections, in the order they were woken, each at most once (a
/// place may be queued after its connection ended: a poll too many is harmless).
#[derive(Default)]
struct WokenConns {
    queue: VecDeque<usize>,
    /// A bit per place: queued now. A connection woken again while queued keeps its turn:
    /// polled earlier, it would write what the next wake-ups add in more, smaller writes.
    queued: Vec<u64>,
}

impl WokenConns {
    fn push(&mut self, place: usize) {
        let (word, bit) = (place / 64, 1u64 << (place % 64));
        if word >= self.queued.len() {
            self.queued.resize(word + 1, 0);
        }
        if self.queued[word] & bit == 0 {
            self.queued[word] |= bit;
            self.queue.push_back(place);
        }
    }

    fn pop(&mut self) -> Option<usize> {
        let place = self.queue.pop_front()?;
        self.queued[place / 64] &= !(1u64 << (place % 64));
        Some(place)
    }
}
