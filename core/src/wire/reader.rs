//! A cursor over one frame body that splits fields off as zero-copy `Bytes`.

use bytes::{Buf, Bytes};

use super::utf8::INLINE_MAX;
use super::Utf8;
use crate::{ErrorCode, ProtocolError};

const SHORT: ProtocolError = ProtocolError::new(ErrorCode::Malformed, "frame body ends early");

/// Reads big-endian fields from a frame body; every read checks the remaining length first.
pub(crate) struct Reader(Bytes);

impl Reader {
    pub(crate) fn new(body: Bytes) -> Self {
        Reader(body)
    }

    fn need(&self, n: usize) -> Result<(), ProtocolError> {
        if self.0.len() < n {
            Err(SHORT)
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        self.need(2)?;
        Ok(self.0.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.need(4)?;
        Ok(self.0.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.need(8)?;
        Ok(self.0.get_u64())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        self.need(N)?;
        let mut out = [0; N];
        self.0.copy_to_slice(&mut out);
        Ok(out)
    }

    /// A string of `n` bytes. A short one (a peer name) is copied out inline instead of
    /// split off as `Bytes`: that saves an atomic reference-count increment now and a
    /// decrement when the message is dropped, the largest cost of decoding a small frame.
    #[inline]
    pub(crate) fn str_n(&mut self, n: usize) -> Result<Utf8, ProtocolError> {
        self.need(n)?;
        if n <= INLINE_MAX {
            let s = Utf8::copy_short(&self.0, n)?;
            self.0.advance(n);
            Ok(s)
        } else {
            Utf8::try_from(self.0.split_to(n))
        }
    }

    /// A string with a one-byte length prefix.
    pub(crate) fn str8(&mut self) -> Result<Utf8, ProtocolError> {
        let n = self.u8()? as usize;
        self.str_n(n)
    }

    /// A string with a two-byte length prefix.
    pub(crate) fn str16(&mut self) -> Result<Utf8, ProtocolError> {
        let n = self.u16()? as usize;
        self.str_n(n)
    }

    /// The next `n` bytes, zero-copy.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, ProtocolError> {
        self.need(n)?;
        Ok(self.0.split_to(n))
    }

    /// The rest of the body as raw bytes.
    pub(crate) fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.0)
    }

    /// The rest of the body as text.
    pub(crate) fn rest_str(&mut self) -> Result<Utf8, ProtocolError> {
        Utf8::try_from(self.rest())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.0.len()
    }

    /// Fails unless the whole body was consumed: trailing bytes are malformed.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::new(
                ErrorCode::Malformed,
                "trailing bytes after the last field",
            ))
        }
    }
}
