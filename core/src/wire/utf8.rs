//! A zero-copy UTF-8 string: `Bytes` that are known to be valid UTF-8.

use bytes::Bytes;
use core::fmt;

use crate::{ErrorCode, ProtocolError};

/// Validated UTF-8 text backed by [`Bytes`], so that text split from a receive buffer is
/// handed out without copying.
///
/// ```
/// use tidings_core::wire::Utf8;
/// let t = Utf8::from("héllo");
/// assert_eq!(t.as_str(), "héllo");
/// assert!(Utf8::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8(Bytes);

impl Utf8 {
    /// The empty string.
    pub const EMPTY: Utf8 = Utf8(Bytes::new());

    /// A string from a `'static` literal, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates or starts from a `str`.
        unsafe { core::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Bytes> for Utf8 {
    type Error = ProtocolError;

    fn try_from(b: Bytes) -> Result<Self, ProtocolError> {
        match core::str::from_utf8(&b) {
            Ok(_) => Ok(Utf8(b)),
            Err(_) => Err(ProtocolError::new(
                ErrorCode::InvalidUtf8,
                "text field is not valid UTF-8",
            )),
        }
    }
}

impl From<&str> for Utf8 {
    fn from(s: &str) -> Self {
        Utf8(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Utf8 {
    fn from(s: String) -> Self {
        Utf8(Bytes::from(s.into_bytes()))
    }
}

impl core::ops::Deref for Utf8 {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Utf8 {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8 {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
