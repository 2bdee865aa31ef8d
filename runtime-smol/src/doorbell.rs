//! A connection's doorbell: how the hub's output reaches a connection's socket.
//!
//! The hub has output for a connection (or its session finished): whoever routed it rings
//! the connection's doorbell, a flag and the connection's waker, kept in [`State::writers`]; all
//! on the server's one thread. An `async_channel` per connection did the same for ~770
//! bytes of memory per connection.
//!
//! For a native connection the doorbell also holds its socket, so whichever connection
//! routes a message to one that has nothing pending writes it there and then
//! ([`WakeTx::write_now`]), rather than waking the recipient to write it (a second switch,
//! and a failing read, per message delivered).
//!
//! [`State::writers`]: crate::server::State::writers

use std::cell::{Cell, OnceCell, RefCell};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_lite::Stream;
use tidings_core::hub::ConnId;
use tidings_host::server::Host;

use crate::client::advance;
use crate::reactor::{remember, Socket};

/// Most bytes a connection takes from the hub ahead of its socket (one vectored write).
pub(crate) const WRITE_BATCH: usize = 256 << 10;

/// Pieces gathered into one vectored write: enough to fill a socket buffer with small frames.
pub(crate) const WRITE_PIECES: usize = 64;

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct Doorbell {
    rung: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// Taken from the hub, not yet written because the socket was full, in order (native
    /// connections). Empty and unallocated otherwise: output is gathered in the server's
    /// one [`Gather`] list and written at once.
    pub(crate) out: RefCell<Vec<Bytes>>,
    /// The connection's socket, once it is a native connection.
    pub(crate) socket: OnceCell<Rc<Socket>>,
    /// Writing failed: the output is dropped, only the connection deals with it.
    pub(crate) broken: Cell<bool>,
    /// Whether the connection waits for input now (it must be rung when that should change, e.g.
    /// when a client paused for its message rate may be read again).
    pub(crate) reading: Cell<bool>,
    /// The connection saw the end of the input (it reads no more).
    pub(crate) read_done: Cell<bool>,
}

/// The list every native connection gathers its output in for one vectored write: one per
/// server, as the read buffer is, since a connection gathers and writes before it yields.
pub(crate) type Gather = RefCell<Vec<Bytes>>;

impl Doorbell {
    /// Writes the hub's output for the connection to its socket, as far as the socket takes
    /// it without blocking: up to [`WRITE_PIECES`] pieces or [`WRITE_BATCH`] bytes per
    /// vectored write, gathered in `gather`. What a full socket (or an error) leaves waits
    /// in [`Doorbell::out`] for the connection, so the hub keeps the rest: what stays in the hub
    /// is what its slow-consumer bound and relay window see (the hub's backpressure point).
    /// Does nothing while `out` holds bytes (they go first). A broken connection's output is
    /// dropped.
    pub(crate) fn flush(&self, gather: &Gather, host: &mut Host, id: ConnId) {
        if self.broken.get() {
            while host.hub().poll_transmit(id).is_some() {}
            return;
        }
        let Some(socket) = self.socket.get() else {
            return;
        };
        let mut out = self.out.borrow_mut();
        if !out.is_empty() {
            return;
        }
        let mut pieces = gather.borrow_mut();
        loop {
            let mut held = 0;
            while pieces.len() < WRITE_PIECES && held < WRITE_BATCH {
                let Some(b) = host.hub().poll_transmit(id) else {
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
                out.append(&mut pieces);
                return;
            }
        }
    }

    /// `n` bytes of [`Doorbell::out`] were written; once it is empty its allocation goes
    /// (it is used only while a socket is full, and ten thousand idle connections would
    /// otherwise each keep the room of their largest backlog).
    pub(crate) fn wrote(&self, n: usize) {
        let mut out = self.out.borrow_mut();
        advance(&mut out, n);
        if out.is_empty() {
            *out = Vec::new();
        }
    }

    /// Whether the connection was rung since it last looked (several rings count as one);
    /// otherwise the connection is woken at the next ring.
    pub(crate) fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.rung.replace(false) {
            return Poll::Ready(());
        }
        remember(&self.waker, cx);
        Poll::Pending
    }
}

/// Rings a connection's [doorbell](wake_pair); kept in [`State::writers`].
///
/// [`State::writers`]: crate::server::State::writers
pub(crate) struct WakeTx(Rc<Doorbell>);

/// What a WebSocket connection task polls (as a [`Stream`]) to learn that it was rung.
pub(crate) struct WakeRx(Rc<Doorbell>);

/// A new doorbell for one connection.
pub(crate) fn wake_pair() -> (WakeTx, WakeRx) {
    let bell = Rc::new(Doorbell::default());
    (WakeTx(bell.clone()), WakeRx(bell))
}

impl WakeTx {
    /// Writes the connection's new output to its socket now, without blocking, when it has
    /// nothing pending. True when that left the connection nothing to do (all written, the
    /// session not finished, and its reading as the hub wants it); otherwise ring it.
    pub(crate) fn write_now(&self, gather: &Gather, host: &mut Host, id: ConnId) -> bool {
        let bell = &self.0;
        if bell.socket.get().is_none() || bell.broken.get() || !bell.out.borrow().is_empty() {
            return false;
        }
        bell.flush(gather, host, id);
        if !bell.out.borrow().is_empty() {
            return false;
        }
        let hub = host.hub_ref();
        !hub.is_finished(id) && bell.reading.get() == (!bell.read_done.get() && hub.wants_input(id))
    }

    /// Rings: the connection's next look at its doorbell finds it rung.
    pub(crate) fn wake(&self) {
        self.0.rung.set(true);
        if let Some(w) = self.0.waker.take() {
            w.wake();
        }
    }
}

impl WakeRx {
    /// The doorbell itself (a native connection keeps it, not this stream).
    pub(crate) fn into_bell(self) -> Rc<Doorbell> {
        self.0
    }
}

impl Stream for WakeRx {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_rung(cx).map(Some)
    }
}

/// Writes the front of `out` (up to [`WRITE_PIECES`] pieces) in one vectored write, without
/// allocating: both connection loops, native and WebSocket, write this way.
pub(crate) fn poll_write_pieces(
    io: &Socket,
    cx: &mut Context<'_>,
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
