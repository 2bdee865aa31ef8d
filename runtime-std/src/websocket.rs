//! A WebSocket connection bridged to the hub: socket ↔ [`WsConnection`] ↔ [`Gateway`] ↔ hub,
//! following the calling contract of `tidings_core::gateway`, with a reader and a writer
//! thread like a [native connection](crate::native).
//!
//! The hub's output is taken only while less than [`WRITE_BATCH`] bytes wait for the socket
//! (in the writer or in the WebSocket's own queue), so a slow browser leaves its backlog in
//! the hub, where the slow-consumer bound and the relay window see it; the socket is read
//! only while the hub wants input. Two timers are the writer's: the gateway's (legacy
//! heartbeats) and the bound on the close handshake ([`WsConfig::close_timeout`](tidings_core::ws::WsConfig::close_timeout)).
//!
//! The two threads share the connection's [`Bridge`] behind a mutex of its own, always
//! locked before the server's (never the other way round).

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tidings_core::gateway::{Gateway, GatewayMode};
use tidings_core::hub::ConnId;
use tidings_core::ws::{WsConnection, WsState};
use tidings_host::arrival::{open_gateway, WebConfig};

use tidings_host::outgoing::Outgoing;

use crate::flush::flush;
use crate::shared::{Admitted, Inner, Shared, WRITE_BATCH};
use crate::tls::Stream;

/// One WebSocket connection's state between its socket and the hub.
struct Bridge {
    id: ConnId,
    ws: WsConnection,
    gateway: Gateway,
    /// `Hub::handle_eof` was called (the client side is over).
    eof_sent: bool,
    /// The hub finished the connection and the gateway was told.
    hub_done: bool,
    /// The server forgot the connection ([`end`]): nothing more to do.
    gone: bool,
}

impl Bridge {
    /// Moves bytes between the WebSocket, the gateway and the hub until nothing moves,
    /// taking the hub's output only while less than [`WRITE_BATCH`] bytes (with `held`, what
    /// the writer still holds) wait for the socket. True if the hub finished the connection
    /// just now (a reader waiting for input must hear of it).
    fn pump(&mut self, inner: &mut Inner, held: usize) -> bool {
        let now = Instant::now();
        while let Some(event) = self.ws.poll_event() {
            self.gateway.handle_ws_event(now, event);
        }
        let Inner { host, renders, .. } = inner;
        let was_done = self.hub_done;
        loop {
            let mut moved = false;
            while let Some(bytes) = self.gateway.poll_native() {
                host.handle_input(now, self.id, &bytes);
                moved = true;
            }
            if self.gateway.native_finished() && !self.eof_sent {
                self.eof_sent = true;
                host.handle_eof(now, self.id);
                moved = true;
            }
            while held + self.ws.pending_transmit() < WRITE_BATCH {
                let Some(bytes) = host.poll_transmit(self.id) else {
                    break;
                };
                // A close or a send after closing only fails on a WebSocket that is done.
                let _ = self
                    .gateway
                    .forward_native(now, bytes, renders, &mut self.ws);
                moved = true;
            }
            if !self.hub_done && host.is_finished(self.id) {
                self.hub_done = true;
                self.gateway.handle_native_eof();
                moved = true;
            }
            let _ = self.gateway.write_to(now, &mut self.ws);
            if !moved {
                break;
            }
        }
        self.hub_done && !was_done
    }
}

/// Runs an upgraded WebSocket connection (its `101` written; `early` holds the bytes that
/// came with the request head) until it is closed: starts its writer thread and becomes its
/// reader.
pub(crate) fn serve(
    shared: Arc<Shared>,
    web: &WebConfig,
    mut stream: Stream,
    admitted: Admitted,
    mode: GatewayMode,
    early: Bytes,
) {
    let set_up = stream
        .set_read_deadline(None)
        .and_then(|()| stream.set_write_timeout(shared.write_timeout))
        .and_then(|()| stream.try_clone());
    let Ok(writer) = set_up else {
        return;
    };
    let (bridge, wake_rx) = {
        let mut inner = shared.inner.lock().unwrap();
        let gateway = open_gateway(&inner.host, mode, Instant::now());
        let (id, wake_rx) = admitted.connect(&mut inner, stream.is_tls());
        let mut bridge = Bridge {
            id,
            ws: WsConnection::server(web.ws),
            gateway,
            eof_sent: false,
            hub_done: false,
            gone: false,
        };
        if !early.is_empty() {
            bridge.ws.handle_input(Instant::now(), &early);
        }
        bridge.pump(&mut inner, WRITE_BATCH);
        shared.after(&mut inner);
        (Arc::new(Mutex::new(bridge)), wake_rx)
    };
    let id = bridge.lock().unwrap().id;
    let (s, b) = (shared.clone(), bridge.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("tidings-w{id}"))
        .spawn(move || write_loop(s, writer, b, wake_rx));
    if spawned.is_err() {
        // Out of threads: this connection is dropped, the rest served.
        return end(&shared, &bridge, &stream);
    }
    read_loop(shared, stream, bridge);
}

