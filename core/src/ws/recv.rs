//! The receive path: frames out of a byte stream, messages out of frames.
//!
//! Payload bytes are unmasked (and, for text, validated) in place in the receive buffer as they
//! arrive, so an invalid text fails at its first bad byte and no byte is processed twice. A
//! complete unfragmented payload is then split off the buffer as [`Bytes`] without copying;
//! fragmented messages are the one case that copies, into a buffer that grows fragment by
//! fragment.

use super::close::{parse_close_payload, CloseCode};
use super::error::WsError;
use super::frame::{FrameHeader, OpCode};
use super::mask::apply_mask;
use super::utf8::{Utf8Bytes, Utf8Validator};
use bytes::{Buf, Bytes, BytesMut};

/// After a payload at least this large, an emptied buffer is dropped rather than kept.
const RELEASE_ABOVE: usize = 1 << 20;

/// A complete message or control frame.
#[derive(Debug)]
pub(crate) enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(CloseCode, Utf8Bytes),
}

/// The frame whose header has been parsed and whose payload is (partly) at the front of `rx`.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes at `rx[..done]` already unmasked and validated.
    done: usize,
    /// Text payload: feed it to the UTF-8 validator.
    text: bool,
}

/// Decoder state for one direction of a connection.
#[derive(Debug)]
pub(crate) struct Receiver {
    rx: BytesMut,
    frame: Option<InFrame>,
    /// Kind of the fragmented message in progress (Text or Binary), if any.
    fragmented: Option<OpCode>,
    /// Fragments received so far of that message.
    assembled: BytesMut,
    utf8: Utf8Validator,
    /// Server role: every frame must be masked; client role: none may be.
    expect_masked: bool,
    max_frame: usize,
    max_message: usize,
}

impl Receiver {
    pub(crate) fn new(expect_masked: bool, max_frame: usize, max_message: usize) -> Self {
        Receiver {
            rx: BytesMut::new(),
            frame: None,
            fragmented: None,
            assembled: BytesMut::new(),
            utf8: Utf8Validator::new(),
            expect_masked,
            max_frame,
            max_message,
        }
    }

