//! A connection's byte stream, plaintext or TLS, as the blocking threads use it: a
//! [`Stream`] reads and writes plaintext either way, so the native, WebSocket and HTTP code
//! (and the client) is written once.
//!
//! Plaintext is the socket itself: a `Stream::Plain` read or write is the socket's, with no
//! lock and no copy.
//!
//! TLS is the rustls glue of [`tidings_host::tls`], driven through its step API: each
//! connection has a reader thread and a writer thread (on clones of the socket, as in
//! plaintext), and they share one [`Tls`] behind a mutex. Socket I/O never happens under
//! that lock: a reader blocked in `read` while holding it would stall the writer for as
//! long as the peer stays silent. So the reader reads records from the socket, then locks
//! to hand them over ([`Tls::received`]) and take the plaintext ([`Tls::plaintext`]); the
//! writer locks to queue plaintext ([`Tls::queue_plaintext`]) and take the records it
//! became ([`Tls::records`]), then writes them unlocked.
//!
//! Records must reach the socket in the order rustls made them, whichever thread made them
//! (the writer's data, the reader's handshake messages, alerts and key-update answers). A
//! second lock, the write lock, orders them: whoever holds it takes records (locking the
//! TLS briefly; the lock order is always write lock, then TLS) and writes them, until none
//! are left. The reader never waits for the write lock: a writer holding it may be blocked
//! on a peer that does not read, and the reader must go on reading meanwhile (a peer
//! blocked writing to us may be waiting for exactly that). If the lock is held, the reader
//! leaves its records to the holder, which looks for more after letting go.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use tidings_host::tls::Tls;

/// Most record bytes read from the socket at once: as much as a plaintext read takes, so a
/// transfer over TLS makes as few system calls as one without.
const RECORDS_READ: usize = 64 << 10;

/// One end of a connection: plaintext, or TLS over the socket. Each thread of a connection
/// has its own [`Stream`] ([`Stream::try_clone`]): one reads, the others write.
pub(crate) enum Stream {
    /// The socket, plaintext.
    Plain(TcpStream),
    /// TLS over the socket.
    Tls(TlsStream),
}

impl Stream {
    /// Whether the connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// TLS over `socket` from now on, `tls` having taken the records read so far (a server's
    /// sniffed first bytes) or the whole handshake (a client's). What it owes the peer goes
    /// out with the next read or write.
    pub(crate) fn tls(socket: TcpStream, tls: Tls) -> Stream {
        Stream::Tls(TlsStream {
            socket,
            shared: Arc::new(TlsShared {
                tls: Mutex::new(tls),
                out: Mutex::new(Vec::new()),
            }),
            records: Vec::new(),
            start: 0,
            end: 0,
            deadline: None,
        })
    }

    /// Another handle on the same connection, for another thread. With TLS both share the
    /// connection's TLS; records read but not yet decrypted stay with this handle, so the
    /// thread that has been reading keeps this one and goes on reading.
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Plain(socket) => Stream::Plain(socket.try_clone()?),
            Stream::Tls(tls) => Stream::Tls(TlsStream {
                socket: tls.socket.try_clone()?,
                shared: tls.shared.clone(),
                records: Vec::new(),
                start: 0,
                end: 0,
                deadline: None,
            }),
        })
    }

    /// Reads wait until `deadline` at most (then fail with `TimedOut` or `WouldBlock`);
    /// `None`: for as long as it takes. With TLS one read may need several reads of the
    /// socket (the handshake's records, then data), each within what is left.
    pub(crate) fn set_read_deadline(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let left = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Some(left)
            }
            None => None,
        };
        match self {
            Stream::Plain(socket) => socket.set_read_timeout(left),
            Stream::Tls(tls) => {
                tls.deadline = deadline;
                // With a deadline, each read of the socket sets what is left of it.
                match deadline {
                    Some(_) => Ok(()),
                    None => tls.socket.set_read_timeout(None),
                }
            }
        }
    }

    /// How long a write may make no progress before it fails (`None`: forever). With TLS
    /// this bounds the writes of records too, whichever thread makes them.
    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_write_timeout(timeout)
    }

    /// Ends the connection in the direction `how` (as [`TcpStream::shutdown`]). With TLS
    /// the goodbye (`close_notify`) goes first if the socket takes it at once: a connection
    /// that ends does not wait for a peer that stopped reading (nor for a writer blocked on
    /// one, which then fails).
    pub(crate) fn shutdown(&self, how: Shutdown) {
        if let Stream::Tls(tls) = self {
            tls.close();
        }
        let _ = self.socket().shutdown(how);
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &tls.socket,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write_vectored(&[IoSlice::new(buf)]),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write_vectored(bufs),
            Stream::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            // What a write took is on the socket when it returns.
            Stream::Tls(_) => Ok(()),
        }
    }
}

