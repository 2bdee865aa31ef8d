//! Bookkeeping of relayed transfers: which two transfer ends belong together, and the chunks
//! that arrived from the sender and wait for the receiver's connection to ask for them.
//!
//! The queue needs no bound of its own: the sender's side of the relay grants credit only for
//! bytes that left the queue (the hub calls `data_written` then), so the queue never holds
//! more than that session's transfer window.
//!
//! **The total budget** ([`super::HubConfig::relay_budget`]). What a relay may come to hold
//! is its *potential*: the bytes queued plus the credit its sender still has. It only grows
//! when the hub lets the sender's side grant credit: when the relay starts (the `accept`
//! carries the first window) and when the hub reports handed-on bytes as written. So the hub
//! keeps the sum of potentials (`committed`) within the budget by deciding both: a relay
//! whose receiver accepted waits in `pending` until its first window fits, and handed-on
//! bytes wait in `unreported` (the relay in `withheld`) until reporting them cannot take the
//! sum past the budget. Waiting relays come first, so new transfers are not starved by
//! running ones. Potentials shrink as bytes are handed on, and a relay whose sender has used
//! its credit and whose queue is empty has none, so waiting always ends while receivers
//! read.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::FileHandle;
use crate::wire::Utf8;

/// Which end of a relay a transfer handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The original sender's connection: the hub receives there.
    Source,
    /// The final receiver's connection: the hub sends there.
    Sink,
}

/// One relayed transfer.
#[derive(Debug)]
pub(super) struct Relay {
    /// The transfer on the sender's connection (the hub receives).
    pub(super) source: FileHandle,
    /// The transfer on the receiver's connection (the hub sends).
    pub(super) sink: FileHandle,
    /// The sender's registered name.
    pub(super) from: Utf8,
    /// The receiver's registered name.
    pub(super) to: Utf8,
    /// Chunks received from the sender, in file order, not yet given to the receiver's
    /// session.
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
    /// File offset of the first queued byte.
    queue_start: u64,
    /// The receiver's session asked for bytes `[want_start, want_end)`.
    want_start: u64,
    want_end: u64,
    /// The file's size.
    pub(super) size: u64,
    /// The sender's side was told to start (its `accept` went out).
    pub(super) admitted: bool,
    /// Bytes handed on and not yet reported written to the sender's side.
    pub(super) unreported: u64,
    /// In [`Relays::withheld`].
    pub(super) withheld: bool,
    /// Bytes queued plus the sender's unused credit, when last counted.
    potential: u64,
}

/// A piece of file to hand to the receiver's session.
#[derive(Debug)]
pub(super) struct Piece {
    pub(super) offset: u64,
    pub(super) data: Bytes,
}

impl Relay {
    pub(super) fn new(
        source: FileHandle,
        sink: FileHandle,
        from: Utf8,
        to: Utf8,
        size: u64,
    ) -> Self {
        Relay {
            size,
            admitted: false,
            unreported: 0,
            withheld: false,
            potential: 0,
            source,
            sink,
            from,
            to,
            queue: VecDeque::new(),
            queued: 0,
            queue_start: 0,
            want_start: 0,
            want_end: 0,
        }
    }

    /// The receiver accepted from `offset`: bytes start there on both sides.
    pub(super) fn start_at(&mut self, offset: u64) {
        self.queue.clear();
        self.queued = 0;
        self.queue_start = offset;
        self.want_start = offset;
        self.want_end = offset;
    }

    /// A chunk from the sender. False if it does not continue the queue (the sender's session
    /// checked offsets already, so this means the relay is confused and must end).
    pub(super) fn push(&mut self, offset: u64, data: Bytes) -> bool {
        if offset != self.queue_start + self.queued as u64 {
            return false;
        }
        if !data.is_empty() {
            self.queued += data.len();
            self.queue.push_back(data);
        }
        true
    }

    /// The receiver's session asks for `len` bytes at `offset`. False if the request does not
    /// continue the previous ones.
    pub(super) fn want(&mut self, offset: u64, len: usize) -> bool {
        if offset != self.want_end {
            return false;
        }
        self.want_end += len as u64;
        true
    }

