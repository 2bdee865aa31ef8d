//! Close codes and the close frame payload (RFC 6455 §5.5.1, §7.4).

use super::error::WsError;
use super::utf8::Utf8Bytes;
use bytes::Bytes;
use core::fmt;

/// Longest close reason that fits in a control frame: 125 bytes minus the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// A WebSocket close status code.
///
/// The constants name the codes RFC 6455 defines. Any `u16` can be held, but only codes for
/// which [`is_sendable`](Self::is_sendable) holds may appear on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: the endpoint cannot accept this kind of data (e.g. text when it wants binary).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reported locally when a close frame carried no code; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reported locally when the connection ended without a close frame; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message (or close reason) was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame or message exceeded the endpoint's size limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client only) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether this code may appear in a close frame: 1000–1003, 1007–1011 and the registered
    /// and private ranges 3000–4999.
    ///
    /// Everything else is either reserved for local reporting (1005, 1006, 1015), unassigned
    /// (1004, 1012–2999 as far as this implementation is concerned) or out of range. A received
    /// close frame with such a code is a protocol error (1002).
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// Parses a received close payload into its code and reason.
///
/// An empty payload means "no status": reported as [`CloseCode::NO_STATUS`] with an empty
/// reason. The reason shares `payload`'s buffer.
pub(crate) fn parse_close_payload(payload: Bytes) -> Result<(CloseCode, Utf8Bytes), WsError> {
    match payload.len() {
        0 => Ok((CloseCode::NO_STATUS, Utf8Bytes::new())),
        1 => Err(WsError::ClosePayloadTooShort),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(WsError::InvalidCloseCode(code.0));
            }
            let reason = Utf8Bytes::try_from_bytes(payload.slice(2..))
                .map_err(|_| WsError::InvalidCloseReason)?;
            Ok((code, reason))
        }
    }
}

/// Writes a close payload (code, then reason) into `out` and returns its length; `None` is the
/// empty payload. Callers keep `reason` within [`MAX_CLOSE_REASON`]; a longer one is cut there
/// rather than overflowing the control frame.
pub(crate) fn encode_close_payload(close: Option<(CloseCode, &str)>, out: &mut [u8; 125]) -> usize {
    let Some((code, reason)) = close else {
        return 0;
    };
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CLOSE_REASON)];
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + reason.len()].copy_from_slice(reason);
    2 + reason.len()
}