/// One thread's handle on a TLS connection (see the [module docs](self)).
pub(crate) struct TlsStream {
    socket: TcpStream,
    shared: Arc<TlsShared>,
    /// Records read from the socket (allocated on the first read: writers never read);
    /// `start..end` is what the TLS has not taken yet.
    records: Vec<u8>,
    start: usize,
    end: usize,
    /// See [`Stream::set_read_deadline`].
    deadline: Option<Instant>,
}

/// What the threads of one TLS connection share.
struct TlsShared {
    /// The connection's TLS: locked only to compute, never across socket I/O.
    tls: Mutex<Tls>,
    /// The write lock: its holder alone writes records to the socket, through this buffer
    /// (kept between writes, so a busy connection does not allocate per write).
    out: Mutex<Vec<u8>>,
}

/// Locks `m`, also after a thread panicked holding it: the TLS then fails the connection
/// on its own terms, and the other thread still ends cleanly.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TlsShared {
    /// Writes every waiting record to `socket`, holding the write lock (`out`): takes them
    /// under the TLS lock, writes them outside it, until none are left. An error leaves the
    /// connection broken (a record may be half written).
    fn send_locked(&self, socket: &TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            {
                let mut tls = lock(&self.tls);
                while tls.records(out)? > 0 {}
            }
            if out.is_empty() {
                return Ok(());
            }
            let mut socket = socket;
            let written = socket.write_all(out);
            out.clear();
            written?;
        }
    }

    /// Writes the waiting records unless another thread holds the write lock, which then
    /// writes them: every holder calls this after letting go, so records made while it
    /// held the lock are not left behind.
    fn send_owed(&self, socket: &TcpStream) -> io::Result<()> {
        while lock(&self.tls).wants_write() {
            let mut out = match self.out.try_lock() {
                Ok(out) => out,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(()),
            };
            self.send_locked(socket, &mut out)?;
        }
        Ok(())
    }
}

impl TlsStream {
    /// Plaintext into `buf`: decrypts what was read, reads more records when that is none.
    /// `Ok(0)` once the peer said goodbye (`close_notify`); `UnexpectedEof` if the stream
    /// ended without it; another error when the TLS failed (the alert that says why is
    /// sent first, if the socket takes it).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (got, owed) = {
                let mut tls = lock(&self.shared.tls);
                let got = loop {
                    match tls.plaintext(buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        other => break Some(other),
                    }
                    // Records are offered only once the plaintext is all taken: with
                    // plaintext waiting the TLS takes none (and says so as an error).
                    if self.start == self.end {
                        break None;
                    }
                    match tls.received(&self.records[self.start..self.end]) {
                        Ok(0) => break Some(Err(io::Error::other("TLS: records not taken"))),
                        Ok(n) => self.start += n,
                        Err(e) => break Some(Err(e)),
                    }
                };
                (got, tls.wants_write())
            };
            // The handshake's answers, an alert: sent now, by this thread or the writer.
            let sent = if owed {
                self.shared.send_owed(&self.socket)
            } else {
                Ok(())
            };
            if let Some(got) = got {
                return got;
            }
            sent?;
            self.read_records()?;
        }
    }

    /// Reads records from the socket (none left untaken), by the deadline if there is one.
    fn read_records(&mut self) -> io::Result<()> {
        if self.records.is_empty() {
            self.records = vec![0; RECORDS_READ];
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.socket.set_read_timeout(Some(left))?;
        }
        let n = loop {
            match self.socket.read(&mut self.records) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        (self.start, self.end) = (0, n);
        if n == 0 {
            // From now on the plaintext says whether the end was clean.
            lock(&self.shared.tls).received_eof()?;
        }
        Ok(())
    }

    /// Encrypts what the connection takes of `slices` (up to
    /// [`SEND_BUFFER`](tidings_host::tls::SEND_BUFFER)) and writes the records, waiting for
    /// the socket (within its write timeout): "written" means on the socket, as in
    /// plaintext. `Ok(0)` when the connection takes no plaintext (its handshake not over, or
    /// a goodbye said), which writers treat as the end.
    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let shared = &*self.shared;
        let queued = {
            let mut out = lock(&shared.out);
            let queued = lock(&shared.tls).queue_plaintext(slices);
            shared.send_locked(&self.socket, &mut out)?;
            queued
        };
        shared.send_owed(&self.socket)?;
        Ok(queued)
    }

    /// Says goodbye (`close_notify`) if the socket takes it at once; nothing if a writer is
    /// busy writing (blocked on a peer that does not read: the goodbye would not get through).
    fn close(&self) {
        let mut out = match self.shared.out.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        lock(&self.shared.tls).close();
        // Now or never: a write that would block fails instead.
        if self.socket.set_nonblocking(true).is_ok() {
            let _ = self.shared.send_locked(&self.socket, &mut out);
            let _ = self.socket.set_nonblocking(false);
        }
    }
}

