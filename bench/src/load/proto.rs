//! The three protocols a load-generator client speaks, all written out by hand at the same
//! level: the tidings wire format (preamble, `hello`, `text`, `ping`/`pong`), MQTT 3.1.1
//! (CONNECT, SUBSCRIBE, PUBLISH at QoS 0, PINGREQ) and the NATS client protocol (CONNECT,
//! SUB, PUB, MSG, PING/PONG). A client parses only frame headers (NATS: control lines, found
//! with `memchr`) and the payload of deliveries, so no server pays for a full decoder in the
//! load generator.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tidings_core::wire::{
    capability, frame_type, Hello, Message, Preamble, Utf8, DEFAULT_MAX_FRAME,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which server the load talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `tidings serve`.
    Tidings,
    /// mosquitto (MQTT 3.1.1, QoS 0).
    Mqtt,
    /// nats-server (core NATS: at most once, like QoS 0).
    Nats,
}

impl Proto {
    /// Parses `tidings`, `mqtt` or `nats`.
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "tidings" => Ok(Proto::Tidings),
            "mqtt" => Ok(Proto::Mqtt),
            "nats" => Ok(Proto::Nats),
            _ => Err(format!("unknown protocol {s:?}")),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tidings => "tidings",
            Proto::Mqtt => "mqtt",
            Proto::Nats => "nats",
        }
    }

    /// How many clients receive one broadcast among `clients`: tidings never echoes a
    /// message to its sender, nor does NATS with `"echo":false` (as a chat client would
    /// connect); an MQTT 3.1.1 subscriber receives its own publications.
    pub fn receivers_of_broadcast(self, clients: usize) -> usize {
        match self {
            Proto::Tidings | Proto::Nats => clients - 1,
            Proto::Mqtt => clients,
        }
    }
}

/// The MQTT topic (NATS subject) every client subscribes to for broadcasts.
const ALL_TOPIC: &[u8] = b"all";

/// The longest NATS control line the parser waits for (`INFO` lines are the longest,
/// under 1 KiB from nats-server).
const NATS_MAX_LINE: usize = 16 << 10;

/// What [`Parser::peek_kind`] reports for a NATS `PONG`, the end of the handshake (NATS
/// operations are words, not type bytes; no other line starts with this byte).
const NATS_PONG: u8 = 0xFF;

/// Client `i`'s name (tidings) or private topic suffix (MQTT).
pub fn client_name(i: usize) -> String {
    format!("c{i}")
}

/// What one parsed unit of the server's stream means to the load generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A chat message (tidings `text`, MQTT PUBLISH, NATS MSG) with its application payload.
    Delivery(Vec<u8>),
    /// A tidings `ping` that must be answered with this nonce (a NATS `PING`: nonce 0).
    Ping(u64),
    /// A tidings `refused`, `error` or `goodbye`: frame type and error code (a NATS `-ERR`:
    /// `b'-'` and 0).
    Closing(u8, u16),
    /// Anything else (welcome, presence, acks, pongs …).
    Other,
}

/// Splits the server's byte stream into [`Incoming`] units.
pub struct Parser {
    proto: Proto,
    buf: BytesMut,
    /// Bytes of the tidings preamble still to skip.
    preamble: usize,
    /// Only deliveries' lengths are needed (fan-out counts them): skip copying payloads.
    keep_payload: bool,
}

impl Parser {
    /// A parser for a fresh connection.
    pub fn new(proto: Proto, keep_payload: bool) -> Parser {
        Parser {
            proto,
            buf: BytesMut::with_capacity(64 << 10),
            preamble: if proto == Proto::Tidings { 8 } else { 0 },
            keep_payload,
        }
    }

    /// The buffer to read into: `n` more spare bytes at its end.
    pub fn buffer(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < 16 << 10 {
            self.buf.reserve(64 << 10);
        }
        &mut self.buf
    }

    /// The next complete unit, if the buffer holds one.
    pub fn next(&mut self) -> Result<Option<Incoming>, String> {
        if !self.skip_preamble() {
            return Ok(None);
        }
        match self.proto {
            Proto::Tidings => self.next_tidings(),
            Proto::Mqtt => self.next_mqtt(),
            Proto::Nats => self.next_nats(),
        }
    }

