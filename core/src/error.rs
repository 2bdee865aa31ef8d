//! Error codes: the one table of spec/PROTOCOL.md §8, as a Rust type; and [`SendError`], why a
//! command was refused locally.

use core::fmt;

use crate::name::NameError;

/// Why something failed, as carried on the wire in `error`, `refused`, `goodbye`, `reject`,
/// `cancel` and `failed` frames (a big-endian `u16`).
///
/// The numeric values are normative (spec/PROTOCOL.md §8). A code this implementation does not
/// know is kept as [`ErrorCode::Other`] so that it can still be shown and relayed.
///
/// ```
/// use tidings_core::ErrorCode;
/// assert_eq!(ErrorCode::from_u16(4), ErrorCode::FrameTooLarge);
/// assert_eq!(ErrorCode::FrameTooLarge.to_u16(), 4);
/// assert!(ErrorCode::FrameTooLarge.is_fatal());
/// assert!(!ErrorCode::UnknownPeer.is_fatal());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: orderly close, nothing went wrong.
    Normal,
    /// 1: a frame body does not parse as its type says (truncated field, trailing bytes, bad flag).
    Malformed,
    /// 2: the connection did not start with the tidings preamble.
    BadPreamble,
    /// 3: the peer speaks a protocol version this side does not.
    UnsupportedVersion,
    /// 4: a declared frame length exceeds the receiver's limit.
    FrameTooLarge,
    /// 5: a frame type in the mandatory range (0x00–0x7F) that the receiver does not know.
    UnknownType,
    /// 6: a text field is not valid UTF-8.
    InvalidUtf8,
    /// 7: a message that is not allowed in the current state (for example text before hello).
    UnexpectedMessage,
    /// 8: nothing was received from the peer for the heartbeat timeout.
    HeartbeatTimeout,
    /// 9: the stream ended in the middle of a frame.
    Truncated,
    /// 10: the requested name is already in use.
    NameTaken,
    /// 11: the requested name breaks the naming rules.
    NameInvalid,
    /// 12: the server is full (connection limit).
    ServerFull,
    /// 13: the named peer is not online.
    UnknownPeer,
    /// 14: the peer sends faster than the receiver allows.
    RateLimited,
    /// 15: the peer does not read its data and its queue stayed full.
    SlowConsumer,
    /// 16: the server is shutting down.
    Shutdown,
    /// 17: a limit of the receiver was exceeded (too many transfers, list too long …).
    LimitExceeded,
    /// 18: removed by the server operator.
    Kicked,
    /// 19: the port speaks TLS and the client came in plaintext.
    TlsRequired,
    /// 20: the name is registered (or the server admits no guests) and no `login` came.
    AuthRequired,
    /// 21: the login failed: wrong password, no such user or an unknown method (one answer
    /// for all, so that it does not tell which names exist).
    AuthFailed,
    /// 22: a password came over plaintext from an address that is not loopback (TLS or
    /// loopback is required, spec §11).
    AuthInsecure,
    /// 23: a room message or `leave` for a room the client is not a member of (spec §6.10).
    NotMember,
    /// 24: a `join` refused: the room name is invalid, only the operator creates rooms, or
    /// the operator removed the client from that room (spec §6.10).
    RoomRefused,
    /// 32: a transfer id that is not known (or not in a state that allows this message).
    UnknownTransfer,
    /// 33: a chunk outside the accepted range or at the wrong offset.
    ChunkOutOfRange,
    /// 34: a chunk beyond the credit the receiver granted.
    CreditExceeded,
    /// 35: the SHA-256 of the received file does not match the sender's.
    DigestMismatch,
    /// 36: the offered file name is not acceptable.
    BadFileName,
    /// 37: the transfer was cancelled by a person.
    Cancelled,
    /// 38: the offer was declined.
    Rejected,
    /// 39: the offer was not answered, or the transfer stopped moving, in time.
    TransferTimeout,
    /// 40: the other end of a relayed transfer went away.
    PeerLost,
    /// 41: the receiver cannot store the file (disk full, not writable, no inbox).
    StorageFailed,
    /// 42: the sender cannot read the file any more.
    SourceFailed,
    /// A code this implementation does not know.
    Other(u16),
}

