//! A native connection, from the door's hand-off until its session ends: reads go to the
//! hub, the hub's output to the socket (through the connection's
//! [doorbell](crate::doorbell)).
//!
//! # Not a task
//!
//! Ten thousand idle connections are ten thousand of these, so a connection is a small
//! record in one table ([`Natives`]) that the server's event loop polls itself, rather than
//! a task of the executor: a task cost each connection a heap block of 136 bytes (the
//! executor's header around the connection's state) and a slot in the executor's own table.
//! The waker a connection leaves with its socket and doorbell is its place in the table, not
//! a pointer to anything: waking it queues that number for the loop ([`Natives::run_one`]),
//! with no reference count to keep. Such a waker only works on the server's thread, which
//! is where all of them stay (the socket and doorbell that keep them are not `Send`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use bytes::BytesMut;
use slab::Slab;
use tidings_core::hub::ConnId;

use crate::door::release;
use crate::doorbell::{poll_write_pieces, Doorbell};
use crate::reactor::Socket;
use crate::server::State;

/// A read at least this large marks a busy connection: its next read goes straight into the
/// hub's receive buffer instead of the shared one.
const DIRECT_MIN: usize = 16 << 10;
/// The room a direct read is offered at least (more when the buffer has it).
const DIRECT_READ: usize = 64 << 10;

/// One native connection; see the [module docs](self).
pub(crate) struct NativeConn {
    bell: Rc<Doorbell>,
    io: Rc<Socket>,
    id: ConnId,
    /// Its place under the per-address limit, released when the connection ends.
    ip: IpAddr,
    /// Whether the last read was large: then the next one goes straight into the hub's
    /// receive buffer (see [`poll_recv_direct`]).
    direct: bool,
    /// The hub's output was taken since the last wake-up: the next poll only waits.
    waiting: bool,
}

enum Wake {
    /// Read into the shared buffer.
    Read(io::Result<usize>),
    /// Read straight into the hub's receive buffer.
    Received(io::Result<usize>),
    Wrote(io::Result<usize>),
    Woken,
}

impl NativeConn {
    /// Connection `id` of the hub, on `io`, rung through `bell`, admitted for `ip`.
    pub(crate) fn new(io: Rc<Socket>, id: ConnId, bell: Rc<Doorbell>, ip: IpAddr) -> NativeConn {
        // Other connections may now write this connection's output straight to its socket.
        let _ = bell.socket.set(io.clone());
        NativeConn {
            bell,
            io,
            id,
            ip,
            direct: false,
            waiting: false,
        }
    }

    /// Writes what the hub has for the connection and updates the hub's other outputs.
    /// False when the session is over and everything is written: the connection ends.
    fn take_output(&mut self, state: &State) -> bool {
        let (bell, id) = (&self.bell, self.id);
        bell.flush(&state.gather, &mut state.host.borrow_mut(), id);
        state.after();
        if bell.out.borrow().is_empty() && state.host.borrow().hub_ref().is_finished(id) {
            return false;
        }
        let reading = !bell.read_done.get() && state.host.borrow().hub_ref().wants_input(id);
        bell.reading.set(reading);
        true
    }

    /// The next thing that happened to the connection. A read is made only while the
    /// socket may hold data (see `Socket`): the connection is woken for every message the
    /// hub has for it, and a read at each wake-up would be a system call that nearly always
    /// fails.
    fn poll_wake(&mut self, state: &State, cx: &mut Context<'_>) -> Poll<Wake> {
        let (bell, io) = (&self.bell, &self.io);
        {
            let out = bell.out.borrow();
            if !out.is_empty() {
                if let Poll::Ready(r) = poll_write_pieces(io, cx, &out) {
                    return Poll::Ready(Wake::Wrote(r));
                }
            }
        }
        let reading = bell.reading.get();
        #[cfg(unix)]
        if reading && self.direct {
            let mut host = state.host.borrow_mut();
            if let Some(buf) = host.hub().input_buffer(self.id, DIRECT_READ) {
                if let Poll::Ready(r) = poll_recv_direct(io, cx, buf) {
                    return Poll::Ready(Wake::Received(r));
                }
            }
        }
        if reading && !self.direct {
            let mut buf = state.read_buf.borrow_mut();
            if let Poll::Ready(r) = io.poll_read(cx, &mut buf[..]) {
                return Poll::Ready(Wake::Read(r));
            }
        }
        bell.poll_rung(cx).map(|()| Wake::Woken)
    }

