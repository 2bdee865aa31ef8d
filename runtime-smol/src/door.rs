//! The door: one listening port, three kinds of visitors.
//!
//! Every accepted socket comes here first. Its first bytes decide where it goes:
//!
//! * a native preamble (`0x89 TDG…`, [`Preamble::could_be`]) → a
//!   [native connection](crate::native),
//!   with the sniffed bytes fed to the hub first;
//! * an HTTP request line ([`sniff_http`]) → the request head is read (at most
//!   [`DEFAULT_MAX_HEADER_BYTES`]) and routed: `GET /ws` with a WebSocket upgrade becomes a
//!   [gateway](crate::websocket) connection; `GET` of a [`WebAsset`] path is answered `200`;
//!   other paths `404`, other methods `405`, broken heads `400`/`431`
//!   ([`RequestError::response`]); after a plain HTTP answer the connection is closed;
//! * anything else → also the native task: the hub's session answers it with the native
//!   `error bad-preamble` frame and closes, exactly as a native server without a door would,
//!   so a confused native client gets the same diagnosis either way.
//!
//! A client that stays silent, or does not finish its request head, within
//! [`DoorConfig::head_timeout`] is dropped without an answer. Whatever goes wrong here
//! closes only this one connection.
//!
//! Before any of that, the connection limits of [`ServerConfig`](crate::ServerConfig)
//! (total, per source address, still in a handshake) are checked. A connection beyond one is
//! turned away, given [`REFUSAL_TIME`] at most to show what it is: a native client gets its
//! preamble and `error server-full` with the reason, an HTTP client (WebSocket upgrades
//! included) `503 Service Unavailable` with the reason; anything else, or anything beyond
//! [`MAX_REFUSING`](tidings_host::server::MAX_REFUSING) refusals at once, is just closed.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use bytes::Bytes;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::gateway::{Gateway, GatewayMode};
use tidings_core::wire::Preamble;
use tidings_core::ws::{
    sniff_http, HttpRequestHead, RequestReader, Sniff, WsConfig, WsConnection,
    DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};

use tidings_host::server::{ConnLimit, REFUSAL_TIME};

use crate::doorbell::wake_pair;
use crate::native::NativeConn;
use crate::server::State;
use crate::websocket::ws_task;

/// The path WebSocket upgrades are accepted on.
pub const WS_PATH: &str = "/ws";

/// Most bytes read and thrown away after an HTTP error answer, so that closing a socket
/// with unread input does not reset the connection before the client read the answer.
const LINGER_BYTES: usize = 64 << 10;

/// How long that draining may take at most.
const LINGER_TIME: Duration = Duration::from_secs(1);

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

/// How the server's port treats what is not a native connection.
///
/// The first bytes of each connection decide: a native preamble goes to the hub as before;
/// an HTTP request is read (head at most 8 KiB, else `431`) and `GET /ws` with a WebSocket
/// upgrade is bridged to the hub by the core's gateway (subprotocol `tidings.v1`: binary or
/// JSON carriage; none: legacy plain chat named by `?name=` or `Origin`); a `GET` of a
/// [`WebAsset`] is answered `200`, other paths `404`, other methods `405`, broken heads `400`;
/// anything else gets the native `error bad-preamble` and is closed. Each plain HTTP answer
/// closes its connection. Failures close only the connection concerned.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// How long a new connection may take to show what it is and, for HTTP, to send its
    /// whole request head (and to take a plain HTTP answer). Slower clients are dropped.
    /// Default 10 s.
    pub head_timeout: Duration,
    /// Limits of each WebSocket connection. The default keeps messages at 2 MiB: a JSON text
    /// beyond the hub's frame limit is refused anyway. Its
    /// [`close_timeout`](WsConfig::close_timeout) bounds how long the server waits for the
    /// client's close frame after sending its own (default 5 s).
    pub ws: WsConfig,
    /// The static files served over plain HTTP; empty: every `GET` but `/ws` is a 404.
    pub web: Vec<WebAsset>,
}

