//! Frames (spec §4): a 4-byte big-endian body length, a 1-byte type, then the body.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      body length (u32, BE)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     type      |          body (length bytes) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{ErrorCode, ProtocolError};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 5;
/// The frame body size every receiver accepts unless it announced a larger one (1 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;
/// The smallest limit a receiver may announce: the default, so that handshakes and peer lists
/// always fit.
pub const MIN_MAX_FRAME: u32 = DEFAULT_MAX_FRAME;
/// The largest limit a receiver may announce (16 MiB).
pub const MAX_FRAME_CEILING: u32 = 16 << 20;

/// One frame as it came off the wire: its type and its body, split zero-copy from the receive
/// buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte.
    pub kind: u8,
    /// The body.
    pub body: Bytes,
}

/// Writes a frame header for a body of `body_len` bytes.
pub fn encode_header(kind: u8, body_len: usize, out: &mut BytesMut) {
    debug_assert!(body_len <= u32::MAX as usize);
    out.put_u32(body_len as u32);
    out.put_u8(kind);
}

/// Reassembles frames from a byte stream delivered in arbitrary pieces.
///
/// The buffer grows only as bytes arrive and never by what a peer declares: a header whose
/// length exceeds the limit is rejected as soon as its four length bytes are in, before any
/// of the body is stored. After [`FrameDecoder::next_frame`] has returned `Ok(None)`, the
/// decoder holds less than one whole frame (`max_frame + HEADER_LEN` bytes at most).
///
/// ```
/// use bytes::BytesMut;
/// use tidings_core::wire::{FrameDecoder, Message, DEFAULT_MAX_FRAME};
///
/// let mut wire = BytesMut::new();
/// Message::Ping { nonce: 7 }.encode(&mut wire);
/// let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
/// for byte in wire.chunks(1) {
///     dec.push(byte);
/// }
/// let frame = dec.next_frame().unwrap().unwrap();
/// assert_eq!(Message::decode(frame).unwrap(), Message::Ping { nonce: 7 });
/// assert_eq!(dec.next_frame(), Ok(None));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: u32,
}

impl FrameDecoder {
    /// A decoder that accepts bodies of up to `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// The body size limit.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Changes the body size limit (after the handshake announced one).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Appends received bytes (a copy; [`FrameDecoder::read_buf`] lets a driver read into the
    /// buffer instead).
    pub fn push(&mut self, bytes: &[u8]) {
        self.read_buf(bytes.len()).extend_from_slice(bytes);
    }

