//! Frame headers (RFC 6455 §5.2): parsing with every rule that does not depend on the
//! connection's role or state, and encoding, including the low-level encoder a broadcasting
//! server uses to encode one frame and share it among many connections.

use super::error::WsError;
use super::mask::apply_mask;
use bytes::{Bytes, BytesMut};

/// Longest possible frame header: 2 fixed bytes, an 8-byte length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Longest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The frame opcodes RFC 6455 defines. Reserved opcodes are rejected while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: a further fragment of a text or binary message.
    Continuation = 0x0,
    /// 0x1: the first (or only) frame of a text message.
    Text = 0x1,
    /// 0x2: the first (or only) frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for reserved values.
    pub const fn from_u8(value: u8) -> Option<OpCode> {
        match value {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Close, ping and pong are control frames: at most 125 bytes and never fragmented.
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present on (and only on) client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a frame header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed, and `Ok(Some((header, header_len)))` once
    /// the whole header is present. Rules that need no context are checked as soon as the bytes
    /// carrying them are present (a reserved opcode fails on the first byte): RSV bits must be
    /// clear (no extensions are negotiated), the opcode must be defined, control frames must
    /// have FIN set and at most 125 bytes, the length must use its shortest encoding, and a
    /// 64-bit length must have its top bit clear. Masking and size limits depend on the
    /// connection and are checked by the caller.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, WsError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(WsError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(WsError::FragmentedControl);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let short_len = b1 & 0x7F;
        if opcode.is_control() && usize::from(short_len) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlTooLong(u64::from(short_len)));
        }
        let (payload_len, mut pos) = match short_len {
            126 => {
                let Some(ext) = buf.get(2..4) else {
                    return Ok(None);
                };
                let len = u64::from(u16::from_be_bytes([ext[0], ext[1]]));
                if len < 126 {
                    return Err(WsError::NonMinimalLength);
                }
                (len, 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(ext);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(WsError::LengthOverflow);
                }
                if len <= 0xFFFF {
                    return Err(WsError::NonMinimalLength);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let Some(key) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Appends this header's wire form to `out`.
    ///
    /// `payload_len` must be below 2^63 (any real slice length is).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut head = [0u8; MAX_HEADER_LEN];
        head[0] = (u8::from(self.fin) << 7) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload_len;
        let mut n = if len < 126 {
            head[1] = mask_bit | len as u8;
            2
        } else if len <= 0xFFFF {
            head[1] = mask_bit | 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            head[1] = mask_bit | 127;
            head[2..10].copy_from_slice(&len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            head[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        out.extend_from_slice(&head[..n]);
    }

    /// Number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }
}

/// Appends a frame header to `out`; the payload (masked with `mask`, if given) must follow.
///
/// This is the low-level encoder for callers that write the payload themselves, e.g. from a
/// buffer they already own.
pub fn encode_frame_header(
    out: &mut BytesMut,
    fin: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) {
    FrameHeader {
        fin,
        opcode,
        mask,
        payload_len: payload_len as u64,
    }
    .encode(out);
}

/// Appends a complete frame with FIN set: header, then `payload` masked with `mask` if given.
///
/// The caller is responsible for the rules the parser enforces (control payloads ≤ 125 bytes)
/// and for masking by role: clients mask every frame with a fresh key, servers never mask.
pub fn encode_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    encode_frame_header(out, true, opcode, payload.len(), mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// Encodes one unmasked, unfragmented server frame as shareable bytes.
///
/// Server frames carry no mask, so a server that sends the same message to many clients encodes
/// it once and queues the same [`Bytes`] on each connection with
/// [`WsConnection::send_encoded`](super::WsConnection::send_encoded): one allocation and one copy
/// for the whole fan-out.
///
/// ```
/// use tidings_core::ws::{server_frame, OpCode};
/// let frame = server_frame(OpCode::Text, b"hi");
/// assert_eq!(&frame[..], &[0x81, 0x02, b'h', b'i']);
/// ```
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
    encode_frame(&mut out, opcode, payload, None);
    out.freeze()
}
