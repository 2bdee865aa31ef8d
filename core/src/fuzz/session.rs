//! Fuzz bodies for sessions and transfers, driven by arbitrary sequences of inputs, timer
//! firings and commands.

use core::time::Duration;
use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};

use crate::session::{Closed, Config, Event, Session};
use crate::transfer::TransferEvent;
use crate::wire::{Hello, Message, Preamble, Utf8, Welcome, DEFAULT_MAX_FRAME};
use crate::ErrorCode;

/// A command may fail only because the session already closed (its events are still being
/// drained); any other failure is a bug.
fn settled(s: &Session, r: Result<(), crate::session::SendError>, what: &str) {
    if let Err(e) = r {
        assert!(s.is_closed(), "{what} failed on an open session: {e}");
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Input(Vec<u8>),
    Frame(u8, Vec<u8>),
    Eof,
    Advance(u16),
    Text(String),
    Offer(u32),
    Accept(u8, u32),
    Cancel(u8),
    Goodbye,
}

/// One session (either role) fed arbitrary bytes, well-formed frames of arbitrary types,
/// timer firings and commands. It must never panic, must report `Closed` exactly once and
/// last, and must not keep asking for a timer after it is closed and drained.
/// `start` is the driver's clock reading: time, as everywhere in core, comes from the caller.
pub fn session(data: &[u8], start: Instant) {
    let mut u = Unstructured::new(data);
    let Ok(server) = u.arbitrary::<bool>() else {
        return;
    };
    let Ok(handshake) = u.arbitrary::<bool>() else {
        return;
    };
    let mut now = start;
    let cfg = Config {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_timeout: Duration::from_millis(1500),
        ..Config::default()
    };
    let mut s = if server {
        Session::server(cfg, now)
    } else {
        Session::client(cfg, "fuzz", now).expect("valid name")
    };
    if handshake {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
        let first = if server {
            Message::Hello(Hello {
                name: Utf8::from("peer"),
                capabilities: 3,
                max_frame: DEFAULT_MAX_FRAME,
            })
        } else {
            Message::Welcome(Welcome {
                name: Utf8::from("fuzz"),
                server: Utf8::from("server"),
                heartbeat_ms: 500,
                timeout_ms: 1500,
                max_frame: DEFAULT_MAX_FRAME,
                capabilities: 3,
                online: vec![],
            })
        };
        first.encode(&mut wire);
        s.handle_input(now, &wire);
    }
    let mut closed = false;
    let mut offered: Vec<(u64, u64)> = Vec::new();
    // `arbitrary` yields default values once the input is used up: stop there.
    while !u.is_empty() {
        let Ok(op) = u.arbitrary::<Op>() else { break };
        match op {
            Op::Input(bytes) => s.handle_input(now, &bytes),
            Op::Frame(kind, body) => {
                let mut wire = BytesMut::new();
                crate::wire::encode_header(kind, body.len(), &mut wire);
                wire.extend_from_slice(&body);
                s.handle_input(now, &wire);
            }
            Op::Eof => s.handle_eof(now),
            Op::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                s.handle_timeout(now);
            }
            Op::Text(t) => {
                let _ = s.send_text("", &t);
            }
            Op::Offer(size) => {
                let _ = s.offer_file("", "f.bin", size.into(), "");
            }
            Op::Accept(i, off) => {
                if let Some(&(id, size)) = offered.get(i as usize % offered.len().max(1)) {
                    // Bounded so that hashing a resumed prefix stays cheap.
                    let _ = s.accept_offer(id, u64::from(off) % (size.min(1 << 20) + 1));
                }
            }
            Op::Cancel(i) => {
                if let Some(&(id, _)) = offered.get(i as usize % offered.len().max(1)) {
                    let _ = s.cancel_transfer(id, ErrorCode::Cancelled, "fuzz");
                }
            }
            Op::Goodbye => s.goodbye(ErrorCode::Normal, "bye"),
        }
        while s.poll_transmit().is_some() {}
        // Each step does bounded work: at most this many file reads are answered.
        let mut reads = 0;
        while let Some(ev) = s.poll_event() {
            assert!(!closed, "event after Closed: {ev:?}");
            match ev {
                Event::Closed(_) => closed = true,
                Event::Hello(h) => {
                    let _ = s.accept_hello(h.name, Utf8::from("server"), vec![]);
                }
                Event::Transfer(TransferEvent::Offered(o)) => offered.push((o.id, o.size)),
                Event::Transfer(TransferEvent::Read { id, offset, len }) if reads < 16 => {
                    reads += 1;
                    let r = s.provide_data(id, offset, Bytes::from(vec![0; len]));
                    settled(&s, r, "answering a read");
                }
                Event::Transfer(TransferEvent::Data { id, data, .. }) => {
                    let r = s.data_written(id, data.len() as u64);
                    settled(&s, r, "acknowledging a write");
                }
                _ => {}
            }
        }
        assert_eq!(closed, s.is_closed());
        if closed {
            assert_eq!(s.poll_timeout(), None);
        } else {
            assert!(
                s.poll_timeout().is_some(),
                "an open session always has a deadline"
            );
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PairOp {
    /// Deliver up to this many bytes from one side to the other.
    Deliver(bool, u16),
    Advance(u16),
    Offer(bool, u32),
    Accept(bool, u8, u32),
    Cancel(bool, u8),
    Text(bool, String),
}

/// A file byte at `offset`: every file in the pair fuzzer has this content, so the receiver
/// can check what it is given without keeping the file.
fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(31) >> 3) as u8
}

/// Two correct sessions joined in memory and driven by arbitrary commands, deliveries and
/// time steps. Whatever the interleaving, neither side may accuse the other of a protocol
/// error, received bytes are the file's bytes at their offsets, progress never goes back,
/// and a transfer finishes well only after every byte was written.
/// `start` is the driver's clock reading, as for [`session`].
pub fn transfer_pair(data: &[u8], start: Instant) {
    let mut u = Unstructured::new(data);
    let mut now = start;
    let mut cfg = Config::default();
    cfg.transfer.window = 4096;
    cfg.transfer.chunk_size = 1500;
    cfg.transfer.read_ahead = 3000;
    let mut a = Session::client(cfg.clone(), "alice", now).expect("valid name");
    let mut b = Session::server(cfg, now);
    let mut wires: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut offers: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut progress: std::collections::HashMap<(usize, u64), u64> = Default::default();
    let mut written: std::collections::HashMap<(usize, u64), u64> = Default::default();
    let mut step = |a: &mut Session,
                    b: &mut Session,
                    wires: &mut [Vec<u8>; 2],
                    offers: &mut [Vec<(u64, u64)>; 2],
                    written: &mut std::collections::HashMap<(usize, u64), u64>| {
        for (i, s) in [&mut *a, &mut *b].into_iter().enumerate() {
            while let Some(bytes) = s.poll_transmit() {
                wires[i].extend_from_slice(&bytes);
            }
            while let Some(ev) = s.poll_event() {
                match ev {
                    Event::Hello(h) => {
                        let r = s.accept_hello(h.name, Utf8::from("srv"), vec![]);
                        settled(s, r, "answer hello");
                    }
                    Event::Closed(Closed::Local { code, reason }) => {
                        assert!(
                            matches!(code, ErrorCode::HeartbeatTimeout),
                            "a correct peer was accused: {code} {reason}"
                        );
                    }
                    Event::Transfer(TransferEvent::Offered(o)) => offers[i].push((o.id, o.size)),
                    Event::Transfer(TransferEvent::Read { id, offset, len }) => {
                        let bytes: Vec<u8> = (offset..offset + len as u64).map(byte_at).collect();
                        {
                            let r = s.provide_data(id, offset, Bytes::from(bytes));
                            settled(s, r, "answer read")
                        };
                    }
                    Event::Transfer(TransferEvent::Data { id, offset, data }) => {
                        for (k, &x) in data.iter().enumerate() {
                            assert_eq!(x, byte_at(offset + k as u64), "corrupted byte");
                        }
                        *written.entry((i, id)).or_default() = offset + data.len() as u64;
                        {
                            let r = s.data_written(id, data.len() as u64);
                            settled(s, r, "ack write")
                        };
                    }
                    Event::Transfer(TransferEvent::Progress(p)) => {
                        let last = progress.entry((i, p.id)).or_default();
                        assert!(p.done >= *last && p.done <= p.total, "progress went back");
                        *last = p.done;
                    }
                    Event::Transfer(TransferEvent::Finished {
                        id,
                        direction: crate::transfer::Direction::Receive,
                        result: Ok(_),
                    }) => {
                        let size = offers[i].iter().find(|o| o.0 == id).map(|o| o.1);
                        let done = written.get(&(i, id)).copied();
                        assert_eq!(done, size, "finished before all bytes were written");
                    }
                    _ => {}
                }
            }
        }
    };
    while !u.is_empty() {
        let Ok(op) = u.arbitrary::<PairOp>() else {
            break;
        };
        match op {
            PairOp::Deliver(dir, n) => {
                let (from, to) = if dir { (0, &mut b) } else { (1, &mut a) };
                let n = (n as usize).min(wires[from].len());
                let chunk: Vec<u8> = wires[from].drain(..n).collect();
                to.handle_input(now, &chunk);
            }
            PairOp::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
            PairOp::Offer(side, size) => {
                let s = if side { &mut a } else { &mut b };
                let _ = s.offer_file("", "f", (size % 100_000).into(), "");
            }
            PairOp::Accept(side, i, off) => {
                let (k, s) = if side { (0, &mut a) } else { (1, &mut b) };
                if let Some(&(id, size)) = offers[k].get(i as usize % offers[k].len().max(1)) {
                    let offset = u64::from(off) % (size + 1);
                    if s.accept_offer(id, offset).is_ok() {
                        // A resumed file already holds its first `offset` bytes.
                        written.insert((k, id), offset);
                    }
                }
            }
            PairOp::Cancel(side, i) => {
                let (k, s) = if side { (0, &mut a) } else { (1, &mut b) };
                if let Some(&(id, _)) = offers[k].get(i as usize % offers[k].len().max(1)) {
                    let _ = s.cancel_transfer(id, ErrorCode::Cancelled, "fuzz");
                }
            }
            PairOp::Text(side, t) => {
                let s = if side { &mut a } else { &mut b };
                let _ = s.send_text("", &t);
            }
        }
        step(&mut a, &mut b, &mut wires, &mut offers, &mut written);
    }
}
