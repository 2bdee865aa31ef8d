//! Rows 2 and 3: decoding in memory, single thread, pinned to the load core.
//!
//! Native frames: tokio-util's `LengthDelimitedCodec`, configured for the same header (u32
//! body length, then the type byte), splits the stream into frames and nothing more. The
//! equal work on the tidings side is `FrameDecoder`, splitting the same stream into typed
//! frames (type byte + zero-copy body) — the "core decoder" of issue #7, and the row's
//! target. Parsing every message as well (`FrameDecoder` + `Message::decode`: fields, UTF-8
//! checks) is work the peer never does; it is measured in the same alternation and printed
//! in the notes as context, with its own ratio, so the cost of the full parse stays visible.
//! Every decoder is fed the same stream in 64 KiB reads, each read copied once into the
//! decoder's buffer (`extend_from_slice`, as a socket read into spare capacity would).
//! A bare `memcpy` of the stream in the same reads into one reused buffer is printed too:
//! the ceiling for any decoder that must copy its input. In `decode-64KiB` frames and reads
//! line up; the context row `decode-64KiB-straddling` (64 KiB bodies, so every read ends
//! inside a frame) shows what moving partial frames inside the buffer costs each side.
//!
//! WebSocket: the server side of `tidings_core::ws::WsConnection` against tungstenite's
//! `WebSocket` in server role, decoding the same masked client frames from 4 KiB reads
//! (tungstenite's own read size), each handing out complete unmasked messages.

use std::hint::black_box;
use std::io::{Cursor, Read, Write};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tidings_core::wire::{FrameDecoder, Message, Utf8, DEFAULT_MAX_FRAME};
use tidings_core::ws::{apply_mask, WsConfig, WsConnection, WsEvent};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use super::servers::Ctx;
use crate::procs::{pin_self, LOAD_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row, Verdict};

/// One socket read for the native rows.
const READ: usize = 64 << 10;
/// One socket read for the WebSocket rows.
const WS_READ: usize = 4 << 10;

/// A decoder under test: decodes the whole stream, returns how many messages it handed out.
type Decode = fn(&[u8]) -> usize;

/// A context decoder printed in the notes: its name and the decoder.
type Context<'a> = (&'a str, &'a dyn Fn(&[u8]) -> usize);

/// Rows `decode-64B`, `decode-64KiB`, and the context row `decode-64KiB-straddling`.
pub fn native_rows(ctx: &Ctx) -> Vec<Row> {
    pin_self(LOAD_CPU);
    let text = Message::Text {
        peer: Utf8::from("bob"),
        private: false,
        text: Utf8::from("x".repeat(54)),
    };
    let blob = |len: usize| Message::Blob {
        peer: Utf8::from("bob"),
        private: true,
        media_type: Utf8::from("application/octet-stream"),
        data: Bytes::from(vec![0xA5; len]),
    };
    // The two target rows, then a context row: 64 KiB bodies make 65 571-byte frames, so
    // every 64 KiB read ends inside a frame (in the target row, frames and reads line up).
    [
        ("decode-64B", text, 16_384usize, true),
        ("decode-64KiB", blob((64 << 10) - 35), 64, true),
        ("decode-64KiB-straddling", blob(64 << 10), 64, false),
    ]
    .into_iter()
    .map(|(id, msg, count, has_target)| {
        let mut wire = BytesMut::new();
        for _ in 0..count {
            msg.encode(&mut wire);
        }
        let frame_len = msg.encoded_len();
        let what = format!(
            "native frame split (FrameDecoder), {frame_len} B frames (MB/s = 10⁶ B/s of stream)"
        );
        let copy = move |wire: &[u8]| copy_only(wire, count);
        let context: [Context; 2] = [
            (
                "FrameDecoder + Message::decode (full parse, work the peer does not do)",
                &tidings_native_parse,
            ),
            ("memcpy of the same reads alone (the copy ceiling)", &copy),
        ];
        let target = if has_target { "≥ 1.2×" } else { "—" };
        let row = measure(
            ctx,
            id,
            &what,
            target,
            1.2,
            &wire,
            count,
            tidings_native_split,
            lengthdelimited,
            &context,
        );
        match row {
            Ok(row) if !has_target => Row {
                verdict: Verdict::Context,
                ..row
            },
            Ok(row) => row,
            Err(e) => Row::not_measured(id, &what, target, e),
        }
    })
    .collect()
}