    /// The receive buffer, with room for at least `at_least` more bytes: a driver reads the
    /// socket straight into its spare capacity (e.g. `BufMut::chunk_mut` and
    /// `BufMut::advance_mut`), so each received byte is copied once, by the kernel, and the
    /// frames split off it are slices of that same memory.
    ///
    /// Append only received bytes, and never remove any (the frames already returned were
    /// split off; what is left is the start of the next one). `at_least` is the driver's read
    /// size, not anything a peer declared, so the growth stays bounded by received bytes: the
    /// same policy as [`FrameDecoder::push`]. Call [`FrameDecoder::next_frame`] afterwards.
    pub fn read_buf(&mut self, at_least: usize) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < at_least {
            self.grow(at_least);
        }
        &mut self.buf
    }

    /// Makes room for `incoming` more bytes when the buffer is full.
    ///
    /// Room for exactly `incoming` would move a large partial frame (the tail of the last
    /// read) to the front of the buffer, or into a new one, on nearly every read once frames
    /// are about as large as reads: a second copy of most of the stream (~60 % more CPU time
    /// than the copy alone for 64 KiB frames in 64 KiB reads that do not line up with them).
    /// Reserving as much again as is held makes that move happen once per several reads.
    /// The growth is bounded by bytes received (at most twice what is held plus the read),
    /// never by a declared length.
    #[cold]
    fn grow(&mut self, incoming: usize) {
        let held = self.buf.len();
        self.buf.reserve(incoming + held.max(incoming));
    }

    /// Lets go of the receive buffer if it holds nothing, for a quiet connection: otherwise
    /// its spare room, and the allocation the frames were split off (as long as any of them
    /// lives), stay for as long as the connection does.
    pub fn release_spare(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// The bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Removes and returns the first `n` buffered bytes (for the preamble, which precedes
    /// framing). Returns `None` while fewer are buffered.
    pub fn take_prefix(&mut self, n: usize) -> Option<Bytes> {
        (self.buf.len() >= n).then(|| self.buf.split_to(n).freeze())
    }

    /// The buffered bytes, unconsumed.
    pub fn peek(&self) -> &[u8] {
        &self.buf
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the error for a header that
    /// breaks the limit. After an error the stream is unusable and the caller must close.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len > self.max_frame {
            return Err(ProtocolError::new(
                ErrorCode::FrameTooLarge,
                "declared frame length exceeds the limit",
            ));
        }
        let total = HEADER_LEN + len as usize;
        if self.buf.len() < total {
            // No reservation by the declared length: five bytes from a peer must not make
            // us allocate up to the frame limit. The buffer grows as the body arrives.
            return Ok(None);
        }
        let kind = self.buf[4];
        // Split the whole frame and skip the header on the `Bytes`, a pointer bump, rather
        // than advancing the `BytesMut` first, which is an out-of-line call per frame.
        let mut body = self.buf.split_to(total).freeze();
        body.advance(HEADER_LEN);
        Ok(Some(Frame { kind, body }))
    }

    /// Called at end of stream: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::new(
                ErrorCode::Truncated,
                "stream ended inside a frame",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `count` frames of `body` bytes each.
    fn stream(body: usize, count: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for i in 0..count {
            encode_header(0x43, body, &mut out);
            out.extend(std::iter::repeat_n(i as u8, body));
        }
        out.to_vec()
    }

    /// Feeds `wire` in `read`-byte pieces; returns how many pushes moved a held partial frame
    /// (its first byte changed address) and the largest capacity seen.
    fn feed(wire: &[u8], read: usize, count: usize) -> (usize, usize) {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let (mut moves, mut most, mut frames) = (0, 0, 0);
        for piece in wire.chunks(read) {
            let before = (!dec.buf.is_empty()).then(|| dec.buf.as_ptr());
            dec.push(piece);
            if before.is_some_and(|p| p != dec.buf.as_ptr()) {
                moves += 1;
            }
            most = most.max(dec.buf.capacity());
            while let Some(frame) = dec.next_frame().unwrap() {
                assert_eq!(frame.body[0], frames as u8);
                frames += 1;
            }
        }
        assert_eq!(frames, count);
        (moves, most)
    }

    #[test]
    fn release_spare_lets_go_only_of_an_empty_buffer() {
        let wire = stream(10, 2);
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        // A frame and a half: the half must survive a release.
        dec.push(&wire[..wire.len() - 5]);
        let first = dec.next_frame().unwrap().unwrap();
        dec.release_spare();
        assert!(dec.buf.capacity() > 0);
        dec.push(&wire[wire.len() - 5..]);
        let second = dec.next_frame().unwrap().unwrap();
        assert_eq!((first.body[0], second.body[0]), (0, 1));
        // Nothing held: the allocation goes, though a frame split off it still lives.
        dec.release_spare();
        assert_eq!(dec.buf.capacity(), 0);
        assert_eq!(second.body.len(), 10);
        dec.push(&wire[..5]);
        assert_eq!(dec.buffered(), 5);
    }

    #[test]
    fn large_partial_frames_are_not_moved_on_every_read() {
        let read = 64 << 10;
        // 64 KiB bodies: every read ends inside a frame.
        let (moves, most) = feed(&stream(read, 64), read, 64);
        assert!(moves <= 64 / 2, "{moves} of 64 reads moved a partial frame");
        // Bounded by what is held and arriving, never by declared lengths.
        assert!(most <= 4 * (read + HEADER_LEN + read), "capacity {most}");
    }

    /// Reads `wire` into [`FrameDecoder::read_buf`] the way a runtime does (each read at
    /// most the spare room, at least `read` offered) with read sizes from `sizes`, cycling.
    fn read_into(wire: &[u8], read: usize, sizes: &[usize], max_frame: u32) -> Vec<Frame> {
        let mut dec = FrameDecoder::new(max_frame);
        let (mut frames, mut at, mut i) = (Vec::new(), 0, 0);
        while at < wire.len() {
            let buf = dec.read_buf(read);
            assert!(buf.capacity() - buf.len() >= read);
            let n = sizes[i % sizes.len()].min(read).min(wire.len() - at);
            i += 1;
            buf.put_slice(&wire[at..at + n]);
            at += n;
            while let Some(frame) = dec.next_frame().unwrap() {
                frames.push(frame);
            }
            // Less than one whole frame is left: the buffer never holds more than one frame
            // plus one read, whatever the frames declare.
            assert!(
                dec.buffered() < max_frame as usize + HEADER_LEN,
                "{}",
                dec.buffered()
            );
        }
        dec.finish().unwrap();
        frames
    }

    #[test]
    fn reads_into_the_buffer_give_the_same_frames_for_any_split() {
        // Frames of assorted sizes, up to the limit.
        let max = 1 << 16;
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for (i, len) in [0, 1, 7, 5000, max, 3, 65535, 12, max, 0, 40000]
            .iter()
            .enumerate()
        {
            let body: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
            encode_header(i as u8, *len, &mut wire);
            wire.put_slice(&body);
            want.push(Frame {
                kind: i as u8,
                body: Bytes::from(body),
            });
        }
        let splits: [&[usize]; 6] = [
            &[1],
            &[4, 1, 5],
            &[HEADER_LEN + 1, 3],
            &[64 << 10],
            &[1000, 70000, 17, 65537],
            &[(64 << 10) - 1, 2],
        ];
        for sizes in splits {
            for read in [64 << 10, 4096, 1] {
                let got = read_into(&wire, read, sizes, max as u32);
                assert_eq!(got, want, "sizes {sizes:?} read {read}");
            }
        }
    }

    #[test]
    fn a_declared_length_alone_does_not_grow_the_buffer() {
        let mut dec = FrameDecoder::new(MAX_FRAME_CEILING);
        let mut header = BytesMut::new();
        encode_header(0x43, MAX_FRAME_CEILING as usize, &mut header);
        dec.push(&header);
        dec.push(&[0; 100]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(dec.buf.capacity() < 4096, "capacity {}", dec.buf.capacity());
    }
}
