//! Helpers shared by the `ws_*` integration tests: a raw frame builder that can also build
//! frames the encoder refuses to, a three-way feeder (whole, byte by byte, random splits), and
//! a decoder for what a connection transmitted.

use std::sync::OnceLock;
use std::time::Instant;

use super::Rng;
use tidings_core::ws::{apply_mask, FrameHeader, OpCode, WsConfig, WsConnection, WsEvent, WsState};

/// The one instant these tests feed as `now`: nothing here depends on time passing.
pub fn now() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The masking key used for frames the tests send as a client.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A raw frame: first byte given whole (FIN, RSV, opcode), minimal length, optional mask.
pub fn raw_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let body = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        debug_assert_eq!(body - start, 4);
        apply_mask(&mut out[body..], key, 0);
    }
    out
}

/// A masked client frame (what a server receives).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame((u8::from(fin) << 7) | opcode, payload, Some(MASK))
}

/// An unmasked server frame (what a client receives).
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame((u8::from(fin) << 7) | opcode, payload, None)
}

/// A close payload.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// How input is cut before it is fed.
#[derive(Debug, Clone, Copy)]
pub enum Split {
    Whole,
    Bytewise,
    Random(u64),
}

pub const SPLITS: [Split; 5] = [
    Split::Whole,
    Split::Bytewise,
    Split::Random(1),
    Split::Random(0xdead_beef),
    Split::Random(42),
];

/// Cuts `input` into chunks according to `split`.
pub fn chunks(input: &[u8], split: Split) -> Vec<&[u8]> {
    match split {
        Split::Whole => vec![input],
        Split::Bytewise => input.chunks(1).collect(),
        Split::Random(seed) => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len().min(40) as u64) as usize;
                let (a, b) = rest.split_at(n);
                out.push(a);
                rest = b;
            }
            out
        }
    }
}

/// A frame the connection transmitted, decoded (and unmasked if it was masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub fin: bool,
    pub opcode: OpCode,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Decodes a stream of frames written by a connection.
pub fn decode_sent(mut bytes: &[u8]) -> Vec<Sent> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = FrameHeader::parse(bytes)
            .expect("our own output parses")
            .expect("our own output is whole frames");
        let end = len + header.payload_len as usize;
        let mut payload = bytes[len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        out.push(Sent {
            fin: header.fin,
            opcode: header.opcode,
            masked: header.mask.is_some(),
            payload,
        });
        bytes = &bytes[end..];
    }
    out
}

/// Everything transmitted so far, concatenated.
pub fn drain_transmit(conn: &mut WsConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = conn.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

/// What feeding some input produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<WsEvent>,
    pub sent: Vec<Sent>,
    pub state: WsState,
}

/// Default settings but for the message and frame limits.
pub fn limits(max_message_size: usize, max_frame_size: usize) -> WsConfig {
    WsConfig {
        max_message_size,
        max_frame_size,
        ..WsConfig::default()
    }
}

/// A server connection with a fixed, deterministic mask source for clients.
pub fn connection(server: bool, config: WsConfig) -> WsConnection {
    if server {
        WsConnection::server(config)
    } else {
        let mut rng = Rng::new(0x1234_5678);
        WsConnection::client(config, move || (rng.next() as u32).to_le_bytes())
    }
}

/// Feeds `input` cut by `split`, draining events after every chunk (as a driver does).
pub fn feed(server: bool, config: WsConfig, input: &[u8], split: Split) -> Outcome {
    let mut conn = connection(server, config);
    let mut events = Vec::new();
    for chunk in chunks(input, split) {
        conn.handle_input(now(), chunk);
        while let Some(event) = conn.poll_event() {
            events.push(event);
        }
    }
    let sent = decode_sent(&drain_transmit(&mut conn));
    Outcome {
        events,
        sent,
        state: conn.state(),
    }
}

/// Feeds `input` whole, byte by byte and at random split points; asserts all agree.
pub fn feed_all_ways(server: bool, config: WsConfig, input: &[u8]) -> Outcome {
    let whole = feed(server, config, input, Split::Whole);
    for split in SPLITS {
        let other = feed(server, config, input, split);
        assert_eq!(other, whole, "outcome differs when fed {split:?}");
    }
    whole
}