/// Rows `ws-decode-64B`, `ws-decode-64KiB`.
pub fn ws_rows(ctx: &Ctx) -> Vec<Row> {
    pin_self(LOAD_CPU);
    [
        ("ws-decode-64B", 64usize, 16_384usize),
        ("ws-decode-64KiB", 64 << 10, 64),
    ]
    .into_iter()
    .map(|(id, size, count)| {
        let wire = client_stream(size, count);
        let what = format!("WebSocket frame decode, {size} B masked binary messages");
        measure(
            ctx,
            id,
            &what,
            "≥ 1.5×",
            1.5,
            &wire,
            count,
            tidings_ws,
            tungstenite_ws,
            &[],
        )
        .unwrap_or_else(|e| Row::not_measured(id, &what, "≥ 1.5×", e))
    })
    .collect()
}

/// Alternates the two decoders (and any `context` decoders, measured in the same rounds and
/// reported in the notes) over `wire`, each repetition decoding it enough times to take
/// about 0.2 s, and builds the row from the median throughputs.
#[allow(clippy::too_many_arguments)]
fn measure(
    ctx: &Ctx,
    id: &'static str,
    what: &str,
    target: &str,
    want: f64,
    wire: &[u8],
    count: usize,
    ours: Decode,
    theirs: fn(&[u8], usize) -> usize,
    context: &[Context],
) -> Result<Row, String> {
    if ours(wire) != count || theirs(wire, count) != count {
        return Err("a decoder did not return every message".into());
    }
    if context.iter().any(|(_, f)| f(wire) != count) {
        return Err("a context decoder did not return every message".into());
    }
    let reps = if ctx.quick { 5 } else { 9 };
    let budget = if ctx.quick { 0.05 } else { 0.2 };
    // Passes per repetition, from one timed pass of the slower kind of work.
    let t0 = Instant::now();
    theirs(wire, count);
    let passes = ((budget / t0.elapsed().as_secs_f64().max(1e-6)) as usize).clamp(1, 100_000);
    let rate = |f: &dyn Fn() -> usize| -> Result<f64, String> {
        let t = Instant::now();
        for _ in 0..passes {
            if black_box(f()) != count {
                return Err("a decoder lost messages".into());
            }
        }
        Ok((wire.len() * passes) as f64 / t.elapsed().as_secs_f64() / 1e6)
    };
    let mut extra: Vec<Vec<f64>> = vec![Vec::new(); context.len()];
    let (a, b) = alternate(
        reps,
        |_| {
            for ((_, f), rates) in context.iter().zip(&mut extra) {
                rates.push(rate(&|| f(black_box(wire)))?);
            }
            rate(&|| ours(black_box(wire)))
        },
        |_| rate(&|| theirs(black_box(wire), count)),
    )?;
    let (am, bm) = (median(&a), median(&b));
    let peer = if id.starts_with("ws") {
        "tungstenite 0.24"
    } else {
        "tokio-util LengthDelimitedCodec"
    };
    let ratio = am / bm;
    let mut notes = format!(
        "in process on CPU 1, {reps} repetitions of {passes} passes over {} KiB, \
         alternated; tidings MB/s {}, peer MB/s {}.",
        wire.len() >> 10,
        list(&a, 0),
        list(&b, 0)
    );
    for ((name, _), rates) in context.iter().zip(&extra) {
        let m = median(rates);
        notes.push_str(&format!(
            " {name}: {m:.0} MB/s ({:.2}× the peer), MB/s {}.",
            m / bm,
            list(rates, 0)
        ));
    }
    Ok(Row {
        id,
        what: what.to_string(),
        tidings: format!("{am:.0} MB/s"),
        peer: format!("{peer} {bm:.0} MB/s"),
        ratio: Some(ratio),
        target: target.into(),
        verdict: at_least(ratio, want),
        notes,
    })
}

