//! One rendering of a broadcast for all WebSocket recipients: [`RenderCache`].

use bytes::Bytes;

use crate::ws::{server_frame, OpCode, Utf8Bytes};

/// Slots of the cache; a power of two. Enough that every broadcast still being delivered has
/// a slot of its own in practice (a hub with 100 chatty clients, each a few messages ahead,
/// has some 800 in flight), small enough to allocate for any server: 4096 × 72 bytes.
const SLOTS: usize = 4096;
/// Slots per set: an entry may sit in any of the `WAYS` slots of its set, and a new one
/// displaces the set's least recently used. With direct mapping, two broadcasts in flight
/// that shared a slot would displace each other at every recipient, and each recipient
/// would render again.
const WAYS: usize = 4;
/// Frame bodies above this size are rendered per recipient: the copy of the frame into the
/// gateway already costs about as much as rendering it, and such frames would crowd the
/// byte budget.
const MAX_BODY: usize = 64 << 10;
/// No slot (`RenderCache::last`, `Entry::next`).
const NONE: u32 = u32::MAX;
/// Bytes of keys and renderings the cache may hold; when an insertion would pass it, the
/// cache starts over (rare, and cheaper than bookkeeping for an eviction order).
const BUDGET: usize = 8 << 20;

/// Renderings of the hub's frames as WebSocket text, shared by every [`Gateway`] of a server
/// (or of a thread), so that a broadcast is turned into JSON once, not once per recipient.
///
/// The hub writes a broadcast into every recipient's output as the same native frame. Without
/// this cache each JSON or legacy gateway decodes that frame again and escapes it into a JSON
/// text of its own. With it, the first gateway renders the frame and stores the text (a
/// shared [`Utf8Bytes`]); the others find it and queue a reference-counted clone.
///
/// # Why keyed by content
///
/// Entries are keyed by the mode (JSON or legacy) and the frame's type and body bytes,
/// compared in full on every hit, and only renderings that depend on nothing else are stored
/// (a `text`, `blob` or `presence` in the JSON mode; a `text` to everyone in the legacy
/// one, whose private texts name the recipient and whose presence lines name the server).
/// So an entry is right for any gateway of any hub, whatever its state, and a stale or
/// colliding entry can only cost a render, never deliver a wrong line. Keying by the frame's
/// identity instead (the address of a `Bytes` shared by all recipients) would need the hub
/// to hand every recipient the frame as a separate piece, which would break up the batched
/// output of native clients, and would tie the gateway to how the hub queues its output.
/// Hashing a chat line costs a few nanoseconds next to the decode, escape and allocations it
/// saves.
///
/// The cache has 4096 slots in sets of 4 (allocated at the first insertion); a new entry
/// replaces the least recently used one of its set, so crafted collisions can only make
/// renders miss, as without the cache. Bodies above 64 KiB are not stored, and the cache starts over when it
/// would hold more than 8 MiB.
///
/// It is plain data without interior mutability: the runtime owns one per thread that drives
/// gateways and passes it to [`Gateway::handle_native_cached`].
///
/// [`Gateway`]: super::Gateway
/// [`Gateway::handle_native_cached`]: super::Gateway::handle_native_cached
pub struct RenderCache {
    slots: Vec<Option<Entry>>,
    /// The slot of the last entry found or stored ([`NONE`] at first): its `next` predicts
    /// the next lookup.
    last: u32,
    /// Bytes of keys and renderings held.
    held: usize,
    /// Counts lookups and insertions: an entry's `used` is the count when it was last used.
    clock: u64,
    stats: RenderStats,
}

/// What a [`RenderCache`] did so far: see [`RenderCache::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Frames rendered and stored (one per distinct broadcast, plus re-renders after an
    /// entry was displaced).
    pub renders: u64,
    /// Frames whose stored rendering was reused.
    pub hits: u64,
}

struct Entry {
    /// The slot looked up right after this entry the last time ([`NONE`] if none yet).
    next: u32,
    hash: u64,
    used: u64,
    form: TextForm,
    kind: u8,
    body: Box<[u8]>,
    rendering: Rendering,
}