impl Default for DoorConfig {
    fn default() -> Self {
        DoorConfig {
            head_timeout: Duration::from_secs(10),
            ws: WsConfig {
                max_message_size: 2 << 20,
                max_frame_size: 2 << 20,
                ..WsConfig::default()
            },
            web: Vec::new(),
        }
    }
}

impl DoorConfig {
    /// The asset served for `path`, with `/` and `/index.html` as one.
    pub fn asset(&self, path: &str) -> Option<&WebAsset> {
        let alias = match path {
            "/" => Some("/index.html"),
            "/index.html" => Some("/"),
            _ => None,
        };
        self.web
            .iter()
            .find(|a| a.path == path)
            .or_else(|| alias.and_then(|alias| self.web.iter().find(|a| a.path == alias)))
    }
}

/// What the first bytes of a connection say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visitor {
    Native,
    Http,
}

/// `None` while the bytes seen so far could still be either.
fn classify(first: &[u8]) -> Option<Visitor> {
    if first.is_empty() {
        return None;
    }
    if Preamble::could_be(first) {
        return Some(Visitor::Native);
    }
    match sniff_http(first) {
        Sniff::Http => Some(Visitor::Http),
        Sniff::NeedMore => None,
        // The native session answers with `error bad-preamble` (see the module docs).
        Sniff::NotHttp => Some(Visitor::Native),
    }
}

/// Reads into `buf` until `deadline`: `None` on timeout, error or end of stream.
async fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    future::or(
        async { stream.read(buf).await.ok().filter(|&n| n > 0) },
        async {
            Timer::at(deadline).await;
            None
        },
    )
    .await
}

/// Writes all of `chunks` before `deadline`; false if that failed.
async fn write_by(stream: &mut TcpStream, chunks: &[Bytes], deadline: Instant) -> bool {
    future::or(
        async {
            for chunk in chunks {
                if stream.write_all(chunk).await.is_err() {
                    return false;
                }
            }
            stream.flush().await.is_ok()
        },
        async {
            Timer::at(deadline).await;
            false
        },
    )
    .await
}

/// Counts one admitted connection until it is dropped, however its task ends (the door's,
/// or the WebSocket task it handed the socket to), or until [`Admitted::into_ip`].
pub(crate) struct Admitted {
    /// `None` once the address was handed on.
    state: Option<Rc<State>>,
    ip: IpAddr,
}

impl Admitted {
    /// The admitted address, for a holder that releases it itself with [`release`] (a
    /// native connection, which keeps no reference to the server's state).
    pub(crate) fn into_ip(mut self) -> IpAddr {
        self.state = None;
        self.ip
    }
}

/// Frees `ip`'s place under the per-address limit.
pub(crate) fn release(state: &State, ip: IpAddr) {
    // While the server is torn down another borrow cannot be live, but never panic here.
    if let Ok(mut host) = state.host.try_borrow_mut() {
        host.release(ip);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            release(state, self.ip);
        }
    }
}

/// Serves one accepted socket from `peer`: checks the connection limits, then sniffs it and
/// hands it on. See the [module docs](self).
pub(crate) async fn door_task(state: Rc<State>, stream: TcpStream, peer: SocketAddr) {
    let admission = state.host.borrow_mut().admit(peer.ip());
    match admission {
        Ok(()) => {
            let admitted = Admitted {
                state: Some(state.clone()),
                ip: peer.ip(),
            };
            sniff(state, stream, admitted).await;
        }
        Err(limit) => {
            let answer = {
                let mut host = state.host.borrow_mut();
                host.refused(peer, limit, Instant::now());
                host.start_refusal()
            };
            state.after();
            if answer {
                // Boxed, so that refusals do not size the task of every admitted connection.
                Box::pin(refuse(stream, limit)).await;
                state.host.borrow_mut().end_refusal();
            }
        }
    }
}

