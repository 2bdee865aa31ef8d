//! The connection preamble (spec §3): eight bytes that open every native connection.

use crate::{ErrorCode, ProtocolError};

/// Length of the preamble in bytes.
pub const PREAMBLE_LEN: usize = 8;

/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// The seven magic bytes: `0x89` can never start an HTTP request line (nor any ASCII text),
/// `TDG` names the protocol, and `CR LF SUB` detect line-ending and text-mode mangling, as PNG's
/// signature does.
const MAGIC: [u8; 7] = [0x89, b'T', b'D', b'G', b'\r', b'\n', 0x1A];

/// The preamble: magic plus the sender's protocol version.
///
/// ```
/// use tidings_core::wire::{Preamble, PROTOCOL_VERSION};
/// let bytes = Preamble::CURRENT.to_bytes();
/// assert_eq!(Preamble::parse(&bytes), Ok(Some(Preamble::CURRENT)));
/// assert_eq!(Preamble::CURRENT.version, PROTOCOL_VERSION);
/// assert!(Preamble::parse(b"GET / HTTP/1.1\r\n").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The protocol version the sender speaks.
    pub version: u8,
}

impl Preamble {
    /// The preamble this implementation sends.
    pub const CURRENT: Preamble = Preamble {
        version: PROTOCOL_VERSION,
    };

    /// The eight bytes on the wire.
    pub const fn to_bytes(self) -> [u8; PREAMBLE_LEN] {
        let m = MAGIC;
        [m[0], m[1], m[2], m[3], m[4], m[5], m[6], self.version]
    }

    /// Parses the start of a stream. `Ok(None)` means "need more bytes"; a mismatch is reported
    /// as soon as the first wrong byte arrives, so a stray HTTP client is told at once.
    pub fn parse(bytes: &[u8]) -> Result<Option<Preamble>, ProtocolError> {
        let seen = bytes.len().min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] {
            return Err(ProtocolError::new(
                ErrorCode::BadPreamble,
                "stream does not start with the tidings magic",
            ));
        }
        Ok(bytes.get(MAGIC.len()).map(|&version| Preamble { version }))
    }

    /// Whether `bytes` (possibly only the first few of a connection) can still become a
    /// tidings preamble; used by servers that sniff one port for several protocols.
    pub fn could_be(bytes: &[u8]) -> bool {
        Self::parse(bytes).is_ok()
    }
}
