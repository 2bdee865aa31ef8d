//! The opening handshake (RFC 6455 §4): HTTP/1.1 Upgrade, in both roles.
//!
//! * Server: [`RequestReader`] collects a request head under a size limit and parses it into an
//!   [`HttpRequestHead`]; the application looks at the path, the origin and whether it is an
//!   upgrade at all (a plain `GET /` may be served a page instead), then calls
//!   [`HttpRequestHead::accept_websocket`] for the `101` response or the error response to send.
//! * Client: [`ClientHandshake::new`] encodes the request from a caller-supplied key, and
//!   [`ClientHandshake::feed`] validates the server's `101`.
//!
//! Both readers keep bytes that arrive after the head (the first WebSocket frames may share a
//! read with it); hand them to [`WsConnection::handle_input`](super::WsConnection::handle_input).
//!
//! A server that shares its port with another protocol can use [`sniff_http`] on the first
//! bytes of a connection to decide which parser gets it.

mod client;
mod head;
mod response;
mod server;

pub use client::{ClientAccepted, ClientHandshake, ClientRequest, ResponseError};
pub use response::HttpResponse;
pub use server::{Accepted, HttpRequestHead, RequestError, RequestReader};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// Default limit on the size of a request or response head (request line and headers): 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// The subprotocol tidings speaks over WebSocket (`Sec-WebSocket-Protocol: tidings.v1`).
pub const TIDINGS_SUBPROTOCOL: &str = "tidings.v1";

/// The GUID RFC 6455 appends to the client's key before hashing.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ‖ GUID)).
///
/// ```
/// // The example from RFC 6455 §1.3.
/// use tidings_core::ws::accept_key;
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID);
    STANDARD.encode(sha.finalize())
}

/// What the first bytes of a connection look like; see [`sniff_http`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// An HTTP request line starts here (a method name and a space).
    Http,
    /// Not HTTP.
    NotHttp,
    /// Too few bytes to tell: read more.
    NeedMore,
}

/// Tells an HTTP request from another protocol on a shared port by its first bytes: HTTP
/// starts with a method name followed by a space. At most 8 bytes (`OPTIONS `) are needed.
///
/// ```
/// use tidings_core::ws::{sniff_http, Sniff};
/// assert_eq!(sniff_http(b"GET / HTTP/1.1\r\n"), Sniff::Http);
/// assert_eq!(sniff_http(b"GE"), Sniff::NeedMore);
/// assert_eq!(sniff_http(b"\x00TDNG"), Sniff::NotHttp);
/// ```
pub fn sniff_http(prefix: &[u8]) -> Sniff {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let mut need_more = false;
    for method in METHODS {
        if prefix.starts_with(method) {
            return Sniff::Http;
        }
        if method.starts_with(prefix) {
            need_more = true;
        }
    }
    if need_more {
        Sniff::NeedMore
    } else {
        Sniff::NotHttp
    }
}

/// Whether a comma-separated header value list contains `token`, ignoring ASCII case
/// (`Connection: keep-alive, Upgrade`).
fn has_token<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> bool {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}