/// A stored rendering: the text, and the same text as a whole WebSocket server frame, so that
/// each recipient's connection copies one slice and encodes no header.
pub(super) struct Rendering {
    pub(super) text: Utf8Bytes,
    pub(super) frame: Bytes,
}

/// The mode a rendering is for: part of the key, as the two render the same frame
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextForm {
    Json,
    Legacy,
}

impl RenderCache {
    /// An empty cache; it allocates its slots at the first insertion.
    pub fn new() -> RenderCache {
        RenderCache::default()
    }

    /// How many renderings were stored and how many were reused.
    pub fn stats(&self) -> RenderStats {
        self.stats
    }

    /// Whether a frame of this size may be stored at all (larger ones are not looked up).
    pub(super) fn admits(body: &[u8]) -> bool {
        body.len() <= MAX_BODY
    }

    /// The stored rendering of this frame, if any.
    ///
    /// The recipients of a burst of broadcasts look up the same frames in the same order
    /// (each one's queue holds them as the hub sent them), so the entry that followed the
    /// last one found is tried first, compared in full but without hashing the frame or
    /// searching its set.
    pub(super) fn get_ref(&mut self, form: TextForm, kind: u8, body: &[u8]) -> Option<&Rendering> {
        if self.slots.is_empty() {
            return None;
        }
        self.clock += 1;
        let found = match self.predicted() {
            Some(i)
                if self.slots[i]
                    .as_ref()
                    .is_some_and(|e| e.is(form, kind, body)) =>
            {
                i
            }
            _ => {
                let hash = hash(form, kind, body);
                let set = set(hash);
                let way = self.slots[set..set + WAYS].iter().position(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.hash == hash && e.is(form, kind, body))
                })?;
                self.follows(set + way);
                set + way
            }
        };
        self.last = found as u32;
        let entry = self.slots[found].as_mut()?;
        entry.used = self.clock;
        self.stats.hits += 1;
        Some(&entry.rendering)
    }

    /// The slot that followed the last one found or stored, the last time.
    fn predicted(&self) -> Option<usize> {
        let last = self.slots.get(self.last as usize)?.as_ref()?;
        (last.next != NONE).then_some(last.next as usize)
    }

    /// Records that slot `i` follows the last one found or stored.
    fn follows(&mut self, i: usize) {
        if let Some(Some(last)) = self.slots.get_mut(self.last as usize) {
            last.next = i as u32;
        }
    }

    /// Stores `text` as the rendering of this frame. The caller guarantees that the
    /// rendering depends on nothing but the mode, `kind` and `body`.
    pub(super) fn insert(&mut self, form: TextForm, kind: u8, body: &[u8], text: Utf8Bytes) {
        self.stats.renders += 1;
        let frame = server_frame(OpCode::Text, text.as_bytes());
        let size = body.len() + text.len() + frame.len();
        if self.held + size > BUDGET {
            self.slots.clear();
            self.held = 0;
            self.last = NONE;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let hash = hash(form, kind, body);
        self.clock += 1;
        let set = set(hash);
        // An empty slot of the set, else its least recently used entry.
        let (way, _) = self.slots[set..set + WAYS]
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.as_ref().map_or(0, |e| e.used))
            .expect("WAYS > 0");
        let i = set + way;
        self.follows(i);
        self.last = i as u32;
        let slot = &mut self.slots[i];
        if let Some(old) = slot.take() {
            self.held -= old.body.len() + old.rendering.text.len() + old.rendering.frame.len();
        }
        self.held += size;
        *slot = Some(Entry {
            next: NONE,
            hash,
            used: self.clock,
            form,
            kind,
            body: body.into(),
            rendering: Rendering { text, frame },
        });
    }
}

impl Default for RenderCache {
    fn default() -> RenderCache {
        RenderCache {
            slots: Vec::new(),
            last: NONE,
            held: 0,
            clock: 0,
            stats: RenderStats::default(),
        }
    }
}

impl Entry {
    /// Whether this is the entry for the frame (its body compared in full).
    fn is(&self, form: TextForm, kind: u8, body: &[u8]) -> bool {
        self.form == form && self.kind == kind && same(&self.body, body)
    }
}

