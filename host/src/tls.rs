//! TLS for every door, written once for both runtimes and both sides: a connection's TLS
//! ([`Tls`]) over any byte stream, and the settings a server ([`TlsServerConfig`]) or a
//! client ([`TlsClientConfig`]) starts connections with.
//!
//! rustls does the protocol; this module is the glue every driver would otherwise write
//! itself, once: plaintext in and out of a connection whose records travel over a
//! non-blocking socket, bounded buffers, and errors a user can act on. It does no I/O of its
//! own: [`Tls::read`] and [`Tls::write_vectored`] take the stream as an argument (a
//! non-blocking socket, or anything `Read + Write`), and [`Tls::received`],
//! [`Tls::plaintext`], [`Tls::queue_plaintext`] and [`Tls::records`] are the same steps for a
//! driver that moves the bytes itself (the std runtime, whose reader and writer threads share
//! one connection).
//!
//! Decisions, written down here:
//! - The crypto provider is *ring*, measured against aws-lc-rs on this project's 2-core AMD
//!   EPYC machine: a release build of rustls with ring takes 20 s, with aws-lc-rs 86 s;
//!   AES-GCM seals 8.7–9.8 GB/s per core with ring and 10.0–11.5 GB/s with aws-lc-rs, both
//!   far above the SHA-256 every verified transfer pays (1.8 GB/s) and a loopback TCP
//!   stream (2.5 GB/s), so speed does not decide. Platforms do: ring's C compiles for the
//!   macOS check on Linux (`.ci/macos-headers`) and for Windows with mingw, aws-lc's needs
//!   the macOS SDK. The price is post-quantum key exchange (X25519MLKEM768), which only
//!   aws-lc-rs offers and for whose lack rustls 0.23.48 marks ring's provider deprecated:
//!   moving is one line here (`crypto_provider`) once the platform checks can build it.
//! - One port serves both ALPN protocols: [`ALPN_NATIVE`] for native clients and
//!   [`ALPN_HTTP`] for browsers and WebSocket clients. The server still tells a native
//!   connection from an HTTP one by its first (decrypted) bytes, as on a plaintext port, so a
//!   client that offers no ALPN at all is served too; one that offers only protocols the
//!   server does not speak is refused by the handshake (`no_application_protocol`).
//! - TLS 1.2 and 1.3 with rustls's safe defaults; no renegotiation (rustls has none), no
//!   client certificates.
//! - [`Tls`] drives rustls's unbuffered API (`rustls::unbuffered`) and owns the buffers,
//!   each freed once what it holds is used up, so an idle connection holds none: rustls's
//!   buffered `Connection` keeps a 4 KiB read buffer for the life of the connection, which
//!   was half the heap of an idle server connection (6.3 KB of it; 2.2 KB now, the bench's
//!   idle-tls row 8.9 KiB of RSS per connection then, 4.9 now). rustls decrypts records
//!   where they were read (0.23 then hands each record's plaintext out in a copy of its
//!   own); [`Tls::read`] copies that straight into the reader's buffer, keeping only what
//!   does not fit. The price: `close` during the handshake sends its
//!   `close_notify` only once the handshake is over (the unbuffered API encrypts nothing
//!   before), so a connection closed in its handshake just ends.
//!
//! ```
//! use tidings_host::tls::{SelfSigned, Tls, TlsClientConfig, TlsServerConfig};
//!
//! let certs = SelfSigned::generate(&["localhost".to_string()]).unwrap();
//! let server = TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
//! let client = TlsClientConfig::from_ca_pem(certs.ca_pem.as_bytes()).unwrap();
//! let mut s = Tls::accept(&server);
//! let mut c = Tls::connect(&client, "localhost").unwrap();
//! // Drive the handshake by hand: records from one side are the other's input.
//! let mut wire = Vec::new();
//! while c.is_handshaking() || s.is_handshaking() {
//!     c.records(&mut wire).unwrap();
//!     s.received(&wire).unwrap();
//!     wire.clear();
//!     s.records(&mut wire).unwrap();
//!     c.received(&wire).unwrap();
//!     wire.clear();
//! }
//! assert_eq!(s.alpn(), Some(tidings_host::tls::ALPN_NATIVE));
//! ```

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of the native tidings protocol inside TLS.
pub const ALPN_NATIVE: &[u8] = b"tidings/1";
/// The ALPN protocol of the page and of WebSocket (`https://`, `wss://`).
pub const ALPN_HTTP: &[u8] = b"http/1.1";

/// Most plaintext one connection holds encrypted and not yet written (or queued while its
/// handshake is still going): a writer that outruns its socket waits rather than growing the
/// buffer. Large enough for a file chunk (256 KiB) to become records and go out in one
/// system call, as it does in plaintext: at 64 KiB a verified relay over TLS made four times
/// the writes. The buffer exists only while records wait (an idle connection holds none).
pub const SEND_BUFFER: usize = 256 << 10;

/// The crypto provider of every TLS connection (see the module docs for why ring).
#[allow(deprecated)] // rustls deprecates ring's provider for having no post-quantum exchange.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    provider::default_provider()
}

/// A certificate, key or CA file that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError(pub String);

impl std::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

fn config_error(what: &str, e: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError(format!("{what}: {e}"))
}

/// A server's certificate chain and key, ready to accept connections. Cheap to clone: the
/// clones share the certificate, and [`TlsServerConfig::reload`] replaces it for all of
/// them, for the connections that start after it (open ones keep theirs).
#[derive(Clone)]
pub struct TlsServerConfig {
    config: Arc<rustls::ServerConfig>,
    current: Arc<CurrentKey>,
}