impl ErrorCode {
    /// Every known code, in table order (for docs, tests and the spec).
    pub const ALL: [ErrorCode; 36] = [
        Self::Normal,
        Self::Malformed,
        Self::BadPreamble,
        Self::UnsupportedVersion,
        Self::FrameTooLarge,
        Self::UnknownType,
        Self::InvalidUtf8,
        Self::UnexpectedMessage,
        Self::HeartbeatTimeout,
        Self::Truncated,
        Self::NameTaken,
        Self::NameInvalid,
        Self::ServerFull,
        Self::UnknownPeer,
        Self::RateLimited,
        Self::SlowConsumer,
        Self::Shutdown,
        Self::LimitExceeded,
        Self::Kicked,
        Self::TlsRequired,
        Self::AuthRequired,
        Self::AuthFailed,
        Self::AuthInsecure,
        Self::NotMember,
        Self::RoomRefused,
        Self::UnknownTransfer,
        Self::ChunkOutOfRange,
        Self::CreditExceeded,
        Self::DigestMismatch,
        Self::BadFileName,
        Self::Cancelled,
        Self::Rejected,
        Self::TransferTimeout,
        Self::PeerLost,
        Self::StorageFailed,
        Self::SourceFailed,
    ];

    /// The wire value.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 0,
            Self::Malformed => 1,
            Self::BadPreamble => 2,
            Self::UnsupportedVersion => 3,
            Self::FrameTooLarge => 4,
            Self::UnknownType => 5,
            Self::InvalidUtf8 => 6,
            Self::UnexpectedMessage => 7,
            Self::HeartbeatTimeout => 8,
            Self::Truncated => 9,
            Self::NameTaken => 10,
            Self::NameInvalid => 11,
            Self::ServerFull => 12,
            Self::UnknownPeer => 13,
            Self::RateLimited => 14,
            Self::SlowConsumer => 15,
            Self::Shutdown => 16,
            Self::LimitExceeded => 17,
            Self::Kicked => 18,
            Self::TlsRequired => 19,
            Self::AuthRequired => 20,
            Self::AuthFailed => 21,
            Self::AuthInsecure => 22,
            Self::NotMember => 23,
            Self::RoomRefused => 24,
            Self::UnknownTransfer => 32,
            Self::ChunkOutOfRange => 33,
            Self::CreditExceeded => 34,
            Self::DigestMismatch => 35,
            Self::BadFileName => 36,
            Self::Cancelled => 37,
            Self::Rejected => 38,
            Self::TransferTimeout => 39,
            Self::PeerLost => 40,
            Self::StorageFailed => 41,
            Self::SourceFailed => 42,
            Self::Other(v) => v,
        }
    }

    /// The code for a wire value; unknown values become [`ErrorCode::Other`].
    pub const fn from_u16(v: u16) -> Self {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].to_u16() == v {
                return Self::ALL[i];
            }
            i += 1;
        }
        Self::Other(v)
    }

    /// The same code with `Other(v)` replaced by the named code when `v` is in the table, so
    /// that `Other(4)` built by hand behaves exactly like `FrameTooLarge`, as it will on the
    /// peer's side of the wire.
    ///
    /// ```
    /// use tidings_core::ErrorCode;
    /// assert_eq!(ErrorCode::Other(4).canonical(), ErrorCode::FrameTooLarge);
    /// assert!(ErrorCode::Other(4).is_fatal());
    /// assert_eq!(ErrorCode::Other(4).name(), "frame-too-large");
    /// assert_eq!(ErrorCode::Other(999).canonical(), ErrorCode::Other(999));
    /// ```
    pub const fn canonical(self) -> Self {
        Self::from_u16(self.to_u16())
    }

    /// Whether a connection that sends or receives this code in an `error` frame closes.
    ///
    /// Codes about one message (an unknown peer, a refused transfer) leave the connection up;
    /// codes about the byte stream or the peer's behaviour end it. Codes this implementation
    /// does not know are not fatal: a peer that sends a fatal one closes the connection
    /// itself.
    pub const fn is_fatal(self) -> bool {
        !matches!(
            self.canonical(),
            Self::UnknownPeer
                | Self::UnknownTransfer
                | Self::BadFileName
                | Self::Cancelled
                | Self::Rejected
                | Self::TransferTimeout
                | Self::PeerLost
                | Self::StorageFailed
                | Self::SourceFailed
                | Self::DigestMismatch
                | Self::LimitExceeded
                | Self::NotMember
                | Self::RoomRefused
                | Self::Other(_)
        )
    }

    /// The short name used in the spec and in logs (`frame-too-large`).
    pub const fn name(self) -> &'static str {
        match self.canonical() {
            Self::Normal => "normal",
            Self::Malformed => "malformed",
            Self::BadPreamble => "bad-preamble",
            Self::UnsupportedVersion => "unsupported-version",
            Self::FrameTooLarge => "frame-too-large",
            Self::UnknownType => "unknown-type",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::UnexpectedMessage => "unexpected-message",
            Self::HeartbeatTimeout => "heartbeat-timeout",
            Self::Truncated => "truncated",
            Self::NameTaken => "name-taken",
            Self::NameInvalid => "name-invalid",
            Self::ServerFull => "server-full",
            Self::UnknownPeer => "unknown-peer",
            Self::RateLimited => "rate-limited",
            Self::SlowConsumer => "slow-consumer",
            Self::Shutdown => "shutdown",
            Self::LimitExceeded => "limit-exceeded",
            Self::Kicked => "kicked",
            Self::TlsRequired => "tls-required",
            Self::AuthRequired => "auth-required",
            Self::AuthFailed => "auth-failed",
            Self::AuthInsecure => "auth-insecure",
            Self::NotMember => "not-member",
            Self::RoomRefused => "room-refused",
            Self::UnknownTransfer => "unknown-transfer",
            Self::ChunkOutOfRange => "chunk-out-of-range",
            Self::CreditExceeded => "credit-exceeded",
            Self::DigestMismatch => "digest-mismatch",
            Self::BadFileName => "bad-file-name",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::TransferTimeout => "transfer-timeout",
            Self::PeerLost => "peer-lost",
            Self::StorageFailed => "storage-failed",
            Self::SourceFailed => "source-failed",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.to_u16())
    }
}

