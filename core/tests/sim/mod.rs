//! The one simulation harness of core's tests, after quinn-proto's `Pair`: peers joined by
//! simulated byte pipes, virtual time that the harness advances, and scripted splits, delays,
//! stalls and cuts of the bytes in flight. No sockets, no threads, no sleeping: a 30-second
//! timeout runs in microseconds, and a seed replays any run.
//!
//! * [`Pair`]: a client session and a server session. Each direction is a [`LinkConfig`]
//!   (random split points up to `max_piece`, a `delay` per piece); [`Pair::cut`] drops what is
//!   in flight and ends both streams; [`Pair::run_until`] fires timers and deliveries in
//!   order.
//! * [`HubNet`]: a hub and any number of client sessions, driven by the hub's calling
//!   contract, each client's application included (in-memory files, slow writers); a client
//!   can be `frozen` (its bytes stay in flight) or `blocked` (it stops reading).
//! * [`gateway::GatewayNet`]: a hub with WebSocket clients behind gateways (their output
//!   plain, through one render cache, or through a real `WsConnection` pair) and native
//!   clients.
//! * [`cluster::ClusterNet`]: several [`HubNet`]s, each a node of one cluster, joined by an
//!   in-memory broker (subjects, interest, a store of name claims that expire) that can lose,
//!   repeat and hold back messages, cut a node off and crash it.
//! * [`transfer`]: the application side of file transfers over a [`Pair`] ([`transfer::Host`],
//!   [`transfer::run`]), with synthetic files of any size.
//! * [`ws`]: WebSocket frames built by hand (also ones the encoder refuses), fed whole, byte by
//!   byte and at random split points.
//! * [`messages`]: proptest strategies for every message.
//!
//! Every test binary compiles all of it and uses a part: unused items are expected.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod gateway;
pub mod hub;
pub mod messages;
pub mod pair;
pub mod transfer;
pub mod ws;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tidings_core::session::Event;
use tidings_core::transfer::Digest;
use tidings_core::wire::{Hello, Message, Utf8};

pub use hub::HubNet;
pub use pair::{LinkConfig, Pair, Side};

/// A small deterministic generator (xorshift64*), so failures replay from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    #[allow(clippy::should_implement_trait)] // a generator, not an iterator
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Splits `bytes` at random points into pieces of 1..=max bytes.
    pub fn split(&mut self, bytes: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = 1 + self.below(max.min(rest.len()) as u64) as usize;
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        out
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Bytes {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        Bytes::from(v)
    }
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// The text events among `events`, as `(peer, private, text)`.
pub fn texts(events: &[Event]) -> Vec<(String, bool, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text {
                peer,
                private,
                text,
            } => Some((peer.to_string(), *private, text.to_string())),
            _ => None,
        })
        .collect()
}

/// Runs `spec/vectors/<script> --check`: the committed vectors are exactly what the
/// independent generator produces from the spec. CPython is part of every machine of this
/// project (see the workspace's environment notes).
pub fn check_generated(script: &str) {
    let path = format!("{}/../spec/vectors/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(path)
        .arg("--check")
        .output()
        .expect("python3 runs (it is needed to check the spec vectors)");
    assert!(
        out.status.success(),
        "{script} --check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `hello` asking for `name`.
pub fn hello(name: &str, capabilities: u32, max_frame: u32) -> Message {
    Message::Hello(Hello {
        name: Utf8::from(name),
        capabilities,
        max_frame,
    })
}

/// Shorthand for a wire string.
pub fn u(s: &str) -> Utf8 {
    Utf8::from(s)
}
