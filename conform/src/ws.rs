//! A small WebSocket client (RFC 6455, client side): the opening handshake, masked frames
//! out (never fragmented), messages in (fragments joined, bounded), pings answered.

use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// The largest response head the handshake reads.
const MAX_HEAD: usize = 16 << 10;
/// The subprotocol of the tidings carriage (§12.1).
pub const SUBPROTOCOL: &str = "tidings.v1";

/// A WebSocket opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A text message.
    Text = 1,
    /// A binary message.
    Binary = 2,
    /// A close frame.
    Close = 8,
    /// A ping.
    Ping = 9,
    /// A pong.
    Pong = 10,
}

/// What arrived on a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message.
    Text(Vec<u8>),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A close frame: its code (1005 when none) and reason.
    Close(u16, String),
}

/// The opening handshake's request for `path` on `host` (RFC 6455 §4.1), with the key it
/// sent and so the accept value the server must answer with.
pub fn request(host: &str, path: &str, nonce: [u8; 16]) -> (Vec<u8>, String) {
    let key = BASE64.encode(nonce);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    );
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    (head.into_bytes(), BASE64.encode(sha.finalize()))
}

/// Reads the response head byte by byte (nothing of the first frame is read with it) and
/// checks it: `101`, the upgrade, the accept value and the subprotocol (§12.1).
pub fn check_response(stream: &mut impl Read, accept: &str) -> Result<(), String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(format!(
                "the handshake response is longer than {MAX_HEAD} bytes"
            ));
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err("the server closed during the WebSocket handshake".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("the WebSocket handshake: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("the WebSocket handshake was answered {status:?}"));
    }
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    if header("Sec-WebSocket-Accept").as_deref() != Some(accept) {
        return Err("Sec-WebSocket-Accept does not match the key (RFC 6455 §4.1)".into());
    }
    if header("Sec-WebSocket-Protocol").as_deref() != Some(SUBPROTOCOL) {
        return Err(format!("the server did not choose {SUBPROTOCOL} (§12.1)"));
    }
    Ok(())
}

/// One frame as a client sends it: FIN, `opcode`, masked with `mask` (RFC 6455 §5.3).
pub fn encode(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Cuts the server's bytes into frames and messages, bounded by `limit` bytes a message.
#[derive(Debug)]
pub struct FrameReader {
    limit: usize,
    buf: Vec<u8>,
    /// The opcode and payload of a fragmented message so far.
    partial: Option<(u8, Vec<u8>)>,
}

/// What the next frame asks of the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A message, or the close.
    Incoming(Incoming),
    /// A ping: answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// More bytes are needed.
    Incomplete,
}

impl FrameReader {
    /// A reader that takes messages of at most `limit` bytes.
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            limit,
            buf: Vec::new(),
            partial: None,
        }
    }

    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next thing the frames so far say; `Err` when they break RFC 6455.
    pub fn next_step(&mut self) -> Result<Step, String> {
        loop {
            let Some((fin, opcode, payload)) = self.frame()? else {
                return Ok(Step::Incomplete);
            };
            match opcode {
                0x9 => return Ok(Step::Ping(payload)),
                0xA => continue,
                0x8 => {
                    let code = match payload.get(..2) {
                        Some(c) => u16::from_be_bytes([c[0], c[1]]),
                        None => 1005,
                    };
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                    return Ok(Step::Incoming(Incoming::Close(code, reason.into_owned())));
                }
                0x0..=0x2 => {
                    let (kind, mut whole) = match (opcode, self.partial.take()) {
                        (0x0, Some(partial)) => partial,
                        (0x0, None) => {
                            return Err("a continuation frame with nothing to continue".into())
                        }
                        (_, Some(_)) => return Err("a new message inside a fragmented one".into()),
                        (op, None) => (op, Vec::new()),
                    };
                    whole.extend_from_slice(&payload);
                    if whole.len() > self.limit {
                        return Err(format!("a message longer than {} bytes", self.limit));
                    }
                    if !fin {
                        self.partial = Some((kind, whole));
                        continue;
                    }
                    return Ok(Step::Incoming(match kind {
                        0x1 => Incoming::Text(whole),
                        _ => Incoming::Binary(whole),
                    }));
                }
                op => return Err(format!("opcode {op:#x} is reserved")),
            }
        }
    }

    /// The next whole frame: FIN, opcode, payload.
    fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, String> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x70 != 0 {
            return Err("reserved bits set: no extension was negotiated".into());
        }
        if b[1] & 0x80 != 0 {
            return Err("a masked frame from the server (RFC 6455 §5.1)".into());
        }
        let (len, start) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        // Checked on the header alone: a declared length is never allocated for.
        if len > self.limit as u64 {
            return Err(format!(
                "a frame of {len} bytes, over the limit of {}",
                self.limit
            ));
        }
        let end = start + len as usize;
        if b.len() < end {
            return Ok(None);
        }
        let (fin, opcode) = (b[0] & 0x80 != 0, b[0] & 0x0F);
        let payload = b[start..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((fin, opcode, payload)))
    }
}

/// Writes a whole client frame.
pub fn send(
    stream: &mut impl Write,
    opcode: Opcode,
    payload: &[u8],
    mask: [u8; 4],
) -> io::Result<()> {
    stream.write_all(&encode(opcode, payload, mask))?;
    stream.flush()
}
