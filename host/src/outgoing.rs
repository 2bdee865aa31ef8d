//! Output gathering: the bytes waiting for one socket, written several pieces per system
//! call.
//!
//! Every driver writes the same way: the pieces a machine hands out (`Bytes`, often a frame
//! header and a chunk that shares a file buffer) are queued whole, the front of the queue is
//! offered to one vectored write (`writev`), and what the socket took is accounted for. A
//! piece leaves the queue only once all of it is written, and it leaves whole (never
//! re-sliced), so a file chunk's buffer can go back to the pool disk reads take from.
//!
//! ```
//! use std::io::{IoSlice, Write};
//! use bytes::Bytes;
//! use tidings_host::outgoing::{Outgoing, MAX_SLICES};
//!
//! let mut out = Outgoing::default();
//! out.push(Bytes::from_static(b"header:"));
//! out.push(Bytes::from_static(b"payload"));
//!
//! let mut socket = Vec::new(); // any `Write`; a socket in a driver
//! let mut recycled = Vec::new();
//! while !out.is_empty() {
//!     let mut slices = [IoSlice::new(&[]); MAX_SLICES];
//!     let n = out.slices(&mut slices);
//!     let written = socket.write_vectored(&slices[..n]).unwrap();
//!     out.advance(written, |whole| recycled.push(whole));
//! }
//! assert_eq!(socket, b"header:payload");
//! assert_eq!(recycled.len(), 2);
//! ```

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most pieces offered to one vectored write: below every platform's `IOV_MAX` (1024 on
/// Linux), and more than a full window of file chunks with their headers.
pub const MAX_SLICES: usize = 64;

/// The bytes queued for one socket, in order; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Outgoing {
    pieces: VecDeque<Bytes>,
    /// Bytes of the front piece already written.
    head: usize,
    /// Bytes not yet written, over all pieces.
    len: usize,
}

impl Outgoing {
    /// Queues `bytes` behind what is already waiting (an empty piece is dropped).
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.pieces.push_back(bytes);
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Fills `slices` with the front of the queue (at most `slices.len()` pieces, the first
    /// without its written part) and returns how many it filled; writes `&slices[..n]`.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, piece) in slices.iter_mut().zip(&self.pieces) {
            let rest = if n == 0 { &piece[self.head..] } else { piece };
            *slot = IoSlice::new(rest);
            n += 1;
        }
        n
    }

    /// Accounts for `written` bytes the socket took from the front: each piece written to
    /// its end goes to `done`, whole.
    ///
    /// # Panics
    ///
    /// If `written` is more than [`Outgoing::len`] (a socket never takes more than offered).
    pub fn advance(&mut self, mut written: usize, mut done: impl FnMut(Bytes)) {
        assert!(written <= self.len, "more bytes written than were queued");
        self.len -= written;
        while written > 0 {
            let front = self.pieces.front().map_or(0, Bytes::len);
            let left = front - self.head;
            if written < left {
                self.head += written;
                return;
            }
            written -= left;
            self.head = 0;
            if let Some(piece) = self.pieces.pop_front() {
                done(piece);
            }
        }
    }

    /// Forgets everything waiting (the socket is gone).
    pub fn clear(&mut self) {
        self.pieces.clear();
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the pieces and however little each write takes, the bytes come out in
        /// order, each piece is handed back whole exactly once, in order, and the queue
        /// counts what is left.
        #[test]
        fn writes_of_any_size_keep_order_and_return_whole_pieces(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20),
            takes in proptest::collection::vec(1usize..50, 1..200),
            max_slices in 1usize..8,
        ) {
            let mut out = Outgoing::default();
            let mut expected = Vec::new();
            for p in &pieces {
                out.push(Bytes::from(p.clone()));
                expected.extend_from_slice(p);
            }
            prop_assert_eq!(out.len(), expected.len());
            let mut sent = Vec::new();
            let mut returned: Vec<Bytes> = Vec::new();
            let mut takes = takes.iter().cycle();
            while !out.is_empty() {
                let mut slices = vec![IoSlice::new(&[]); max_slices];
                let n = out.slices(&mut slices);
                prop_assert!(n >= 1);
                // A socket that takes at most `take` bytes of what is offered.
                let mut take = *takes.next().unwrap();
                let mut written = 0;
                for s in &slices[..n] {
                    let k = take.min(s.len());
                    sent.extend_from_slice(&s[..k]);
                    written += k;
                    take -= k;
                }
                let before = out.len();
                out.advance(written, |whole| returned.push(whole));
                prop_assert_eq!(out.len(), before - written);
            }
            prop_assert_eq!(sent, expected);
            let nonempty: Vec<&Vec<u8>> = pieces.iter().filter(|p| !p.is_empty()).collect();
            prop_assert_eq!(returned.len(), nonempty.len());
            for (r, p) in returned.iter().zip(nonempty) {
                prop_assert_eq!(&r[..], &p[..]);
            }
        }
    }

    #[test]
    fn clear_forgets_a_partly_written_front() {
        let mut out = Outgoing::default();
        out.push(Bytes::from_static(b"abcdef"));
        out.advance(2, |_| panic!("not whole yet"));
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
        out.push(Bytes::from_static(b"xy"));
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(out.slices(&mut slices), 1);
        assert_eq!(&*slices[0], b"xy");
    }
}
