//! Server side of the opening handshake: parse the request, answer it.

use super::head::HeadReader;
use super::{accept_key, has_token, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use core::fmt;

/// Most headers a request may carry; more is answered with 431.
const MAX_HEADERS: usize = 64;

/// Reads an HTTP request head from a connection's first bytes.
///
/// ```
/// use tidings_core::ws::{RequestReader, DEFAULT_MAX_HEADER_BYTES};
/// let mut reader = RequestReader::new(DEFAULT_MAX_HEADER_BYTES);
/// assert!(reader.feed(b"GET /chat?room=1 HTTP/1.1\r\nHost: example\r\n").unwrap().is_none());
/// let head = reader.feed(b"\r\n").unwrap().unwrap();
/// assert_eq!((head.method(), head.path(), head.query()), ("GET", "/chat", Some("room=1")));
/// assert!(!head.is_websocket_upgrade());
/// ```
#[derive(Debug)]
pub struct RequestReader {
    reader: HeadReader,
}

impl RequestReader {
    /// A reader that refuses heads longer than `max_header_bytes` (see
    /// [`DEFAULT_MAX_HEADER_BYTES`](super::DEFAULT_MAX_HEADER_BYTES)).
    pub fn new(max_header_bytes: usize) -> Self {
        RequestReader {
            reader: HeadReader::new(max_header_bytes),
        }
    }

    /// Feeds received bytes. Returns `Ok(None)` until the head is complete, then the parsed
    /// head (once). The limit is enforced as bytes arrive: an over-long head fails with
    /// [`RequestError::HeadTooLarge`] (431) without being buffered. On error, send
    /// [`RequestError::response`] and close the connection.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<HttpRequestHead>, RequestError> {
        let was_complete = self.reader.is_complete();
        match self.reader.push(data) {
            Err(_) => Err(RequestError::HeadTooLarge),
            Ok(false) => Ok(None),
            Ok(true) if was_complete => Ok(None),
            Ok(true) => HttpRequestHead::parse(self.reader.head()).map(Some),
        }
    }

    /// Takes the bytes received after the head. For a WebSocket upgrade they belong to the
    /// connection: pass them to [`WsConnection::handle_input`](crate::ws::WsConnection::handle_input).
    pub fn take_remaining(&mut self) -> Bytes {
        self.reader.take_rest()
    }
}

/// A parsed HTTP request head: method, target, version and headers.
///
/// Header names keep their case; lookups ignore it. Values that are not UTF-8 are kept with
/// replacement characters (they can then match nothing the application expects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestHead {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, String)>,
}

impl HttpRequestHead {
    fn parse(head: &[u8]) -> Result<HttpRequestHead, RequestError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(RequestError::Malformed),
            Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
            Err(_) => return Err(RequestError::Malformed),
        }
        let (Some(method), Some(target), Some(minor_version)) =
            (request.method, request.path, request.version)
        else {
            return Err(RequestError::Malformed);
        };
        Ok(HttpRequestHead {
            method: method.to_owned(),
            target: target.to_owned(),
            minor_version,
            headers: request
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).trim().to_owned();
                    (h.name.to_owned(), value)
                })
                .collect(),
        })
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target's path, before any `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&self.target, |(path, _)| path)
    }

    /// The target's query, after the first `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn http_minor_version(&self) -> u8 {
        self.minor_version
    }

    /// All headers in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Values of every header called `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    /// The `Origin` header, which browsers send: check it against the origins you serve to
    /// stop other web pages from opening connections with your users' credentials.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket` and
    /// `Connection: upgrade`). A request that does not is a plain HTTP request, e.g. for the
    /// page served at `/`. An upgrade may still be malformed:
    /// [`accept_websocket`](Self::accept_websocket) checks the rest.
    pub fn is_websocket_upgrade(&self) -> bool {
        has_token(self.header_values("upgrade"), "websocket")
            && has_token(self.header_values("connection"), "upgrade")
    }

    /// The subprotocols the client offers, in its order of preference.
    pub fn websocket_protocols(&self) -> impl Iterator<Item = &str> {
        self.header_values("sec-websocket-protocol")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }

    /// Validates the request as a WebSocket opening handshake and builds the `101 Switching
    /// Protocols` response, choosing the client's most preferred protocol among `supported`
    /// (none if there is no overlap: the client then decides whether to go on).
    ///
    /// Checks, in order: method `GET` (else 405), HTTP/1.1 or later, exactly one `Host`,
    /// `Upgrade: websocket`, `Connection: upgrade` (else 400), `Sec-WebSocket-Version: 13`
    /// (else 426), and exactly one `Sec-WebSocket-Key` that is base64 of 16 bytes (else 400).
    /// Which paths and origins are served is the caller's decision (404/403 are theirs).
    ///
    /// ```
    /// use tidings_core::ws::{RequestReader, TIDINGS_SUBPROTOCOL};
    /// let mut reader = RequestReader::new(8192);
    /// let head = reader.feed(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, tidings.v1\r\n\r\n")
    ///     .unwrap().unwrap();
    /// let accepted = head.accept_websocket(&[TIDINGS_SUBPROTOCOL]).unwrap();
    /// assert_eq!(accepted.protocol.as_deref(), Some("tidings.v1"));
    /// assert!(accepted.response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    /// ```
    pub fn accept_websocket(&self, supported: &[&str]) -> Result<Accepted, RequestError> {
        if self.method != "GET" {
            return Err(RequestError::MethodNotAllowed);
        }
        if self.minor_version < 1 {
            return Err(RequestError::HttpVersion);
        }
        if self.header_values("host").count() != 1 {
            return Err(RequestError::Host);
        }
        if !has_token(self.header_values("upgrade"), "websocket") {
            return Err(RequestError::NotUpgrade);
        }
        if !has_token(self.header_values("connection"), "upgrade") {
            return Err(RequestError::ConnectionNotUpgrade);
        }
        let mut versions = self.header_values("sec-websocket-version");
        if versions.next() != Some("13") || versions.next().is_some() {
            return Err(RequestError::UnsupportedVersion);
        }
        let mut keys = self.header_values("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) if is_valid_key(key) => key,
            _ => return Err(RequestError::BadKey),
        };
        let protocol = self
            .websocket_protocols()
            .find(|offered| supported.contains(offered))
            .map(str::to_owned);

        let mut response = String::with_capacity(160);
        response.push_str(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        );
        response.push_str("Sec-WebSocket-Accept: ");
        response.push_str(&accept_key(key.as_bytes()));
        response.push_str("\r\n");
        if let Some(protocol) = &protocol {
            response.push_str("Sec-WebSocket-Protocol: ");
            response.push_str(protocol);
            response.push_str("\r\n");
        }
        response.push_str("\r\n");
        Ok(Accepted {
            protocol,
            response: Bytes::from(response),
        })
    }
}

