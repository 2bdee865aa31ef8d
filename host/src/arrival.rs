//! What a server does with a connection that has just arrived on its one port: pure
//! decisions, no sockets, shared by both runtimes.
//!
//! A listening port serves three kinds of visitors, told apart by their first bytes
//! ([`classify`]):
//!
//! * a native preamble (`0x89 TDG…`) → [`Visitor::Native`]: the bytes go to the hub;
//! * an HTTP request line → [`Visitor::Http`]: the driver reads the request head (at most
//!   [`WebConfig::max_head_bytes`], with a [`RequestReader`]) and asks [`route`] what to do:
//!   upgrade `GET` [`WS_PATH`] to a WebSocket bridged to the hub by the core's gateway, or
//!   send a plain HTTP answer (a page asset `200`, `404`, `405`, `400`/`431` for broken heads)
//!   and close;
//! * a TLS record (`0x16`) → [`Visitor::Tls`]: on a port with TLS
//!   ([`ServerConfig::tls`](crate::ServerConfig::tls)) the driver starts it
//!   ([`Entrance::StartTls`]) and classifies the decrypted first bytes again, so every door
//!   above is also a door inside TLS (`tls://`, `https://`, `wss://`);
//! * anything else → [`Visitor::Unknown`]: an admitted one is handed to the hub like a native
//!   connection, whose session answers `error bad-preamble` and closes, so a confused native
//!   client gets the same diagnosis from every server.
//!
//! [`entrance`] applies the port's TLS policy to a visitor: on a TLS port a plaintext client
//! is refused with an answer it understands (a native one `error tls-required`, an HTTP one
//! `400` saying to use `https://`) unless the operator allows plaintext beside TLS
//! ([`ServerConfig::allow_plaintext`](crate::ServerConfig::allow_plaintext)); on a plaintext
//! port a TLS client gets a `handshake_failure` alert.
//!
//! A connection beyond one of the server's connection limits ([`Host::admit`]) is answered
//! with [`Visitor::refusal`]: a native client its preamble and `error server-full`, an HTTP
//! client `503 Service Unavailable`, both with the reason.
//!
//! Every plain HTTP answer is an [`HttpResponse`]; after writing one, a driver shuts its
//! write side and reads and discards what the client still sends (at most [`LINGER_BYTES`]
//! for at most [`LINGER_TIME`]), so that closing a socket with unread input does not reset the
//! connection before the client has read the answer.
//!
//! A driver gives each new connection [`WebConfig::head_timeout`] to show what it is and, for
//! HTTP, to send its whole request head; a slower one is dropped without an answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::gateway::{Gateway, GatewayMode};
use tidings_core::wire::Preamble;
use tidings_core::ws::{
    sniff_http, HttpRequestHead, HttpResponse, RequestReader, Sniff, WsConfig,
    DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};

use crate::server::{ConnLimit, Host};
use crate::tls::{Tls, TlsServerConfig};

/// The path WebSocket upgrades are accepted on.
pub const WS_PATH: &str = "/ws";

/// Most bytes read and thrown away after a plain HTTP answer (see the [module docs](self)).
pub const LINGER_BYTES: usize = 64 << 10;

/// How long that reading and discarding may take at most.
pub const LINGER_TIME: Duration = Duration::from_secs(1);

/// Seconds a client turned away by a full server is asked to wait (`Retry-After`).
const RETRY_AFTER_SECS: u32 = 5;

/// One static file of the web page, served on `GET path`.
///
/// The body is `'static` so a binary can embed its page with `include_bytes!` and every
/// answer shares it without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebAsset {
    /// The request path, starting with `/` (`/index.html`, `/app.js`). An asset at
    /// `/index.html` is also served at `/`, and one at `/` also at `/index.html`.
    pub path: &'static str,
    /// The `Content-Type` to send (`text/html; charset=utf-8`).
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