/// A client's TLS handshake over `socket`, by `deadline`: the server's certificate checked
/// and ALPN agreed before the session starts, so that a certificate that does not check out
/// is reported as such. Returns the stream for the client's threads (the socket's timeouts
/// cleared: they set their own).
pub(crate) fn client_handshake(
    socket: TcpStream,
    mut tls: Tls,
    deadline: Instant,
) -> io::Result<Stream> {
    let done = tls.handshake(&mut ByDeadline {
        socket: &socket,
        deadline,
    });
    socket.set_read_timeout(None)?;
    socket.set_write_timeout(None)?;
    done?;
    Ok(Stream::tls(socket, tls))
}

/// A blocking socket whose reads and writes all end by one deadline (a peer that sends a
/// byte now and then cannot stretch a handshake beyond it).
struct ByDeadline<'a> {
    socket: &'a TcpStream,
    deadline: Instant,
}

impl ByDeadline<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.set_read_timeout(Some(self.left()?))?;
        let mut socket = self.socket;
        socket.read(buf)
    }
}

impl Write for ByDeadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.set_write_timeout(Some(self.left()?))?;
        let mut socket = self.socket;
        socket.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.socket.set_write_timeout(Some(self.left()?))?;
        let mut socket = self.socket;
        socket.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use tidings_host::tls::{SelfSigned, TlsClientConfig, TlsServerConfig};

    /// A connected pair over loopback, handshake done: the server's stream and the
    /// client's (whose handshake runs on a thread of its own meanwhile).
    fn pair() -> (Stream, Stream) {
        let certs = SelfSigned::generate(&["localhost".into()]).unwrap();
        let server =
            TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
        let client = TlsClientConfig::from_ca_pem(certs.ca_pem.as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connecting = std::thread::spawn(move || {
            let socket = TcpStream::connect(addr).unwrap();
            let tls = Tls::connect(&client, "localhost").unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = client_handshake(socket, tls, deadline).unwrap();
            stream.write_all(b"x").unwrap();
            stream
        });
        let (socket, _) = listener.accept().unwrap();
        let mut server = Stream::tls(socket, Tls::accept(&server));
        // The server's reads drive its side of the handshake, up to the client's first byte
        // (as a server's sniffing does).
        let mut x = [0u8; 1];
        server.read_exact(&mut x).unwrap();
        assert_eq!(&x, b"x");
        (server, connecting.join().unwrap())
    }

    #[test]
    fn a_reader_and_a_writer_on_each_side_move_data_both_ways_at_once() {
        let (server, client) = pair();
        const LEN: usize = 8 << 20;
        let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        // Both sides write a lot before reading anything back: neither's writer may keep
        // its reader from reading, or both would wait for each other forever.
        let run = |stream: Stream, data: Vec<u8>| {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = stream;
                let sending = std::thread::spawn(move || {
                    for chunk in data.chunks(100_000) {
                        writer.write_all(chunk).unwrap();
                    }
                    writer
                });
                let mut got = vec![0u8; LEN];
                reader.read_exact(&mut got).unwrap();
                let writer = sending.join().unwrap();
                (got, reader, writer)
            })
        };
        let s = run(server, data.clone());
        let c = run(client, data.iter().rev().copied().collect());
        let (from_client, s_reader, s_writer) = s.join().unwrap();
        let (from_server, mut c_reader, _c_writer) = c.join().unwrap();
        assert!(from_server == data);
        assert!(from_client.iter().rev().eq(data.iter()));
        // A goodbye reads as the clean end of the stream.
        s_writer.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        c_reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        drop(s_reader);
    }

    #[test]
    fn a_read_deadline_bounds_a_silent_peer() {
        let (mut server, _client) = pair();
        let start = Instant::now();
        server
            .set_read_deadline(Some(start + Duration::from_millis(200)))
            .unwrap();
        let err = server.read(&mut [0u8; 16]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
