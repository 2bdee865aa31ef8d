//! The server thread's own event loop, not async-io's: its executor, its native
//! connections, its listening and connection sockets and its timers, all on one `epoll`
//! (through mio, edge-triggered; on Windows mio's equivalent). Nothing of the server thread
//! waits on async-io's reactor, which other threads drive.
//!
//! This is the part of the server written for speed rather than as an example: an
//! integrator who wants to see how to drive the core from smol/async-io reads the
//! [client](crate::Client), which is a plain async-io adapter.
//!
//! # Why not async-io's reactor (measured)
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
//! The timers are the loop's own too ([`LoopTimer`]): `epoll_wait` sleeps until the earliest
//! is due. On async-io, moving the hub's timer earlier woke async-io's thread to re-arm its
//! `timerfd`, and that thread woke this one: about 600 wake-ups a second of another thread on
//! the server's core at 10 000 private messages a second, each one a chance to preempt it.
//! The listening socket, the first reads of a new connection and the WebSocket connections'
//! timers were on async-io until they moved here too: one loop per server thread, and a
//! wake-up from another thread only for what really comes from one (commands, disk results).
//!
//! # Who is woken
//!
//! A socket or a connection's output is waited for by a [`Waiter`]: an executor task (its
//! waker) or a native connection, which is not a task but a record the loop polls itself
//! (its place in the server's table of native connections, see `native.rs`). Waking a
//! native connection queues its place on the loop ([`EventLoop::next_woken`]). A task woken
//! from another thread arrives through the executor and [`LoopWaker`].

mod socket;
mod timer;

pub(crate) use socket::Socket;
pub(crate) use timer::LoopTimer;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use mio::{Events, Token};
use slab::Slab;
use smol::LocalExecutor;

/// Turns (each polls at most one woken native connection and runs at most one task) between
/// two non-blocking looks at the sockets while anything stays runnable (as
/// tokio's current-thread runtime does), so readiness is collected without waiting for the
/// whole queue to drain.
const TASKS_PER_LOOK: usize = 61;

/// The token of the [`LoopWaker`]'s notifier.
const WAKE: Token = Token(usize::MAX);
/// The token of the [`Listener`](socket::Listener).
const LISTENER: Token = Token(usize::MAX - 1);

const READ: u8 = 1;
const WRITE: u8 = 2;
/// The peer ended its side: kept for good, so that an end of stream reported together with
/// the last data is read even after a short read forgot `READ` (no new edge would come).
const READ_CLOSED: u8 = 4;

/// Who waits for a [`Socket`] or a connection's output (see the [module docs](self)).
///
/// Two variants only, so that it is as small as a waker (16 bytes; a third made it 24, in
/// every socket and every connection's output, which the idle row measured): nobody is
/// [`Waiter::NOBODY`], a place no connection has.
pub(crate) enum Waiter {
    /// An executor task.
    Task(Waker),
    /// The native connection at this place in the server's table.
    Conn(usize),
}

impl Waiter {
    /// Nobody waits.
    pub(crate) const NOBODY: Waiter = Waiter::Conn(usize::MAX);
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

/// The `epoll` instance, the sockets registered with it, the timers, and the native
/// connections woken.
pub(crate) struct EventLoop {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    sockets: RefCell<Slab<std::rc::Weak<Socket>>>,
    waker: Arc<LoopWaker>,
    /// Whether the [`Listener`](socket::Listener) may have connections waiting (until an accept says
    /// `WouldBlock`), and the task waiting for one.
    listener_ready: Cell<bool>,
    listener_waker: Cell<Option<Waker>>,
    timers: RefCell<timer::Timers>,
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
            listener_ready: Cell::new(false),
            listener_waker: Cell::new(None),
            timers: RefCell::new(timer::Timers::default()),
            woken: RefCell::new(WokenConns::default()),
        }))
    }

    /// Wakes `waiter`: its task, or its native connection's turn on this loop.
    pub(crate) fn wake(&self, waiter: Waiter) {
        match waiter {
            Waiter::Task(w) => w.wake(),
            Waiter::Conn(usize::MAX) => {} // nobody
            Waiter::Conn(place) => self.woken.borrow_mut().push(place),
        }
    }

    /// The place of the native connection woken first, if any, taken off the queue.
    pub(crate) fn next_woken(&self) -> Option<usize> {
        self.woken.borrow_mut().pop()
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
        self.fire_timers();
        let sockets = self.sockets.borrow();
        for event in events.iter() {
            if event.token() == LISTENER {
                self.listener_ready.set(true);
                if let Some(w) = self.listener_waker.take() {
                    w.wake();
                }
                continue;
            }
            let Some(socket) = sockets
                .get(event.token().0)
                .and_then(std::rc::Weak::upgrade)
            else {
                continue; // the loop's own waker, or a socket closed since
            };
            self.wake(socket.became_ready(event));
        }
        Ok(())
    }

    /// Runs `main` and the tasks spawned on `ex` on this thread until `main` completes,
    /// with `natives`: it polls one woken native connection ([`EventLoop::next_woken`]),
    /// false when none was woken (they are not tasks, see the [module docs](self)).
    ///
    /// Tasks and connections run while any are runnable, taking turns, with a non-blocking
    /// look at the sockets every [`TASKS_PER_LOOK`] turns; with none left the thread sleeps in
    /// `epoll_wait` until a socket is ready, a task is woken from another thread or a timer
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
                self.react(self.until_next_timer())?;
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
    let waiter = match (slot.replace(Waiter::NOBODY), poller) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every socket and every connection's output keeps one waiter: ten thousand idle
    /// connections pay for each byte of it twice (the idle row of the bench).
    #[test]
    fn a_waiter_is_as_small_as_a_waker() {
        assert_eq!(
            std::mem::size_of::<Waiter>(),
            std::mem::size_of::<Option<Waker>>()
        );
    }
}
