//! Decoding throughput of the native wire format: a byte stream cut into 64 KiB reads (what a
//! runtime's socket read hands over), reassembled by `FrameDecoder` and parsed by
//! `Message::decode`, for small chat frames and for large binary frames.
//!
//! Each stream is measured as `split` (`FrameDecoder` alone: typed frames, the work a
//! length-delimited codec does) and as `parse` (split, then `Message::decode` of every frame),
//! in frames per second; `parse` once more in bytes per second, because criterion reports
//! one throughput per benchmark.
//!
//! ```text
//! cargo bench -p tidings-core --bench decode -- --warm-up-time 1 --measurement-time 3
//! ```

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tidings_core::wire::{FrameDecoder, Message, Utf8, DEFAULT_MAX_FRAME};

/// The size of one read from the socket.
const READ: usize = 64 << 10;

/// A stream of `count` copies of `msg`.
fn stream(msg: &Message, count: usize) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(msg.encoded_len() * count);
    for _ in 0..count {
        msg.encode(&mut out);
    }
    out.to_vec()
}

/// A text frame of exactly 64 bytes on the wire: 5 header bytes, a 4-byte peer field, the
/// flags byte and 54 bytes of text.
fn text_frame() -> Message {
    let msg = Message::Text {
        peer: Utf8::from("bob"),
        private: false,
        text: Utf8::from("x".repeat(54)),
    };
    assert_eq!(msg.encoded_len(), 64);
    msg
}

/// A blob frame with a 64 KiB payload.
fn blob_frame() -> Message {
    Message::Blob {
        peer: Utf8::from("bob"),
        private: true,
        media_type: Utf8::from("application/octet-stream"),
        data: Bytes::from(vec![0xA5; 64 << 10]),
    }
}

/// Splits the whole stream into frames; returns the number of frames.
fn split_stream(wire: &[u8]) -> usize {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut count = 0;
    for read in wire.chunks(READ) {
        dec.push(read);
        while let Some(frame) = dec.next_frame().expect("valid stream") {
            black_box(frame);
            count += 1;
        }
    }
    count
}

/// Decodes the whole stream; returns the number of messages.
fn decode_stream(wire: &[u8]) -> usize {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut count = 0;
    for read in wire.chunks(READ) {
        dec.push(read);
        while let Some(frame) = dec.next_frame().expect("valid stream") {
            black_box(Message::decode(frame).expect("valid message"));
            count += 1;
        }
    }
    count
}

fn bench(c: &mut Criterion) {
    let streams = [
        ("text_64B", stream(&text_frame(), 16_384)),
        ("blob_64KiB", stream(&blob_frame(), 64)),
    ];
    for (name, wire) in &streams {
        // Sanity: every frame decodes, so the measurement is of real work.
        let frames = decode_stream(wire);
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function("split", |b| {
            b.iter(|| assert_eq!(split_stream(black_box(wire)), frames))
        });
        group.bench_function("parse", |b| {
            b.iter(|| assert_eq!(decode_stream(black_box(wire)), frames))
        });
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function("parse_bytes", |b| {
            b.iter(|| assert_eq!(decode_stream(black_box(wire)), frames))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