/// The certificate and key new connections get; replaced on reload.
#[derive(Debug)]
struct CurrentKey(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The certificate chain and key in PEM, checked to belong together.
fn certified_key(
    certificate_chain: &[u8],
    private_key: &[u8],
) -> Result<CertifiedKey, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(certificate_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error("the certificate file", e))?;
    if chain.is_empty() {
        return Err(TlsConfigError(
            "the certificate file holds no CERTIFICATE block".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(private_key).map_err(|e| config_error("the key file", e))?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| config_error("the key file", e))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|e| config_error("the certificate and key", e))?;
    Ok(certified)
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConfig").finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// From the PEM text of a certificate chain (the server's certificate first) and of its
    /// private key (PKCS#8, PKCS#1 or SEC1). Fails when either holds nothing usable, or
    /// when the key is not the certificate's.
    pub fn from_pem(certificate_chain: &[u8], private_key: &[u8]) -> Result<Self, TlsConfigError> {
        let current = Arc::new(CurrentKey(RwLock::new(Arc::new(certified_key(
            certificate_chain,
            private_key,
        )?))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS", e))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![ALPN_NATIVE.to_vec(), ALPN_HTTP.to_vec()];
        // Session tickets let a returning client skip the certificate; the rest of the
        // defaults (no client certificates, TLS 1.2 and 1.3) stand.
        config.ticketer = provider::Ticketer::new().map_err(|e| config_error("TLS", e))?;
        Ok(TlsServerConfig {
            config: Arc::new(config),
            current,
        })
    }

    /// Replaces the certificate chain and key (PEM) for connections that start from now on.
    /// On an error nothing changes: the old certificate stays in use.
    pub fn reload(
        &self,
        certificate_chain: &[u8],
        private_key: &[u8],
    ) -> Result<(), TlsConfigError> {
        let new = Arc::new(certified_key(certificate_chain, private_key)?);
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

/// What a client trusts when it connects with TLS. Cheap to clone.
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClientConfig").finish_non_exhaustive()
    }
}

impl TlsClientConfig {
    /// Trusting the certificate authorities in `roots` (DER), such as the system's (the
    /// driver reads them; this crate does no I/O). Certificates that do not parse are
    /// skipped, as the system's stores hold some; none left is an error.
    pub fn with_roots<'a>(
        roots: impl IntoIterator<Item = CertificateDer<'a>>,
    ) -> Result<Self, TlsConfigError> {
        let mut store = rustls::RootCertStore::empty();
        let (added, _skipped) = store.add_parsable_certificates(roots);
        if added == 0 {
            return Err(TlsConfigError(
                "no usable certificate authority to trust".into(),
            ));
        }
        Self::trusting(store)
    }

    /// Trusting the certificate authorities in the PEM text `pem` (a private CA, or the
    /// `ca.pem` that `tidings cert` writes).
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self, TlsConfigError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error("the CA file", e))?;
        if certs.is_empty() {
            return Err(TlsConfigError(
                "the CA file holds no CERTIFICATE block".into(),
            ));
        }
        let mut store = rustls::RootCertStore::empty();
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| config_error("a certificate in the CA file", e))?;
        }
        Self::trusting(store)
    }

    fn trusting(store: rustls::RootCertStore) -> Result<Self, TlsConfigError> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS", e))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_NATIVE.to_vec()];
        Ok(TlsClientConfig {
            config: Arc::new(config),
        })
    }
}

/// What a client needs to connect with TLS: whom it trusts, and the name the server's
/// certificate must carry (the host name connected to).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The trusted authorities.
    pub config: TlsClientConfig,
    /// The server's name (DNS name or IP address) as its certificate names it.
    pub server_name: String,
}

impl ClientTls {
    /// The client side of a new connection to the server it names.
    pub fn start(&self) -> Result<Tls, crate::Error> {
        Tls::connect(&self.config, &self.server_name).map_err(|e| crate::Error::Tls(e.to_string()))
    }
}

/// One connection's TLS, either side, over a byte stream.
///
/// For a non-blocking socket use [`Tls::read`] and [`Tls::write_vectored`], which read and
/// write the socket as needed and say `WouldBlock` where it would block. Their contract is
/// the socket's own, with one addition: after `write_vectored` said `WouldBlock`, the next
/// call must offer the same bytes first (as every writer that keeps its unwritten bytes
/// does), because the plaintext it took is acknowledged only once its records are written.
/// So "written" means on the socket, as without TLS, and a writer never has to flush.
///
/// A driver that moves bytes itself uses the steps: [`Tls::received`] (records in),
/// [`Tls::plaintext`] (what they decrypted to), [`Tls::queue_plaintext`] (plaintext to
/// send) and [`Tls::records`] (records out).
///
/// Built on rustls's unbuffered API, with the buffers its own and each held only while it
/// holds something: records in while a record is partial, records out until written,
/// plaintext in until read, plaintext out while the handshake is going. An idle connection
/// holds none of them (rustls's buffered connection keeps a 4 KiB read buffer for life).
pub struct Tls {
    conn: Conn,
    bufs: Buffers,
    /// Plaintext taken by [`Tls::write_vectored`] whose records are not all written yet.
    unacked: usize,
}

/// The rustls connection of one side.
enum Conn {
    Server(rustls::server::UnbufferedServerConnection),
    Client(rustls::client::UnbufferedClientConnection),
}