/// A key must be the base64 encoding of exactly 16 bytes (24 characters with padding).
fn is_valid_key(key: &str) -> bool {
    let mut raw = [0u8; 18];
    key.len() == 24 && matches!(STANDARD.decode_slice(key, &mut raw), Ok(16))
}

/// A WebSocket upgrade the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol chosen, echoed in `Sec-WebSocket-Protocol`.
    pub protocol: Option<String>,
    /// The `101 Switching Protocols` response to write before any frame.
    pub response: Bytes,
}

/// Why a request cannot be upgraded; [`status`](Self::status) and
/// [`response`](Self::response) give the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The head exceeded the size limit. (431)
    HeadTooLarge,
    /// More than 64 headers. (431)
    TooManyHeaders,
    /// Not a well-formed HTTP/1.x request head. (400)
    Malformed,
    /// The method is not `GET`. (405)
    MethodNotAllowed,
    /// HTTP/1.0: upgrades need HTTP/1.1. (400)
    HttpVersion,
    /// No `Host` header, or more than one. (400)
    Host,
    /// No `Upgrade: websocket`. (400)
    NotUpgrade,
    /// No `upgrade` token in `Connection`. (400)
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13. (426, with `Sec-WebSocket-Version: 13`)
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes. (400)
    BadKey,
}

impl RequestError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::MethodNotAllowed => 405,
            RequestError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// The complete HTTP response to send before closing the connection.
    pub fn response(&self) -> Bytes {
        HttpResponse::from(*self).to_bytes()
    }
}

impl From<RequestError> for HttpResponse {
    fn from(err: RequestError) -> HttpResponse {
        let response = HttpResponse::text(err.status(), err.to_string());
        match err.status() {
            405 => response.header("Allow", "GET"),
            426 => response
                .header("Sec-WebSocket-Version", "13")
                .header("Upgrade", "websocket"),
            _ => response,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::HeadTooLarge => "request head too large",
            RequestError::TooManyHeaders => "too many headers",
            RequestError::Malformed => "malformed HTTP request",
            RequestError::MethodNotAllowed => "WebSocket upgrades use GET",
            RequestError::HttpVersion => "WebSocket upgrades need HTTP/1.1",
            RequestError::Host => "exactly one Host header is required",
            RequestError::NotUpgrade => "missing Upgrade: websocket",
            RequestError::ConnectionNotUpgrade => "missing Connection: upgrade",
            RequestError::UnsupportedVersion => "unsupported Sec-WebSocket-Version (need 13)",
            RequestError::BadKey => "Sec-WebSocket-Key must be base64 of 16 bytes",
        })
    }
}

impl std::error::Error for RequestError {}
