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

use std::future::Future;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use smol::LocalExecutor;
use tidings_core::gateway::{Gateway, GatewayMode};
use tidings_core::wire::Preamble;
use tidings_core::ws::{
    sniff_http, HttpRequestHead, RequestReader, Sniff, WsConfig, WsConnection,
    DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};

use tidings_host::server::{ConnLimit, REFUSAL_TIME};

use crate::epoll::{Poller, Socket};
use crate::native::{NativeConn, NativeConns};
use crate::output::{advance, poll_write_pieces};
use crate::shared::{Admitted, Shared};
use crate::websocket::{ws_task, WsShared};

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
    /// How long the server waits for the client's close frame after sending its own, before
    /// closing the socket anyway. Default 5 s.
    pub closing_timeout: Duration,
    /// Limits of each WebSocket connection. The default keeps messages at 2 MiB: a JSON text
    /// beyond the hub's frame limit is refused anyway.
    pub ws: WsConfig,
    /// The static files served over plain HTTP; empty: every `GET` but `/ws` is a 404.
    pub web: Vec<WebAsset>,
}

impl Default for DoorConfig {
    fn default() -> Self {
        DoorConfig {
            head_timeout: Duration::from_secs(10),
            closing_timeout: Duration::from_secs(5),
            ws: WsConfig {
                max_message_size: 2 << 20,
                max_frame_size: 2 << 20,
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

/// A new connection's socket, registered with the server's event loop at accept.
type Stream = Rc<Socket>;

/// Reads into `buf` until `deadline`: `None` on timeout, error or end of stream.
async fn read_by(stream: &mut Stream, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    let mut timer = stream.timer_at(deadline);
    future::poll_fn(|cx| {
        if let Poll::Ready(read) = stream.poll_read(Poller::from(&*cx), buf) {
            return Poll::Ready(read.ok().filter(|&n| n > 0));
        }
        timer.poll_due(cx).map(|()| None)
    })
    .await
}

/// Writes all of `chunks` before `deadline`; false if that failed.
async fn write_by(stream: &mut Stream, chunks: &[Bytes], deadline: Instant) -> bool {
    let mut timer = stream.timer_at(deadline);
    let mut left = chunks.to_vec();
    future::poll_fn(|cx| loop {
        if left.is_empty() {
            return Poll::Ready(true);
        }
        match poll_write_pieces(stream, Poller::from(&*cx), &left) {
            Poll::Ready(Ok(n)) if n > 0 => advance(&mut left, n),
            Poll::Ready(_) => return Poll::Ready(false),
            Poll::Pending => return timer.poll_due(cx).map(|()| false),
        }
    })
    .await
}

/// What the door of one server works with: the server's shared state, its own settings,
/// and where it hands connections on to.
pub(crate) struct Door {
    shared: Rc<Shared>,
    config: DoorConfig,
    /// Where native connections go.
    natives: Rc<NativeConns>,
    /// What WebSocket connections share.
    websockets: Rc<WsShared>,
    /// The executor WebSocket tasks run on (weak: its tasks hold the door).
    executor: Weak<LocalExecutor<'static>>,
}

impl Door {
    pub(crate) fn new(
        shared: Rc<Shared>,
        config: DoorConfig,
        natives: Rc<NativeConns>,
        executor: Weak<LocalExecutor<'static>>,
    ) -> Door {
        let websockets = Rc::new(WsShared::new(config.closing_timeout));
        Door {
            shared,
            config,
            natives,
            websockets,
            executor,
        }
    }

    /// Runs `task` as a task of its own on the server's executor (nothing, once the server
    /// is being torn down).
    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        if let Some(ex) = self.executor.upgrade() {
            ex.spawn(task).detach();
        }
    }
}

/// Serves one accepted socket from `peer`: checks the connection limits, then sniffs it and
/// hands it on. See the [module docs](self).
pub(crate) async fn door_task(door: Rc<Door>, stream: Stream, peer: SocketAddr) {
    let shared = &door.shared;
    let admission = shared.host.borrow_mut().admit(peer.ip());
    match admission {
        Ok(()) => {
            let admitted = Admitted::new(shared.clone(), peer.ip());
            sniff(door, stream, admitted).await;
        }
        Err(limit) => {
            let answer = {
                let mut host = shared.host.borrow_mut();
                host.refused(peer, limit, Instant::now());
                host.start_refusal()
            };
            shared.after();
            if answer {
                // Boxed, so that refusals do not size the task of every admitted connection.
                Box::pin(refuse(stream, limit)).await;
                shared.host.borrow_mut().end_refusal();
            }
        }
    }
}

/// Answers a connection turned away by `limit` (see the [module docs](self)).
async fn refuse(mut stream: Stream, limit: ConnLimit) {
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
/// itself ([`crate::native`]), a WebSocket one by a task of its own ([`Door::spawn`]), each
/// only as large as its own state. Run inside the door's task, every idle native connection
/// held the door's largest state as well (1.1 KB rather than 0.2), and every WebSocket one
/// the HTTP reader's (8.7 KB); see the idle row in bench/RESULTS.md. The sniffed bytes are
/// read straight into `first`, and the HTTP path is boxed, so a door waiting for its first
/// bytes stays small.
async fn sniff(door: Rc<Door>, mut stream: Stream, admitted: Admitted) {
    let deadline = Instant::now() + door.config.head_timeout;
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
        Visitor::Native => native(&door, stream, first, admitted),
        Visitor::Http => Box::pin(http(door, stream, first, deadline, admitted)).await,
    }
}

/// Most bytes read per sniffing read (a preamble is 8, a request line rarely longer).
const SNIFF_READ: usize = 512;

/// Reads an HTTP visitor's request head and answers it, or upgrades it to WebSocket.
async fn http(
    door: Rc<Door>,
    mut stream: Stream,
    first: Vec<u8>,
    deadline: Instant,
    admitted: Admitted,
) {
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
        upgrade(door, stream, &head, early, deadline, admitted).await;
    } else {
        let response = page_response(&door.config, &head);
        answer(&mut stream, &response, deadline).await;
    }
}

/// Hands a native connection to the hub, sniffed bytes first, and to the server's
/// [native connections](crate::native).
fn native(door: &Door, socket: Stream, first: Vec<u8>, admitted: Admitted) {
    let shared = &door.shared;
    let now = Instant::now();
    let (id, output) = shared.connect(now);
    shared.host.borrow_mut().handle_input(now, id, &first);
    shared.after();
    let conn = NativeConn::new(socket, id, output, admitted.into_ip());
    door.natives.add(shared, conn);
}

/// Accepts a WebSocket upgrade (or answers why not) and runs the gateway connection.
async fn upgrade(
    door: Rc<Door>,
    mut stream: Stream,
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
        let host = door.shared.host.borrow();
        let hub = host.hub_ref();
        let max_frame = hub.config().session.max_frame;
        Gateway::for_hub(mode, max_frame, hub.name(), Instant::now())
    };
    let ws = WsConnection::server(door.config.ws);
    let shared = door.shared.clone();
    let task = ws_task(
        shared,
        door.websockets.clone(),
        stream,
        ws,
        gateway,
        early,
        admitted,
    );
    door.spawn(task);
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
async fn answer(stream: &mut Stream, response: &[Bytes], deadline: Instant) {
    answer_by(stream, response, deadline, None).await;
}

/// [`answer`], with the draining also over by `until` if given.
async fn answer_by(
    stream: &mut Stream,
    response: &[Bytes],
    deadline: Instant,
    until: Option<Instant>,
) {
    if !write_by(stream, response, deadline).await {
        return;
    }
    stream.shutdown_write();
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
