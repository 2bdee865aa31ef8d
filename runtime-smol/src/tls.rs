//! The client's connection, plaintext or TLS: [`Connection`], an `AsyncRead + AsyncWrite`
//! over the TCP stream, with TLS done by [`tidings_host::tls::Tls`] (the same glue as the
//! server's).
//!
//! The glue reads and writes a `Read + Write`; [`Polled`] is that view of an async stream in
//! one poll: `Pending` becomes `WouldBlock` (the stream has registered the task's waker), and
//! a `WouldBlock` from the glue becomes `Pending` again.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_net::TcpStream;
use futures_lite::{future, AsyncRead, AsyncWrite};
use tidings_host::tls::Tls;

/// A client's connection to its server.
pub(crate) enum Connection {
    /// `tcp://`.
    Plain(TcpStream),
    /// `tls://`: records on the stream, plaintext above.
    Tls(Box<(TcpStream, Tls)>),
}

impl Connection {
    /// Completes the TLS handshake (nothing to do in plaintext): the server's certificate
    /// checked, ALPN agreed. Errors say what is wrong with the certificate.
    pub(crate) async fn handshake(&mut self) -> io::Result<()> {
        let Connection::Tls(tls) = self else {
            return Ok(());
        };
        future::poll_fn(|cx| {
            let (io, tls) = &mut **tls;
            pending_on_block(tls.handshake(&mut Polled { io, cx }))
        })
        .await
    }

    /// Ends the connection both ways, saying TLS goodbye first if the socket takes it now.
    pub(crate) fn shutdown(&mut self) {
        let io = match self {
            Connection::Plain(io) => io,
            Connection::Tls(tls) => {
                let (io, tls) = &mut **tls;
                tls.close();
                // Now or never: nobody waits for the socket to take it.
                let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
                let mut cx = Context::from_waker(&waker);
                let _ = tls.flush(&mut Polled { io, cx: &mut cx });
                io
            }
        };
        let _ = io.shutdown(std::net::Shutdown::Both);
    }
}

/// A waker for a write nobody waits for.
struct NoWake;

impl std::task::Wake for NoWake {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// `WouldBlock` as `Pending`.
fn pending_on_block<T>(result: io::Result<T>) -> Poll<io::Result<T>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl Connection {
    /// Over TLS, reads records and decrypts their plaintext straight onto the end of `buf`
    /// (at most `max` bytes): a receiver's session buffer, with no buffer in between. `None`
    /// in plaintext, where reading needs a buffer of initialised bytes of the driver's own.
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
        max: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        let Connection::Tls(tls) = self else {
            return None;
        };
        let (io, tls) = &mut **tls;
        Some(pending_on_block(tls.read_into(
            &mut Polled { io, cx },
            buf,
            max,
        )))
    }

    /// Whether this is a `tls://` connection.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Connection::Tls(_))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Connection::Tls(tls) => {
                let (io, tls) = &mut **tls;
                pending_on_block(tls.read(&mut Polled { io, cx }, buf))
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_write_vectored(cx, slices),
            Connection::Tls(tls) => {
                let (io, tls) = &mut **tls;
                pending_on_block(tls.write_vectored(&mut Polled { io, cx }, slices))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_flush(cx),
            Connection::Tls(tls) => {
                let (io, tls) = &mut **tls;
                pending_on_block(tls.flush(&mut Polled { io, cx }))
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(io) => Pin::new(io).poll_close(cx),
            Connection::Tls(tls) => {
                let (io, tls) = &mut **tls;
                tls.close();
                std::task::ready!(pending_on_block(tls.flush(&mut Polled { io, cx })))?;
                Pin::new(io).poll_close(cx)
            }
        }
    }
}

/// An async stream as `Read + Write` for the span of one poll (see the module docs).
struct Polled<'a, 'b> {
    io: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for Polled<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Polled<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, slices) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
