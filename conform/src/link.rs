//! Where the server is (`tcp://`, `tls://`, `ws://`, `wss://`) and the byte stream to it:
//! plain TCP or TLS (rustls, the system's roots or `--ca`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A server to test: `tcp://HOST:PORT`, `tls://HOST:PORT`, `ws://HOST:PORT/PATH` or
/// `wss://HOST:PORT/PATH`. The port may be left out only when `--spawn` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// TLS underneath (`tls://`, `wss://`).
    pub tls: bool,
    /// The WebSocket carriage (`ws://`, `wss://`), with the request path.
    pub ws_path: Option<String>,
    /// The host: the name a TLS certificate must carry.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(url: &str) -> Result<Target, String> {
        let forms = "expected tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH";
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("{url:?} has no scheme: {forms}"));
        };
        let (tls, ws) = match scheme {
            "tcp" => (false, false),
            "tls" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            other => {
                return Err(format!(
                    "{other}:// is not a scheme the runner speaks: {forms}"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !ws && !path.is_empty() {
            return Err(format!("{scheme}:// takes no path: {forms}"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => {
                let port = p
                    .parse()
                    .map_err(|_| format!("{p:?} is not a port: {forms}"))?;
                (h, Some(port))
            }
            _ => (authority, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} names no host: {forms}"));
        }
        Ok(Target {
            tls,
            ws_path: ws.then(|| {
                if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                }
            }),
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.tls, self.ws_path.is_some()) {
            (false, false) => "tcp",
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}")?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(self.ws_path.as_deref().unwrap_or(""))
    }
}

/// What the runner trusts for TLS: the certificate authorities of `--ca`, else the system's.
pub fn tls_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA: {e}", path.display()))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(
            "no certificate authority to trust: pass the server's CA with --ca FILE".into(),
        );
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ring, as tidings-host uses (its module docs say why); rustls deprecates ring's provider
/// for its lack of a post-quantum key exchange, which a test client does not need.
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The byte stream to the server.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `addr`; over TLS as `host`, offering `alpn`, trusting `tls`.
    pub fn connect(
        addr: SocketAddr,
        host: &str,
        tls: Option<&Arc<ClientConfig>>,
        alpn: &[u8],
        timeout: Duration,
    ) -> Result<Stream, String> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let Some(config) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let mut config = (**config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} cannot be a TLS server name: {e}"))?;
        let conn =
            ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
        let mut stream = StreamOwned::new(conn, tcp);
        stream
            .sock
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("the TLS handshake with {addr}: {e}"))?;
        }
        Ok(Stream::Tls(Box::new(stream)))
    }

    /// The TCP socket underneath, for timeouts.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Ends our direction of the stream (TLS: with close_notify first).
    pub fn finish(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                // A server that closes without close_notify has still closed.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The first address `host:port` resolves to.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}
