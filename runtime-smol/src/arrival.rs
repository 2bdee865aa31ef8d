//! A new connection's arrival: every accepted socket comes here first, and goes where
//! [`tidings_host::arrival`] decides.
//!
//! Before anything else the connection limits of [`ServerConfig`](crate::ServerConfig) are
//! checked; a connection beyond one is given [`REFUSAL_TIME`] at most to show what it is and
//! is answered with [`Visitor::refusal`] (anything beyond
//! [`MAX_REFUSING`](tidings_host::server::MAX_REFUSING) refusals at once is just closed).
//! An admitted one is [classified](classify) by its first bytes: a native (or unknown) one is
//! handed to the event loop's [native connections](crate::native), an HTTP one has its
//! request head read and [routed](route) to a [WebSocket task](crate::websocket) or a plain
//! answer. A client that stays silent, or does not finish its request head, within
//! [`WebConfig::head_timeout`](crate::WebConfig::head_timeout) is dropped without an
//! answer. Whatever goes wrong here closes only this one connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use smol::LocalExecutor;
use tidings_core::gateway::GatewayMode;
use tidings_core::ws::{HttpResponse, WsConnection};
use tidings_host::arrival::{
    classify, entrance, open_gateway, route, Entrance, Route, Visitor, LINGER_BYTES, LINGER_TIME,
};
use tidings_host::outgoing::Outgoing;
use tidings_host::server::{ConnLimit, REFUSAL_TIME};
use tidings_host::tls::TlsServerConfig;

use crate::epoll::{Poller, Socket};
use crate::native::{NativeConn, NativeConns};
use crate::output::poll_write_outgoing;
use crate::shared::{Admitted, Shared};
use crate::websocket::{ws_task, WsShared};
use crate::WebConfig;

/// A new connection's socket, registered with the server's event loop at accept.
type Stream = Rc<Socket>;

/// Reads into `buf` until `deadline`: `None` on timeout, error or end of stream.
async fn read_by(stream: &Stream, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    read_within(stream, buf, deadline).await.ok()
}

/// Reads into `buf` until `deadline`: the bytes read, or why none (`TimedOut`,
/// `UnexpectedEof` at the end of the stream, or the error, a TLS one included).
async fn read_within(stream: &Stream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let mut timer = stream.timer_at(deadline);
    future::poll_fn(|cx| {
        if let Poll::Ready(read) = stream.poll_read(Poller::from(&*cx), buf) {
            return Poll::Ready(match read {
                Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                other => other,
            });
        }
        timer.poll_due(cx).map(|()| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing within the handshake timeout",
            ))
        })
    })
    .await
}

/// Writes all of `chunks` before `deadline`; false if that failed.
async fn write_by(stream: &Stream, chunks: &[Bytes], deadline: Instant) -> bool {
    let mut timer = stream.timer_at(deadline);
    let mut left = Outgoing::default();
    for chunk in chunks {
        left.push(chunk.clone());
    }
    future::poll_fn(|cx| loop {
        if left.is_empty() {
            return Poll::Ready(true);
        }
        match poll_write_outgoing(stream, Poller::from(&*cx), &left) {
            Poll::Ready(Ok(n)) if n > 0 => left.advance(n, drop),
            Poll::Ready(_) => return Poll::Ready(false),
            Poll::Pending => return timer.poll_due(cx).map(|()| false),
        }
    })
    .await
}

/// What one server's arrivals work with: the server's shared state, its own settings,
/// and where it hands connections on to.
pub(crate) struct Arrivals {
    shared: Rc<Shared>,
    config: WebConfig,
    /// Where native connections go.
    natives: Rc<NativeConns>,
    /// What WebSocket connections share.
    websockets: Rc<WsShared>,
    /// The executor WebSocket tasks run on (weak: its tasks hold this).
    executor: Weak<LocalExecutor<'static>>,
    /// TLS on the port ([`ServerConfig::tls`](crate::ServerConfig::tls)).
    tls: Option<TlsServerConfig>,
    /// [`ServerConfig::allow_plaintext`](crate::ServerConfig::allow_plaintext).
    allow_plaintext: bool,
}