/// How a server's port treats what is not a native connection: WebSocket clients and plain
/// HTTP requests for the web page. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// How long a new connection (of any kind) may take to show what it is and, for HTTP,
    /// to send its whole request head (and to take a plain HTTP answer). Slower clients are
    /// dropped. Default 10 s.
    pub head_timeout: Duration,
    /// Most bytes of an HTTP request head (request line and headers); a longer one is
    /// answered `431`. Default [`DEFAULT_MAX_HEADER_BYTES`] (8 KiB).
    pub max_head_bytes: usize,
    /// Limits of each WebSocket connection. The default keeps messages at 2 MiB: a JSON text
    /// beyond the hub's frame limit is refused anyway. Its
    /// [`close_timeout`](WsConfig::close_timeout) bounds how long the server waits for the
    /// client's close frame after sending its own (default 5 s).
    pub ws: WsConfig,
    /// The static files served over plain HTTP; empty: every `GET` but [`WS_PATH`] is a 404.
    pub page: Vec<WebAsset>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            head_timeout: Duration::from_secs(10),
            max_head_bytes: DEFAULT_MAX_HEADER_BYTES,
            ws: WsConfig {
                max_message_size: 2 << 20,
                max_frame_size: 2 << 20,
                ..WsConfig::default()
            },
            page: Vec::new(),
        }
    }
}

impl WebConfig {
    /// The asset served for `path`, with `/` and `/index.html` as one.
    pub fn asset(&self, path: &str) -> Option<&WebAsset> {
        let alias = match path {
            "/" => Some("/index.html"),
            "/index.html" => Some("/"),
            _ => None,
        };
        self.page
            .iter()
            .find(|a| a.path == path)
            .or_else(|| alias.and_then(|alias| self.page.iter().find(|a| a.path == alias)))
    }

    /// A reader for an HTTP visitor's request head, under [`WebConfig::max_head_bytes`].
    pub fn request_reader(&self) -> RequestReader {
        RequestReader::new(self.max_head_bytes)
    }
}

/// What the first bytes of a connection show it to be; see [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor {
    /// A tidings preamble (or the start of one).
    Native,
    /// An HTTP request line: a method name and a space.
    Http,
    /// A TLS handshake record (`0x16`): a `tls://`, `https://` or `wss://` client.
    Tls,
    /// None of these. Admitted, it is served as a native connection, whose session answers
    /// `error bad-preamble`; refused, it is just closed.
    Unknown,
}

/// The first byte of a TLS handshake record (RFC 8446, section 5.1): what every TLS client
/// sends first. Neither the preamble (`0x89`) nor an HTTP method can start with it.
const TLS_HANDSHAKE: u8 = 0x16;

/// A fatal TLS alert, `handshake_failure`, in a TLS 1.2 record (which TLS 1.3 clients read
/// too): the answer of a port without TLS to a TLS client.
const TLS_HANDSHAKE_FAILURE: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// What a driver does with a visitor; see [`entrance`].
#[derive(Debug)]
pub enum Entrance {
    /// Serve it as what it is (a native connection, an HTTP request, or `Unknown` served
    /// as a native connection).
    Serve(Visitor),
    /// Start TLS with this, giving it the sniffed bytes first ([`Tls::received`]), then
    /// classify the decrypted first bytes (with `inside_tls` set).
    StartTls(Box<Tls>),
    /// Write `answer`, if any, then close as after any plain answer; report `why` to the
    /// operator ([`Host::tls_failed`]).
    Refuse {
        /// What the visitor is told.
        answer: Option<Bytes>,
        /// Why, for the operator.
        why: &'static str,
    },
}

/// What to do with `visitor` on a port with TLS `tls` (see [`ServerConfig::tls`] and
/// [`ServerConfig::allow_plaintext`]); `inside_tls` says whether its bytes came out of TLS
/// already.
pub fn entrance(
    tls: Option<&TlsServerConfig>,
    allow_plaintext: bool,
    visitor: Visitor,
    inside_tls: bool,
) -> Entrance {
    match (visitor, tls) {
        // No TLS inside TLS: served as garbage (`bad-preamble`).
        (Visitor::Tls, _) if inside_tls => Entrance::Serve(Visitor::Unknown),
        (Visitor::Tls, Some(tls)) => Entrance::StartTls(Box::new(Tls::accept(tls))),
        (Visitor::Tls, None) => Entrance::Refuse {
            answer: Some(Bytes::from_static(&TLS_HANDSHAKE_FAILURE)),
            why: "a TLS client on a port without TLS",
        },
        (plain, Some(_)) if !inside_tls && !allow_plaintext => Entrance::Refuse {
            answer: plain.plaintext_refusal(),
            why: "a plaintext client on a TLS port",
        },
        (visitor, _) => Entrance::Serve(visitor),
    }
}