    /// Drops what is buffered of the server's preamble; whether it is all behind.
    fn skip_preamble(&mut self) -> bool {
        if self.preamble > 0 {
            let n = self.preamble.min(self.buf.len());
            self.buf.advance(n);
            self.preamble -= n;
        }
        self.preamble == 0
    }

    fn next_tidings(&mut self) -> Result<Option<Incoming>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > DEFAULT_MAX_FRAME as usize {
            return Err(format!("a frame of {len} bytes"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[4];
        let body = &self.buf[5..5 + len];
        let unit = match kind {
            frame_type::TEXT => {
                // peer: str8, flags: u8, text: rest
                let skip = 1 + *body.first().ok_or("empty text frame")? as usize + 1;
                let payload = body.get(skip..).ok_or("short text frame")?;
                Incoming::Delivery(self.payload(payload))
            }
            frame_type::ROOM_TEXT => {
                // room: str8, peer: str8, text: rest
                let room = 1 + *body.first().ok_or("empty room-text frame")? as usize;
                let peer = *body.get(room).ok_or("short room-text frame")? as usize;
                let payload = body.get(room + 1 + peer..).ok_or("short room-text frame")?;
                Incoming::Delivery(self.payload(payload))
            }
            frame_type::PING if len == 8 => {
                Incoming::Ping(u64::from_be_bytes(body.try_into().expect("8 bytes")))
            }
            frame_type::REFUSED | frame_type::ERROR | frame_type::GOODBYE => {
                let code = match body {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 0,
                };
                Incoming::Closing(kind, code)
            }
            _ => Incoming::Other,
        };
        self.buf.advance(5 + len);
        Ok(Some(unit))
    }

    fn next_mqtt(&mut self) -> Result<Option<Incoming>, String> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        // Remaining length: up to four 7-bit groups, least significant first.
        let mut len = 0usize;
        let mut at = 1;
        loop {
            let Some(&b) = self.buf.get(at) else {
                return Ok(None);
            };
            len |= ((b & 0x7F) as usize) << (7 * (at - 1));
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            if at > 4 {
                return Err("bad MQTT remaining length".into());
            }
        }
        if self.buf.len() < at + len {
            return Ok(None);
        }
        let kind = self.buf[0] >> 4;
        let body = &self.buf[at..at + len];
        let unit = if kind == 3 {
            let topic = u16::from_be_bytes([body[0], body[1]]) as usize;
            Incoming::Delivery(self.payload(&body[2 + topic..]))
        } else {
            Incoming::Other
        };
        self.buf.advance(at + len);
        Ok(Some(unit))
    }

    fn next_nats(&mut self) -> Result<Option<Incoming>, String> {
        let Some(eol) = memchr::memmem::find(&self.buf, b"\r\n") else {
            if self.buf.len() > NATS_MAX_LINE {
                return Err("a NATS control line over 16 KiB".into());
            }
            return Ok(None);
        };
        let line = &self.buf[..eol];
        if let Some(args) = line.strip_prefix(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>, then the payload and CRLF.
            let size = args
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| f.parse::<usize>().ok())
                .ok_or("a NATS MSG line without a size")?;
            let total = eol + 2 + size + 2;
            if self.buf.len() < total {
                return Ok(None);
            }
            let unit = Incoming::Delivery(self.payload(&self.buf[eol + 2..eol + 2 + size]));
            self.buf.advance(total);
            return Ok(Some(unit));
        }
        let unit = if line == b"PING" {
            Incoming::Ping(0)
        } else if line.starts_with(b"-ERR") {
            Incoming::Closing(b'-', 0)
        } else {
            // INFO, PONG, +OK.
            Incoming::Other
        };
        self.buf.advance(eol + 2);
        Ok(Some(unit))
    }

    fn payload(&self, p: &[u8]) -> Vec<u8> {
        if self.keep_payload {
            p.to_vec()
        } else {
            Vec::new()
        }
    }
}

/// Appends a broadcast of `payload`: to everyone, or to everyone in `room` (a tidings room,
/// an MQTT topic, a NATS subject of that name, joined by the handshake).
pub fn broadcast(proto: Proto, room: Option<&str>, payload: &[u8], out: &mut Vec<u8>) {
    let topic = room.map_or(ALL_TOPIC, str::as_bytes);
    match (proto, room) {
        (Proto::Tidings, None) => text(b"", payload, out),
        (Proto::Tidings, Some(room)) => room_text(room.as_bytes(), payload, out),
        (Proto::Mqtt, _) => publish(topic, payload, out),
        (Proto::Nats, _) => nats_pub(topic, payload, out),
    }
}