impl Arrivals {
    pub(crate) fn new(
        shared: Rc<Shared>,
        config: WebConfig,
        natives: Rc<NativeConns>,
        executor: Weak<LocalExecutor<'static>>,
        (tls, allow_plaintext): (Option<TlsServerConfig>, bool),
    ) -> Arrivals {
        let websockets = Rc::new(WsShared::new());
        Arrivals {
            shared,
            config,
            natives,
            websockets,
            executor,
            tls,
            allow_plaintext,
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
pub(crate) async fn serve_arrival(arrivals: Rc<Arrivals>, stream: Stream, peer: SocketAddr) {
    let shared = &arrivals.shared;
    let admission = shared.host.borrow_mut().admit(peer.ip());
    match admission {
        Ok(()) => {
            let admitted = Admitted::new(shared.clone(), peer.ip());
            sniff(arrivals, stream, peer, admitted).await;
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

/// Answers a connection turned away by `limit` with [`Visitor::refusal`].
async fn refuse(stream: Stream, limit: ConnLimit) {
    let deadline = Instant::now() + REFUSAL_TIME;
    let mut first = Vec::new();
    let mut chunk = [0u8; 512];
    let visitor = loop {
        if let Some(v) = classify(&first) {
            break v;
        }
        match read_by(&stream, &mut chunk, deadline).await {
            Some(n) => first.extend_from_slice(&chunk[..n]),
            None => return,
        }
    };
    if let Some(response) = visitor.refusal(limit) {
        answer_by(&stream, &[response], deadline, Some(deadline)).await;
    }
}

/// Sniffs an admitted socket and hands it on.
///
/// An arrival's task ends at the hand-off: a native connection is served by the event
/// loop itself ([`crate::native`]), a WebSocket one by a task of its own
/// ([`Arrivals::spawn`]), each only as large as its own state. Run inside the arrival's task,
/// every idle native connection held the arrival's largest state as well (1.1 KB rather than
/// 0.2), and every WebSocket one the HTTP reader's (8.7 KB); see the idle row in
/// bench/RESULTS.md. The sniffed bytes are read straight into `first`, and the HTTP path is
/// boxed, so an arrival waiting for its first bytes stays small.
async fn sniff(arrivals: Rc<Arrivals>, stream: Stream, peer: SocketAddr, admitted: Admitted) {
    let deadline = Instant::now() + arrivals.config.head_timeout;
    let mut inside_tls = false;
    // What went wrong with TLS, for the operator (`Host::tls_failed`).
    let tls_failed = |why: &str| {
        let mut host = arrivals.shared.host.borrow_mut();
        host.tls_failed(peer, why, Instant::now());
        drop(host);
        arrivals.shared.after();
    };
    let (visitor, first) = loop {
        let (visitor, first) = match first_bytes(&stream, deadline).await {
            Ok(found) => found,
            Err(e) => {
                if inside_tls {
                    tls_failed(&e.to_string());
                }
                return;
            }
        };
        let tls = arrivals.tls.as_ref();
        match entrance(tls, arrivals.allow_plaintext, visitor, inside_tls) {
            Entrance::Serve(visitor) => break (visitor, first),
            Entrance::StartTls(mut tls) => {
                // The sniffed bytes are the start of the handshake; the handshake then runs
                // within the same deadline as the sniffing, through the reads that follow.
                let received = tls.received(&first);
                stream.start_tls(*tls);
                if let Err(e) = received {
                    tls_failed(&e.to_string());
                    stream.shutdown();
                    return;
                }
                inside_tls = true;
            }
            Entrance::Refuse { answer, why } => {
                tls_failed(why);
                if let Some(answer) = answer {
                    answer_by(&stream, &[answer], deadline, None).await;
                }
                return;
            }
        }
    };
    match visitor {
        // An unknown visitor gets the native session's `error bad-preamble`.
        Visitor::Native | Visitor::Unknown | Visitor::Tls => {
            native(&arrivals, stream, first, admitted)
        }
        Visitor::Http => Box::pin(http(arrivals, stream, first, deadline, admitted)).await,
    }
}

/// Reads a connection's first bytes until they show what it is, by `deadline`.
async fn first_bytes(stream: &Stream, deadline: Instant) -> io::Result<(Visitor, Vec<u8>)> {
    let mut first = Vec::new();
    loop {
        if let Some(v) = classify(&first) {
            return Ok((v, first));
        }
        let len = first.len();
        first.resize(len + SNIFF_READ, 0);
        let n = read_within(stream, &mut first[len..], deadline).await?;
        first.truncate(len + n);
    }
}

/// Most bytes read per sniffing read (a preamble is 8, a request line rarely longer).
const SNIFF_READ: usize = 512;

/// Reads an HTTP visitor's request head and answers it, or upgrades it to WebSocket.
async fn http(
    arrivals: Rc<Arrivals>,
    stream: Stream,
    first: Vec<u8>,
    deadline: Instant,
    admitted: Admitted,
) {
    let mut chunk = [0u8; 2048];
    let mut reader = arrivals.config.request_reader();
    let mut fed = reader.feed(&first);
    let head = loop {
        match fed {
            Ok(Some(head)) => break head,
            Err(err) => {
                answer(&stream, HttpResponse::from(err), deadline).await;
                return;
            }
            Ok(None) => match read_by(&stream, &mut chunk, deadline).await {
                Some(n) => fed = reader.feed(&chunk[..n]),
                None => return,
            },
        }
    };
    match route(&arrivals.config, &head) {
        Route::WebSocket { response, mode } => {
            let early = reader.take_remaining();
            upgrade(arrivals, stream, response, mode, early, deadline, admitted).await;
        }
        Route::Answer(response) => answer(&stream, response, deadline).await,
    }
}

/// Hands a native connection to the hub, sniffed bytes first, and to the server's
/// [native connections](crate::native).
fn native(arrivals: &Arrivals, socket: Stream, first: Vec<u8>, admitted: Admitted) {
    let shared = &arrivals.shared;
    let now = Instant::now();
    let (id, output) = shared.connect(now, admitted.ip(), socket.is_tls());
    shared.host.borrow_mut().handle_input(now, id, &first);
    shared.after();
    let conn = NativeConn::new(socket, id, output, admitted.into_ip());
    arrivals.natives.add(shared, conn);
}

/// Writes the `101` of an accepted WebSocket upgrade and runs the gateway connection.
async fn upgrade(
    arrivals: Rc<Arrivals>,
    stream: Stream,
    response: Bytes,
    mode: GatewayMode,
    early: Bytes,
    deadline: Instant,
    admitted: Admitted,
) {
    if !write_by(&stream, &[response], deadline).await {
        return;
    }
    let gateway = open_gateway(&arrivals.shared.host.borrow(), mode, Instant::now());
    let ws = WsConnection::server(arrivals.config.ws);
    let shared = arrivals.shared.clone();
    let websockets = arrivals.websockets.clone();
    let task = ws_task(shared, websockets, stream, ws, gateway, early, admitted);
    arrivals.spawn(task);
}

/// Writes an HTTP answer and closes: the write side first, then whatever the client still
/// sends is drained for a moment, so the close does not reset the connection (and lose the
/// answer) while unread request bytes sit in the socket.
async fn answer(stream: &Stream, response: HttpResponse, deadline: Instant) {
    answer_by(stream, &response.into_parts(), deadline, None).await;
}

/// [`answer`], with the draining also over by `until` if given.
async fn answer_by(stream: &Stream, response: &[Bytes], deadline: Instant, until: Option<Instant>) {
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
