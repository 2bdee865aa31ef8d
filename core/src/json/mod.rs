//! JSON mode of protocol messages (spec §12.3): every [`Message`] as one JSON object, for
//! web pages and WebSocket clients that would rather not build binary frames.
//!
//! Each object has a `type` (the spec's message name: `text`, `peer-list`, `offer` …) and
//! the message's fields under their spec names in snake_case:
//!
//! * strings are JSON strings; `str8` fields longer than 255 bytes (and the offer's file name
//!   beyond 65 535) are refused rather than silently cut;
//! * integers are JSON numbers. `u64` values (`id`, `size`, `offset`, `nonce`) are exact here,
//!   but a JavaScript peer reads numbers as doubles and is exact only up to 2^53 − 1: ids,
//!   sizes and nonces from this implementation stay far below, and a JavaScript client must
//!   keep its own ids there too;
//! * binary fields (`data` of `blob` and `chunk`, `sha256` of `done`, `body` of an
//!   extension) are standard base64 with padding;
//! * the flags byte of `text` and `blob` is the boolean `private` (optional on input,
//!   `false` when absent);
//! * error codes are the number `code`; output adds `code_name` (`unknown-peer`), input may
//!   carry it and then it must match the number;
//! * presence's `kind` is `"joined"` or `"left"`.
//!
//! Parsing is strict: an unknown `type` is [`ErrorCode::UnknownType`]; text that is not one
//! JSON object, a missing field, a field of the wrong JSON type or out of its native range,
//! bad base64 or a field the type does not have is [`ErrorCode::Malformed`]; a text longer
//! than the frame limit is [`ErrorCode::FrameTooLarge`], refused before it is parsed.
//!
//! ```
//! use tidings_core::json::{from_json, to_json};
//! use tidings_core::wire::{Message, Utf8};
//! use tidings_core::ErrorCode;
//!
//! let msg = Message::Text { peer: Utf8::from("bob"), private: true, text: Utf8::from("hi") };
//! let json = to_json(&msg);
//! assert_eq!(json, r#"{"type":"text","peer":"bob","private":true,"text":"hi"}"#);
//! assert_eq!(from_json(&json).unwrap(), msg);
//!
//! // `private` may be left out; unknown types and stray fields are refused.
//! let hi = from_json(r#"{"type":"text","peer":"","text":"hello"}"#).unwrap();
//! assert!(matches!(hi, Message::Text { private: false, .. }));
//! assert_eq!(from_json(r#"{"type":"shout"}"#).unwrap_err().code, ErrorCode::UnknownType);
//! assert_eq!(from_json(r#"{"type":"ping","nonce":1,"x":0}"#).unwrap_err().code,
//!            ErrorCode::Malformed);
//! ```

mod read;
mod write;

pub(crate) use write::ObjectWriter;

use crate::wire::{Message, DEFAULT_MAX_FRAME};
use crate::{ErrorCode, ProtocolError};

/// `msg` as one JSON object, `type` first and the other fields in the spec's order.
pub fn to_json(msg: &Message) -> String {
    let mut out = String::with_capacity(64);
    write_json(msg, &mut out);
    out
}

/// Appends `msg` as one JSON object to `out` (to reuse one buffer for many messages).
pub fn write_json(msg: &Message, out: &mut String) {
    write::write_message(msg, out);
}

/// Parses one JSON object into a message, with the default frame limit
/// ([`DEFAULT_MAX_FRAME`], 1 MiB). See [`from_json_limited`].
pub fn from_json(text: &str) -> Result<Message, ProtocolError> {
    from_json_limited(text, DEFAULT_MAX_FRAME)
}

/// Parses one JSON object into a message. A text longer than `max_frame` bytes is refused
/// with [`ErrorCode::FrameTooLarge`] before any parsing (so a peer cannot make us build a
/// large tree), and so is a message whose native frame body would exceed `max_frame`.
pub fn from_json_limited(text: &str, max_frame: u32) -> Result<Message, ProtocolError> {
    if text.len() > max_frame as usize {
        return Err(too_large());
    }
    let msg = read::read_message(text)?;
    if msg.encoded_len() - crate::wire::HEADER_LEN > max_frame as usize {
        return Err(too_large());
    }
    Ok(msg)
}

fn too_large() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::FrameTooLarge,
        "JSON message larger than the frame limit",
    )
}