/// Runs `$body` with `$c` bound to the connection of either side.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Server(s) => {
                let $c = &mut **s;
                $body
            }
            Conn::Client(s) => {
                let $c = &mut **s;
                $body
            }
        }
    };
}

/// What the connection holds besides rustls's state. Every buffer is freed (not just
/// emptied) when what it holds is used up.
#[derive(Default)]
struct Buffers {
    /// Records received and not yet processed: a partial record, or the start of a
    /// handshake message that spans records (rustls keeps its place in them).
    incoming: Vec<u8>,
    /// How much the next read of records asks for: small while the peer sends little
    /// (chat), doubling while reads come back full (a file), so that neither pays for the
    /// other's buffer (see [`Buffers::read_records`]).
    read_hint: usize,
    /// Records to write, from `out_start` on.
    outgoing: Vec<u8>,
    out_start: usize,
    /// Decrypted plaintext not yet read, from `plain_start` on.
    plain: Vec<u8>,
    plain_start: usize,
    /// Plaintext to send once the handshake has got far enough.
    queued: Vec<u8>,
    /// Why the connection failed (sticky: every later step says it again).
    failed: Option<Box<str>>,
    /// The peer said goodbye (`close_notify`).
    peer_closed: bool,
    /// The peer's stream ended.
    eof: bool,
    /// [`Tls::close`] was called: `close_notify` goes out as soon as it can, after `queued`.
    closing: bool,
    /// `close_notify` is in `outgoing`, or the connection failed: no more plaintext is taken.
    closed: bool,
}

/// The room a read of records is offered during the handshake: one whole record of the
/// largest size.
const READ_SIZE: usize = 17 << 10;
/// The least room a read of records is offered after it (see [`Buffers::read_records`]).
const MIN_READ: usize = 4 << 10;
/// The most, when the caller's buffer is that large: a reader that takes plaintext in big
/// pieces (a file chunk) gets many records per system call, as in plaintext, rather than
/// one (a verified relay over TLS made fourteen times the reads).
const MAX_READ: usize = 256 << 10;

/// How much to read from the socket for a caller whose buffer takes `plaintext` bytes:
/// that many records' worth, within [`READ_SIZE`] and [`MAX_READ`].
fn read_size(plaintext: usize) -> usize {
    let records = plaintext / MAX_FRAGMENT + 1;
    (plaintext + records * RECORD_OVERHEAD).clamp(READ_SIZE, MAX_READ)
}
/// The most plaintext in one record.
const MAX_FRAGMENT: usize = 16 << 10;
/// At least what one record adds to its plaintext (header, nonce, content type, tag).
const RECORD_OVERHEAD: usize = 64;

