//! The default room's members, kept as the `names` list that `welcome` and the default
//! room's `room-members` carry: each name already encoded (`str8`), sorted by key.
//!
//! Every client is welcomed with the list of everyone in the default room, so *n* joins
//! list *n²/2* names. Gathered member by member (a look-up in the name index, the
//! connection, the name's own buffer, a reference count up and down), that was half of
//! what a join storm cost the server; copied as bytes it is a few memory copies. The names
//! sit in blocks of a few hundred, so that an arrival or a departure moves a few KiB, not
//! the whole list.

use bytes::{BufMut, BytesMut};

use crate::name::name_key;
use crate::wire::Utf8;

/// A block is split in two when it holds more names than this: a name takes at most 129
/// bytes (32 characters of up to 4 bytes, and the length byte), so a block stays within
/// the 64 KiB its 16-bit offsets reach.
const BLOCK_MAX: usize = 256;

/// The default room's members, encoded and sorted. See the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct Roster {
    /// In key order: every name of a block sorts before every name of the next.
    blocks: Vec<Block>,
    len: usize,
}

#[derive(Debug)]
struct Block {
    /// The key of its first name (the blocks are searched by it).
    first: String,
    /// Its names, each as `str8` (a length byte, then the name).
    bytes: Vec<u8>,
    /// Where each name starts in `bytes` (see [`BLOCK_MAX`]).
    starts: Vec<u16>,
}

impl Block {
    fn name(&self, i: usize) -> &str {
        let at = self.starts[i] as usize;
        let len = self.bytes[at] as usize;
        std::str::from_utf8(&self.bytes[at + 1..at + 1 + len]).unwrap_or_default()
    }