/// A protocol violation detected while decoding: the code the peer is told and a detail for
/// logs.
///
/// ```
/// use tidings_core::{ErrorCode, ProtocolError};
/// let e = ProtocolError::new(ErrorCode::Malformed, "text frame without peer field");
/// assert_eq!(e.to_string(), "malformed (1): text frame without peer field");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// The code sent to the peer.
    pub code: ErrorCode,
    /// What exactly was wrong (not sent on the wire verbatim; fixed strings keep decoding free
    /// of allocation).
    pub detail: &'static str,
}

impl ProtocolError {
    /// A new error.
    pub const fn new(code: ErrorCode, detail: &'static str) -> Self {
        Self { code, detail }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ProtocolError {}

/// Why a command to a [`Session`](crate::session::Session) (chat, a transfer) could not be
/// carried out. Nothing was queued. Never sent on the wire: it stays with the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The session is not (or no longer) open for this command.
    NotOpen,
    /// The frame would exceed the peer's frame limit.
    TooLarge,
    /// Too much output is queued already (the peer does not read); try again after transmitting.
    QueueFull,
    /// A name field breaks the naming rules.
    BadName(NameError),
    /// The command does not fit the session's role or the transfer's state.
    Invalid(&'static str),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::NotOpen => write!(f, "the session is not open"),
            SendError::TooLarge => write!(f, "the message exceeds the peer's frame limit"),
            SendError::QueueFull => write!(f, "too much output is queued"),
            SendError::BadName(e) => write!(f, "{e}"),
            SendError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for SendError {}
