//! A native connection, from its arrival's hand-off until its session ends: reads go to the
//! hub, the hub's output to the socket (through the connection's
//! [`ConnOutput`]).
//!
//! # Not a task
//!
//! Ten thousand idle connections are ten thousand of these, so a connection is a small
//! record in one table ([`NativeConns`]) that the server's event loop polls itself, rather
//! than a task of the executor: a task cost each connection a heap block of 136 bytes (the
//! executor's header around the connection's state) and a slot in the executor's own table.
//! What a connection leaves with its socket and output record to be woken by is its place in
//! the table ([`Poller::Conn`]), not a waker: waking it queues that number on the event loop
//! ([`NativeConns::run_one`] takes it from there).

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use slab::Slab;
use tidings_core::hub::ConnId;

use crate::epoll::{Poller, Socket, Waiter};
use crate::output::{poll_write_pieces, ConnOutput};
use crate::shared::Shared;

/// A read at least this large marks a busy connection: its next read goes straight into the
/// hub's receive buffer instead of the shared one.
const DIRECT_MIN: usize = 16 << 10;
/// The room a direct read is offered at least (more when the buffer has it).
#[cfg(unix)]
const DIRECT_READ: usize = 64 << 10;

/// One native connection; see the [module docs](self).
pub(crate) struct NativeConn {
    output: Rc<ConnOutput>,
    io: Rc<Socket>,
    id: ConnId,
    /// Its place under the per-address limit, released when the connection ends.
    ip: IpAddr,
    /// Whether the last read was large: then the next one goes straight into the hub's
    /// receive buffer (see [`poll_recv_direct`]).
    direct: bool,
    /// The hub's output was taken since the last wake-up: the next poll only waits.
    waiting: bool,
    /// The session is over with output still unwritten: [`Shared::linger`] was called.
    lingering: bool,
}

/// What happened to a native connection.
enum NativeWake {
    /// Read into the shared buffer.
    Read(io::Result<usize>),
    /// Read straight into the hub's receive buffer (only where `recv` into it exists).
    #[cfg_attr(not(unix), allow(dead_code))]
    Received(io::Result<usize>),
    Wrote(io::Result<usize>),
    /// The hub has news for it ([`ConnOutput::notify`]).
    Notified,
}

impl NativeConn {
    /// Connection `id` of the hub, on `io`, with its `output`, admitted for `ip`.
    pub(crate) fn new(
        io: Rc<Socket>,
        id: ConnId,
        output: Rc<ConnOutput>,
        ip: IpAddr,
    ) -> NativeConn {
        // Other connections may now write this connection's output straight to its socket.
        let _ = output.socket.set(io.clone());
        NativeConn {
            output,
            io,
            id,
            ip,
            direct: false,
            waiting: false,
            lingering: false,
        }
    }

    /// Writes what the hub has for the connection and updates the hub's other outputs.
    /// False when the session is over and everything is written: the connection ends.
    fn take_output(&mut self, shared: &Shared) -> bool {
        let (output, id) = (&self.output, self.id);
        output.flush(&shared.scratch.write, &mut shared.host.borrow_mut(), id);
        shared.after();
        let host = shared.host.borrow();
        if host.is_finished(id) {
            if output.pending.borrow().is_empty() {
                return false;
            }
            if !self.lingering {
                self.lingering = true;
                shared.linger(&self.io);
            }
        }
        let reading = !output.read_done.get() && host.wants_input(id);
        output.reading.set(reading);
        true
    }

    /// The next thing that happened to the connection. A read is made only while the
    /// socket may hold data (see `Socket`): the connection is woken for every message the
    /// hub has for it, and a read at each wake-up would be a system call that nearly always
    /// fails.
    fn poll_wake(&mut self, shared: &Shared, me: Poller<'_>) -> Poll<NativeWake> {
        let (output, io) = (&self.output, &self.io);
        {
            let pending = output.pending.borrow();
            if !pending.is_empty() {
                if let Poll::Ready(r) = poll_write_pieces(io, me, &pending) {
                    return Poll::Ready(NativeWake::Wrote(r));
                }
            }
        }
        let reading = output.reading.get();
        #[cfg(unix)]
        if reading && self.direct {
            let mut host = shared.host.borrow_mut();
            if let Some(buf) = host.input_buffer(self.id, DIRECT_READ) {
                if let Poll::Ready(r) = poll_recv_direct(io, me, buf) {
                    return Poll::Ready(NativeWake::Received(r));
                }
            }
        }
        if reading && !self.direct {
            let mut buf = shared.scratch.read.borrow_mut();
            if let Poll::Ready(r) = io.poll_read(me, &mut buf[..]) {
                return Poll::Ready(NativeWake::Read(r));
            }
        }
        output.poll_notified(me).map(|()| NativeWake::Notified)
    }

