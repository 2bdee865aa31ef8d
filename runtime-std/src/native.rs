//! A native connection: its reader thread feeds the hub, its writer thread takes the hub's
//! output only as the socket accepts it.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use tidings_core::hub::ConnId;

use tidings_host::outgoing::Outgoing;

use crate::flush::flush;
use crate::shared::{Admitted, Shared, WRITE_BATCH};
use crate::tls::Stream;

/// Serves a native connection (or one of unknown kind, which the hub's session answers with
/// `error bad-preamble`) whose first bytes were `first`: registers it with the hub, starts
/// its writer thread and becomes its reader.
pub(crate) fn serve(shared: Arc<Shared>, stream: Stream, admitted: Admitted, first: &[u8]) {
    let set_up = stream
        .set_write_timeout(shared.write_timeout)
        .and_then(|()| stream.try_clone());
    let Ok(writer) = set_up else {
        return; // out of descriptors: this connection is dropped, the rest served
    };
    let (id, wake_rx) = {
        let mut inner = shared.inner.lock().unwrap();
        let (id, wake_rx) = admitted.connect(&mut inner, stream.is_tls());
        inner.host.handle_input(Instant::now(), id, first);
        shared.after(&mut inner);
        (id, wake_rx)
    };
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("tidings-w{id}"))
        .spawn(move || write_loop(s, writer, id, wake_rx));
    if spawned.is_err() {
        // Out of threads: this connection is dropped, the rest served.
        return shared.finish_conn(id, &stream);
    }
    read_loop(shared, stream, id);
}

fn read_loop(shared: Arc<Shared>, mut stream: Stream, id: ConnId) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        {
            // Read only while the hub wants input: it pauses a connection whose event
            // queue is full or that sends faster than its message rate (and disconnects one
            // that is read regardless).
            let mut inner = shared.inner.lock().unwrap();
            while !inner.host.wants_input(id) {
                if inner.host.is_finished(id) || shared.stopping.load(Ordering::Relaxed) {
                    return;
                }
                inner = shared.readable.wait(inner).unwrap();
            }
        }
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {
                let mut inner = shared.inner.lock().unwrap();
                inner.host.handle_input(Instant::now(), id, &buf[..n]);
                shared.after(&mut inner);
            }
            _ => {
                let mut inner = shared.inner.lock().unwrap();
                inner.host.handle_eof(Instant::now(), id);
                shared.after(&mut inner);
                return;
            }
        }
    }
}

fn write_loop(shared: Arc<Shared>, mut stream: Stream, id: ConnId, wake: Receiver<()>) {
    let mut out = Outgoing::default();
    let mut broken = false;
    loop {
        let finished = {
            // Take bytes only as the socket accepts them: what stays in the hub is what its
            // slow-consumer bound and relay window see (the hub's backpressure point).
            let mut inner = shared.inner.lock().unwrap();
            let mut held = 0;
            while held < WRITE_BATCH || broken {
                let Some(b) = inner.host.poll_transmit(id) else {
                    break;
                };
                if !broken {
                    held += b.len();
                    out.push(b);
                }
            }
            shared.after(&mut inner);
            out.is_empty() && inner.host.is_finished(id)
        };
        if finished {
            shared.finish_conn(id, &stream);
            return;
        }
        if !out.is_empty() {
            if flush(&mut stream, &mut out, drop).is_err() {
                broken = true;
                out.clear();
                let mut inner = shared.inner.lock().unwrap();
                inner.host.handle_eof(Instant::now(), id);
                shared.after(&mut inner);
            }
            continue;
        }
        if wake.recv().is_err() {
            // The server forgot this connection (it was removed): nothing more to write.
            shared.finish_conn(id, &stream);
            return;
        }
    }
}
