//! WebSocket (RFC 6455), sans-IO: the opening handshake, the frame codec and the connection
//! state machine, for both roles, without extensions (no compression).
//!
//! * [`handshake`]: HTTP/1.1 Upgrade. A server reads the request with [`RequestReader`] (which
//!   also tells a plain `GET /` from an upgrade) and answers with
//!   [`HttpRequestHead::accept_websocket`]; a client uses [`ClientHandshake`]. [`sniff_http`]
//!   tells HTTP from another protocol on a shared port.
//! * [`WsConnection`]: after the handshake, bytes in, [`WsEvent`]s and bytes out. Its rustdoc
//!   states the calling contract and shows a client and a server talking in memory.
//! * Low-level pieces for special cases: [`FrameHeader`] parsing, [`encode_frame_header`] /
//!   [`encode_frame`] / [`server_frame`] to encode a broadcast once and share it with
//!   [`WsConnection::send_encoded`], [`apply_mask`], and the incremental [`Utf8Validator`].
//!
//! Nothing here performs I/O, reads a clock or draws random numbers: masking keys
//! ([`MaskSource`]) and handshake keys ([`ClientRequest::key`]) come from the caller. Peer
//! errors are values ([`WsError`] with the RFC close code it maps to), never panics; declared
//! lengths are checked against [`WsConfig`] limits before any payload is buffered, and buffers
//! grow only as bytes arrive.

mod close;
mod connection;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod recv;
mod utf8;

pub use close::{CloseCode, MAX_CLOSE_REASON};
pub use connection::{MaskSource, WsConfig, WsConnection, WsEvent, WsRole, WsState};
pub use error::{WsError, WsSendError};
pub use frame::{
    encode_frame, encode_frame_header, server_frame, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};
pub use handshake::{
    accept_key, sniff_http, Accepted, ClientAccepted, ClientHandshake, ClientRequest,
    HttpRequestHead, HttpResponse, RequestError, RequestReader, ResponseError, Sniff,
    DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};
pub use mask::apply_mask;
pub use utf8::{InvalidUtf8, Utf8Bytes, Utf8Validator};