/// The two sides' rustls connections, as the glue drives them.
trait Unbuffered: std::ops::Deref<Target = rustls::CommonState> {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> rustls::unbuffered::UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Unbuffered
    for rustls::unbuffered::UnbufferedConnectionCommon<rustls::server::ServerConnectionData>
{
    type Data = rustls::server::ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> rustls::unbuffered::UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

impl Unbuffered
    for rustls::unbuffered::UnbufferedConnectionCommon<rustls::client::ClientConnectionData>
{
    type Data = rustls::client::ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> rustls::unbuffered::UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

/// Where decrypted plaintext goes: a caller's slice (filled from the front), or the end of
/// a growing buffer up to a limit (a hub's receive buffer: no copy through a scratch
/// buffer, no zeroing).
enum Sink<'a> {
    Slice(&'a mut [u8], usize),
    Grow(&'a mut bytes::BytesMut, usize),
}

impl Sink<'_> {
    /// A sink that takes nothing (the handshake, sending).
    fn none() -> Sink<'static> {
        Sink::Slice(&mut [], 0)
    }

    /// Takes what fits of `bytes`; returns how much.
    fn put(&mut self, bytes: &[u8]) -> usize {
        match self {
            Sink::Slice(buf, filled) => {
                let room = &mut buf[*filled..];
                let n = bytes.len().min(room.len());
                room[..n].copy_from_slice(&bytes[..n]);
                *filled += n;
                n
            }
            Sink::Grow(buf, room) => {
                let n = bytes.len().min(*room);
                buf.extend_from_slice(&bytes[..n]);
                *room -= n;
                n
            }
        }
    }

    /// Whether it takes nothing at all.
    fn is_empty(&self) -> bool {
        match self {
            Sink::Slice(buf, _) => buf.is_empty(),
            Sink::Grow(_, room) => *room == 0,
        }
    }
}

/// What [`Buffers::pump`] did.
#[derive(Default)]
struct Pumped {
    /// Plaintext put into the caller's buffer.
    read: usize,
    /// Plaintext taken to send.
    sent: usize,
}

/// `Vec::new()` in place of `v` when nothing from `start` on is left in it.
fn free_if_used(v: &mut Vec<u8>, start: &mut usize) {
    if *start >= v.len() {
        *v = Vec::new();
        *start = 0;
    }
}

impl Buffers {
    fn error(&self) -> Option<io::Error> {
        self.failed
            .as_deref()
            .map(|why| io::Error::new(io::ErrorKind::InvalidData, why))
    }

    fn wants_write(&self) -> bool {
        self.out_start < self.outgoing.len()
    }

    /// Plaintext not yet read into `sink`, if there is any.
    fn take_plain(&mut self, sink: &mut Sink<'_>) -> usize {
        let n = sink.put(&self.plain[self.plain_start..]);
        self.plain_start += n;
        free_if_used(&mut self.plain, &mut self.plain_start);
        n
    }

    /// What [`Tls::plaintext`] says when no plaintext is waiting.
    fn no_plain(&self) -> io::Result<usize> {
        if let Some(e) = self.error() {
            Err(e)
        } else if self.peer_closed {
            Ok(0)
        } else if self.eof {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "TLS: the peer closed the connection without saying goodbye (close_notify)",
            ))
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Reads at most `size` bytes of records from `io` onto the end of `incoming`: the bytes
    /// read, or the error (`WouldBlock`), with `incoming` as it was.
    ///
    /// The room offered is zeroed first (a read needs initialised bytes), so it follows what
    /// the peer sends: it starts at [`MIN_READ`], doubles while reads fill it, and halves
    /// when they do not. Offering `size` to every read cost a chat connection the zeroing of
    /// 64 KiB per message over TLS.
    fn read_records(&mut self, io: &mut impl Read, size: usize) -> io::Result<usize> {
        let size = size.min(self.read_hint.max(MIN_READ));
        let held = self.incoming.len();
        self.incoming.resize(held + size, 0);
        let read = io.read(&mut self.incoming[held..]);
        let got = *read.as_ref().unwrap_or(&0);
        self.incoming.truncate(held + got);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if read.is_ok() {
            self.read_hint = if got == size {
                (size * 2).min(MAX_READ)
            } else {
                (size / 2).max(MIN_READ)
            };
        }
        read
    }

    /// Processes the records in `incoming` as far as they go: the handshake's answers,
    /// alerts and everything queued to send become records in `outgoing`, and decrypted
    /// plaintext goes into `buf` as far as it fits, the rest to `plain`. Once the
    /// connection may send, it takes what it can of `send` (below [`SEND_BUFFER`]); while
    /// it may not yet, `send` is queued. Fails for good on a TLS error, with the alert that
    /// says why in `outgoing`.
    fn pump<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        sink: &mut Sink<'_>,
        send: &[IoSlice<'_>],
    ) -> io::Result<Pumped> {
        use rustls::unbuffered::ConnectionState as S;
        if let Some(e) = self.error() {
            return Err(e);
        }
        let mut done = Pumped::default();
        let mut start = 0;
        let failure = loop {
            let status = conn.process(&mut self.incoming[start..]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => {
                    start += discard;
                    break Some(e);
                }
            };
            match state {
                S::ReadTraffic(mut traffic) => {
                    let mut failure = None;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                let payload = record.payload;
                                let n = sink.put(payload);
                                done.read += n;
                                self.plain.extend_from_slice(&payload[n..]);
                            }
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = failure {
                        start += discard;
                        break Some(e);
                    }
                }
                S::EncodeTlsData(mut encode) => encode_onto(&mut encode, &mut self.outgoing),
                // The records are in `outgoing`, which `records` and `flush` write.
                S::TransmitTlsData(transmit) => transmit.done(),
                S::WriteTraffic(mut traffic) => {
                    if !self.queued.is_empty() {
                        let queued = std::mem::take(&mut self.queued);
                        if let Err(e) = encrypt(&mut traffic, &queued, &mut self.outgoing) {
                            start += discard;
                            break Some(e);
                        }
                    }
                    if !self.closed && !send.is_empty() {
                        match self.encrypt_slices(&mut traffic, send) {
                            Ok(sent) => done.sent = sent,
                            Err(e) => {
                                start += discard;
                                break Some(e);
                            }
                        }
                    }
                    if self.closing && !self.closed {
                        self.closed = true;
                        let at = self.outgoing.len();
                        self.outgoing.resize(at + RECORD_OVERHEAD, 0);
                        let written = traffic
                            .queue_close_notify(&mut self.outgoing[at..])
                            .unwrap_or(0);
                        self.outgoing.truncate(at + written);
                    }
                    start += discard;
                    break None;
                }
                S::BlockedHandshake => {
                    if !self.closed {
                        done.sent = queue(&mut self.queued, send);
                    }
                    start += discard;
                    break None;
                }
                S::PeerClosed => self.peer_closed = true,
                S::Closed => {
                    self.peer_closed = true;
                    start += discard;
                    break None;
                }
                // Early data is off (the server's `max_early_data_size` is 0), and rustls
                // has no other states yet: never.
                _ => {
                    start += discard;
                    break Some(rustls::Error::General("an unexpected state".into()));
                }
            }
            start += discard;
        };
        if let Some(e) = failure {
            self.fail(conn, &e);
            return Err(self.error().expect("just failed"));
        }
        if self.peer_closed {
            // rustls reads nothing after the goodbye.
            self.incoming = Vec::new();
        } else if start > 0 {
            self.incoming.drain(..start.min(self.incoming.len()));
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
        }
        if self.plain.is_empty() {
            self.plain = Vec::new();
        }
        Ok(done)
    }

    /// The connection failed with `e`: the alert rustls queued for the peer goes into
    /// `outgoing`, and every step from now on says `e`.
    fn fail<C: Unbuffered>(&mut self, conn: &mut C, e: &rustls::Error) {
        use rustls::unbuffered::ConnectionState as S;
        self.failed = Some(describe(e).into());
        self.closed = true;
        // The alert is queued in rustls, which hands it out before it looks at any records
        // (which it must not again: they failed).
        while conn.wants_write() {
            match conn.process(&mut []).state {
                Ok(S::EncodeTlsData(mut encode)) => encode_onto(&mut encode, &mut self.outgoing),
                _ => break,
            }
        }
        self.incoming = Vec::new();
        self.plain = Vec::new();
        self.plain_start = 0;
        self.queued = Vec::new();
    }

    /// Encrypts what fits below [`SEND_BUFFER`] of `slices` into `outgoing`, small slices
    /// gathered into whole records; returns how much plaintext that was.
    fn encrypt_slices<D>(
        &mut self,
        traffic: &mut rustls::unbuffered::WriteTraffic<'_, D>,
        slices: &[IoSlice<'_>],
    ) -> Result<usize, rustls::Error> {
        let pending = self.outgoing.len() - self.out_start;
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let mut room = total.min(SEND_BUFFER.saturating_sub(pending));
        let taken = room;
        // Allocated only when small slices are to share a record.
        let mut gathered = Vec::new();
        let mut rest = slices.iter().filter(|s| !s.is_empty()).peekable();
        while let Some(slice) = rest.next() {
            if room == 0 {
                break;
            }
            let mut s = &slice[..slice.len().min(room)];
            room -= s.len();
            let last = rest.peek().is_none() || room == 0;
            while !s.is_empty() {
                if gathered.is_empty() && (last || s.len() >= MAX_FRAGMENT) {
                    // Straight from the slice: all of the last one, or its whole records.
                    let whole = if last {
                        s.len()
                    } else {
                        s.len() - s.len() % MAX_FRAGMENT
                    };
                    encrypt(traffic, &s[..whole], &mut self.outgoing)?;
                    s = &s[whole..];
                    continue;
                }
                if gathered.capacity() == 0 {
                    gathered.reserve_exact((s.len() + room).min(MAX_FRAGMENT));
                }
                let n = (MAX_FRAGMENT - gathered.len()).min(s.len());
                gathered.extend_from_slice(&s[..n]);
                s = &s[n..];
                if gathered.len() == MAX_FRAGMENT {
                    encrypt(traffic, &gathered, &mut self.outgoing)?;
                    gathered.clear();
                }
            }
        }
        if !gathered.is_empty() {
            encrypt(traffic, &gathered, &mut self.outgoing)?;
        }
        Ok(taken)
    }
}

/// Appends the handshake record (or alert) rustls has ready onto `out`, sized as rustls asks.
fn encode_onto<D>(encode: &mut rustls::unbuffered::EncodeTlsData<'_, D>, out: &mut Vec<u8>) {
    let at = out.len();
    let needed = match encode.encode(&mut []) {
        Err(rustls::unbuffered::EncodeError::InsufficientSize(size)) => size.required_size,
        _ => 0,
    };
    out.resize(at + needed, 0);
    let written = encode.encode(&mut out[at..]).unwrap_or(0);
    out.truncate(at + written);
}

/// Queues what fits below [`SEND_BUFFER`] of `slices` onto `queued`; returns how much.
fn queue(queued: &mut Vec<u8>, slices: &[IoSlice<'_>]) -> usize {
    let mut taken = 0;
    for s in slices {
        let n = s.len().min(SEND_BUFFER.saturating_sub(queued.len()));
        queued.extend_from_slice(&s[..n]);
        taken += n;
    }
    taken
}

/// Encrypts `plaintext` onto the end of `out`.
fn encrypt<D>(
    traffic: &mut rustls::unbuffered::WriteTraffic<'_, D>,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    use rustls::unbuffered::EncryptError;
    let at = out.len();
    let records = plaintext.len() / MAX_FRAGMENT + 1;
    out.resize(at + plaintext.len() + records * RECORD_OVERHEAD, 0);
    let mut result = traffic.encrypt(plaintext, &mut out[at..]);
    if let Err(EncryptError::InsufficientSize(size)) = result {
        out.resize(at + size.required_size, 0);
        result = traffic.encrypt(plaintext, &mut out[at..]);
    }
    match result {
        Ok(written) => {
            out.truncate(at + written);
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(rustls::Error::General(format!("encrypting: {e}")))
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.is_handshaking())
            .field("unacked", &self.unacked)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The server side of a new connection.
    pub fn accept(config: &TlsServerConfig) -> Tls {
        let conn = rustls::server::UnbufferedServerConnection::new(config.config.clone())
            .expect("a TlsServerConfig always has a protocol version and a certificate");
        Tls::new(Conn::Server(conn))
    }

    /// The client side of a new connection to `server_name` (a DNS name or an IP address,
    /// which the server's certificate must name).
    pub fn connect(config: &TlsClientConfig, server_name: &str) -> io::Result<Tls> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{server_name:?} is not a host name or an IP address"),
            )
        })?;
        let conn = rustls::client::UnbufferedClientConnection::new(config.config.clone(), name)
            .map_err(|e| io::Error::other(describe(&e)))?;
        let mut tls = Tls::new(Conn::Client(conn));
        // The client speaks first: its hello is ready to write.
        tls.pump(&mut Sink::none(), &[])?;
        Ok(tls)
    }