    /// The byte range of name `i`.
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        let at = self.starts[i] as usize;
        at..at + 1 + self.bytes[at] as usize
    }

    /// The position of the first name whose key is not below `key`.
    fn position(&self, key: &str) -> usize {
        let (mut lo, mut hi) = (0, self.starts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if name_key(self.name(mid)).as_str() < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

impl Roster {
    /// How many names it holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The block `key` belongs in: the last whose first key is not above it.
    fn block_for(&self, key: &str) -> usize {
        self.blocks
            .partition_point(|b| b.first.as_str() <= key)
            .saturating_sub(1)
    }

    /// Adds `name` (not present: names are unique by key).
    pub(super) fn insert(&mut self, name: &Utf8) {
        let key = name_key(name);
        let mut entry = Vec::with_capacity(1 + name.len());
        entry.push(name.len() as u8);
        entry.extend_from_slice(name.as_bytes());
        if self.blocks.is_empty() {
            self.blocks.push(Block {
                first: key,
                bytes: entry,
                starts: vec![0],
            });
            self.len = 1;
            return;
        }
        let b = self.block_for(&key);
        let block = &mut self.blocks[b];
        let pos = block.position(&key);
        let at = block
            .starts
            .get(pos)
            .map_or(block.bytes.len(), |&s| s as usize);
        block.bytes.splice(at..at, entry.iter().copied());
        for s in &mut block.starts[pos..] {
            *s += entry.len() as u16;
        }
        block.starts.insert(pos, at as u16);
        if pos == 0 {
            block.first = key;
        }
        self.len += 1;
        if block.starts.len() > BLOCK_MAX {
            self.split(b);
        }
    }

    /// Splits block `b` into two halves.
    fn split(&mut self, b: usize) {
        let block = &mut self.blocks[b];
        let half = block.starts.len() / 2;
        let cut = block.starts[half] as usize;
        let bytes = block.bytes.split_off(cut);
        let starts = block.starts.split_off(half);
        let starts = starts.iter().map(|&s| s - cut as u16).collect();
        let mut second = Block {
            first: String::new(),
            bytes,
            starts,
        };
        second.first = name_key(second.name(0));
        self.blocks.insert(b + 1, second);
    }

    /// Takes `name` out; whether it was there.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        let key = name_key(name);
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_for(&key);
        let block = &mut self.blocks[b];
        let pos = block.position(&key);
        if pos == block.starts.len() || name_key(block.name(pos)) != key {
            return false;
        }
        let span = block.span(pos);
        block.bytes.drain(span.clone());
        block.starts.remove(pos);
        for s in &mut block.starts[pos..] {
            *s -= span.len() as u16;
        }
        self.len -= 1;
        if block.starts.is_empty() {
            self.blocks.remove(b);
        } else if pos == 0 {
            block.first = name_key(block.name(0));
        }
        true
    }

    /// Appends the list's entries to `out`: every name but `skip` (a member's own, which
    /// goes last), in key order, then `last`. Returns how many names it wrote.
    pub(super) fn write(&self, skip: Option<&str>, last: &Utf8, out: &mut BytesMut) -> u32 {
        // The block holding `skip`, and its bytes there.
        let skipped = skip.and_then(|name| {
            let key = name_key(name);
            let b = self.block_for(&key);
            let block = self.blocks.get(b)?;
            let pos = block.position(&key);
            let found = pos < block.starts.len() && name_key(block.name(pos)) == key;
            found.then(|| (b, block.span(pos)))
        });
        out.reserve(self.blocks.iter().map(|b| b.bytes.len()).sum::<usize>() + 1 + last.len());
        for (b, block) in self.blocks.iter().enumerate() {
            match &skipped {
                Some((at, span)) if *at == b => {
                    out.put_slice(&block.bytes[..span.start]);
                    out.put_slice(&block.bytes[span.end..]);
                }
                _ => out.put_slice(&block.bytes),
            }
        }
        out.put_u8(last.len() as u8);
        out.put_slice(last.as_bytes());
        (self.len - usize::from(skipped.is_some()) + 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The entries the roster should write for `names` (key → name), `skip` left out and
    /// `last` appended.
    fn expected(names: &BTreeMap<String, String>, skip: Option<&str>, last: &str) -> Vec<u8> {
        let skip = skip.map(name_key);
        let mut out = Vec::new();
        for (k, n) in names {
            if Some(k) != skip.as_ref() {
                out.push(n.len() as u8);
                out.extend_from_slice(n.as_bytes());
            }
        }
        out.push(last.len() as u8);
        out.extend_from_slice(last.as_bytes());
        out
    }

    #[test]
    fn arrivals_and_departures_in_any_order_keep_the_list_sorted_by_key() {
        // A small generator (no randomness in core): a walk over names that come and go,
        // enough of them to split blocks and empty some again.
        let mut roster = Roster::default();
        let mut model = BTreeMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..6000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mixed case: keys fold it, so `User3` sorts between `user2` and `user4`.
            let n = x % 1500;
            let name = if n % 3 == 0 {
                format!("User{n}")
            } else {
                format!("user{n}")
            };
            let key = name_key(&name);
            if step < 2500 || x % 3 != 0 {
                if let std::collections::btree_map::Entry::Vacant(e) = model.entry(key) {
                    roster.insert(&Utf8::from(name.as_str()));
                    e.insert(name);
                }
            } else {
                let present = model.remove(&key).is_some();
                assert_eq!(roster.remove(&name), present, "{name}");
            }
            assert_eq!(roster.len(), model.len());
            if step % 500 == 0 || step == 5999 {
                let mut out = BytesMut::new();
                let count = roster.write(None, &Utf8::from("new"), &mut out);
                assert_eq!(count as usize, model.len() + 1);
                assert_eq!(out.to_vec(), expected(&model, None, "new"));
                if let Some(name) = model.values().nth(model.len() / 2).cloned() {
                    let mut out = BytesMut::new();
                    let count = roster.write(Some(&name), &Utf8::from(name.as_str()), &mut out);
                    assert_eq!(count as usize, model.len());
                    assert_eq!(out.to_vec(), expected(&model, Some(&name), &name));
                }
            }
        }
        assert!(roster.blocks.len() > 1, "the walk split blocks");
        assert!(roster.blocks.iter().all(|b| b.starts.len() <= BLOCK_MAX));
    }

    #[test]
    fn an_absent_name_is_neither_removed_nor_skipped() {
        let mut roster = Roster::default();
        assert!(!roster.remove("ghost"));
        roster.insert(&Utf8::from("ann"));
        roster.insert(&Utf8::from("Cy"));
        assert!(!roster.remove("bob"));
        let mut out = BytesMut::new();
        assert_eq!(roster.write(Some("bob"), &Utf8::from("bob"), &mut out), 3);
        assert_eq!(&out[..], b"\x03ann\x02Cy\x03bob");
        assert!(roster.remove("CY"), "found by key");
        assert!(roster.remove("ann"));
        assert_eq!(roster.len(), 0);
        assert!(roster.blocks.is_empty());
    }
}