    fn handle(&mut self, state: &State, ev: Wake) {
        let (bell, id) = (&self.bell, self.id);
        let now = Instant::now();
        match ev {
            Wake::Read(Ok(n)) if n > 0 => {
                // (Only where `recv` into the hub's buffer exists.)
                self.direct = cfg!(unix) && n >= DIRECT_MIN;
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
                    self.direct = false;
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
            Wake::Wrote(Ok(n)) if n > 0 => bell.wrote(n),
            Wake::Wrote(_) => {
                // The peer is gone: drop what was queued for it and end its session.
                bell.broken.set(true);
                *bell.out.borrow_mut() = Vec::new();
                state.host.borrow_mut().hub().handle_eof(now, id);
            }
            Wake::Woken => {}
        }
    }

    /// Serves the connection until it waits for something (`Pending`, with `cx`'s waker
    /// left where that will come from) or its session is over and written (`Ready`).
    fn poll(&mut self, state: &State, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.waiting {
                if !self.take_output(state) {
                    return Poll::Ready(());
                }
                self.waiting = true;
            }
            let ev = std::task::ready!(self.poll_wake(state, cx));
            self.waiting = false;
            self.handle(state, ev);
        }
    }

    /// The connection is over: its socket closes, the hub forgets it, and its place under
    /// the per-address limit is free.
    fn end(self, state: &State) {
        state.close(self.id, &self.io);
        release(state, self.ip);
    }
}

/// The native connections of one server, polled by its event loop; see the
/// [module docs](self).
#[derive(Default)]
pub(crate) struct Natives {
    conns: RefCell<Slab<NativeConn>>,
}

thread_local! {
    /// The native connections woken since the loop last looked.
    static WOKEN: RefCell<Woken> = const { RefCell::new(Woken::new()) };
}

/// Places of woken connections, in the order they were woken, each at most once (a place
/// may be queued after its connection ended: a poll too many is harmless).
struct Woken {
    queue: VecDeque<usize>,
    /// A bit per place: queued now. A connection woken again while queued keeps its turn:
    /// polled earlier, it would write what the next wake-ups add in more, smaller writes.
    queued: Vec<u64>,
}

impl Woken {
    const fn new() -> Woken {
        Woken {
            queue: VecDeque::new(),
            queued: Vec::new(),
        }
    }

    fn push(&mut self, key: usize) {
        let (word, bit) = (key / 64, 1u64 << (key % 64));
        if word >= self.queued.len() {
            self.queued.resize(word + 1, 0);
        }
        if self.queued[word] & bit == 0 {
            self.queued[word] |= bit;
            self.queue.push_back(key);
        }
    }

    fn pop(&mut self) -> Option<usize> {
        let key = self.queue.pop_front()?;
        self.queued[key / 64] &= !(1u64 << (key % 64));
        Some(key)
    }
}

impl Natives {
    /// Starts serving `conn` (its first poll comes with the loop's next turn). Called from
    /// tasks (the door's), never from a connection's poll, which holds the table.
    pub(crate) fn add(&self, conn: NativeConn) {
        let key = self.conns.borrow_mut().insert(conn);
        place_waker(key).wake();
    }

    /// Forgets the wake-ups a previous server on this thread left.
    pub(crate) fn reset_thread() {
        let _ = WOKEN.try_with(|w| *w.borrow_mut() = Woken::new());
    }

    /// Polls the connection woken first, if any (false: none was woken).
    pub(crate) fn run_one(&self, state: &State) -> bool {
        let Some(key) = WOKEN.try_with(|w| w.borrow_mut().pop()).ok().flatten() else {
            return false;
        };
        let waker = place_waker(key);
        let mut cx = Context::from_waker(&waker);
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key) else {
            return true;
        };
        if conn.poll(state, &mut cx).is_ready() {
            let conn = conns.remove(key);
            drop(conns);
            conn.end(state);
        }
        true
    }
}

/// The waker of the connection at `key` in [`Natives`]: a number, queued in [`WOKEN`] when
/// woken.
fn place_waker(key: usize) -> Waker {
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, forget);
    fn clone(data: *const ()) -> RawWaker {
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        // (Once the thread is being torn down there is nobody left to run it.)
        let _ = WOKEN.try_with(|w| w.borrow_mut().push(data as usize));
    }
    fn forget(_: *const ()) {}
    // SAFETY: the data is a number, never dereferenced, so every function above is sound for
    // any data and any thread, and cloning or dropping owns nothing. (On another thread a
    // wake-up would be queued where no loop looks; no waker leaves the server's thread.)
    unsafe { Waker::from_raw(RawWaker::new(key as *const (), &VTABLE)) }
}

/// Reads `io` into the spare capacity of `buf` (the hub's receive buffer), so a received byte
/// is copied once, by the kernel, and relayed chunk payloads go on as slices of this buffer.
/// A read into the shared buffer plus `Hub::handle_input` copied each byte once more (a
/// fifth of the server's CPU time in a relay).
#[cfg(unix)]
fn poll_recv_direct(
    io: &Socket,
    cx: &mut Context<'_>,
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
