//! The task that serves one native connection, from the door's hand-off until its session
//! ends: reads go to the hub, the hub's output to the socket (through the connection's
//! [doorbell](crate::doorbell)).
//!
//! It is a future written by hand rather than an `async fn`: ten thousand idle connections
//! are ten thousand of these tasks, and rustc laid the `async fn` out at 208 bytes (its
//! arguments held twice, and the closure it awaited); this one is 72.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tidings_core::hub::ConnId;

use crate::door::Admitted;
use crate::doorbell::{poll_write_pieces, Doorbell};
use crate::reactor::Socket;
use crate::server::State;

/// A read at least this large marks a busy connection: its next read goes straight into the
/// hub's receive buffer instead of the shared one.
const DIRECT_MIN: usize = 16 << 10;
/// The room a direct read is offered at least (more when the buffer has it).
const DIRECT_READ: usize = 64 << 10;

/// One native connection's task; see the [module docs](self).
pub(crate) struct NativeConn {
    state: Rc<State>,
    bell: Rc<Doorbell>,
    io: Rc<Socket>,
    id: ConnId,
    /// Releases the connection's place under the per-address limit when the task ends.
    _admitted: Admitted,
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
    /// The task for connection `id` of the hub, on `io`, rung through `bell`.
    pub(crate) fn new(
        state: Rc<State>,
        io: Rc<Socket>,
        id: ConnId,
        bell: Rc<Doorbell>,
        admitted: Admitted,
    ) -> NativeConn {
        // Other tasks may now write this connection's output straight to its socket.
        let _ = bell.socket.set(io.clone());
        NativeConn {
            state,
            bell,
            io,
            id,
            _admitted: admitted,
            direct: false,
            waiting: false,
        }
    }

    /// Writes what the hub has for the connection and updates the hub's other outputs.
    /// False when the session is over and everything is written: the task ends.
    fn take_output(&mut self) -> bool {
        let (state, bell, id) = (&self.state, &self.bell, self.id);
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
    /// socket may hold data (see `Socket`): this task is woken for every message the hub
    /// has for it, and a read at each wake-up would be a system call that nearly always
    /// fails.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let (state, bell, io) = (&self.state, &self.bell, &self.io);
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

    fn handle(&mut self, ev: Wake) {
        let (state, bell, id) = (&self.state, &self.bell, self.id);
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
}

impl Future for NativeConn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if !this.waiting {
                if !this.take_output() {
                    this.state.close(this.id, &this.io);
                    return Poll::Ready(());
                }
                this.waiting = true;
            }
            let ev = std::task::ready!(this.poll_wake(cx));
            this.waiting = false;
            this.handle(ev);
        }
    }
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