/// Most first bytes [`classify`] needs to decide (`OPTIONS `, `CONNECT `): a driver that
/// reads this many and still gets `None` has a bug, not a slow client.
pub const MAX_CLASSIFY_BYTES: usize = 8;

/// The kind of visitor whose connection starts with `first`; `None` while the bytes seen so
/// far could still be more than one kind (read more, until [`WebConfig::head_timeout`]).
/// Decides after at most [`MAX_CLASSIFY_BYTES`] bytes.
pub fn classify(first: &[u8]) -> Option<Visitor> {
    if first.is_empty() {
        return None;
    }
    if Preamble::could_be(first) {
        return Some(Visitor::Native);
    }
    if first[0] == TLS_HANDSHAKE {
        return Some(Visitor::Tls);
    }
    match sniff_http(first) {
        Sniff::Http => Some(Visitor::Http),
        Sniff::NeedMore => None,
        Sniff::NotHttp => Some(Visitor::Unknown),
    }
}

impl Visitor {
    /// The bytes that tell this visitor it was turned away by `limit`, to be written before
    /// closing: `None` for a visitor that would not understand any.
    pub fn refusal(self, limit: ConnLimit) -> Option<Bytes> {
        match self {
            Visitor::Native => Some(limit.native_refusal()),
            Visitor::Http => Some(
                HttpResponse::text(503, limit.reason())
                    .header("Retry-After", RETRY_AFTER_SECS.to_string())
                    .to_bytes(),
            ),
            Visitor::Tls | Visitor::Unknown => None,
        }
    }

    /// The bytes that tell this plaintext visitor the port speaks TLS.
    fn plaintext_refusal(self) -> Option<Bytes> {
        const WHY: &str = "this port speaks TLS: connect with tls://, https:// or wss://";
        match self {
            Visitor::Native => {
                let mut out = bytes::BytesMut::new();
                out.extend_from_slice(&Preamble::CURRENT.to_bytes());
                tidings_core::wire::Message::Error {
                    code: tidings_core::ErrorCode::TlsRequired,
                    text: tidings_core::wire::Utf8::from(WHY),
                }
                .encode(&mut out);
                Some(out.freeze())
            }
            Visitor::Http => Some(HttpResponse::text(400, WHY).to_bytes()),
            Visitor::Tls | Visitor::Unknown => None,
        }
    }
}

/// What to do with an HTTP visitor's request; see [`route`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Write `response` (the `101 Switching Protocols`), then bridge the connection to the
    /// hub: a [`WsConnection`](tidings_core::ws::WsConnection) with [`WebConfig::ws`] and a
    /// [`Gateway`] in `mode` ([`open_gateway`]). Bytes read after the request head are its
    /// first WebSocket input.
    WebSocket {
        /// The `101` response.
        response: Bytes,
        /// How the gateway translates between the WebSocket client and the hub.
        mode: GatewayMode,
    },
    /// Write this answer and close.
    Answer(HttpResponse),
}

/// The decision for a complete request head: a WebSocket upgrade on [`WS_PATH`], a page asset
/// for a `GET` of its path, otherwise an error answer.
pub fn route(web: &WebConfig, head: &HttpRequestHead) -> Route {
    if head.path() == WS_PATH {
        let accepted = match head.accept_websocket(&[TIDINGS_SUBPROTOCOL]) {
            Ok(accepted) => accepted,
            Err(err) => return Route::Answer(err.into()),
        };
        return match GatewayMode::for_request(head, accepted.protocol.as_deref()) {
            Some(mode) => Route::WebSocket {
                response: accepted.response,
                mode,
            },
            None => Route::Answer(HttpResponse::text(
                400,
                "offer the subprotocol tidings.v1, or name a plain chat client with ?name=",
            )),
        };
    }
    if head.method() != "GET" {
        return Route::Answer(
            HttpResponse::text(405, "only GET is served here").header("Allow", "GET"),
        );
    }
    match web.asset(head.path()) {
        Some(asset) => Route::Answer(
            HttpResponse::new(200, asset.content_type, asset.body)
                .header("Cache-Control", "no-cache"),
        ),
        None => Route::Answer(HttpResponse::text(404, "not found")),
    }
}

