//! Client side of the opening handshake: build the request, validate the `101`.

use super::head::HeadReader;
use super::{accept_key, has_token};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use core::fmt;

/// Most headers a response may carry.
const MAX_HEADERS: usize = 64;

/// What the client asks for.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// `Host` header value, with the port if it is not the default (`example.org:8080`).
    pub host: &'a str,
    /// Request target: path and optional query (`/chat?room=1`).
    pub path: &'a str,
    /// 16 random bytes from the caller (the core has no random source); sent base64-encoded
    /// as `Sec-WebSocket-Key`.
    pub key: [u8; 16],
    /// Subprotocols to offer, most preferred first (may be empty).
    pub protocols: &'a [&'a str],
    /// `Origin` to send, if any (browsers always send one; other clients rarely need to).
    pub origin: Option<&'a str>,
}

/// The client's half of the opening handshake.
///
/// ```
/// use tidings_core::ws::{ClientHandshake, ClientRequest, RequestReader};
/// let request = ClientRequest {
///     host: "127.0.0.1:9001", path: "/ws", key: [7; 16],
///     protocols: &["tidings.v1"], origin: None,
/// };
/// let (mut client, bytes) = ClientHandshake::new(&request, 8192).unwrap();
///
/// // The server side, in memory.
/// let head = RequestReader::new(8192).feed(&bytes).unwrap().unwrap();
/// let accepted = head.accept_websocket(&["tidings.v1"]).unwrap();
///
/// let done = client.feed(&accepted.response).unwrap().unwrap();
/// assert_eq!(done.protocol.as_deref(), Some("tidings.v1"));
/// ```
#[derive(Debug)]
pub struct ClientHandshake {
    reader: HeadReader,
    expected_accept: String,
    protocols: Vec<String>,
}

impl ClientHandshake {
    /// Encodes the request to send and returns the state that validates the response, which
    /// may be at most `max_header_bytes` long.
    ///
    /// Fails with [`ResponseError::InvalidRequest`] if a field would break the request's
    /// syntax (control characters, spaces in the path, separators in a protocol name).
    pub fn new(
        request: &ClientRequest<'_>,
        max_header_bytes: usize,
    ) -> Result<(ClientHandshake, Bytes), ResponseError> {
        let printable = |s: &str| s.bytes().all(|b| (0x21..0x7F).contains(&b));
        if request.host.is_empty() || !printable(request.host) {
            return Err(ResponseError::InvalidRequest("host"));
        }
        if !request.path.starts_with('/') || !printable(request.path) {
            return Err(ResponseError::InvalidRequest("path"));
        }
        if let Some(origin) = request.origin {
            if !printable(origin) {
                return Err(ResponseError::InvalidRequest("origin"));
            }
        }
        if request.protocols.iter().any(|p| !is_token(p)) {
            return Err(ResponseError::InvalidRequest("protocol"));
        }
        let key = STANDARD.encode(request.key);

        let mut out = String::with_capacity(256);
        for part in [
            "GET ",
            request.path,
            " HTTP/1.1\r\nHost: ",
            request.host,
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
            &key,
            "\r\nSec-WebSocket-Version: 13\r\n",
        ] {
            out.push_str(part);
        }
        if !request.protocols.is_empty() {
            out.push_str("Sec-WebSocket-Protocol: ");
            out.push_str(&request.protocols.join(", "));
            out.push_str("\r\n");
        }
        if let Some(origin) = request.origin {
            out.push_str("Origin: ");
            out.push_str(origin);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");

        let handshake = ClientHandshake {
            reader: HeadReader::new(max_header_bytes),
            expected_accept: accept_key(key.as_bytes()),
            protocols: request.protocols.iter().map(|p| (*p).to_owned()).collect(),
        };
        Ok((handshake, Bytes::from(out)))
    }

    /// Feeds bytes received from the server. Returns `Ok(None)` until the response head is
    /// complete, then the validated result (once). Frames the server sent right after its
    /// response are kept: see [`take_remaining`](Self::take_remaining).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<ClientAccepted>, ResponseError> {
        let was_complete = self.reader.is_complete();
        match self.reader.push(data) {
            Err(_) => Err(ResponseError::HeadTooLarge),
            Ok(false) => Ok(None),
            Ok(true) if was_complete => Ok(None),
            Ok(true) => self.validate().map(Some),
        }
    }

    /// Takes the bytes received after the response head; pass them to
    /// [`WsConnection::handle_input`](crate::ws::WsConnection::handle_input).
    pub fn take_remaining(&mut self) -> Bytes {
        self.reader.take_rest()
    }

    fn validate(&self) -> Result<ClientAccepted, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(self.reader.head()) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) | Err(_) => return Err(ResponseError::Malformed),
        }
        let code = response.code.unwrap_or(0);
        if code != 101 {
            return Err(ResponseError::Status(code));
        }
        let values = |name: &'static str| {
            response
                .headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| core::str::from_utf8(h.value).unwrap_or("").trim())
        };
        if !has_token(values("upgrade"), "websocket") {
            return Err(ResponseError::NotUpgrade);
        }
        if !has_token(values("connection"), "upgrade") {
            return Err(ResponseError::ConnectionNotUpgrade);
        }
        let mut accepts = values("sec-websocket-accept");
        if accepts.next() != Some(self.expected_accept.as_str()) || accepts.next().is_some() {
            return Err(ResponseError::BadAccept);
        }
        if values("sec-websocket-extensions").next().is_some() {
            return Err(ResponseError::UnrequestedExtension);
        }
        let mut chosen = values("sec-websocket-protocol");
        let protocol = match (chosen.next(), chosen.next()) {
            (None, _) => None,
            (Some(p), None) if self.protocols.iter().any(|ours| ours == p) => Some(p.to_owned()),
            (Some(p), _) => return Err(ResponseError::UnrequestedProtocol(p.to_owned())),
        };
        Ok(ClientAccepted { protocol })
    }
}

/// An RFC 7230 token: what a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The server accepted the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The subprotocol the server chose (one we offered), if any.
    pub protocol: Option<String>,
}

/// Why the client's handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// A [`ClientRequest`] field (named) cannot be put in a request as given.
    InvalidRequest(&'static str),
    /// The response head exceeded the size limit.
    HeadTooLarge,
    /// Not a well-formed HTTP/1.x response head.
    Malformed,
    /// The server answered with this status instead of 101.
    Status(u16),
    /// No `Upgrade: websocket` in the response.
    NotUpgrade,
    /// No `upgrade` token in the response's `Connection`.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Accept` missing or not derived from our key.
    BadAccept,
    /// The server chose a subprotocol we did not offer.
    UnrequestedProtocol(String),
    /// The server enabled an extension; we offer none.
    UnrequestedExtension,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::InvalidRequest(field) => write!(f, "invalid request field: {field}"),
            ResponseError::HeadTooLarge => f.write_str("response head too large"),
            ResponseError::Malformed => f.write_str("malformed HTTP response"),
            ResponseError::Status(code) => write!(f, "server answered {code}, not 101"),
            ResponseError::NotUpgrade => f.write_str("response lacks Upgrade: websocket"),
            ResponseError::ConnectionNotUpgrade => {
                f.write_str("response lacks Connection: upgrade")
            }
            ResponseError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            ResponseError::UnrequestedProtocol(p) => {
                write!(f, "server chose subprotocol {p:?}, which we did not offer")
            }
            ResponseError::UnrequestedExtension => {
                f.write_str("server enabled an extension we did not offer")
            }
        }
    }
}

impl std::error::Error for ResponseError {}
