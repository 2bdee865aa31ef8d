//! Sockets registered with the [`EventLoop`]: connection sockets ([`Socket`]) and the one
//! listening socket ([`Listener`]).

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use tidings_host::tls::Tls;

use super::{
    remember, remember_waiter, EventLoop, LoopTimer, Poller, Waiter, LISTENER, READ, READ_CLOSED,
    WRITE,
};

impl EventLoop {
    /// Registers `stream` (non-blocking, as mio's are) for reads and writes,
    /// edge-triggered.
    pub(crate) fn register(self: &Rc<Self>, mut stream: TcpStream) -> io::Result<Rc<Socket>> {
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
            waiter: Cell::new(Waiter::NOBODY),
            tls: RefCell::new(None),
            event_loop: Rc::downgrade(self),
        });
        entry.insert(Rc::downgrade(&socket));
        Ok(socket)
    }

    /// Takes `source` off the loop (it is being closed).
    fn deregister(&self, source: &mut impl mio::event::Source) {
        let _ = self.poll.borrow().registry().deregister(source);
    }

    /// Registers the listening socket `listener` (made non-blocking), edge-triggered. A loop
    /// has at most one.
    pub(crate) fn listen(self: &Rc<Self>, listener: std::net::TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        self.poll
            .borrow()
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        // Connections may have queued before the registration.
        self.listener_ready.set(true);
        Ok(Listener {
            listener,
            event_loop: Rc::downgrade(self),
        })
    }
}

/// The server's listening socket, registered with its [`EventLoop`].
pub(crate) struct Listener {
    listener: TcpListener,
    event_loop: Weak<EventLoop>,
}

