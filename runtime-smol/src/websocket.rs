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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use bytes::Bytes;
use futures_lite::{future, Stream};
use tidings_core::gateway::{Gateway, RenderCache};
use tidings_core::hub::ConnId;
use tidings_core::ws::{WsConnection, WsState};

use crate::client::advance;
use crate::door::Admitted;
use crate::doorbell::{poll_write_pieces, wake_pair, WRITE_BATCH};
use crate::reactor::Socket;
use crate::server::State;

enum Wake {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Woken,
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

thread_local! {
    /// The broadcast renderings shared by every WebSocket connection this thread drives (a
    /// server runs on one thread): a chat line sent to a hundred browsers is rendered as JSON
    /// once. Entries depend only on the frame they render, so servers sharing a thread may
    /// share them too.
    static RENDERS: RefCell<RenderCache> = RefCell::new(RenderCache::new());
}

/// Moves bytes between the WebSocket, the gateway and the hub until nothing moves.
fn pump(state: &State, link: &mut Link, ws: &mut WsConnection, gw: &mut Gateway, held: usize) {
    RENDERS.with(|renders| pump_with(state, link, ws, gw, held, &mut renders.borrow_mut()));
}

fn pump_with(
    state: &State,
    link: &mut Link,
    ws: &mut WsConnection,
    gw: &mut Gateway,
    held: usize,
    renders: &mut RenderCache,
) {
    let now = Instant::now();
    while let Some(event) = ws.poll_event() {
        gw.handle_ws_event(now, event);
    }
    let mut host = state.host.borrow_mut();
    let hub = host.hub();
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
    state: Rc<State>,
    io: Rc<Socket>,
    mut ws: WsConnection,
    mut gw: Gateway,
    early: Bytes,
    _admitted: Admitted,
) {
    let id = state.host.borrow_mut().hub().connect(Instant::now());
    let (wake_tx, wake_rx) = wake_pair();
    state.writers.borrow_mut().insert(id, wake_tx);
    let mut wake = Box::pin(wake_rx);
    let mut link = Link {
        id,
        eof_sent: false,
        hub_done: false,
    };
    let mut out: Vec<Bytes> = Vec::new();
    let mut read_done = false;
    let mut timer = Timer::never();
    let mut armed: Option<Instant> = None;
    if !early.is_empty() {
        ws.handle_input(Instant::now(), &early);
    }
    loop {
        let held: usize = out.iter().map(Bytes::len).sum();
        pump(&state, &mut link, &mut ws, &mut gw, held);
        state.after();
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
        // later with every message, and setting a timer makes the reactor record it (and wake
        // its poller with a system call), per message; a timer that fires before the current
        // deadline is simply re-armed below. One that fires when none is due does nothing.
        if let Some(at) = next {
            if armed.map_or(true, |a| at < a) {
                armed = Some(at);
                timer.set_at(at);
            }
        }
        let reading = !read_done
            && ws.state() != WsState::Closed
            && (link.hub_done || state.host.borrow().hub_ref().wants_input(id));
        let ev = future::poll_fn(|cx| {
            if !out.is_empty() {
                if let Poll::Ready(r) = poll_write_pieces(&io, cx, &out) {
                    return Poll::Ready(Wake::Wrote(r));
                }
            }
            // A read is made only while the socket may hold data (see `Socket`): this task
            // is woken for every message the hub has for it.
            if reading {
                let mut buf = state.read_buf.borrow_mut();
                if let Poll::Ready(r) = io.poll_read(cx, &mut buf[..]) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if wake.as_mut().poll_next(cx).is_ready() {
                return Poll::Ready(Wake::Woken);
            }
            if armed.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            Poll::Pending
        })
        .await;
        match ev {
            Wake::Read(Ok(n)) if n > 0 => {
                ws.handle_input(Instant::now(), &state.read_buf.borrow()[..n]);
            }
            Wake::Read(_) => {
                read_done = true;
                ws.handle_eof(Instant::now());
            }
            Wake::Wrote(Ok(n)) if n > 0 => advance(&mut out, n),
            Wake::Wrote(_) => break, // the peer is gone; the hub hears of it below
            Wake::Woken => {}
            Wake::Timer => {
                armed = None;
                timer = Timer::never();
                let now = Instant::now();
                if gw.poll_timeout().is_some_and(|d| d <= now) {
                    gw.handle_timeout(now);
                }
                ws.handle_timeout(now);
            }
        }
    }
    if !link.eof_sent {
        state.host.borrow_mut().hub().handle_eof(Instant::now(), id);
    }
    state.close(id, &io);
}
