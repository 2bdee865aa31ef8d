//! WebSocket fan-out load: plain chat clients (no subprotocol: tidings' legacy mode)
//! that each broadcast text messages and count what the others broadcast, with the same
//! window rule as the native fan-out.
//!
//! The client is a lean one of this crate, the same for both servers: the opening handshake
//! by hand, masked text frames out, and server frames split by their header and counted
//! without further work. A full client library (tokio-tungstenite, with a timer per
//! message) took as much CPU per message as the servers, so the row measured the client:
//! with it the load core was busy all the time against either server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::either::Either;

use super::fanout::{start_and_collect, Outcome};

/// The masking key of every client frame. RFC 6455 wants it unpredictable to protect
/// proxies' caches; no proxy sits between a benchmark and a loopback server.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client's connection: plain, or TLS (`wss://`).
type Conn = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Runs the fan-out; with `tls`, every client connects over TLS (`wss://`).
pub async fn run(
    addr: &str,
    (clients, messages, window): (usize, usize, usize),
    tls: Option<tokio_rustls::TlsConnector>,
    limit: Duration,
) -> Result<Outcome, String> {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("client {i}: connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream: Conn = match &tls {
            None => Either::Left(stream),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
                Either::Right(
                    tls.connect(name, stream)
                        .await
                        .map_err(|e| format!("client {i}: TLS: {e}"))?,
                )
            }
        };
        let opened = tokio::time::timeout(limit, open(stream, addr, &format!("c{i}")))
            .await
            .map_err(|_| format!("client {i}: handshake timed out"))?
            .map_err(|e| format!("client {i}: handshake: {e}"))?;
        conns.push(opened);
    }
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let per_round = (clients - 1) as u64;
    let mut tasks = Vec::with_capacity(clients);
    for (i, (stream, early)) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(
            stream,
            early,
            i,
            go_rx.clone(),
            per_round,
            messages,
            window,
            limit,
        )));
    }
    start_and_collect(go_tx, tasks).await
}

/// The opening handshake on `/ws?name=NAME`; returns the stream and any bytes that came
/// after the response head (the first frames).
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: &str,
    name: &str,
) -> Result<(S, Vec<u8>), String> {
    let request = format!(
        "GET /ws?name={name} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 << 10 {
            return Err("response head too long".into());
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during the handshake".into());
        }
    };
    // The accept value for this key is RFC 6455's own example (section 1.3).
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101")
        || !head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=")
    {
        return Err(format!(
            "not accepted: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok((stream, buf.split_off(end)))
}

/// Appends a masked, final text frame carrying `payload` (at most 125 bytes).
fn text_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= 125, "a short frame");
    out.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

/// What one complete server frame at the start of `buf` is.
enum Unit {
    /// A chat line from another client.
    Chat,
    /// Anything else that needs no answer (the server's own lines, pongs).
    Other,
    /// A ping with this payload.
    Ping(Vec<u8>),
    /// A close frame.
    Close,
}

/// Splits the next complete server frame off the front of `buf[*at..]`, if there is one.
fn next_frame(buf: &[u8], at: &mut usize) -> Result<Option<Unit>, String> {
    let b = &buf[*at..];
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err("a masked server frame".into());
    }
    let (len, head) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => {
            let n = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
            (usize::try_from(n).map_err(|_| "frame too long")?, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if b.len() < head + len {
        return Ok(None);
    }
    *at += head + len;
    let payload = &b[head..head + len];
    Ok(Some(match b[0] {
        // Final text frames: the server's own lines (joins, leaves) are not chat.
        0x81 if !payload.starts_with(b"{\"src\":\"server\"") => Unit::Chat,
        0x89 => Unit::Ping(payload.to_vec()),
        0x88 => Unit::Close,
        0x81 | 0x82 | 0x8a => Unit::Other,
        other => return Err(format!("unexpected frame start {other:#04x} (fragments?)")),
    }))
}

/// Counts what `buf` holds (whole frames), answers pings into `out` and keeps the rest.
fn take_frames(buf: &mut Vec<u8>, out: &mut Vec<u8>, received: &mut u64) -> Result<(), String> {
    let mut at = 0;
    while let Some(unit) = next_frame(buf, &mut at)? {
        match unit {
            Unit::Chat => *received += 1,
            Unit::Other => {}
            Unit::Ping(p) => {
                let mut frame = Vec::new();
                text_frame(&p, &mut frame);
                frame[0] = 0x8a;
                out.extend_from_slice(&frame);
            }
            Unit::Close => return Err("the server closed".into()),
        }
    }
    buf.drain(..at);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn client(
    mut stream: Conn,
    mut buf: Vec<u8>,
    me: usize,
    mut go: watch::Receiver<Option<Instant>>,
    per_round: u64,
    messages: usize,
    window: usize,
    limit: Duration,
) -> Result<(u64, Instant), String> {
    let expected = per_round * messages as u64;
    let mut received = 0u64;
    let mut sent = 0usize;
    let mut out = Vec::with_capacity(70 * window);
    buf.reserve(64 << 10);
    take_frames(&mut buf, &mut out, &mut received)?;
    // Before the start: count what early starters send, answer pings.
    let start = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        tokio::select! {
            r = go.changed() => r.map_err(|_| "the start signal vanished")?,
            r = stream.read_buf(&mut buf) => {
                if r.map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed before the start".into());
                }
                take_frames(&mut buf, &mut out, &mut received)?;
            }
        }
    };
    let deadline = tokio::time::Instant::from_std(start + limit);
    loop {
        let allowed = messages.min(window + (received / per_round) as usize);
        while sent < allowed {
            let stamp = (me as u64) << 32 | sent as u64;
            text_frame(&crate::load::proto::payload(stamp), &mut out);
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        if sent == messages && received >= expected {
            return Ok((received, Instant::now()));
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .map_err(|_| format!("fan-out did not finish ({received} of {expected} received)"))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the server closed ({received} of {expected})"));
        }
        take_frames(&mut buf, &mut out, &mut received)?;
    }
}