impl Listener {
    /// The next connection waiting to be accepted (its socket non-blocking, not registered
    /// yet), or `Pending` until the kernel reports one.
    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let Some(event_loop) = self.event_loop.upgrade() else {
            return Poll::Ready(Err(io::Error::other("the event loop is gone")));
        };
        loop {
            if !event_loop.listener_ready.get() {
                remember(&event_loop.listener_waker, cx);
                return Poll::Pending;
            }
            match self.listener.accept() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    event_loop.listener_ready.set(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(event_loop) = self.event_loop.upgrade() {
            event_loop.deregister(&mut self.listener);
            event_loop.listener_ready.set(false);
            drop(event_loop.listener_waker.take());
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
    /// The connection's TLS, once [`Socket::start_tls`] made the socket speak it: reads and
    /// writes then carry plaintext, and the records go through the socket underneath.
    /// Boxed: a plaintext connection pays one pointer.
    tls: RefCell<Option<Box<Tls>>>,
    event_loop: Weak<EventLoop>,
}

impl Socket {
    /// The kernel reported `event` for the socket: who to wake for it.
    pub(super) fn became_ready(&self, event: &mio::event::Event) -> Waiter {
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
        self.ready.set(self.ready.get() | ready);
        if ready & self.awaited.get() == 0 {
            return Waiter::NOBODY;
        }
        self.awaited.set(0);
        self.waiter.replace(Waiter::NOBODY)
    }

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

    /// Makes the socket speak TLS from now on, `tls` having taken the records read so far.
    /// What it owes the peer already (the server's first flight) goes out with the next
    /// read or write.
    pub(crate) fn start_tls(&self, tls: Tls) {
        *self.tls.borrow_mut() = Some(Box::new(tls));
    }

    /// Whether the socket speaks TLS (reads and writes then carry plaintext).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.borrow().is_some()
    }

    /// Waits for `dirs` (READ, WRITE or both).
    fn wait_for(&self, dirs: u8, poller: Poller<'_>) {
        remember_waiter(&self.waiter, poller);
        self.awaited.set(self.awaited.get() | dirs);
    }

    /// Runs `op` on the socket's TLS until it does not say `WouldBlock`; then waits for what
    /// the TLS needs: records still owed need room to write, and a read (or plaintext held
    /// back by the handshake, which reading moves on) needs records to arrive.
    fn poll_tls<R>(
        &self,
        poller: Poller<'_>,
        tls: &mut Tls,
        reading: bool,
        mut op: impl FnMut(&mut Tls, &mut Records<'_>) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(tls, &mut Records(self)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let dirs = match (reading, tls.wants_write()) {
                        (true, true) => READ | WRITE,
                        (true, false) => READ,
                        (false, true) => WRITE,
                        (false, false) => READ,
                    };
                    self.wait_for(dirs, poller);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Reads plaintext through the socket's TLS onto the end of `buf`, at most `max` bytes
    /// ([`Tls::read_into`]); a socket without TLS reads nothing this way. (Used by the
    /// direct reads, which exist where `recv` does.)
    #[cfg(unix)]
    pub(crate) fn poll_read_into(
        &self,
        poller: Poller<'_>,
        buf: &mut bytes::BytesMut,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        match self.tls.borrow_mut().as_mut() {
            Some(tls) => self.poll_tls(poller, tls, true, |t, r| t.read_into(r, buf, max)),
            None => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
        }
    }

    /// Reads into `buf`.
    pub(crate) fn poll_read(&self, poller: Poller<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if let Some(tls) = self.tls.borrow_mut().as_mut() {
            return self.poll_tls(poller, tls, true, |t, r| t.read(r, buf));
        }
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
        if let Some(tls) = self.tls.borrow_mut().as_mut() {
            return self.poll_tls(poller, tls, false, |t, r| t.write_vectored(r, slices));
        }
        self.poll_io(WRITE, poller, |mut s| s.write_vectored(slices))
    }

    /// Writes what it can of `slices` now, without a task to wake (`WouldBlock` if nothing).
    pub(crate) fn try_write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if let Some(tls) = self.tls.borrow_mut().as_mut() {
            return tls.write_vectored(&mut Records(self), slices);
        }
        let written = (&self.stream).write_vectored(slices);
        if matches!(&written, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.forget(WRITE);
        }
        written
    }

    /// A timer on the socket's event loop, due at `at`.
    pub(crate) fn timer_at(&self, at: Instant) -> LoopTimer {
        LoopTimer::on(self.event_loop.clone(), Some(at))
    }

    /// Ends both directions (the peer reads the end of the stream).
    pub(crate) fn shutdown(&self) {
        self.close_tls();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Ends the writing direction only: the peer reads the end of the stream and may still
    /// send.
    pub(crate) fn shutdown_write(&self) {
        self.close_tls();
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Says TLS goodbye (`close_notify`) if the socket has room for it now: a closing
    /// connection does not wait for a peer that stopped reading.
    fn close_tls(&self) {
        if let Some(tls) = self.tls.borrow_mut().as_mut() {
            tls.close();
            let _ = tls.flush(&mut Records(self));
        }
    }
}

/// The socket underneath a connection's TLS: the records' reads and writes, which keep the
/// socket's readiness as its plaintext ones do (a read or write the socket is not ready
/// for says `WouldBlock` without a system call).
struct Records<'a>(&'a Socket);

impl Read for Records<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let socket = self.0;
        let wanted = READ | READ_CLOSED;
        if socket.ready.get() & wanted == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let got = (&socket.stream).read(buf);
        match &got {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.forget(wanted),
            Ok(n) if cfg!(unix) && *n > 0 && *n < buf.len() => socket.forget(READ),
            _ => {}
        }
        got
    }
}

impl Write for Records<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let socket = self.0;
        if socket.ready.get() & WRITE == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let written = (&socket.stream).write_vectored(slices);
        if matches!(&written, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            socket.forget(WRITE);
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(event_loop) = self.event_loop.upgrade() {
            event_loop.deregister(&mut self.stream);
            event_loop.sockets.borrow_mut().try_remove(self.token);
        }
    }
}