/// The gateway for a WebSocket client of `host`'s hub, in `mode`.
pub fn open_gateway(host: &Host, mode: GatewayMode, now: Instant) -> Gateway {
    let hub = host.hub_ref();
    Gateway::for_hub(mode, hub.config().session.max_frame, hub.name(), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::ws::RequestError;

    fn page() -> WebConfig {
        WebConfig {
            page: vec![
                WebAsset {
                    path: "/index.html",
                    content_type: "text/html; charset=utf-8",
                    body: b"<p>hi</p>",
                },
                WebAsset {
                    path: "/app.js",
                    content_type: "text/javascript",
                    body: b"go()",
                },
            ],
            ..WebConfig::default()
        }
    }

    fn head(web: &WebConfig, request: &str) -> Result<HttpRequestHead, RequestError> {
        Ok(web
            .request_reader()
            .feed(request.as_bytes())?
            .expect("a whole head"))
    }

    fn answer(web: &WebConfig, request: &str) -> String {
        let route = match head(web, request) {
            Ok(head) => route(web, &head),
            Err(err) => Route::Answer(err.into()),
        };
        match route {
            Route::Answer(response) => String::from_utf8(response.to_bytes().to_vec()).unwrap(),
            Route::WebSocket { .. } => panic!("upgraded: {request}"),
        }
    }

    fn upgrade(extra: &str) -> String {
        format!(
            "GET /ws{extra} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
    }

    #[test]
    fn first_bytes_choose_the_visitor() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(&[0x89]), Some(Visitor::Native));
        assert_eq!(classify(b"\x89TDG"), Some(Visitor::Native));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"GET /"), Some(Visitor::Http));
        assert_eq!(classify(b"hello"), Some(Visitor::Unknown));
        assert_eq!(classify(b"\x16\x03\x01"), Some(Visitor::Tls));
        assert_eq!(classify(b"\x89XYZ"), Some(Visitor::Unknown));
    }

    #[test]
    fn partial_first_bytes_wait_but_not_for_long() {
        // Every prefix of every method waits, and the full method decides.
        for method in ["GET ", "HEAD ", "OPTIONS ", "CONNECT ", "DELETE "] {
            for len in 1..method.len() {
                assert_eq!(
                    classify(&method.as_bytes()[..len]),
                    None,
                    "{method:?} {len}"
                );
            }
            assert_eq!(classify(method.as_bytes()), Some(Visitor::Http));
        }
        // No byte string keeps `classify` undecided beyond its bound.
        for first in [
            b"OPTIONSX".as_slice(),
            b"CONNECTS",
            b"GETGETGE",
            b"\x89TDGxxxx",
        ] {
            assert_eq!(first.len(), MAX_CLASSIFY_BYTES);
            assert!(classify(first).is_some(), "{first:?}");
        }
    }

    #[test]
    fn index_and_root_are_one_page() {
        let web = page();
        assert!(web.asset("/").is_some());
        assert!(web.asset("/index.html").is_some());
        assert!(web.asset("/app.js").is_some());
        assert!(web.asset("/other.js").is_none());
        let root = WebConfig {
            page: vec![WebAsset {
                path: "/",
                ..page().page[0]
            }],
            ..WebConfig::default()
        };
        assert!(root.asset("/index.html").is_some());
    }

    #[test]
    fn refusals_speak_each_visitors_language() {
        let native = Visitor::Native.refusal(ConnLimit::Total).unwrap();
        assert_eq!(native, ConnLimit::Total.native_refusal());
        assert!(Preamble::could_be(&native));

        let http = Visitor::Http.refusal(ConnLimit::PerAddress).unwrap();
        let http = std::str::from_utf8(&http).unwrap();
        assert!(
            http.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{http}"
        );
        assert!(http.contains("\r\nRetry-After: 5\r\n"), "{http}");
        assert!(http.contains("\r\nConnection: close\r\n"), "{http}");
        assert!(http.ends_with(ConnLimit::PerAddress.reason()), "{http}");

        assert_eq!(Visitor::Unknown.refusal(ConnLimit::Handshaking), None);
    }

    #[test]
    fn the_page_is_served_and_nothing_else() {
        let web = page();
        let index = answer(&web, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
        assert!(index.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(index.contains("Cache-Control: no-cache\r\n"));
        assert!(index.ends_with("\r\n\r\n<p>hi</p>"), "{index}");
        let js = answer(&web, "GET /app.js?v=2 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(js.ends_with("Content-Length: 4\r\n\r\ngo()"), "{js}");

        for path in [
            "/../etc/passwd",
            "/app.js/",
            "//app.js",
            "/%2e%2e/",
            "/APP.JS",
        ] {
            let text = answer(&web, &format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n"));
            assert!(
                text.starts_with("HTTP/1.1 404 Not Found\r\n"),
                "{path}: {text}"
            );
        }
        for method in ["POST", "HEAD", "PUT", "DELETE", "OPTIONS"] {
            let text = answer(&web, &format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n"));
            assert!(text.starts_with("HTTP/1.1 405 "), "{method}: {text}");
            assert!(text.contains("\r\nAllow: GET\r\n"), "{method}: {text}");
        }
        let empty = answer(&WebConfig::default(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(empty.starts_with("HTTP/1.1 404 "), "{empty}");
    }

    #[test]
    fn hostile_and_oversize_heads_are_answered_not_followed() {
        let web = WebConfig {
            max_head_bytes: 256,
            ..page()
        };
        let long = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(300)
        );
        assert!(answer(&web, &long).starts_with("HTTP/1.1 431 "));
        // The default limit is larger: the same head is served.
        assert!(answer(&page(), &long).starts_with("HTTP/1.1 200 "));
        let many: String = (0..100).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
        assert!(answer(&page(), &many).starts_with("HTTP/1.1 431 "));
        for broken in [
            "GET / HTTP/1.1\r\nHost h\r\n\r\n",
            "GET / HTTP/9\r\n\r\n",
            "GET /\x00 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n\x01: x\r\n\r\n",
        ] {
            assert!(
                answer(&page(), broken).starts_with("HTTP/1.1 400 "),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn websocket_upgrades_choose_a_gateway_mode() {
        let web = page();
        let tidings = head(
            &web,
            &(upgrade("") + "Sec-WebSocket-Protocol: tidings.v1\r\n\r\n"),
        );
        match route(&web, &tidings.unwrap()) {
            Route::WebSocket { response, mode } => {
                assert!(response.starts_with(b"HTTP/1.1 101 "));
                assert_eq!(mode, GatewayMode::Tidings);
            }
            other => panic!("{other:?}"),
        }
        let legacy = head(&web, &(upgrade("?name=ann") + "\r\n"));
        match route(&web, &legacy.unwrap()) {
            Route::WebSocket { mode, .. } => {
                assert_eq!(
                    mode,
                    GatewayMode::Legacy {
                        name: "ann".into(),
                        room: None
                    }
                )
            }
            other => panic!("{other:?}"),
        }
        // Neither the subprotocol nor a name: a 400 that says what to do.
        let text = answer(&web, &(upgrade("") + "\r\n"));
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(text.contains("tidings.v1"), "{text}");
        // Another subprotocol only.
        let other = answer(
            &web,
            &(upgrade("?name=ann") + "Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
        );
        assert!(other.starts_with("HTTP/1.1 400 "), "{other}");
        // Not an upgrade, or not a GET, on the WebSocket path.
        let plain = answer(&web, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(plain.starts_with("HTTP/1.1 400 "), "{plain}");
        let post = answer(&web, "POST /ws HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let version = answer(
            &web,
            &(upgrade("").replace("Version: 13", "Version: 8") + "\r\n"),
        );
        assert!(
            version.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{version}"
        );
        assert!(
            version.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{version}"
        );
    }
}