/// Appends a message of `payload` to client `to` alone.
pub fn private(proto: Proto, to: usize, payload: &[u8], out: &mut Vec<u8>) {
    let name = client_name(to);
    match proto {
        Proto::Tidings => text(name.as_bytes(), payload, out),
        Proto::Mqtt => publish(name.as_bytes(), payload, out),
        Proto::Nats => nats_pub(name.as_bytes(), payload, out),
    }
}

/// Appends the answer to the server's ping (an [`Incoming::Ping`]).
pub fn pong(proto: Proto, nonce: u64, out: &mut Vec<u8>) {
    match proto {
        Proto::Tidings => frame(frame_type::PONG, &nonce.to_be_bytes(), out),
        // MQTT brokers do not ping their clients.
        Proto::Mqtt => {}
        Proto::Nats => out.extend_from_slice(b"PONG\r\n"),
    }
}

/// Appends the client's own heartbeat: tidings `ping`, MQTT PINGREQ.
pub fn heartbeat(proto: Proto, nonce: u64, out: &mut Vec<u8>) {
    match proto {
        Proto::Tidings => frame(frame_type::PING, &nonce.to_be_bytes(), out),
        Proto::Mqtt => out.extend_from_slice(&[0xC0, 0x00]),
        Proto::Nats => out.extend_from_slice(b"PING\r\n"),
    }
}