    fn new(conn: Conn) -> Tls {
        Tls {
            conn,
            bufs: Buffers::default(),
            unacked: 0,
        }
    }

    /// [`Buffers::pump`] with this connection.
    fn pump(&mut self, sink: &mut Sink<'_>, send: &[IoSlice<'_>]) -> io::Result<Pumped> {
        let bufs = &mut self.bufs;
        with_conn!(&mut self.conn, c => bufs.pump(c, sink, send))
    }

    /// Whether the handshake is still going.
    pub fn is_handshaking(&self) -> bool {
        match &self.conn {
            Conn::Server(c) => c.is_handshaking(),
            Conn::Client(c) => c.is_handshaking(),
        }
    }

    /// The ALPN protocol agreed on, once the handshake has got that far.
    pub fn alpn(&self) -> Option<&[u8]> {
        match &self.conn {
            Conn::Server(c) => c.alpn_protocol(),
            Conn::Client(c) => c.alpn_protocol(),
        }
    }

    /// Whether records are waiting to be written (handshake messages, alerts, data).
    pub fn wants_write(&self) -> bool {
        self.bufs.wants_write()
    }

    /// Takes records from the peer, as many of `records` as the connection takes now (all
    /// of it unless decrypted plaintext is waiting to be read: read it with
    /// [`Tls::plaintext`] and offer the rest again). An error is fatal to the connection:
    /// write out [`Tls::records`] (the alert that tells the peer why), then close.
    pub fn received(&mut self, records: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.bufs.error() {
            return Err(e);
        }
        if records.is_empty() || self.bufs.plain_start < self.bufs.plain.len() {
            return Ok(0);
        }
        if self.bufs.peer_closed {
            // Nothing counts after the goodbye.
            return Ok(records.len());
        }
        self.bufs.incoming.extend_from_slice(records);
        self.pump(&mut Sink::none(), &[])?;
        Ok(records.len())
    }

    /// The peer's stream ended (the socket read 0 bytes).
    pub fn received_eof(&mut self) -> io::Result<()> {
        self.bufs.eof = true;
        Ok(())
    }

    /// Decrypted plaintext into `buf`: the bytes read, `Ok(0)` once the peer closed the
    /// connection cleanly (TLS `close_notify`), `WouldBlock` while none is waiting, and
    /// `UnexpectedEof` when the stream ended without `close_notify` (truncated).
    pub fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.plaintext_to(&mut Sink::Slice(buf, 0))
    }

    fn plaintext_to(&mut self, sink: &mut Sink<'_>) -> io::Result<usize> {
        if sink.is_empty() {
            return Ok(0);
        }
        match self.bufs.take_plain(sink) {
            0 => self.bufs.no_plain(),
            n => Ok(n),
        }
    }

    /// Plaintext to send: takes what fits below [`SEND_BUFFER`] and returns how much.
    /// Before the handshake completes it is held, and sent once it has.
    pub fn queue_plaintext(&mut self, slices: &[IoSlice<'_>]) -> usize {
        if self.bufs.closed || slices.iter().all(|s| s.is_empty()) {
            return 0;
        }
        self.pump(&mut Sink::none(), slices)
            .map_or(0, |done| done.sent)
    }

    /// Writes waiting records to `out` (one `write` of it); `Ok(0)` when none are waiting.
    pub fn records(&mut self, out: &mut impl Write) -> io::Result<usize> {
        let b = &mut self.bufs;
        if !b.wants_write() {
            return Ok(0);
        }
        let n = out.write(&b.outgoing[b.out_start..])?;
        b.out_start += n;
        free_if_used(&mut b.outgoing, &mut b.out_start);
        Ok(n)
    }

    /// Says goodbye (`close_notify`); it goes out with the next records written.
    pub fn close(&mut self) {
        if self.bufs.closing || self.bufs.failed.is_some() {
            return;
        }
        self.bufs.closing = true;
        let _ = self.pump(&mut Sink::none(), &[]);
    }

    /// Writes every waiting record to the non-blocking `io`: `Ok` once none is left,
    /// `WouldBlock` while some are.
    pub fn flush(&mut self, io: &mut impl Write) -> io::Result<()> {
        while self.wants_write() {
            if self.records(io)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Runs the handshake to its end over the non-blocking `io`: `Ok` once it is complete
    /// and its last records are written, `WouldBlock` while it waits for `io`. A client
    /// calls this before anything else, so that a certificate that does not check out is
    /// reported as such rather than as a connection that ended.
    pub fn handshake(&mut self, io: &mut (impl Read + Write)) -> io::Result<()> {
        loop {
            self.flush(io)?;
            if let Some(e) = self.bufs.error() {
                return Err(e);
            }
            if !self.is_handshaking() {
                return Ok(());
            }
            if self.bufs.read_records(io, READ_SIZE)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: the peer closed the connection during the handshake (does it speak TLS on this port?)",
                ));
            }
            if let Err(e) = self.pump(&mut Sink::none(), &[]) {
                let _ = self.flush(io);
                return Err(e);
            }
        }
    }

    /// Reads plaintext into `buf` from the non-blocking `io`, reading records as they are
    /// needed and writing the ones the connection owes (its handshake, alerts, answers to a
    /// key update) on the way. Results as [`Tls::plaintext`]; `WouldBlock` when `io` has
    /// nothing more to read. Check [`Tls::wants_write`] after a `WouldBlock`: records
    /// still owed need `io` to become writable too.
    ///
    /// The plaintext of the records read goes straight into `buf`; only what does not fit
    /// there is kept.
    pub fn read(&mut self, io: &mut (impl Read + Write), buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len();
        self.read_to(io, &mut Sink::Slice(buf, 0), want)
    }

    /// [`Tls::read`] onto the end of `buf`, at most `max` bytes: a driver that reads into its
    /// receive buffer (the hub's) decrypts straight into it, without a buffer in between.
    pub fn read_into(
        &mut self,
        io: &mut (impl Read + Write),
        buf: &mut bytes::BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        self.read_to(io, &mut Sink::Grow(buf, max), max)
    }

    fn read_to(
        &mut self,
        io: &mut (impl Read + Write),
        sink: &mut Sink<'_>,
        want: usize,
    ) -> io::Result<usize> {
        if sink.is_empty() {
            return Ok(0);
        }
        loop {
            match self.flush(io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => other?,
            }
            match self.plaintext_to(sink) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            if self.bufs.read_records(io, read_size(want))? == 0 {
                // The end of the stream: the plaintext now says whether it was clean.
                self.bufs.eof = true;
                let _ = self.flush(io);
                return self.plaintext_to(sink);
            }
            match self.pump(sink, &[]) {
                Ok(done) if done.read > 0 => return Ok(done.read),
                Ok(_) => {}
                Err(e) => {
                    // The alert that tells the peer why, if the socket takes it now.
                    let _ = self.flush(io);
                    return Err(e);
                }
            }
        }
    }

    /// Encrypts what it can of `slices` and writes the records to the non-blocking `io`;
    /// returns how much plaintext was written, or `WouldBlock` (see the type's docs: offer
    /// the same bytes first next time).
    pub fn write_vectored(
        &mut self,
        io: &mut impl Write,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        if self.unacked == 0 {
            self.flush(io)?;
            self.unacked = self.queue_plaintext(slices);
            if self.unacked == 0 && slices.iter().any(|s| !s.is_empty()) {
                // Full while the handshake is still going: wait for it.
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        self.flush(io)?;
        Ok(std::mem::take(&mut self.unacked))
    }
}

/// A rustls error in words a user can act on.
fn describe(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error as E};
    match e {
        // A signature that does not verify: signed by another authority of the same name
        // (two private CAs named alike), which is the same mistake for a user.
        E::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            "TLS: the server's certificate is signed by an authority we do not trust \
             (a private or self-signed certificate: pass its CA with --ca FILE)"
                .into()
        }
        E::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "TLS: the server's certificate has expired".into(),
        E::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "TLS: the server's certificate is not valid yet (is the clock right?)".into(),
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "TLS: the server's certificate is for another name than the one we connected to".into()
        }
        E::InvalidCertificate(other) => {
            format!("TLS: the peer's certificate is invalid: {other:?}")
        }
        E::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            "TLS: the peer refused the handshake (handshake_failure): does it speak TLS on \
             this port?"
                .into()
        }
        E::AlertReceived(alert) => format!("TLS: the peer refused the connection ({alert:?})"),
        E::NoApplicationProtocol => {
            "TLS: no protocol in common (ALPN): the peer speaks neither tidings/1 nor http/1.1"
                .into()
        }
        other => format!("TLS: {other}"),
    }
}

