//! Fuzz bodies (feature `fuzz`). Each takes the fuzzer's bytes and must never panic; each
//! asserts the invariants its decoder promises. They live here, not in `fuzz/`, so that every
//! `cargo test --features fuzz` compiles and runs them (the regression tests replay past
//! findings through them); the cargo-fuzz targets in `fuzz/` are one line each.

mod cluster;
mod hub;
mod json;
mod session;
mod wire;
mod ws;

pub use cluster::node_message;
pub use hub::hub;
pub use json::json;
pub use session::{session, transfer_pair};
pub use wire::{message_roundtrip, native_frames};
pub use ws::{http_handshake, ws_frames};

/// Splits `data` into pieces whose sizes come from `sizes` (cycled), so one input exercises
/// reassembly across arbitrary read boundaries.
fn pieces<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
    let mut i = 0;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = match sizes.get(i % sizes.len().max(1)) {
            Some(&s) => (s as usize).max(1),
            None => rest.len(),
        };
        i += 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(head)
    })
}