/// Answers a connection turned away by `limit` (see the [module docs](self)).
async fn refuse(mut stream: TcpStream, limit: ConnLimit) {
    let deadline = Instant::now() + REFUSAL_TIME;
    let mut first = Vec::new();
    let mut chunk = [0u8; 512];
    let visitor = loop {
        if let Some(v) = classify(&first) {
            break v;
        }
        match read_by(&mut stream, &mut chunk, deadline).await {
            Some(n) => first.extend_from_slice(&chunk[..n]),
            None => return,
        }
    };
    let response = match visitor {
        Visitor::Native if Preamble::could_be(&first) => limit.native_refusal(),
        Visitor::Native => return,
        Visitor::Http => {
            let body = limit.reason();
            Bytes::from(format!(
                "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ))
        }
    };
    answer_by(&mut stream, &[response], deadline, Some(deadline)).await;
}

/// Sniffs an admitted socket and hands it on.
///
/// The door's task ends at the hand-off: a native connection is served by the event loop
/// itself ([`crate::native`]), a WebSocket one by a task of its own ([`State::spawn`]), each
/// only as large as its own state. Run inside the door's task, every idle native connection
/// held the door's largest state as well (1.1 KB rather than 0.2), and every WebSocket one
/// the HTTP reader's (8.7 KB); see the idle row in bench/RESULTS.md. The sniffed bytes are
/// read straight into `first`, and the HTTP path is boxed, so a door waiting for its first
/// bytes stays small.
async fn sniff(state: Rc<State>, mut stream: TcpStream, admitted: Admitted) {
    let deadline = Instant::now() + state.doors.head_timeout;
    let mut first = Vec::new();
    let visitor = loop {
        if let Some(v) = classify(&first) {
            break v;
        }
        let len = first.len();
        first.resize(len + SNIFF_READ, 0);
        match read_by(&mut stream, &mut first[len..], deadline).await {
            Some(n) => first.truncate(len + n),
            None => return,
        }
    };
    match visitor {
        Visitor::Native => native(state, stream, first, admitted),
        Visitor::Http => Box::pin(http(state, stream, first, deadline, admitted)).await,
    }
}

/// Most bytes read per sniffing read (a preamble is 8, a request line rarely longer).
const SNIFF_READ: usize = 512;

/// Reads an HTTP visitor's request head and answers it, or upgrades it to WebSocket.
async fn http(
    state: Rc<State>,
    mut stream: TcpStream,
    first: Vec<u8>,
    deadline: Instant,
    admitted: Admitted,
) {
    let doors = state.doors.clone();
    let mut chunk = [0u8; 2048];
    let mut reader = RequestReader::new(DEFAULT_MAX_HEADER_BYTES);
    let mut fed = reader.feed(&first);
    let head = loop {
        match fed {
            Ok(Some(head)) => break head,
            Err(err) => {
                answer(&mut stream, &[err.response()], deadline).await;
                return;
            }
            Ok(None) => match read_by(&mut stream, &mut chunk, deadline).await {
                Some(n) => fed = reader.feed(&chunk[..n]),
                None => return,
            },
        }
    };
    if head.path() == WS_PATH {
        let early = reader.take_remaining();
        upgrade(state, stream, &head, early, deadline, admitted).await;
    } else {
        let response = page_response(&doors, &head);
        answer(&mut stream, &response, deadline).await;
    }
}

/// Hands a native connection to the hub, sniffed bytes first, and to the server's
/// [native connections](crate::native).
fn native(state: Rc<State>, stream: TcpStream, first: Vec<u8>, admitted: Admitted) {
    let Ok(socket) = state.adopt(stream) else {
        return; // closed: the client sees its connection end
    };
    let now = Instant::now();
    let id = state.host.borrow_mut().hub().connect(now);
    let (wake, wake_rx) = wake_pair();
    state.writers.borrow_mut().insert(id, wake);
    state.host.borrow_mut().hub().handle_input(now, id, &first);
    state.after();
    let conn = NativeConn::new(socket, id, wake_rx.into_bell(), admitted.into_ip());
    state.natives.add(conn);
}

/// Accepts a WebSocket upgrade (or answers why not) and runs the gateway connection.
async fn upgrade(
    state: Rc<State>,
    mut stream: TcpStream,
    head: &HttpRequestHead,
    early: Bytes,
    deadline: Instant,
    admitted: Admitted,
) {
    let accepted = match head.accept_websocket(&[TIDINGS_SUBPROTOCOL]) {
        Ok(accepted) => accepted,
        Err(err) => return answer(&mut stream, &[err.response()], deadline).await,
    };
    let Some(mode) = GatewayMode::for_request(head, accepted.protocol.as_deref()) else {
        let response = plain_response(
            "400 Bad Request",
            "offer the subprotocol tidings.v1, or name a plain chat client with ?name=",
        );
        return answer(&mut stream, &response, deadline).await;
    };
    if !write_by(&mut stream, &[accepted.response], deadline).await {
        return;
    }
    let gateway = {
        let host = state.host.borrow();
        let hub = host.hub_ref();
        let max_frame = hub.config().session.max_frame;
        Gateway::for_hub(mode, max_frame, hub.name(), Instant::now())
    };
    let ws = WsConnection::server(state.doors.ws);
    let Ok(socket) = state.adopt(stream) else {
        return;
    };
    let task = ws_task(state.clone(), socket, ws, gateway, early, admitted);
    state.spawn(task);
}

/// The answer to a plain HTTP request (not to `/ws`).
fn page_response(doors: &DoorConfig, head: &HttpRequestHead) -> Vec<Bytes> {
    if head.method() != "GET" {
        return vec![method_not_allowed()];
    }
    match doors.asset(head.path()) {
        Some(asset) => vec![
            Bytes::from(format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {}\r\n\
                 Cache-Control: no-cache\r\nContent-Length: {}\r\n\r\n",
                asset.content_type,
                asset.body.len()
            )),
            Bytes::from_static(asset.body),
        ],
        None => plain_response("404 Not Found", "not found"),
    }
}

/// `405` for a method other than `GET` on a page path.
fn method_not_allowed() -> Bytes {
    let body = "only GET is served here";
    Bytes::from(format!(
        "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// A complete response with a short text body.
fn plain_response(status: &str, body: &str) -> Vec<Bytes> {
    vec![Bytes::from(format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))]
}

/// Writes an HTTP answer and closes: the write side first, then whatever the client still
/// sends is drained for a moment, so the close does not reset the connection (and lose the
/// answer) while unread request bytes sit in the socket.
async fn answer(stream: &mut TcpStream, response: &[Bytes], deadline: Instant) {
    answer_by(stream, response, deadline, None).await;
}

/// [`answer`], with the draining also over by `until` if given.
async fn answer_by(
    stream: &mut TcpStream,
    response: &[Bytes],
    deadline: Instant,
    until: Option<Instant>,
) {
    if !write_by(stream, response, deadline).await {
        return;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let linger = Instant::now() + LINGER_TIME;
    let linger = until.map_or(linger, |until| until.min(linger));
    let mut drained = 0;
    let mut sink = [0u8; 4096];
    while drained < LINGER_BYTES {
        match read_by(stream, &mut sink, linger).await {
            Some(n) => drained += n,
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_choose_the_door() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(&[0x89]), Some(Visitor::Native));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"GET /"), Some(Visitor::Http));
        assert_eq!(classify(b"hello"), Some(Visitor::Native));
        assert_eq!(classify(b"\x16\x03\x01"), Some(Visitor::Native));
    }

    #[test]
    fn index_and_root_are_one_page() {
        let doors = DoorConfig {
            web: vec![WebAsset {
                path: "/index.html",
                content_type: "text/html",
                body: b"<p>hi</p>",
            }],
            ..DoorConfig::default()
        };
        assert!(doors.asset("/").is_some());
        assert!(doors.asset("/index.html").is_some());
        assert!(doors.asset("/app.js").is_none());
    }
}