    /// Appends received bytes. The buffer grows only by what actually arrives.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.rx.extend_from_slice(data);
    }

    /// Bytes held: undecoded input plus the fragments of an unfinished message.
    pub(crate) fn buffered(&self) -> usize {
        self.rx.len() + self.assembled.len()
    }

    /// Drops all buffered input and its memory (after close or failure nothing more is read).
    pub(crate) fn discard(&mut self) {
        self.rx = BytesMut::new();
        self.assembled = BytesMut::new();
        self.frame = None;
        self.fragmented = None;
    }

    /// Decodes the next complete message or control frame, or `Ok(None)` if more input is
    /// needed. Partial payloads are unmasked and validated before returning `None`.
    pub(crate) fn next(&mut self) -> Result<Option<Incoming>, WsError> {
        loop {
            let mut frame = match self.frame {
                Some(frame) => frame,
                None => match FrameHeader::parse(&self.rx)? {
                    None => {
                        // The mask bit is in the second byte: no need to wait for the rest.
                        if let Some(&b1) = self.rx.get(1) {
                            self.check_mask_bit(b1 & 0x80 != 0)?;
                        }
                        return Ok(None);
                    }
                    Some((header, header_len)) => {
                        let frame = self.start_frame(&header)?;
                        self.rx.advance(header_len);
                        self.make_room(frame.len);
                        frame
                    }
                },
            };

            let avail = self.rx.len().min(frame.len);
            if avail > frame.done {
                let fresh = &mut self.rx[frame.done..avail];
                if let Some(key) = frame.mask {
                    apply_mask(fresh, key, frame.done);
                }
                if frame.text && self.utf8.feed(fresh).is_err() {
                    return Err(WsError::InvalidUtf8);
                }
                frame.done = avail;
            }
            if frame.done < frame.len {
                self.frame = Some(frame);
                return Ok(None);
            }
            self.frame = None;
            let payload = if frame.len == 0 {
                Bytes::new()
            } else {
                self.rx.split_to(frame.len).freeze()
            };
            if frame.len >= RELEASE_ABOVE && self.rx.is_empty() {
                // Let the big allocation go with the payload instead of keeping it for an
                // idle connection: the next read starts a right-sized buffer.
                self.rx = BytesMut::new();
            }
            if let Some(incoming) = self.finish_frame(&frame, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// Makes the buffer's free space follow the current payload, if that costs no allocation.
    ///
    /// Payloads are split off the front of `rx`, so its free space shrinks until the buffer
    /// has to compact, moving the partial frame at its front. Doing that now, when only the
    /// first bytes of the payload are here, moves little; doing it when the buffer runs out
    /// mid-payload would move up to a whole frame. `try_reclaim` only reuses the existing
    /// allocation (when no payload handed out still shares it), so buffers still grow only
    /// as bytes arrive.
    fn make_room(&mut self, payload_len: usize) {
        if payload_len > self.rx.capacity() {
            let _ = self.rx.try_reclaim(payload_len - self.rx.len());
        }
    }

    /// Applies the rules that depend on role, message state and limits, before any payload
    /// byte is buffered for this frame.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<InFrame, WsError> {
        self.check_mask_bit(header.mask.is_some())?;
        if header.payload_len > self.max_frame as u64 {
            return Err(WsError::FrameTooLarge {
                len: header.payload_len,
                limit: self.max_frame,
            });
        }
        // Fits in usize: it is below a usize limit.
        let len = header.payload_len as usize;
        let text = match header.opcode {
            OpCode::Continuation => {
                let Some(kind) = self.fragmented else {
                    return Err(WsError::UnexpectedContinuation);
                };
                self.check_message_len(self.assembled.len() as u64 + header.payload_len)?;
                kind == OpCode::Text
            }
            OpCode::Text | OpCode::Binary => {
                if self.fragmented.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                self.check_message_len(header.payload_len)?;
                if header.opcode == OpCode::Text {
                    self.utf8.reset();
                }
                header.opcode == OpCode::Text
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => false,
        };
        Ok(InFrame {
            fin: header.fin,
            opcode: header.opcode,
            mask: header.mask,
            len,
            done: 0,
            text,
        })
    }

    fn check_mask_bit(&self, masked: bool) -> Result<(), WsError> {
        match (masked, self.expect_masked) {
            (false, true) => Err(WsError::UnmaskedFrame),
            (true, false) => Err(WsError::MaskedFrame),
            _ => Ok(()),
        }
    }

    fn check_message_len(&self, len: u64) -> Result<(), WsError> {
        if len > self.max_message as u64 {
            return Err(WsError::MessageTooLarge {
                len,
                limit: self.max_message,
            });
        }
        Ok(())
    }

    /// Turns a complete frame into a message, or buffers it as a fragment (`Ok(None)`).
    fn finish_frame(
        &mut self,
        frame: &InFrame,
        payload: Bytes,
    ) -> Result<Option<Incoming>, WsError> {
        let kind = match frame.opcode {
            OpCode::Ping => return Ok(Some(Incoming::Ping(payload))),
            OpCode::Pong => return Ok(Some(Incoming::Pong(payload))),
            OpCode::Close => {
                let (code, reason) = parse_close_payload(payload)?;
                return Ok(Some(Incoming::Close(code, reason)));
            }
            OpCode::Text | OpCode::Binary if frame.fin => {
                return self.complete_message(frame.opcode, payload).map(Some);
            }
            OpCode::Text | OpCode::Binary => {
                self.fragmented = Some(frame.opcode);
                frame.opcode
            }
            OpCode::Continuation => match self.fragmented {
                Some(kind) => kind,
                None => return Err(WsError::UnexpectedContinuation),
            },
        };
        self.assembled.extend_from_slice(&payload);
        if !frame.fin {
            return Ok(None);
        }
        self.fragmented = None;
        let message = if self.assembled.len() >= RELEASE_ABOVE {
            core::mem::take(&mut self.assembled).freeze()
        } else {
            self.assembled.split().freeze()
        };
        self.complete_message(kind, message).map(Some)
    }

    fn complete_message(&mut self, kind: OpCode, payload: Bytes) -> Result<Incoming, WsError> {
        if kind == OpCode::Text {
            self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
            Ok(Incoming::Text(Utf8Bytes::from_validated(payload)))
        } else {
            Ok(Incoming::Binary(payload))
        }
    }
}
