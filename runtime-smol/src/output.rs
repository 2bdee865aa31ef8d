//! The hub's output on its way to one connection's socket: a [`ConnOutput`] per
//! connection, and the vectored writes both connection loops (native and WebSocket) make.
//!
//! The hub has output for a connection (or its session finished): [`Shared::after`] notifies
//! the connection's [`ConnOutput`], a flag and who waits for it, kept in
//! [`Shared::outputs`]; all on the server's one thread. An `async_channel` per connection did
//! the same for ~770 bytes of memory per connection.
//!
//! For a native connection it also holds the socket, so whichever connection routes a
//! message to one that has nothing pending writes it there and then
//! ([`ConnOutput::write_now`]), rather than waking the recipient to write it (a second
//! switch, and a failing read, per message delivered).
//!
//! [`Shared::after`]: crate::shared::Shared::after
//! [`Shared::outputs`]: crate::shared::Shared::outputs

use std::cell::{Cell, OnceCell, RefCell};
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use tidings_core::hub::ConnId;
use tidings_host::outgoing::{Outgoing, MAX_SLICES};
use tidings_host::server::Host;

use crate::epoll::{remember_waiter, EventLoop, Poller, Socket, Waiter};

/// Most bytes a connection takes from the hub ahead of its socket (one vectored write).
pub(crate) const WRITE_BATCH: usize = 256 << 10;

/// Pieces gathered into one vectored write: enough to fill a socket buffer with small frames.
pub(crate) const WRITE_PIECES: usize = 64;

/// The list every native connection gathers its output in for one vectored write: one per
/// server, as the read buffer is, since a connection gathers and writes before it yields.
pub(crate) type WriteScratch = RefCell<Vec<Bytes>>;

/// One connection's side of the hub's output; see the [module docs](self).
pub(crate) struct ConnOutput {
    /// The hub has news for the connection since it last looked.
    notified: Cell<bool>,
    /// Who to wake when notified.
    waiter: Cell<Waiter>,
    /// Taken from the hub, not yet written because the socket was full, in order (native
    /// connections). Empty and unallocated otherwise: output is gathered in the server's
    /// one [`WriteScratch`] list and written at once. A plain list rather than the host's
    /// [`Outgoing`]: ten thousand idle connections each keep one (24 bytes rather than 48),
    /// and the server recycles no buffers, so a partly written piece may be re-sliced.
    pub(crate) pending: RefCell<Vec<Bytes>>,
    /// The connection's socket, once it is a native connection.
    pub(crate) socket: OnceCell<Rc<Socket>>,
    /// Writing failed: the output is dropped, only the connection deals with it.
    pub(crate) broken: Cell<bool>,
    /// Whether the connection waits for input now (it must be notified when that should
    /// change, e.g. when a client paused for its message rate may be read again).
    pub(crate) reading: Cell<bool>,
    /// The connection saw the end of the input (it reads no more).
    pub(crate) read_done: Cell<bool>,
}

impl ConnOutput {
    /// A connection's output record, nothing pending.
    pub(crate) fn new() -> Rc<ConnOutput> {
        Rc::new(ConnOutput {
            notified: Cell::new(false),
            waiter: Cell::new(Waiter::NOBODY),
            pending: RefCell::new(Vec::new()),
            socket: OnceCell::new(),
            broken: Cell::new(false),
            reading: Cell::new(false),
            read_done: Cell::new(false),
        })
    }

    /// Writes the hub's output for the connection to its socket, as far as the socket takes
    /// it without blocking: up to [`WRITE_PIECES`] pieces or [`WRITE_BATCH`] bytes per
    /// vectored write, gathered in `scratch`. What a full socket (or an error) leaves waits
    /// in [`ConnOutput::pending`] for the connection, so the hub keeps the rest: what stays
    /// in the hub is what its slow-consumer bound and relay window see (the hub's
    /// backpressure point). Does nothing while `pending` holds bytes (they go first). A
    /// broken connection's output is dropped.
    pub(crate) fn flush(&self, scratch: &WriteScratch, host: &mut Host, id: ConnId) {
        if self.broken.get() {
            while host.poll_transmit(id).is_some() {}
            return;
        }
        let Some(socket) = self.socket.get() else {
            return;
        };
        let mut pending = self.pending.borrow_mut();
        if !pending.is_empty() {
            return;
        }
        let mut pieces = scratch.borrow_mut();
        loop {
            let mut held = 0;
            while pieces.len() < WRITE_PIECES && held < WRITE_BATCH {
                let Some(b) = host.poll_transmit(id) else {
                    break;
                };
                held += b.len();
                pieces.push(b);
            }
            if pieces.is_empty() {
                return;
            }
            let (slices, n) = io_slices(&pieces);
            match socket.try_write_vectored(&slices[..n]) {
                Ok(n) if n > 0 => advance(&mut pieces, n),
                // Full, or an error: the connection waits for room, or finds the error, with
                // the rest.
                _ => {}
            }
            if !pieces.is_empty() {
                pending.append(&mut pieces);
                return;
            }
        }
    }

    /// `n` bytes of [`ConnOutput::pending`] were written; once it is empty its allocation
    /// goes (it is used only while a socket is full, and ten thousand idle connections would
    /// otherwise each keep the room of their largest backlog).
    pub(crate) fn wrote(&self, n: usize) {
        let mut pending = self.pending.borrow_mut();
        advance(&mut pending, n);
        if pending.is_empty() {
            *pending = Vec::new();
        }
    }

    /// Whether the connection was notified since it last looked (several notifications
    /// count as one); otherwise `poller` is woken at the next.
    pub(crate) fn poll_notified(&self, poller: Poller<'_>) -> Poll<()> {
        if self.notified.replace(false) {
            return Poll::Ready(());
        }
        remember_waiter(&self.waiter, poller);
        Poll::Pending
    }

    /// Writes the connection's new output to its socket now, without blocking, when it has
    /// nothing pending. True when that left the connection nothing to do (all written, the
    /// session not finished, and its reading as the hub wants it); otherwise notify it.
    pub(crate) fn write_now(&self, scratch: &WriteScratch, host: &mut Host, id: ConnId) -> bool {
        if self.socket.get().is_none() || self.broken.get() || !self.pending.borrow().is_empty() {
            return false;
        }
        self.flush(scratch, host, id);
        if !self.pending.borrow().is_empty() {
            return false;
        }
        !host.is_finished(id)
            && self.reading.get() == (!self.read_done.get() && host.wants_input(id))
    }

    /// Tells the connection the hub has news for it: its next look finds it notified, and
    /// whoever waits is woken on `event_loop`.
    pub(crate) fn notify(&self, event_loop: &EventLoop) {
        self.notified.set(true);
        event_loop.wake(self.waiter.replace(Waiter::NOBODY));
    }
}

/// Writes the front of `out` (up to [`WRITE_PIECES`] pieces) in one vectored write, without
/// allocating: a native connection's pending output.
pub(crate) fn poll_write_pieces(
    io: &Socket,
    poller: Poller<'_>,
    out: &[Bytes],
) -> Poll<io::Result<usize>> {
    let (slices, n) = io_slices(out);
    io.poll_write_vectored(poller, &slices[..n])
}

/// Writes the front of `out` in one vectored write, as much as the socket takes.
pub(crate) fn poll_write_outgoing(
    io: &Socket,
    poller: Poller<'_>,
    out: &Outgoing,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = out.slices(&mut slices);
    io.poll_write_vectored(poller, &slices[..n])
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

/// Drops `n` written bytes from the front of `out`.
fn advance(out: &mut Vec<Bytes>, mut n: usize) {
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
