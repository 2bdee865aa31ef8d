//! Validated UTF-8 text: short strings stored inline, longer ones as zero-copy `Bytes`.

use bytes::Bytes;
use core::cmp::Ordering;
use core::hash::{Hash, Hasher};

use crate::{ErrorCode, ProtocolError};

/// The longest string stored inline, in bytes: what fits beside the tag in the space of a
/// [`Bytes`], so that a `Utf8` is no larger than the `Bytes` it replaces.
pub(crate) const INLINE_MAX: usize = 23;

const INVALID: ProtocolError =
    ProtocolError::new(ErrorCode::InvalidUtf8, "text field is not valid UTF-8");

/// Validated UTF-8 text.
///
/// Strings of up to 23 bytes (peer names, short media types) are stored inline: decoding one
/// copies a few bytes instead of splitting a reference-counted [`Bytes`] off the receive
/// buffer (an atomic increment now and a decrement on drop), cloning one is a plain copy, and
/// a short name kept for the life of a connection does not pin the receive buffer it arrived
/// in. Longer strings are [`Bytes`] split from the receive buffer without copying.
///
/// Equality, ordering and hashing are those of the text, whichever way it is stored.
///
/// ```
/// use tidings_core::wire::Utf8;
/// let t = Utf8::from("héllo");
/// assert_eq!(t.as_str(), "héllo");
/// assert!(Utf8::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
///
/// // A long string keeps sharing the `Bytes` it was made from.
/// let long = bytes::Bytes::from(vec![b'a'; 100]);
/// let t = Utf8::try_from(long.clone()).unwrap();
/// assert_eq!(t.to_bytes().as_ptr(), long.as_ptr());
/// ```
#[derive(Clone)]
pub struct Utf8(Repr);

#[derive(Clone)]
enum Repr {
    /// Short text, see [`Inline`].
    Inline(Inline),
    /// Longer text (or a `'static` literal), shared.
    Shared(Bytes),
}

/// Up to [`INLINE_MAX`] bytes of text in three machine words; the last byte of the 24 holds
/// the length. Words rather than a byte array so that filling one from a receive buffer is
/// three word loads and stores, with no byte-wise assembly the CPU would stall on.
#[derive(Clone, Copy)]
struct Inline([u64; 3]);

/// Byte 23 of the words (the last one in memory) is the length.
const LEN_SHIFT: u32 = if cfg!(target_endian = "little") {
    56
} else {
    0
};

impl Inline {
    const EMPTY: Inline = Inline([0; 3]);

    /// From 24 bytes whose first `n` are the text (`n <= INLINE_MAX`).
    #[inline]
    fn from_24(bytes: &[u8; 24], n: usize) -> Self {
        debug_assert!(n <= INLINE_MAX);
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        let last = (word(2) & !(0xFF << LEN_SHIFT)) | ((n as u64) << LEN_SHIFT);
        Inline([word(0), word(1), last])
    }

    /// From a short slice (`bytes.len() <= INLINE_MAX`), zero-padded.
    fn from_short(bytes: &[u8]) -> Self {
        let mut all = [0; 24];
        all[..bytes.len()].copy_from_slice(bytes);
        Self::from_24(&all, bytes.len())
    }

    #[inline]
    fn len(&self) -> usize {
        (self.0[2] >> LEN_SHIFT) as u8 as usize
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the three words are 24 initialised bytes, any of them a valid `u8`, and
        // `len() <= INLINE_MAX < 24`.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.len()) }
    }
}

impl Utf8 {
    /// The empty string.
    pub const EMPTY: Utf8 = Utf8(Repr::Inline(Inline::EMPTY));

    /// A string from a `'static` literal, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8(Repr::Shared(Bytes::from_static(s.as_bytes())))
    }

    /// Copies `bytes`, known to be valid UTF-8 and at most [`INLINE_MAX`] long, inline.
    fn inline_unchecked(bytes: &[u8]) -> Self {
        debug_assert!(bytes.len() <= INLINE_MAX);
        Utf8(Repr::Inline(Inline::from_short(bytes)))
    }

    /// Validates and copies a short string, the first `n` bytes of `src` (`n` at most
    /// [`INLINE_MAX`], `src` at least `n` long), out of a receive buffer: no reference count
    /// is touched.
    ///
    /// When `src` holds at least 24 bytes, the first 24 are copied as three words rather than
    /// `n` bytes through a `memcpy` call (which also stalled the reads that followed: a wide
    /// load from bytes just written by narrow stores cannot be forwarded). The bytes past `n`
    /// are then whatever followed in `src` and are never read: every accessor stops at the
    /// length.
    #[inline]
    pub(crate) fn copy_short(src: &[u8], n: usize) -> Result<Self, ProtocolError> {
        debug_assert!(n <= INLINE_MAX && n <= src.len());
        if !is_utf8(&src[..n]) {
            return Err(INVALID);
        }
        let inline = match src.first_chunk::<24>() {
            Some(all) => Inline::from_24(all, n),
            None => copy_tail(&src[..n]),
        };
        Ok(Utf8(Repr::Inline(inline)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates or starts from a `str`.
        unsafe { core::str::from_utf8_unchecked(self.as_bytes()) }
    }

    /// The UTF-8 bytes of the text.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(i) => i.as_bytes(),
            Repr::Shared(b) => b,
        }
    }

    /// The text as [`Bytes`]: shared without copying when the string is backed by `Bytes`,
    /// copied when it is stored inline (23 bytes at most).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline(_) => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared(b) => b.clone(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(i) => i.len(),
            Repr::Shared(b) => b.len(),
        }
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A string from a source too short for the word-wise copy (a string at the very end of a
/// frame body). Kept out of line so that the compiler does not merge it with the word-wise
/// path into one variable-length `memcpy`.
#[cold]
#[inline(never)]
fn copy_tail(text: &[u8]) -> Inline {
    Inline::from_short(text)
}

/// Whether `b` is valid UTF-8, with a fast path for ASCII, which chat text and names nearly
/// always are: `is_ascii` checks a word at a time, where `from_utf8` walks short inputs
/// byte by byte.
#[inline]
pub(crate) fn is_utf8(b: &[u8]) -> bool {
    b.is_ascii() || core::str::from_utf8(b).is_ok()
}

impl TryFrom<Bytes> for Utf8 {
    type Error = ProtocolError;

    /// Validates `b`. Up to 23 bytes are copied inline (releasing `b`); longer text keeps
    /// sharing `b`.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::InvalidUtf8`] if `b` is not valid UTF-8.
    fn try_from(b: Bytes) -> Result<Self, ProtocolError> {
        if b.len() <= INLINE_MAX {
            return Self::copy_short(&b, b.len());
        }
        if is_utf8(&b) {
            Ok(Utf8(Repr::Shared(b)))
        } else {
            Err(INVALID)
        }
    }
}

impl From<&str> for Utf8 {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE_MAX {
            Self::inline_unchecked(s.as_bytes())
        } else {
            Utf8(Repr::Shared(Bytes::copy_from_slice(s.as_bytes())))
        }
    }
}