fn frame(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

fn text(peer: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    // peer, flags 0, text
    chat_line(frame_type::TEXT, peer, payload, out);
}

fn room_text(room: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    // room, an empty peer (from a client), text: the same bytes as `text`'s shape
    chat_line(frame_type::ROOM_TEXT, room, payload, out);
}

/// A frame of `kind` whose body is `name: str8`, a zero byte, and `payload`.
fn chat_line(kind: u8, name: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    let len = 1 + name.len() + 1 + payload.len();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(payload);
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn str16(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn nats_pub(subject: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    let _ = write!(out, " {}\r\n", payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

fn publish(topic: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x30);
    remaining_length(2 + topic.len() + payload.len(), out);
    str16(topic, out);
    out.extend_from_slice(payload);
}

/// Connects client `i`, completes the handshake (tidings: preamble, hello, welcome; MQTT:
/// CONNECT, CONNACK, SUBSCRIBE to the broadcast topic and the client's own, SUBACK; NATS:
/// CONNECT, SUB to the same two subjects, PING, PONG), and returns the stream with a
/// parser positioned after the handshake.
pub async fn connect(
    proto: Proto,
    addr: &str,
    i: usize,
    keepalive: Duration,
    limit: Duration,
) -> Result<(TcpStream, Parser), String> {
    connect_in(proto, addr, i, None, keepalive, limit).await
}

/// [`connect`], in `room` when given: a tidings client that speaks rooms joins it and
/// leaves the default room; an MQTT or NATS client subscribes to a topic of that name
/// instead of the broadcast topic.
pub async fn connect_in(
    proto: Proto,
    addr: &str,
    i: usize,
    room: Option<&str>,
    keepalive: Duration,
    limit: Duration,
) -> Result<(TcpStream, Parser), String> {
    let connecting = async {
        let stream = tcp(addr, i).await?;
        handshake(proto, stream, i, room, keepalive).await
    };
    tokio::time::timeout(limit, connecting)
        .await
        .map_err(|_| format!("client {i}: handshake took longer than {limit:?}"))?
}

/// Connects `clients` clients one after another (client `i` named for its index), each
/// within `limit`, with a keepalive of a minute.
pub async fn connect_all(
    proto: Proto,
    addr: &str,
    clients: usize,
    limit: Duration,
) -> Result<Vec<(TcpStream, Parser)>, String> {
    connect_range(proto, addr, 0..clients, None, limit).await
}

/// [`connect_all`] for the clients numbered `ids`, in `room` when given ([`connect_in`]);
/// `addr` may list several servers, comma-separated, which client `i` takes in turn.
pub async fn connect_range(
    proto: Proto,
    addr: &str,
    ids: std::ops::Range<usize>,
    room: Option<&str>,
    limit: Duration,
) -> Result<Vec<(TcpStream, Parser)>, String> {
    // Several servers (a cluster's nodes), comma-separated: clients take them in turn.
    let addrs: Vec<&str> = addr.split(',').collect();
    let mut conns = Vec::with_capacity(ids.len());
    for i in ids {
        let keepalive = Duration::from_secs(60);
        let addr = addrs[i % addrs.len()];
        conns.push(connect_in(proto, addr, i, room, keepalive, limit).await?);
    }
    Ok(conns)
}

async fn tcp(addr: &str, i: usize) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("client {i}: connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// [`connect`] over TLS: the server's certificate checked against `tls`'s roots for the
/// name `localhost`, ALPN `tidings/1`.
pub async fn connect_tls(
    proto: Proto,
    tls: &tokio_rustls::TlsConnector,
    addr: &str,
    i: usize,
    keepalive: Duration,
    limit: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Parser), String> {
    let attempt = async {
        let stream = tcp(addr, i).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
        let stream = tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("client {i}: TLS: {e}"))?;
        handshake(proto, stream, i, None, keepalive).await
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| format!("client {i}: handshake took longer than {limit:?}"))?
}

/// A TLS connector trusting the CA in the PEM file `ca`, offering the ALPN protocol `alpn`.
pub fn tls_connector(ca: &str, alpn: &[u8]) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    #[allow(deprecated)] // ring, as the server: see tidings-host's tls module.
    let provider = rustls::crypto::ring::default_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// The protocol's handshake on a connected `stream`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    proto: Proto,
    mut stream: S,
    i: usize,
    room: Option<&str>,
    keepalive: Duration,
) -> Result<(S, Parser), String> {
    let name = client_name(i);
    let topic = room.map_or(ALL_TOPIC, str::as_bytes);
    let mut out = Vec::new();
    // What ends the handshake: a welcome (tidings) or the SUBACK (MQTT).
    let done_kind = match proto {
        Proto::Tidings => {
            out.extend_from_slice(&Preamble::CURRENT.to_bytes());
            let mut hello = BytesMut::new();
            Message::Hello(Hello {
                name: Utf8::from(name.as_str()),
                capabilities: if room.is_some() { capability::ROOMS } else { 0 },
                max_frame: DEFAULT_MAX_FRAME,
            })
            .encode(&mut hello);
            out.extend_from_slice(&hello);
            frame_type::WELCOME
        }
        Proto::Mqtt => {
            let ka = keepalive.as_secs().clamp(1, u16::MAX as u64) as u16;
            out.push(0x10);
            remaining_length(10 + 2 + name.len(), &mut out);
            str16(b"MQTT", &mut out);
            out.push(4); // protocol level 3.1.1
            out.push(0x02); // clean session
            out.extend_from_slice(&ka.to_be_bytes());
            str16(name.as_bytes(), &mut out);
            let own = name.as_bytes();
            out.push(0x82);
            remaining_length(2 + 2 + topic.len() + 1 + 2 + own.len() + 1, &mut out);
            out.extend_from_slice(&1u16.to_be_bytes());
            str16(topic, &mut out);
            out.push(0);
            str16(own, &mut out);
            out.push(0);
            9 // SUBACK
        }
        Proto::Nats => {
            // The PONG answers the PING only after the server processed the SUBs before it,
            // so the client is subscribed when the handshake ends.
            out.extend_from_slice(
                format!(
                    "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"{name}\",\
                     \"lang\":\"rust\",\"version\":\"0\",\"protocol\":1,\"echo\":false}}\r\n\
                     SUB {} 1\r\nSUB {name} 2\r\nPING\r\n",
                    String::from_utf8_lossy(topic)
                )
                .as_bytes(),
            );
            NATS_PONG
        }
    };
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("client {i}: write: {e}"))?;
    let mut parser = Parser::new(proto, true);
    // A tidings client in a room: after `welcome` (and the default room's members) it
    // joins the room and leaves the default room; done with the room's members.
    let (mut done_kind, mut members_left) = (done_kind, 0);
    loop {
        // Peek at the kind of the next unit before the parser consumes it.
        let kind = parser.peek_kind();
        match parser.next()? {
            Some(Incoming::Closing(k, code)) => {
                return Err(format!(
                    "client {i}: the server closed the handshake (frame {k:#x}, code {code})"
                ))
            }
            Some(_) if kind == Some(frame_type::WELCOME) && proto == Proto::Tidings => {
                let Some(room) = room else {
                    return Ok((stream, parser));
                };
                let mut out = BytesMut::new();
                Message::Join { room: room.into() }.encode(&mut out);
                Message::Leave {
                    room: "lobby".into(),
                }
                .encode(&mut out);
                stream
                    .write_all(&out)
                    .await
                    .map_err(|e| format!("client {i}: write: {e}"))?;
                // The default room's, then the room's.
                (done_kind, members_left) = (frame_type::ROOM_MEMBERS, 2);
            }
            Some(_) if kind == Some(frame_type::ROOM_MEMBERS) && members_left > 1 => {
                members_left -= 1;
            }
            Some(_) => {
                if kind == Some(done_kind) {
                    return Ok((stream, parser));
                }
            }
            None => {
                let n = stream
                    .read_buf(parser.buffer())
                    .await
                    .map_err(|e| format!("client {i}: read: {e}"))?;
                if n == 0 {
                    return Err(format!(
                        "client {i}: the server closed during the handshake"
                    ));
                }
            }
        }
    }
}

impl Parser {
    /// The kind of the next unit (tidings frame type or MQTT packet type), when its header
    /// is buffered and the preamble is behind.
    fn peek_kind(&mut self) -> Option<u8> {
        if !self.skip_preamble() {
            return None;
        }
        match self.proto {
            Proto::Tidings => self.buf.get(4).copied(),
            Proto::Mqtt => self.buf.first().map(|b| b >> 4),
            Proto::Nats if self.buf.starts_with(b"PONG\r\n") => Some(NATS_PONG),
            Proto::Nats => self.buf.first().copied(),
        }
    }
}

/// A 64-byte payload carrying `stamp` (nanoseconds) as 16 hex digits: valid UTF-8, the same
/// bytes for both protocols.
pub fn payload(stamp: u64) -> [u8; 64] {
    let mut p = [b'.'; 64];
    let hex = format!("{stamp:016x}");
    p[..16].copy_from_slice(hex.as_bytes());
    p
}

/// The stamp of a [`payload`].
pub fn stamp_of(payload: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(payload.get(..16)?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

impl Parser {
    /// The protocol this parser reads.
    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// Stops copying delivery payloads (counting is all the caller needs).
    pub fn drop_payloads(&mut self) {
        self.keep_payload = false;
    }

    /// Skips the whole `presence` and `member` frames at the front of the buffer in one
    /// pass. Idle clients hear of every join; walking those frames one by one (a length, a
    /// kind and an advance each, 50 million for 10 000 joins) was most of what the load
    /// generator did in the joins row.
    pub fn skip_news(&mut self) {
        if self.proto != Proto::Tidings || !self.skip_preamble() {
            return;
        }
        let buf = &self.buf[..];
        let mut at = 0;
        while let Some(header) = buf.get(at..at + 5) {
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let news = matches!(header[4], frame_type::PRESENCE | frame_type::MEMBER);
            if !news || buf.len() < at + 5 + len {
                break;
            }
            at += 5 + len;
        }
        self.buf.advance(at);
    }

    /// Lets go of the buffer if nothing is left in it. Idle clients call this after each
    /// read: ten thousand of them each keeping the 64 KiB their welcome (or a burst of
    /// presence news) grew it to made the load generator, not the server, the slow side of
    /// the joins row (a third of its time went to the kernel zeroing fresh pages).
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidings_text_round_trips_through_core_and_the_parser() {
        let mut out = Vec::new();
        broadcast(Proto::Tidings, None, &payload(42), &mut out);
        let mut dec = tidings_core::wire::FrameDecoder::new(DEFAULT_MAX_FRAME);
        dec.push(&out);
        let frame = dec.next_frame().unwrap().unwrap();
        match Message::decode(frame).unwrap() {
            Message::Text { peer, text, .. } => {
                assert_eq!(peer.as_str(), "");
                assert_eq!(stamp_of(text.as_str().as_bytes()), Some(42));
            }
            other => panic!("{other:?}"),
        }
        let mut p = Parser::new(Proto::Tidings, true);
        p.buffer().extend_from_slice(&Preamble::CURRENT.to_bytes());
        // One byte at a time: nothing until the frame is whole.
        for (k, b) in out.iter().enumerate() {
            assert_eq!(p.next().unwrap(), None, "at byte {k}");
            p.buffer().extend_from_slice(&[*b]);
        }
        match p.next().unwrap() {
            Some(Incoming::Delivery(d)) => assert_eq!(stamp_of(&d), Some(42)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tidings_room_text_round_trips_through_core_and_the_parser() {
        let mut out = Vec::new();
        broadcast(Proto::Tidings, Some("team"), &payload(9), &mut out);
        let mut dec = tidings_core::wire::FrameDecoder::new(DEFAULT_MAX_FRAME);
        dec.push(&out);
        let frame = dec.next_frame().unwrap().unwrap();
        match Message::decode(frame).unwrap() {
            Message::RoomText { room, peer, text } => {
                assert_eq!((room.as_str(), peer.as_str()), ("team", ""));
                assert_eq!(stamp_of(text.as_str().as_bytes()), Some(9));
            }
            other => panic!("{other:?}"),
        }
        // As the server sends it: with the sender stamped.
        let mut wire = BytesMut::new();
        Message::RoomText {
            room: "team".into(),
            peer: "c7".into(),
            text: Utf8::from(std::str::from_utf8(&payload(9)).unwrap()),
        }
        .encode(&mut wire);
        let mut p = Parser::new(Proto::Tidings, true);
        p.buffer().extend_from_slice(&Preamble::CURRENT.to_bytes());
        p.buffer().extend_from_slice(&wire);
        match p.next().unwrap() {
            Some(Incoming::Delivery(d)) => assert_eq!(stamp_of(&d), Some(9)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mqtt_publish_parses_with_long_remaining_length() {
        let mut out = Vec::new();
        let big = vec![b'x'; 300];
        publish(b"all", &big, &mut out);
        assert_eq!(&out[..3], &[0x30, (305 & 0x7F) as u8 | 0x80, 2]);
        let mut p = Parser::new(Proto::Mqtt, true);
        p.buffer().extend_from_slice(&out[..100]);
        assert_eq!(p.next().unwrap(), None);
        p.buffer().extend_from_slice(&out[100..]);
        assert_eq!(p.next().unwrap(), Some(Incoming::Delivery(big)));
        p.buffer().extend_from_slice(&[0xD0, 0x00]);
        assert_eq!(p.next().unwrap(), Some(Incoming::Other));
    }

    #[test]
    fn nats_messages_parse_in_pieces_and_pings_are_answered() {
        let mut out = Vec::new();
        broadcast(Proto::Nats, None, &payload(7), &mut out);
        assert!(out.starts_with(b"PUB all 64\r\n"));
        let server = [
            b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n".as_slice(),
            b"MSG all 1 64\r\n",
            &payload(7),
            b"\r\nPING\r\nMSG c3 2 _INBOX.r 3\r\na\r\n\r\n-ERR 'Slow Consumer'\r\n",
        ]
        .concat();
        let mut p = Parser::new(Proto::Nats, true);
        let mut got = Vec::new();
        for b in &server {
            p.buffer().extend_from_slice(&[*b]);
            while let Some(unit) = p.next().unwrap() {
                got.push(unit);
            }
        }
        assert_eq!(
            got,
            [
                Incoming::Other,
                Incoming::Other,
                Incoming::Delivery(payload(7).to_vec()),
                Incoming::Ping(0),
                Incoming::Delivery(b"a\r\n".to_vec()),
                Incoming::Closing(b'-', 0),
            ]
        );
        let mut answer = Vec::new();
        pong(Proto::Nats, 0, &mut answer);
        assert_eq!(answer, b"PONG\r\n");
    }

    #[test]
    fn pings_are_reported_with_their_nonce() {
        let mut out = Vec::new();
        frame(frame_type::PING, &7u64.to_be_bytes(), &mut out);
        let mut p = Parser::new(Proto::Tidings, false);
        p.preamble = 0;
        p.buffer().extend_from_slice(&out);
        assert_eq!(p.next().unwrap(), Some(Incoming::Ping(7)));
    }
}