impl std::fmt::Debug for RenderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderCache")
            .field("held", &self.held)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// `a == b`, compared in words: a hit compares a chat line in full, and for lines of a few
/// dozen bytes the call into the C library's `memcmp` cost more than the comparison (5 % of
/// a server's CPU under a WebSocket broadcast load).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8]| u64::from_ne_bytes(s.try_into().expect("8 bytes"));
    // The tail (under 8 bytes) as one word, zero-padded: both have the same length.
    let tail = |s: &[u8]| s.iter().fold(0u64, |w, &b| w << 8 | u64::from(b));
    let (x, y) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails = tail(x.remainder()) ^ tail(y.remainder());
    // Differences are or-ed together rather than the loop stopping at the first: a loop with
    // an early exit is turned back into a `memcmp` call by the compiler.
    x.zip(y).fold(tails, |d, (p, q)| d | (word(p) ^ word(q))) == 0
}

/// The first slot of the set for `hash`.
fn set(hash: u64) -> usize {
    // The multiplicative hash mixes into the high bits.
    let sets = SLOTS / WAYS;
    (hash >> (64 - sets.trailing_zeros())) as usize * WAYS
}

/// A fast multiplicative hash (the FxHash step) over the key, in two independent lanes of
/// 8-byte words so the multiplications overlap. Not collision-resistant, and need not be: a
/// collision costs one render (see [`RenderCache`]).
fn hash(form: TextForm, kind: u8, body: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let mut a = step(0, (form as u64) << 8 | u64::from(kind));
    let mut b = step(0, body.len() as u64);
    let mut pairs = body.chunks_exact(16);
    for p in &mut pairs {
        a = step(a, word(p));
        b = step(b, word(&p[8..]));
    }
    // The rest is read as whole words that may overlap bytes already hashed (no copy into a
    // buffer, whose narrow stores a wide load would have to wait for); the length is in `b`.
    let n = pairs.remainder().len();
    if n > 0 {
        let len = body.len();
        let (x, y) = if len >= 16 {
            (word(&body[len - 16..]), word(&body[len - 8..]))
        } else if len >= 8 {
            (word(body), word(&body[len - 8..]))
        } else {
            let half = |b: &[u8]| u64::from(u32::from_le_bytes(b[..4].try_into().expect("4")));
            if len >= 4 {
                (half(body), half(&body[len - 4..]))
            } else {
                let tiny = u64::from(body[0]) | u64::from(body[len / 2]) << 8;
                (tiny | u64::from(body[len - 1]) << 16, 0)
            }
        };
        a = step(a, x);
        b = step(b, y);
    }
    step(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored text for this key, if any.
    fn text_of(c: &mut RenderCache, form: TextForm, kind: u8, body: &[u8]) -> Option<Utf8Bytes> {
        c.get_ref(form, kind, body).map(|r| r.text.clone())
    }

    #[test]
    fn same_compares_every_byte() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(same(&a, &a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!same(&a, &b), "len {len}, byte {i}");
            }
            assert!(!same(&a, &[a.as_slice(), &[0]].concat()));
        }
    }

    #[test]
    fn stores_finds_and_compares_in_full() {
        let mut c = RenderCache::new();
        assert_eq!(text_of(&mut c, TextForm::Json, 0x10, b"abc"), None);
        c.insert(TextForm::Json, 0x10, b"abc", Utf8Bytes::from("one"));
        let hit = text_of(&mut c, TextForm::Json, 0x10, b"abc").unwrap();
        assert_eq!(hit, "one");
        // The frame is the text's WebSocket frame, encoded once.
        let frame = c
            .get_ref(TextForm::Json, 0x10, b"abc")
            .unwrap()
            .frame
            .clone();
        assert_eq!(&frame[..], &server_frame(OpCode::Text, b"one")[..]);
        // The same rendering, not a copy.
        let again = text_of(&mut c, TextForm::Json, 0x10, b"abc").unwrap();
        assert_eq!(hit.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        // The form, kind and body are all part of the key.
        assert_eq!(text_of(&mut c, TextForm::Legacy, 0x10, b"abc"), None);
        assert_eq!(text_of(&mut c, TextForm::Json, 0x11, b"abc"), None);
        assert_eq!(text_of(&mut c, TextForm::Json, 0x10, b"abd"), None);
        assert_eq!(text_of(&mut c, TextForm::Json, 0x10, b"abc\0"), None);
        assert_eq!(
            c.stats(),
            RenderStats {
                renders: 1,
                hits: 3
            }
        );
    }

    #[test]
    fn a_displaced_entry_is_a_miss_and_the_budget_holds() {
        let mut c = RenderCache::new();
        let big = vec![b'x'; MAX_BODY];
        for i in 0..(BUDGET / MAX_BODY) * 2 {
            let mut body = big.clone();
            body[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.insert(TextForm::Json, 0x11, &body, Utf8Bytes::from("r"));
            assert!(c.held <= BUDGET);
            assert!(c.get_ref(TextForm::Json, 0x11, &body).is_some());
        }
        // One key more than a set holds: the least recently used one goes.
        let keys = same_set(WAYS + 1);
        for k in &keys[..WAYS] {
            c.insert(TextForm::Legacy, 0x10, k, Utf8Bytes::from("x"));
        }
        // The first is used again, so the second is now the least recently used.
        assert!(c.get_ref(TextForm::Legacy, 0x10, &keys[0]).is_some());
        c.insert(TextForm::Legacy, 0x10, &keys[WAYS], Utf8Bytes::from("y"));
        assert_eq!(text_of(&mut c, TextForm::Legacy, 0x10, &keys[1]), None);
        for k in keys.iter().filter(|k| **k != keys[1]) {
            assert!(c.get_ref(TextForm::Legacy, 0x10, k).is_some());
        }
        assert_eq!(
            c.get_ref(TextForm::Legacy, 0x10, &keys[WAYS]).unwrap().text,
            "y"
        );
    }

    #[test]
    fn lookups_in_the_order_of_a_burst_and_out_of_it_find_the_right_renderings() {
        let mut c = RenderCache::new();
        let bodies: Vec<Vec<u8>> = (0..50u8)
            .map(|i| vec![i; 60 + usize::from(i % 9)])
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            c.insert(TextForm::Legacy, 0x10, b, Utf8Bytes::from(format!("r{i}")));
        }
        // Recipients in the burst's order (the prediction holds), one skipping its own lines
        // (it fails there), then backwards (it fails every time).
        let orders: [Vec<usize>; 3] = [
            (0..50).collect(),
            (0..50).filter(|i| i % 7 != 3).collect(),
            (0..50).rev().collect(),
        ];
        for order in orders.iter().chain(orders.iter()) {
            for &i in order {
                let text = text_of(&mut c, TextForm::Legacy, 0x10, &bodies[i]);
                assert_eq!(text.as_deref(), Some(format!("r{i}").as_str()));
            }
        }
        // A frame that was never stored is a miss, wherever the prediction points.
        assert!(c.get_ref(TextForm::Legacy, 0x10, &[99; 61]).is_none());
        assert!(c.get_ref(TextForm::Json, 0x10, &bodies[1]).is_none());
        // The entry predicted to follow is replaced by another frame: still compared in full.
        for i in [0, 1, 0] {
            let _ = c.get_ref(TextForm::Legacy, 0x10, &bodies[i]);
        }
        let displaced = c.predicted().expect("a prediction after the first frame");
        c.slots[displaced].as_mut().unwrap().body = vec![7; 3].into();
        assert!(text_of(&mut c, TextForm::Legacy, 0x10, &bodies[1]).is_none());
    }

    /// `n` bodies whose hashes fall in one set.
    fn same_set(n: usize) -> Vec<Vec<u8>> {
        let mut sets: std::collections::HashMap<usize, Vec<Vec<u8>>> = Default::default();
        for i in 0u64.. {
            let body = i.to_le_bytes().to_vec();
            let found = sets
                .entry(set(hash(TextForm::Legacy, 0x10, &body)))
                .or_default();
            found.push(body);
            if found.len() == n {
                return found.clone();
            }
        }
        unreachable!()
    }
}
