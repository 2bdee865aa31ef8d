//! UTF-8 for text messages: an incremental validator that fails fast, and [`Utf8Bytes`], the
//! zero-copy string type handed to the application.

use bytes::Bytes;
use core::fmt;
use core::ops::Deref;

/// Validates UTF-8 that arrives in pieces, rejecting a bad sequence as soon as its first wrong
/// byte is seen rather than when the message ends.
///
/// Failing early matters: a peer can otherwise make a receiver buffer a large message whose
/// first bytes already prove it invalid (Autobahn cases 6.4.x test exactly this). The standard
/// library's validator already reports whether a failure is a definite error or only a truncated
/// but so-far-valid sequence at the end of the input; this type carries that truncated tail (at
/// most 3 bytes) over to the next piece.
///
/// ```
/// use tidings_core::ws::Utf8Validator;
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&[0xE2, 0x82]).is_ok()); // first two bytes of "€"
/// assert!(v.feed(&[0xAC]).is_ok());
/// assert!(v.is_complete());
/// assert!(v.feed(&[0xED, 0xA0]).is_err()); // a surrogate: wrong at the second byte
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// Bytes of a code point split across pieces; only a valid prefix is ever stored here.
    partial: [u8; 4],
    len: u8,
}

/// The input is not UTF-8 (returned by [`Utf8Validator::feed`] and [`Utf8Validator::finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            len: 0,
        }
    }

    /// Validates the next piece of the text.
    ///
    /// Returns an error as soon as the bytes seen so far cannot be the start of valid UTF-8.
    /// After an error the validator's state is unspecified; call [`reset`](Self::reset).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            // Finish the code point left over from the previous piece first.
            let have = usize::from(self.len);
            let want = sequence_len(self.partial[0]);
            let take = (want - have).min(input.len());
            self.partial[have..have + take].copy_from_slice(&input[..take]);
            match core::str::from_utf8(&self.partial[..have + take]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; `input` is exhausted since `take` fell short.
                    self.len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            input = &input[take..];
        }
        match core::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let tail = &input[e.valid_up_to()..];
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// True when no code point is left half-finished.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Declares the end of the text: an error if it stopped inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.is_complete();
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Forgets any partial code point, ready for a new text.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

/// Length of the sequence a lead byte starts. Only called on bytes that the standard validator
/// accepted as the start of a truncated sequence, so the ranges below are exhaustive in practice.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Bytes known to be valid UTF-8: the payload type of text messages.
///
/// It shares the receive buffer like [`Bytes`] does (cloning is cheap, no copy), and derefs to
/// `&str` without re-validating.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Utf8Bytes(Bytes::new())
    }

    /// Wraps a static string without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps `bytes` after checking that they are UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        match core::str::from_utf8(&bytes) {
            Ok(_) => Ok(Utf8Bytes(bytes)),
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Wraps bytes the caller has already validated (the receive path validates as it unmasks).
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(core::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validates the bytes or takes them from a `&str`;
        // `from_validated` is only called on bytes that passed `Utf8Validator`.
        unsafe { core::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Gives up the UTF-8 guarantee and returns the shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(s: &'static str) -> Self {
        Utf8Bytes::from_static(s)
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Self {
        s.0
    }
}

crate::text_traits!(Utf8Bytes);