/// Tells the hub the client side is over (if not yet) and forgets the connection.
fn end(shared: &Shared, bridge: &Mutex<Bridge>, stream: &Stream) {
    let id = {
        let mut b = bridge.lock().unwrap();
        let mut inner = shared.inner.lock().unwrap();
        if !b.eof_sent {
            b.eof_sent = true;
            inner.host.handle_eof(Instant::now(), b.id);
        }
        shared.after(&mut inner);
        b.gone = true;
        b.id
    };
    shared.finish_conn(id, stream);
}

/// Feeds what the client sends to the WebSocket and on to the hub, while the hub wants
/// input (or has finished and only the close handshake is left).
fn read_loop(shared: Arc<Shared>, mut stream: Stream, bridge: Arc<Mutex<Bridge>>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        loop {
            let b = bridge.lock().unwrap();
            if b.gone || b.ws.state() == WsState::Closed {
                return;
            }
            let inner = shared.inner.lock().unwrap();
            if b.hub_done || inner.host.wants_input(b.id) {
                break;
            }
            // Waiting holds only the server's lock; the bridge is locked first again.
            drop(b);
            drop(shared.readable.wait(inner).unwrap());
        }
        let read = stream.read(&mut buf);
        let mut b = bridge.lock().unwrap();
        if b.gone {
            return;
        }
        let mut inner = shared.inner.lock().unwrap();
        let more = match read {
            Ok(n) if n > 0 => {
                b.ws.handle_input(Instant::now(), &buf[..n]);
                true
            }
            _ => {
                b.ws.handle_eof(Instant::now());
                false
            }
        };
        // The writer takes the hub's output; this only passes the client's input on.
        if b.pump(&mut inner, WRITE_BATCH) {
            shared.readable.notify_all();
        }
        shared.after(&mut inner);
        // Answers to the client (pongs, the close) are the writer's to send.
        if let Some(w) = inner.writers.get(&b.id) {
            let _ = w.try_send(());
        }
        if !more {
            return;
        }
    }
}

/// Takes the hub's output through the gateway and the WebSocket to the socket, runs the
/// gateway's timer and bounds the close handshake; forgets the connection at the end.
fn write_loop(
    shared: Arc<Shared>,
    mut stream: Stream,
    bridge: Arc<Mutex<Bridge>>,
    wake: Receiver<()>,
) {
    let mut out = Outgoing::default();
    loop {
        let (done, next) = {
            let mut b = bridge.lock().unwrap();
            let mut inner = shared.inner.lock().unwrap();
            let held = out.len();
            if b.pump(&mut inner, held) {
                shared.readable.notify_all();
            }
            shared.after(&mut inner);
            drop(inner);
            while let Some(bytes) = b.ws.poll_transmit() {
                out.push(bytes);
            }
            // Over once the close handshake is, or when the client never answers our close
            // (or stopped reading) within the WebSocket's close timeout.
            let done = (out.is_empty() && b.ws.should_close_socket()) || b.ws.close_timed_out();
            let next = match (b.gateway.poll_timeout(), b.ws.poll_timeout()) {
                (Some(a), Some(c)) => Some(a.min(c)),
                (a, c) => a.or(c),
            };
            (done, next)
        };
        if done {
            break;
        }
        if !out.is_empty() {
            if flush(&mut stream, &mut out, drop).is_err() {
                break; // the peer is gone; the hub hears of it below
            }
            continue;
        }
        let woken = match next {
            Some(at) => wake.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => wake.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match woken {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                let mut b = bridge.lock().unwrap();
                let now = Instant::now();
                if b.gateway.poll_timeout().is_some_and(|d| d <= now) {
                    b.gateway.handle_timeout(now);
                }
                b.ws.handle_timeout(now);
            }
            // The server forgot this connection: nothing more to write.
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    end(&shared, &bridge, &stream);
}