impl From<String> for Utf8 {
    fn from(s: String) -> Self {
        if s.len() <= INLINE_MAX {
            Self::inline_unchecked(s.as_bytes())
        } else {
            Utf8(Repr::Shared(Bytes::from(s.into_bytes())))
        }
    }
}

impl From<Utf8> for Bytes {
    /// The text as `Bytes`, as [`Utf8::to_bytes`].
    fn from(s: Utf8) -> Bytes {
        match s.0 {
            Repr::Inline(_) => Bytes::copy_from_slice(s.as_bytes()),
            Repr::Shared(b) => b,
        }
    }
}

impl Default for Utf8 {
    fn default() -> Self {
        Utf8::EMPTY
    }
}

impl PartialEq for Utf8 {
    fn eq(&self, other: &Utf8) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Utf8 {}

impl PartialOrd for Utf8 {
    fn partial_cmp(&self, other: &Utf8) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Utf8 {
    fn cmp(&self, other: &Utf8) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Utf8 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `Bytes` and `[u8]` hash, so the hash does not depend on the storage.
        self.as_bytes().hash(state)
    }
}

impl core::ops::Deref for Utf8 {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

crate::text_traits!(Utf8);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of(s: &Utf8) -> u64 {
        let mut h = DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    }

    #[test]
    fn no_larger_than_bytes() {
        assert_eq!(core::mem::size_of::<Utf8>(), core::mem::size_of::<Bytes>());
    }

    #[test]
    fn storage_does_not_change_equality_order_or_hash() {
        for text in [
            "",
            "bob",
            "x".repeat(23).as_str(),
            "x".repeat(24).as_str(),
            "é🎉",
        ] {
            let inline = Utf8::from(text);
            let shared = Utf8(Repr::Shared(Bytes::copy_from_slice(text.as_bytes())));
            assert_eq!(inline, shared);
            assert_eq!(inline.cmp(&shared), Ordering::Equal);
            assert_eq!(hash_of(&inline), hash_of(&shared));
            assert_eq!(inline.len(), text.len());
            assert_eq!(&*inline.to_bytes(), text.as_bytes());
        }
        let (a, b) = (Utf8::from("a"), Utf8::from("b".repeat(40)));
        assert_eq!(a.cmp(&b), Ordering::Less);
        assert_eq!(Utf8::default(), Utf8::EMPTY);
        assert!(Utf8::EMPTY.is_empty());
    }

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let at_limit = Bytes::from(vec![b'a'; INLINE_MAX]);
        assert!(matches!(
            Utf8::try_from(at_limit).unwrap().0,
            Repr::Inline(_)
        ));
        let long = Bytes::from(vec![b'a'; INLINE_MAX + 1]);
        let t = Utf8::try_from(long.clone()).unwrap();
        assert!(matches!(t.0, Repr::Shared(_)));
        assert_eq!(Bytes::from(t).as_ptr(), long.as_ptr());
        assert!(matches!(Utf8::from("x".repeat(30)).0, Repr::Shared(_)));
    }

    #[test]
    fn invalid_utf8_is_refused_at_every_length() {
        for len in [1, 5, INLINE_MAX, INLINE_MAX + 1, 100] {
            let mut v = vec![b'a'; len];
            v[len - 1] = 0xFF;
            let err = Utf8::try_from(Bytes::from(v)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidUtf8);
            // A truncated multi-byte character is invalid too, past the ASCII fast path.
            let mut v = "é".repeat(len).into_bytes();
            v.pop();
            assert!(Utf8::try_from(Bytes::from(v)).is_err());
        }
        assert!(Utf8::copy_short(b"\xC3\xA9", 2).is_ok());
        assert!(Utf8::copy_short(b"\xC3", 1).is_err());
        // A prefix of a longer buffer: only the prefix is the text, and only it is checked.
        let long = b"bob\xFFxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        let bob = Utf8::copy_short(long, 3).unwrap();
        assert_eq!(bob, "bob");
        assert_eq!(bob, Utf8::from("bob"));
        assert_eq!(hash_of(&bob), hash_of(&Utf8::from("bob")));
        assert!(Utf8::copy_short(long, 4).is_err());
    }
}
