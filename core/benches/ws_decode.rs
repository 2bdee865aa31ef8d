//! Decoding throughput: a stream of masked client binary frames decoded by the server side of
//! `tidings_core::ws::WsConnection` and by tungstenite's `WebSocket` in server role.
//!
//! Both do the same work per frame: parse the header, check the protocol rules, unmask the
//! payload and hand out a complete message. Both read the stream in 4 KiB pieces (tungstenite's
//! own read size, here from an in-memory cursor), so neither is helped by a larger read. A
//! third line shows ours fed 64 KiB at a time, as the runtimes do.
//!
//! ```text
//! cargo bench -p tidings-core --bench ws_decode -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::{Cursor, Read, Write};
use std::time::Instant;
use tidings_core::ws::{apply_mask, WsConfig, WsConnection, WsEvent};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

/// A stream of `count` masked binary frames of `size` bytes, each with its own key.
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

/// Decodes `stream` with a tidings server connection fed `chunk` bytes at a time.
fn decode_tidings(stream: &[u8], chunk: usize) -> usize {
    let mut conn = WsConnection::server(WsConfig::default());
    let now = Instant::now();
    let mut messages = 0;
    for piece in stream.chunks(chunk) {
        conn.handle_input(now, piece);
        while let Some(event) = conn.poll_event() {
            if let WsEvent::Binary(data) = event {
                black_box(&data);
                messages += 1;
            }
        }
    }
    messages
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

/// Decodes `count` messages from `stream` with tungstenite in server role.
fn decode_tungstenite(stream: &[u8], count: usize) -> usize {
    let config = WebSocketConfig {
        max_message_size: Some(16 << 20),
        max_frame_size: Some(16 << 20),
        ..WebSocketConfig::default()
    };
    let mut ws =
        WebSocket::from_raw_socket(MemSocket(Cursor::new(stream)), Role::Server, Some(config));
    let mut messages = 0;
    while messages < count {
        match ws.read() {
            Ok(Message::Binary(data)) => {
                black_box(&data);
                messages += 1;
            }
            Ok(_) => {}
            Err(err) => panic!("tungstenite failed: {err}"),
        }
    }
    messages
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_decode");
    for (size, count) in [(64usize, 16_384usize), (64 * 1024, 64)] {
        let stream = client_stream(size, count);
        assert_eq!(decode_tidings(&stream, 4096), count);
        assert_eq!(decode_tungstenite(&stream, count), count);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        let label = if size < 1024 {
            format!("{size}B")
        } else {
            format!("{}KiB", size / 1024)
        };
        group.bench_with_input(BenchmarkId::new("tidings", &label), &stream, |b, s| {
            b.iter(|| decode_tidings(s, 4096))
        });
        group.bench_with_input(BenchmarkId::new("tungstenite", &label), &stream, |b, s| {
            b.iter(|| decode_tungstenite(s, count))
        });
        group.bench_with_input(
            BenchmarkId::new("tidings_64KiB_reads", &label),
            &stream,
            |b, s| b.iter(|| decode_tidings(s, 64 * 1024)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
