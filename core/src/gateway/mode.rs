//! Which mode a WebSocket connection uses, chosen from its upgrade request.

use crate::ws::{HttpRequestHead, TIDINGS_SUBPROTOCOL};

/// How a WebSocket connection carries tidings (spec §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayMode {
    /// Subprotocol `tidings.v1`, mode not yet known: the first data message decides,
    /// binary for [`GatewayMode::Binary`], text for [`GatewayMode::Json`]. This is what a
    /// server uses for every `tidings.v1` upgrade; the gateway then reports the chosen mode.
    Tidings,
    /// Subprotocol `tidings.v1`, binary messages carrying the native byte stream (preamble
    /// and frames) both ways, passed through untouched.
    Binary,
    /// Subprotocol `tidings.v1`, text messages carrying one JSON message each
    /// ([`crate::json`]); the gateway speaks the native preamble and frames to the hub.
    Json,
    /// No subprotocol: a plain chat client like the original Qt ones. The gateway registers
    /// `name` itself and translates bare text and `{"src","dst","msg"}` objects.
    Legacy {
        /// The name to register, from [`legacy_name`].
        name: String,
        /// The room to put the client in instead of the default room, from [`legacy_room`]
        /// (spec §12.4); `None` keeps the client in the default room, as before rooms.
        room: Option<String>,
    },
}

impl GatewayMode {
    /// The mode for an accepted upgrade: `protocol` is the subprotocol the server agreed to
    /// ([`crate::ws::Accepted::protocol`]). `tidings.v1` gives [`GatewayMode::Tidings`]. A
    /// request that offered no subprotocol at all gives [`GatewayMode::Legacy`] with the
    /// name from [`legacy_name`] and the room from [`legacy_room`]. `None` means "refuse": the request names nobody, or it
    /// offered only subprotocols other than `tidings.v1` (it is not a plain chat client).
    /// Answer it with an HTTP 400, or accept and close it with 1008.
    pub fn for_request(head: &HttpRequestHead, protocol: Option<&str>) -> Option<GatewayMode> {
        match protocol {
            Some(p) if p == TIDINGS_SUBPROTOCOL => Some(GatewayMode::Tidings),
            Some(_) => None,
            None if head.websocket_protocols().next().is_some() => None,
            None => legacy_name(head).map(|name| GatewayMode::Legacy {
                name,
                room: legacy_room(head),
            }),
        }
    }
}

/// The name a legacy client asks for: the `name` query parameter of the request target
/// (`/ws?name=alice`, percent-decoded, `+` as space), else the `Origin` header, which is
/// where Qt's `QWebSocket(origin)` puts it. `None` when neither gives a non-empty name of at
/// most 255 bytes (whether the hub accepts the name is the hub's decision).
///
/// ```
/// use tidings_core::gateway::legacy_name;
/// use tidings_core::ws::RequestReader;
///
/// let mut reader = RequestReader::new(8192);
/// let head = reader
///     .feed(b"GET /ws?room=1&name=J%C3%BCrgen+K HTTP/1.1\r\nHost: x\r\nOrigin: other\r\n\r\n")
///     .unwrap()
///     .unwrap();
/// assert_eq!(legacy_name(&head).as_deref(), Some("Jürgen K"));
/// ```
pub fn legacy_name(head: &HttpRequestHead) -> Option<String> {
    let from_query = query_value(head, "name").and_then(percent_decode);
    let name = match from_query {
        Some(name) if !name.is_empty() => name,
        _ => head.origin()?.trim().to_string(),
    };
    (!name.is_empty() && name.len() <= u8::MAX as usize).then_some(name)
}

/// The room a legacy client asks to be in: the `room` query parameter of the request target
/// (`/ws?name=ann&room=team`, percent-decoded, `+` as space). `None` when there is no such
/// parameter: the client stays in the default room. A parameter that is present is always
/// the client's wish, even when it names no valid room (empty, or a bad escape, which is
/// kept as written): the hub then refuses the room and the client is told so, rather than
/// landing silently somewhere it did not ask for.
///
/// ```
/// use tidings_core::gateway::legacy_room;
/// use tidings_core::ws::RequestReader;
///
/// let mut reader = RequestReader::new(8192);
/// let head = reader
///     .feed(b"GET /ws?name=ann&room=caf%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n")
///     .unwrap()
///     .unwrap();
/// assert_eq!(legacy_room(&head).as_deref(), Some("café"));
/// ```
pub fn legacy_room(head: &HttpRequestHead) -> Option<String> {
    let raw = query_value(head, "room")?;
    Some(percent_decode(raw).unwrap_or_else(|| raw.to_string()))
}

/// The raw value of the first query parameter called `key` (`""` for a bare `key`).
fn query_value<'a>(head: &'a HttpRequestHead, key: &str) -> Option<&'a str> {
    head.query()?
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| *k == key)
        .map(|(_, value)| value)
}

/// `application/x-www-form-urlencoded` decoding of one value; `None` for a bad escape or
/// bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