    /// The next piece that is both received and asked for, cut from the queue without
    /// copying.
    pub(super) fn take(&mut self) -> Option<Piece> {
        let wanted = self.want_end - self.want_start;
        if wanted == 0 || self.want_start != self.queue_start {
            return None;
        }
        let front = self.queue.front_mut()?;
        let n = (front.len() as u64).min(wanted) as usize;
        let data = if n == front.len() {
            self.queue.pop_front().expect("front exists")
        } else {
            front.split_to(n)
        };
        let piece = Piece {
            offset: self.queue_start,
            data,
        };
        self.queued -= n;
        self.queue_start += n as u64;
        self.want_start += n as u64;
        Some(piece)
    }

    /// Bytes held by the hub for this relay.
    pub(super) fn buffered(&self) -> usize {
        self.queued
    }

    /// Bytes queued plus the sender's unused credit, when last counted.
    pub(super) fn potential(&self) -> u64 {
        self.potential
    }

    /// File offset up to which bytes were handed on to the receiver's session.
    pub(super) fn handed(&self) -> u64 {
        self.queue_start
    }

    /// The first credit the sender's side grants when the relay starts.
    pub(super) fn first_window(&self, window: u64) -> u64 {
        window.min(self.size.saturating_sub(self.queue_start))
    }

    /// The most its potential can become if `k` of the `unreported` bytes are reported
    /// written now: the sender's side then grants credit up to one window past what it was
    /// told is written, or to the end of the file.
    pub(super) fn potential_after_report(&self, window: u64, k: u64) -> u64 {
        let after = (window + k)
            .saturating_sub(self.unreported)
            .min(self.size.saturating_sub(self.handed()));
        after.max(self.potential)
    }
}

/// Every relay, found from either end.
#[derive(Debug, Default)]
pub(super) struct Relays {
    by_source: HashMap<FileHandle, Relay>,
    sink_to_source: HashMap<FileHandle, FileHandle>,
    /// The sum of the relays' potentials (see the module docs).
    committed: u64,
    /// Relays accepted by their receiver, waiting for room to start, oldest first.
    pub(super) pending: VecDeque<FileHandle>,
    /// Relays with bytes handed on but not yet reported written.
    pub(super) withheld: VecDeque<FileHandle>,
}

impl Relays {
    pub(super) fn insert(&mut self, relay: Relay) {
        self.sink_to_source.insert(relay.sink, relay.source);
        self.by_source.insert(relay.source, relay);
    }

    /// The relay a transfer end belongs to, and which end it is.
    pub(super) fn find(&self, h: FileHandle) -> Option<(FileHandle, End)> {
        if self.by_source.contains_key(&h) {
            return Some((h, End::Source));
        }
        self.sink_to_source.get(&h).map(|&s| (s, End::Sink))
    }

    pub(super) fn get_mut(&mut self, source: FileHandle) -> Option<&mut Relay> {
        self.by_source.get_mut(&source)
    }

    pub(super) fn remove(&mut self, source: FileHandle) -> Option<Relay> {
        let relay = self.by_source.remove(&source)?;
        self.sink_to_source.remove(&relay.sink);
        self.committed -= relay.potential;
        Some(relay)
    }

    /// Records the potential of relay `source`, counted afresh.
    pub(super) fn set_potential(&mut self, source: FileHandle, potential: u64) {
        if let Some(r) = self.by_source.get_mut(&source) {
            self.committed = self.committed - r.potential + potential;
            r.potential = potential;
        }
    }

    /// What the relays may come to hold, together.
    pub(super) fn committed(&self) -> u64 {
        self.committed
    }

    pub(super) fn len(&self) -> usize {
        self.by_source.len()
    }

    /// Bytes held across all relays.
    pub(super) fn buffered(&self) -> usize {
        self.by_source.values().map(Relay::buffered).sum()
    }

    /// The most bytes any one relay holds.
    pub(super) fn max_buffered(&self) -> usize {
        self.by_source
            .values()
            .map(Relay::buffered)
            .max()
            .unwrap_or(0)
    }
}