    fn handle(&mut self, shared: &Shared, ev: NativeWake) {
        let (output, id) = (&self.output, self.id);
        let now = Instant::now();
        match ev {
            NativeWake::Read(Ok(n)) if n > 0 => {
                // (Only where `recv` into the hub's buffer exists.)
                self.direct = cfg!(unix) && n >= DIRECT_MIN;
                shared
                    .host
                    .borrow_mut()
                    .handle_input(now, id, &shared.scratch.read.borrow()[..n])
            }
            NativeWake::Received(Ok(n)) if n > 0 => {
                let mut host = shared.host.borrow_mut();
                let hub = &mut *host;
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
            NativeWake::Read(_) | NativeWake::Received(_) => {
                output.read_done.set(true);
                shared.host.borrow_mut().handle_eof(now, id);
            }
            NativeWake::Wrote(Ok(n)) if n > 0 => output.wrote(n),
            NativeWake::Wrote(_) => {
                // The peer is gone: drop what was queued for it and end its session.
                output.broken.set(true);
                *output.pending.borrow_mut() = Vec::new();
                shared.host.borrow_mut().handle_eof(now, id);
            }
            NativeWake::Notified => {}
        }
    }

    /// Serves the connection until it waits for something (`Pending`: `me` is woken when
    /// that comes) or its session is over and written (`Ready`).
    fn poll(&mut self, shared: &Shared, me: Poller<'_>) -> Poll<()> {
        loop {
            if !self.waiting {
                if !self.take_output(shared) {
                    return Poll::Ready(());
                }
                self.waiting = true;
            }
            let ev = std::task::ready!(self.poll_wake(shared, me));
            self.waiting = false;
            self.handle(shared, ev);
        }
    }

    /// The connection is over: its socket closes, the hub forgets it, and its place under
    /// the per-address limit is free.
    fn end(self, shared: &Shared) {
        shared.close(self.id, &self.io);
        shared.release(self.ip);
    }
}

/// The native connections of one server, polled by its event loop; see the
/// [module docs](self).
#[derive(Default)]
pub(crate) struct NativeConns {
    conns: RefCell<Slab<NativeConn>>,
}

impl NativeConns {
    /// Starts serving `conn` (its first poll comes with the loop's next turn). Called from
    /// tasks (an arrival's), never from a connection's poll, which holds the table.
    pub(crate) fn add(&self, shared: &Shared, conn: NativeConn) {
        let place = self.conns.borrow_mut().insert(conn);
        shared.event_loop.wake(Waiter::Conn(place));
    }

    /// Polls the connection woken first, if any (false: none was woken).
    pub(crate) fn run_one(&self, shared: &Shared) -> bool {
        let Some(place) = shared.event_loop.next_woken() else {
            return false;
        };
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(place) else {
            return true;
        };
        if conn.poll(shared, Poller::Conn(place)).is_ready() {
            let conn = conns.remove(place);
            drop(conns);
            conn.end(shared);
        }
        true
    }
}

/// Reads `io` into the spare capacity of `buf` (the hub's receive buffer), so a received byte
/// is copied once, by the kernel, and relayed chunk payloads go on as slices of this buffer.
/// A read into the shared buffer plus `Hub::handle_input` copied each byte once more (a
/// fifth of the server's CPU time in a relay).
///
/// Over TLS the records are decrypted straight into that buffer instead (one copy, out of
/// the records' buffer), rather than into the shared one and copied again.
#[cfg(unix)]
fn poll_recv_direct(io: &Socket, me: Poller<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    use bytes::BufMut as _;
    if io.is_tls() {
        let room = buf.capacity() - buf.len();
        return io.poll_read_into(me, buf, room);
    }
    let spare = buf.chunk_mut();
    let (at, len) = (spare.as_mut_ptr(), spare.len());
    let got = std::task::ready!(io.poll_read_with(me, len, |fd| {
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
