//! The door: every accepted socket comes here first, and goes where
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

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use async_io::Timer;
use async_net::TcpStream;
use bytes::Bytes;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::gateway::GatewayMode;
use tidings_core::ws::{HttpResponse, WsConnection};
use tidings_host::arrival::{
    classify, open_gateway, route, Route, Visitor, LINGER_BYTES, LINGER_TIME,
};
use tidings_host::server::{ConnLimit, REFUSAL_TIME};

use crate::doorbell::wake_pair;
use crate::native::NativeConn;
use crate::server::State;
use crate::websocket::ws_task;

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

/// Answers a connection turned away by `limit` with [`Visitor::refusal`].
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
    if let Some(response) = visitor.refusal(limit) {
        answer_by(&mut stream, &[response], deadline, Some(deadline)).await;
    }
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
        // An unknown visitor gets the native session's `error bad-preamble`.
        Visitor::Native | Visitor::Unknown => native(state, stream, first, admitted),
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
    let mut chunk = [0u8; 2048];
    let mut reader = state.doors.request_reader();
    let mut fed = reader.feed(&first);
    let head = loop {
        match fed {
            Ok(Some(head)) => break head,
            Err(err) => {
                answer(&mut stream, HttpResponse::from(err), deadline).await;
                return;
            }
            Ok(None) => match read_by(&mut stream, &mut chunk, deadline).await {
                Some(n) => fed = reader.feed(&chunk[..n]),
                None => return,
            },
        }
    };
    match route(&state.doors, &head) {
        Route::WebSocket { response, mode } => {
            let early = reader.take_remaining();
            upgrade(state, stream, response, mode, early, deadline, admitted).await;
        }
        Route::Answer(response) => answer(&mut stream, response, deadline).await,
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

/// Writes the `101` of an accepted WebSocket upgrade and runs the gateway connection.
async fn upgrade(
    state: Rc<State>,
    mut stream: TcpStream,
    response: Bytes,
    mode: GatewayMode,
    early: Bytes,
    deadline: Instant,
    admitted: Admitted,
) {
    if !write_by(&mut stream, &[response], deadline).await {
        return;
    }
    let gateway = open_gateway(&state.host.borrow(), mode, Instant::now());
    let ws = WsConnection::server(state.doors.ws);
    let Ok(socket) = state.adopt(stream) else {
        return;
    };
    let task = ws_task(state.clone(), socket, ws, gateway, early, admitted);
    state.spawn(task);
}

/// Writes an HTTP answer and closes: the write side first, then whatever the client still
/// sends is drained for a moment, so the close does not reset the connection (and lose the
/// answer) while unread request bytes sit in the socket.
async fn answer(stream: &mut TcpStream, response: HttpResponse, deadline: Instant) {
    answer_by(stream, &response.into_parts(), deadline, None).await;
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