/// The row's tidings side: `FrameDecoder` splits the stream into typed frames, the work
/// `LengthDelimitedCodec` does.
fn tidings_native_split(wire: &[u8]) -> usize {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut n = 0;
    for read in wire.chunks(READ) {
        dec.push(read);
        while let Ok(Some(frame)) = dec.next_frame() {
            black_box(frame);
            n += 1;
        }
    }
    n
}

/// Context: splitting and parsing every message.
fn tidings_native_parse(wire: &[u8]) -> usize {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut n = 0;
    for read in wire.chunks(READ) {
        dec.push(read);
        while let Ok(Some(frame)) = dec.next_frame() {
            if let Ok(msg) = Message::decode(frame) {
                black_box(msg);
                n += 1;
            }
        }
    }
    n
}

/// Context: only the copy every decoder makes of each read, into one reused buffer. Returns
/// `count`, the frames the stream holds, as the decoders do, so that it runs in the same loop.
fn copy_only(wire: &[u8], count: usize) -> usize {
    let mut buf = vec![0u8; READ];
    for read in wire.chunks(READ) {
        buf[..read.len()].copy_from_slice(read);
        black_box(&mut buf);
    }
    count
}

fn lengthdelimited(wire: &[u8], _count: usize) -> usize {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(4)
        .length_adjustment(1) // the type byte follows the length and is not counted in it
        .num_skip(4)
        .max_frame_length(DEFAULT_MAX_FRAME as usize + 1)
        .big_endian()
        .new_codec();
    let mut buf = BytesMut::with_capacity(READ * 2);
    let mut n = 0;
    for read in wire.chunks(READ) {
        buf.extend_from_slice(read);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            black_box(frame);
            n += 1;
        }
    }
    n
}

/// `count` masked binary frames of `size` bytes, each with its own key (as core's
/// `benches/ws_decode.rs` builds them).
fn client_stream(size: usize, count: usize) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(count * (size + 14));
    for i in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = (seed as u32).to_le_bytes();
        out.push(0x82);
        match size {
            0..=125 => out.push(0x80 | size as u8),
            126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(size as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(size as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        let start = out.len();
        out.extend((0..size).map(|j| (i + j) as u8));
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

fn tidings_ws(wire: &[u8]) -> usize {
    let mut conn = WsConnection::server(WsConfig::default());
    let now = Instant::now();
    let mut n = 0;
    for piece in wire.chunks(WS_READ) {
        conn.handle_input(now, piece);
        while let Some(event) = conn.poll_event() {
            if let WsEvent::Binary(data) = event {
                black_box(&data);
                n += 1;
            }
        }
    }
    n
}

/// An in-memory socket for tungstenite: reads the stream, discards writes.
struct MemSocket<'a>(Cursor<&'a [u8]>);

impl Read for MemSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for MemSocket<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tungstenite_ws(wire: &[u8], count: usize) -> usize {
    use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
    let config = WebSocketConfig {
        max_message_size: Some(16 << 20),
        max_frame_size: Some(16 << 20),
        ..WebSocketConfig::default()
    };
    let mut ws =
        WebSocket::from_raw_socket(MemSocket(Cursor::new(wire)), Role::Server, Some(config));
    let mut n = 0;
    while n < count {
        match ws.read() {
            Ok(tungstenite::Message::Binary(data)) => {
                black_box(&data);
                n += 1;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    n
}
