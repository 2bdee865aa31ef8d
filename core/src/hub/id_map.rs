//! A map keyed by connection id with a cheap hash.
//!
//! Connection ids are handed out by the hub itself (a counter), so nobody outside can choose
//! keys that collide, and SipHash's protection is not needed on the hottest lookups (several
//! per message delivered).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hashing (as in FxHash): spreads sequential ids over all bits, including
/// the top ones the table uses as tags.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b.into());
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
}

/// A `HashMap` keyed by hub-assigned ids.
pub(super) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