/// A certificate authority and a certificate it signed, made on the spot: for tests and
/// first runs (`tidings cert`). Trust `ca_pem` where clients connect (`--ca`), give
/// `cert_pem` and `key_pem` to the server.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate authority's certificate (PEM): what clients trust.
    pub ca_pem: String,
    /// The server's certificate (PEM), signed by the authority, valid for the names asked.
    pub cert_pem: String,
    /// The server certificate's private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl SelfSigned {
    /// A new authority and a server certificate for `names` (DNS names or IP addresses),
    /// valid from now for about a year.
    pub fn generate(names: &[String]) -> Result<SelfSigned, TlsConfigError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let fail = |e: rcgen::Error| config_error("generating a certificate", e);
        let ca_key = KeyPair::generate().map_err(fail)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        // Named apart from every other such CA: a client trusting another one then hears
        // "not trusted" rather than of a signature that does not verify.
        let tag: String = ca_key.public_key_raw()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ca.distinguished_name
            .push(DnType::CommonName, format!("tidings private CA {tag}"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
        let key = KeyPair::generate().map_err(fail)?;
        let mut leaf = CertificateParams::new(names.to_vec()).map_err(fail)?;
        if let Some(first) = names.first() {
            leaf.distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now - time::Duration::minutes(5);
        leaf.not_after = now + time::Duration::days(365);
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(fail)?;
        Ok(SelfSigned {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Tls, Tls) {
        let certs = SelfSigned::generate(&["localhost".to_string()]).unwrap();
        let server =
            TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
        let client = TlsClientConfig::from_ca_pem(certs.ca_pem.as_bytes()).unwrap();
        (
            Tls::connect(&client, "localhost").unwrap(),
            Tls::accept(&server),
        )
    }

    /// Moves records from `from` to `to` until none are owed; returns the plaintext `to`
    /// decrypted, read in pieces of `piece` bytes.
    fn deliver(from: &mut Tls, to: &mut Tls, piece: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        while from.records(&mut wire).unwrap() > 0 {}
        let (mut rest, mut got) = (&wire[..], Vec::new());
        let mut buf = vec![0; piece];
        loop {
            match to.plaintext(&mut buf) {
                Ok(n) if n > 0 => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => panic!("{e}"),
                _ => {}
            }
            if rest.is_empty() {
                return got;
            }
            let n = to.received(rest).unwrap();
            assert!(n > 0, "records not taken with no plaintext waiting");
            rest = &rest[n..];
        }
    }

    /// Runs the handshake; returns the plaintext the server read on the way.
    fn handshake(c: &mut Tls, s: &mut Tls) -> Vec<u8> {
        let mut got = Vec::new();
        while c.is_handshaking() || s.is_handshaking() {
            got.extend(deliver(c, s, 100));
            assert!(deliver(s, c, 100).is_empty());
        }
        got.extend(deliver(c, s, 100));
        assert!(deliver(s, c, 100).is_empty());
        got
    }

    fn holds_nothing(t: &Tls) -> bool {
        let b = &t.bufs;
        [&b.incoming, &b.outgoing, &b.plain, &b.queued]
            .iter()
            .all(|v| v.capacity() == 0)
    }

    #[test]
    fn plaintext_both_ways_and_nothing_held_when_idle() {
        let (mut c, mut s) = pair();
        // Queued during the handshake, sent once it is over.
        assert_eq!(c.queue_plaintext(&[IoSlice::new(b"early ")]), 6);
        let mut got = handshake(&mut c, &mut s);
        assert_eq!(s.alpn(), Some(ALPN_NATIVE));
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let slices = [
            IoSlice::new(b"a"),
            IoSlice::new(b""),
            IoSlice::new(&big[..40_000]),
            IoSlice::new(b"bc"),
        ];
        assert_eq!(c.queue_plaintext(&slices), 40_003);
        let mut expected = b"early a".to_vec();
        expected.extend_from_slice(&big[..40_000]);
        expected.extend_from_slice(b"bc");
        got.extend(deliver(&mut c, &mut s, 777));
        assert!(got == expected, "plaintext arrived changed");
        assert_eq!(s.queue_plaintext(&[IoSlice::new(&big)]), SEND_BUFFER);
        assert!(deliver(&mut s, &mut c, 1 << 20) == big[..SEND_BUFFER]);
        assert!(holds_nothing(&c) && holds_nothing(&s));
    }

    /// A socket with nothing to read that takes every write.
    struct Quiet;

    impl Read for Quiet {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    impl Write for Quiet {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn read_into_appends_at_most_max_and_keeps_the_rest_in_order() {
        let (mut c, mut s) = pair();
        let mut got = handshake(&mut c, &mut s);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(c.queue_plaintext(&[IoSlice::new(&data)]), data.len());
        let mut wire = Vec::new();
        while c.records(&mut wire).unwrap() > 0 {}
        assert_eq!(s.received(&wire).unwrap(), wire.len());
        let mut buf = bytes::BytesMut::from(&b"before:"[..]);
        while buf.len() < 7 + data.len() {
            let n = s.read_into(&mut Quiet, &mut buf, 7_000).unwrap();
            assert!(n > 0 && n <= 7_000, "{n}");
        }
        assert_eq!(&buf[..7], b"before:");
        got.extend_from_slice(&buf[7..]);
        assert!(got == data, "plaintext arrived changed");
        let e = s.read_into(&mut Quiet, &mut buf, 7_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(holds_nothing(&s));
    }

    #[test]
    fn tls12_and_resumed_sessions_too() {
        let certs = SelfSigned::generate(&["localhost".to_string()]).unwrap();
        let server =
            TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
        let client = TlsClientConfig::from_ca_pem(certs.ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls12 = TlsClientConfig {
            config: Arc::new(tls12),
        };
        for config in [&tls12, &tls12, &client, &client] {
            let (mut c, mut s) = (
                Tls::connect(config, "localhost").unwrap(),
                Tls::accept(&server),
            );
            assert!(handshake(&mut c, &mut s).is_empty());
            c.queue_plaintext(&[IoSlice::new(b"ping")]);
            assert_eq!(deliver(&mut c, &mut s, 3), b"ping");
            s.queue_plaintext(&[IoSlice::new(b"pong")]);
            assert_eq!(deliver(&mut s, &mut c, 3), b"pong");
            assert!(holds_nothing(&c) && holds_nothing(&s));
        }
    }

    #[test]
    fn records_wait_while_plaintext_is_unread() {
        let (mut c, mut s) = pair();
        handshake(&mut c, &mut s);
        c.queue_plaintext(&[IoSlice::new(b"one")]);
        let mut first = Vec::new();
        while c.records(&mut first).unwrap() > 0 {}
        c.queue_plaintext(&[IoSlice::new(b"two")]);
        let mut second = Vec::new();
        while c.records(&mut second).unwrap() > 0 {}
        assert_eq!(s.received(&first).unwrap(), first.len());
        assert_eq!(s.received(&second).unwrap(), 0);
        let mut buf = [0; 2];
        assert_eq!(s.plaintext(&mut buf).unwrap(), 2);
        assert_eq!(s.plaintext(&mut buf).unwrap(), 1);
        assert_eq!(s.received(&second[..5]).unwrap(), 5);
        assert_eq!(
            s.plaintext(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(s.received(&second[5..]).unwrap(), second.len() - 5);
        let mut buf = [0; 10];
        assert_eq!(s.plaintext(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
        assert!(holds_nothing(&s));
    }

    #[test]
    fn goodbye_then_zero_and_truncation_then_unexpected_eof() {
        let (mut c, mut s) = pair();
        handshake(&mut c, &mut s);
        c.queue_plaintext(&[IoSlice::new(b"bye")]);
        c.close();
        assert_eq!(c.queue_plaintext(&[IoSlice::new(b"more")]), 0);
        assert_eq!(deliver(&mut c, &mut s, 10), b"bye");
        assert_eq!(s.plaintext(&mut [0; 10]).unwrap(), 0);

        let (mut c, mut s) = pair();
        handshake(&mut c, &mut s);
        c.queue_plaintext(&[IoSlice::new(b"cut")]);
        let mut wire = Vec::new();
        while c.records(&mut wire).unwrap() > 0 {}
        s.received(&wire[..wire.len() - 1]).unwrap();
        s.received_eof().unwrap();
        let e = s.plaintext(&mut [0; 10]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn garbage_fails_for_good_with_an_alert_owed() {
        let (_, mut s) = pair();
        let e = s.received(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(s.wants_write(), "the alert that says why");
        assert!(s.received(b"more").is_err());
        assert!(s.plaintext(&mut [0; 4]).is_err());
        assert_eq!(s.queue_plaintext(&[IoSlice::new(b"x")]), 0);
    }
}
