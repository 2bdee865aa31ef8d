//! The blocking side of [`tidings_host::arrival`]: reading a connection's first bytes and an
//! HTTP visitor's request head under a deadline, writing plain HTTP answers and closing
//! gently, and handing WebSocket upgrades to [`crate::websocket`]; over a [`Stream`], so
//! the same inside TLS (`https://`, `wss://`).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tidings_core::ws::HttpResponse;
use tidings_host::arrival::{
    classify, route, Route, Visitor, WebConfig, LINGER_BYTES, LINGER_TIME,
};

use crate::shared::{Admitted, Shared};
use crate::tls::Stream;

/// Reads into `buf` until `deadline`: `None` on timeout, error or end of stream (with TLS
/// also a failed handshake).
fn read_by(stream: &mut Stream, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    read_within(stream, buf, deadline).ok()
}

/// Reads into `buf` by `deadline`: the bytes read, or why none (`TimedOut`/`WouldBlock`,
/// `UnexpectedEof` at the end of the stream, or the error, a TLS one included).
fn read_within(stream: &mut Stream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    stream.set_read_deadline(Some(deadline))?;
    match stream.read(buf) {
        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing within the handshake timeout",
            ))
        }
        other => other,
    }
}

/// Reads a connection's first bytes until they show what it is ([`classify`]), by
/// `deadline`; the error says why not (silent, closed, failed).
pub(crate) fn first_bytes(
    stream: &mut Stream,
    deadline: Instant,
) -> io::Result<(Visitor, Vec<u8>)> {
    let mut first = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if let Some(visitor) = classify(&first) {
            return Ok((visitor, first));
        }
        let n = read_within(stream, &mut chunk, deadline)?;
        first.extend_from_slice(&chunk[..n]);
    }
}

/// Writes a plain answer by `deadline` and closes: the write side first, then whatever the
/// client still sends is read and discarded for a moment (at most [`LINGER_BYTES`] for
/// [`LINGER_TIME`], and not after `until`), so that the close does not reset the connection,
/// and lose the answer, while unread request bytes sit in the socket.
pub(crate) fn answer(stream: &mut Stream, parts: &[Bytes], deadline: Instant, until: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
        return;
    }
    if parts.iter().any(|part| stream.write_all(part).is_err()) {
        return;
    }
    stream.shutdown(Shutdown::Write);
    let linger = until.min(Instant::now() + LINGER_TIME);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match read_by(stream, &mut sink, linger) {
            Some(n) => drained += n,
            None => break,
        }
    }
}

/// Serves an HTTP visitor whose first bytes were `first`: reads its request head by
/// `deadline` (else drops it without an answer) and answers it, or upgrades it to a
/// WebSocket bridged to the hub.
pub(crate) fn serve(
    shared: Arc<Shared>,
    web: &WebConfig,
    mut stream: Stream,
    admitted: Admitted,
    first: &[u8],
    deadline: Instant,
) {
    let mut reader = web.request_reader();
    let mut fed = reader.feed(first);
    let mut chunk = [0u8; 2048];
    let head = loop {
        match fed {
            Ok(Some(head)) => break head,
            Err(err) => {
                let parts = HttpResponse::from(err).into_parts();
                return answer(&mut stream, &parts, deadline, Instant::now() + LINGER_TIME);
            }
            Ok(None) => match read_by(&mut stream, &mut chunk, deadline) {
                Some(n) => fed = reader.feed(&chunk[..n]),
                None => return,
            },
        }
    };
    match route(web, &head) {
        Route::Answer(response) => {
            let parts = response.into_parts();
            answer(&mut stream, &parts, deadline, Instant::now() + LINGER_TIME);
        }
        Route::WebSocket { response, mode } => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || stream.set_write_timeout(Some(left)).is_err()
                || stream.write_all(&response).is_err()
            {
                return;
            }
            let early = reader.take_remaining();
            crate::websocket::serve(shared, web, stream, admitted, mode, early);
        }
    }
}
