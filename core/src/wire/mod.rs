//! The native wire format: preamble, frames and messages (spec/PROTOCOL.md §3–§6).
//!
//! Everything here is pure: [`FrameDecoder`] reassembles frames from arbitrary pieces of a
//! byte stream, [`Message::decode`] parses one frame body, and [`Message::encode`] appends a
//! whole frame to a caller's buffer.

mod frame;
mod message;
mod preamble;
pub(crate) mod reader;
mod utf8;

pub use frame::{
    encode_header, Frame, FrameDecoder, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_FRAME_CEILING,
    MIN_MAX_FRAME,
};
pub use message::{
    capability, frame_type, login_method, Hello, MemberKind, Message, Offer, PresenceKind, Relayed,
    RoomInfo, Secret, Welcome, DIGEST_LEN, MAX_SECRET,
};
pub use preamble::{Preamble, PREAMBLE_LEN, PROTOCOL_VERSION};
pub use utf8::Utf8;
