//! Error types of the WebSocket connection: what the peer did wrong, and why a send was refused.

use super::close::CloseCode;
use core::fmt;

/// The peer broke RFC 6455 or one of our limits. The connection has failed: a close frame with
/// [`close_code`](Self::close_code) is queued for the peer (unless one was already sent).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsError {
    /// RSV1–3 set, but no extension was negotiated. (1002)
    ReservedBits,
    /// An opcode RFC 6455 reserves (3–7, 11–15). (1002)
    ReservedOpcode(u8),
    /// A client frame without a masking key. (1002)
    UnmaskedFrame,
    /// A server frame with a masking key. (1002)
    MaskedFrame,
    /// A control frame with FIN clear. (1002)
    FragmentedControl,
    /// A control frame payload longer than 125 bytes. (1002)
    ControlTooLong(u64),
    /// A payload length not in its shortest encoding. (1002)
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set. (1002)
    LengthOverflow,
    /// A continuation frame with no fragmented message in progress. (1002)
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished. (1002)
    ExpectedContinuation,
    /// A close frame with a 1-byte payload. (1002)
    ClosePayloadTooShort,
    /// A close frame carrying a code that may not be sent. (1002)
    InvalidCloseCode(u16),
    /// A text message that is not UTF-8, detected at the first bad byte. (1007)
    InvalidUtf8,
    /// A close reason that is not UTF-8. (1007)
    InvalidCloseReason,
    /// A frame longer than the configured frame limit. (1009)
    FrameTooLarge {
        /// Declared payload length.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A message whose fragments add up to more than the configured message limit. (1009)
    MessageTooLarge {
        /// Length the message would reach with this frame.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The transport ended before the close handshake. (1006: reported, never sent)
    UnexpectedEof,
}

impl WsError {
    /// The close code RFC 6455 assigns to this failure.
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::InvalidUtf8 | WsError::InvalidCloseReason => CloseCode::INVALID_PAYLOAD,
            WsError::FrameTooLarge { .. } | WsError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            WsError::UnexpectedEof => CloseCode::ABNORMAL,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason phrase sent in the close frame, so the peer's logs say what went wrong.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            WsError::ReservedBits => "reserved bits set",
            WsError::ReservedOpcode(_) => "reserved opcode",
            WsError::UnmaskedFrame => "client frame not masked",
            WsError::MaskedFrame => "server frame masked",
            WsError::FragmentedControl => "fragmented control frame",
            WsError::ControlTooLong(_) => "control frame too long",
            WsError::NonMinimalLength => "non-minimal length",
            WsError::LengthOverflow => "length overflow",
            WsError::UnexpectedContinuation => "unexpected continuation",
            WsError::ExpectedContinuation => "expected continuation",
            WsError::ClosePayloadTooShort => "close payload too short",
            WsError::InvalidCloseCode(_) => "invalid close code",
            WsError::InvalidUtf8 => "invalid UTF-8 in text",
            WsError::InvalidCloseReason => "invalid UTF-8 in close reason",
            WsError::FrameTooLarge { .. } => "frame too large",
            WsError::MessageTooLarge { .. } => "message too large",
            WsError::UnexpectedEof => "unexpected end of stream",
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            WsError::ControlTooLong(len) => write!(f, "control frame of {len} bytes (max 125)"),
            WsError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            WsError::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit}")
            }
            WsError::MessageTooLarge { len, limit } => {
                write!(f, "message of {len} bytes exceeds the limit of {limit}")
            }
            other => f.write_str(other.reason()),
        }?;
        write!(f, " (close code {})", self.close_code())
    }
}

impl std::error::Error for WsError {}

/// Why a `send_*` or `close` call was refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsSendError {
    /// A close frame was already sent (or the connection failed): no more frames may follow.
    Closed,
    /// A ping or pong payload longer than 125 bytes.
    ControlTooLong(usize),
    /// A close code that may not appear on the wire (see [`CloseCode::is_sendable`]).
    InvalidCloseCode(u16),
    /// A close reason longer than 123 bytes.
    CloseReasonTooLong(usize),
    /// Pre-encoded frames can only be queued on a server connection: client frames must each be
    /// masked with a fresh key.
    NotServer,
}

impl fmt::Display for WsSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsSendError::Closed => f.write_str("the connection is closing or closed"),
            WsSendError::ControlTooLong(len) => {
                write!(f, "control payload of {len} bytes (max 125)")
            }
            WsSendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            WsSendError::CloseReasonTooLong(len) => {
                write!(f, "close reason of {len} bytes (max 123)")
            }
            WsSendError::NotServer => f.write_str("pre-encoded frames need a server connection"),
        }
    }
}

impl std::error::Error for WsSendError {}
