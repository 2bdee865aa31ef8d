//! The task of one upgraded WebSocket connection: socket ↔ [`WsConnection`] ↔ [`Gateway`] ↔
//! hub, following the calling contract of `tidings_core::gateway`.
//!
//! It mirrors a [native connection](crate::native): the hub's output is taken only while
//! less than [`WRITE_BATCH`] bytes wait for the socket (in this task or in the WebSocket's
//! own queue), so a slow browser leaves its backlog in the hub, where the slow-consumer bound
//! and the relay window see it; the socket is read only while the hub wants input. One timer
//! serves two machines: the gateway's (legacy heartbeats) and the WebSocket's (the bound on the
//! close handshake, [`WsConfig::close_timeout`](tidings_core::ws::WsConfig::close_timeout)).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use tidings_core::gateway::{Gateway, RenderCache};
use tidings_core::hub::ConnId;
use tidings_core::ws::{WsConnection, WsState};
use tidings_host::outgoing::Outgoing;

use crate::epoll::{LoopTimer, Poller, Socket};
use crate::output::{poll_write_outgoing, WRITE_BATCH};
use crate::shared::{Admitted, Shared};

/// What the WebSocket connections of one server share besides the hub.
pub(crate) struct WsShared {
    /// Broadcast renderings: a chat line sent to a hundred browsers is rendered as JSON
    /// once. Entries depend only on the frame they render.
    renders: RefCell<RenderCache>,
}

impl WsShared {
    pub(crate) fn new() -> WsShared {
        WsShared {
            renders: RefCell::new(RenderCache::new()),
        }
    }
}

/// What woke a WebSocket connection's task.
enum WsWake {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    /// The hub has news for it.
    Notified,
    Timer,
}

/// Where this connection stands toward the hub.
struct Link {
    id: ConnId,
    /// `Hub::handle_eof` was called (the client side is over).
    eof_sent: bool,
    /// The hub finished the connection and the gateway was told.
    hub_done: bool,
}

/// Moves bytes between the WebSocket, the gateway and the hub until nothing moves.
fn pump(
    shared: &Shared,
    renders: &mut RenderCache,
    link: &mut Link,
    ws: &mut WsConnection,
    gw: &mut Gateway,
    held: usize,
) {
    let now = Instant::now();
    while let Some(event) = ws.poll_event() {
        gw.handle_ws_event(now, event);
    }
    let mut host = shared.host.borrow_mut();
    let hub = &mut *host;
    loop {
        let mut moved = false;
        while let Some(bytes) = gw.poll_native() {
            hub.handle_input(now, link.id, &bytes);
            moved = true;
        }
        if gw.native_finished() && !link.eof_sent {
            link.eof_sent = true;
            hub.handle_eof(now, link.id);
            moved = true;
        }
        while held + ws.pending_transmit() < WRITE_BATCH {
            let Some(bytes) = hub.poll_transmit(link.id) else {
                break;
            };
            // A close or a send after closing only fails on a WebSocket that is done anyway.
            let _ = gw.forward_native(now, bytes, renders, ws);
            moved = true;
        }
        if !link.hub_done && hub.is_finished(link.id) {
            link.hub_done = true;
            gw.handle_native_eof();
            moved = true;
        }
        let _ = gw.write_to(now, ws);
        if !moved {
            break;
        }
    }
}

/// Drives one accepted WebSocket until it is closed; `early` holds bytes that arrived with
/// the request head (the first frames).
pub(crate) async fn ws_task(
    shared: Rc<Shared>,
    ws_shared: Rc<WsShared>,
    io: Rc<Socket>,
    mut ws: WsConnection,
    mut gw: Gateway,
    early: Bytes,
    admitted: Admitted,
) {
    let (id, output) = shared.connect(Instant::now(), admitted.ip(), io.is_tls());
    let mut link = Link {
        id,
        eof_sent: false,
        hub_done: false,
    };
    let mut out = Outgoing::default();
    let mut read_done = false;
    let mut timer = LoopTimer::new(&shared.event_loop, None);
    let mut armed: Option<Instant> = None;
    if !early.is_empty() {
        ws.handle_input(Instant::now(), &early);
    }
    loop {
        let held = out.len();
        pump(
            &shared,
            &mut ws_shared.renders.borrow_mut(),
            &mut link,
            &mut ws,
            &mut gw,
            held,
        );
        shared.after();
        while let Some(bytes) = ws.poll_transmit() {
            out.push(bytes);
        }
        if out.is_empty() && ws.should_close_socket() {
            break;
        }
        if ws.close_timed_out() {
            // The client never answered our close frame, or stopped reading.
            break;
        }
        let next = match (gw.poll_timeout(), ws.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Re-armed only when the deadline comes earlier. The legacy heartbeat's deadline moves
        // later with every message, and moving a timer re-files it in the loop's list, per
        // message; a timer that fires before the current deadline is simply re-armed below.
        // One that fires when none is due does nothing.
        if let Some(at) = next {
            if armed.map_or(true, |a| at < a) {
                armed = Some(at);
                timer.set(Some(at));
            }
        }
        let reading = !read_done
            && ws.state() != WsState::Closed
            && (link.hub_done || shared.host.borrow().wants_input(id));
        let ev = future::poll_fn(|cx| {
            let me = Poller::from(&*cx);
            if !out.is_empty() {
                if let Poll::Ready(r) = poll_write_outgoing(&io, me, &out) {
                    return Poll::Ready(WsWake::Wrote(r));
                }
            }
            // A read is made only while the socket may hold data (see `Socket`): this task
            // is woken for every message the hub has for it.
            if reading {
                let mut buf = shared.scratch.read.borrow_mut();
                if let Poll::Ready(r) = io.poll_read(me, &mut buf[..]) {
                    return Poll::Ready(WsWake::Read(r));
                }
            }
            if output.poll_notified(me).is_ready() {
                return Poll::Ready(WsWake::Notified);
            }
            if armed.is_some() && timer.poll_due(cx).is_ready() {
                return Poll::Ready(WsWake::Timer);
            }
            Poll::Pending
        })
        .await;
        match ev {
            WsWake::Read(Ok(n)) if n > 0 => {
                ws.handle_input(Instant::now(), &shared.scratch.read.borrow()[..n]);
            }
            WsWake::Read(_) => {
                read_done = true;
                ws.handle_eof(Instant::now());
            }
            WsWake::Wrote(Ok(n)) if n > 0 => out.advance(n, drop),
            WsWake::Wrote(_) => break, // the peer is gone; the hub hears of it below
            WsWake::Notified => {}
            WsWake::Timer => {
                armed = None;
                timer.set(None);
                let now = Instant::now();
                if gw.poll_timeout().is_some_and(|d| d <= now) {
                    gw.handle_timeout(now);
                }
                ws.handle_timeout(now);
            }
        }
    }
    if !link.eof_sent {
        shared.host.borrow_mut().handle_eof(Instant::now(), id);
    }
    shared.close(id, &io);
}
