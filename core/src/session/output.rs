//! The two outgoing lanes of a session: control and chat frames first, file data after.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::Message;

/// Encoded frames waiting to be transmitted, in order.
///
/// Small frames are appended to one buffer and handed out together; a frame with a large
/// payload is handed out as its header followed by the payload's own `Bytes`, never copied.
///
/// The buffer is handed out whole (not split off), so a drained lane holds no allocation:
/// a split would leave the lane a reference into the old allocation, keeping all of it
/// alive (an idle connection would hold its largest burst, such as a `welcome` listing
/// thousands of names, for as long as it stays connected) and making every later growth
/// reserve that burst's size again.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// One whole frame shared with other lanes (a broadcast), queued without a copy because
    /// the lane was empty: it goes first. A copy into `tail` would be a copy and an
    /// allocation per recipient.
    shared: Option<Bytes>,
    /// Sealed pieces; the flag marks a payload that continues the frame of the piece before
    /// it, so nothing may be transmitted between the two. Made by the first seal or large
    /// payload: small frames only ever use `tail`, and inline the empty queue was 24 of the
    /// bytes of every idle connection.
    #[allow(clippy::box_collection)] // the point: 8 bytes while unused, not 24
    ready: Option<Box<VecDeque<(Bytes, bool)>>>,
    tail: BytesMut,
    len: usize,
}

/// Payloads at least this large are queued by reference instead of copied.
pub(crate) const COPY_LIMIT: usize = 1024;

/// Capacity of the queue of sealed pieces kept once it drained (a relay's steady state).
const READY_KEEP: usize = 16;

/// A buffer holding this much is sealed and a fresh one started when it is full, rather than
/// grown: growing copies everything it holds (3 % of a server's CPU under a WebSocket
/// broadcast load, where a recipient's buffer takes a hundred lines between two writes).
/// Smaller buffers grow as usual: the copy is small, and sparse output (a presence line now
/// and then) keeps allocations to its size; fixed chunks of a few KiB, freed after each
/// write, left the heap of 10 000 connections fragmented by the joins' presence burst
/// (4.6–7.5 KiB of RSS per connection instead of 4.1–4.3).
const SEAL_AT: usize = 4 << 10;

/// Largest fresh buffer after a seal: as large as what the lane holds, within
/// [`SEAL_AT`]..this, so a long burst takes a few buffers of doubling size.
const FRESH_MAX: usize = 16 << 10;

impl Lane {
    /// Queues a whole message.
    pub(crate) fn push(&mut self, msg: &Message) {
        // Only the head of a large payload is copied (see `COPY_LIMIT`).
        self.room(msg.encoded_len().min(COPY_LIMIT + 64));
        let before = self.tail.len();
        let payload = msg.encode_split(&mut self.tail, COPY_LIMIT);
        self.len += self.tail.len() - before;
        if let Some(data) = payload {
            self.len += data.len();
            self.seal();
            self.ready_mut().push_back((data, true));
        }
    }

    /// Queues one whole encoded frame that other lanes share.
    pub(crate) fn push_shared(&mut self, frame: &Bytes) {
        if self.is_empty() {
            self.shared = Some(frame.clone());
            self.len += frame.len();
        } else {
            self.push_raw(frame);
        }
    }

    /// Bytes of the frame queued shared with other lanes, not copied (`push_shared`).
    pub(crate) fn shared_len(&self) -> usize {
        self.shared.as_ref().map_or(0, Bytes::len)
    }

    /// Queues raw bytes (the preamble).
    pub(crate) fn push_raw(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.tail.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    fn ready_mut(&mut self) -> &mut VecDeque<(Bytes, bool)> {
        self.ready.get_or_insert_with(Box::default)
    }

    /// Makes room for at least `n` more bytes in the buffer (see [`SEAL_AT`]).
    fn room(&mut self, n: usize) {
        if self.tail.capacity() - self.tail.len() >= n {
            return;
        }
        if self.tail.len() >= SEAL_AT {
            self.seal();
            self.tail.reserve(n.max(self.len.clamp(SEAL_AT, FRESH_MAX)));
        } else {
            self.tail.reserve(n);
        }
    }

    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.ready_mut().push_back((tail.freeze(), false));
        }
    }

    /// The next bytes to transmit.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.shared.take() {
            self.len -= frame.len();
            return Some(frame);
        }
        let out = match self.ready.as_mut().and_then(|r| r.pop_front()) {
            Some((b, _)) => b,
            None if !self.tail.is_empty() => std::mem::take(&mut self.tail).freeze(),
            None => return None,
        };
        self.len -= out.len();
        if self
            .ready
            .as_ref()
            .is_some_and(|r| r.is_empty() && r.capacity() > READY_KEEP)
        {
            // A burst of large payloads (a relay window) grew the queue: give it back.
            self.ready = None;
        }
        Some(out)
    }

    /// Lets go of the queue of sealed pieces if it is empty (a quiet session: the queue's
    /// buffer, grown by one burst, would otherwise stay for the life of the connection).
    pub(crate) fn release_spare(&mut self) {
        if self.ready.as_ref().is_some_and(|r| r.is_empty()) {
            self.ready = None;
        }
    }

    /// Whether the last piece handed out was a frame's head whose payload is still queued:
    /// the next transmit must come from this lane, or the frame would be split by another.
    pub(crate) fn mid_frame(&self) -> bool {
        self.shared.is_none()
            && self
                .ready
                .as_ref()
                .and_then(|r| r.front())
                .is_some_and(|&(_, continues)| continues)
    }

    /// Drops every queued frame except the rest of one whose head was already handed out
    /// (frames are atomic on the wire, spec §6.9).
    pub(crate) fn keep_frame_in_progress(&mut self) {
        let rest = if self.mid_frame() {
            self.ready.as_mut().and_then(|r| r.pop_front())
        } else {
            None
        };
        *self = Lane::default();
        if let Some((payload, continues)) = rest {
            self.len = payload.len();
            self.ready_mut().push_back((payload, continues));
        }
    }

    /// Bytes queued in a lane that is made only when needed (none: 0).
    pub(crate) fn len_of(lane: &Option<Box<Lane>>) -> usize {
        lane.as_ref().map_or(0, |l| l.len())
    }

    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(lane: &mut Lane) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = lane.pop() {
            out.extend_from_slice(&b);
        }
        assert!(lane.is_empty());
        out
    }

    #[test]
    fn a_shared_frame_is_queued_without_a_copy_only_into_an_empty_lane() {
        let frame = Bytes::from_static(b"shared");
        let mut lane = Lane::default();
        lane.push_shared(&frame);
        lane.push_raw(b"-after");
        assert_eq!(lane.len(), 12);
        let first = lane.pop().unwrap();
        assert_eq!(first.as_ptr(), frame.as_ptr(), "not shared");
        assert_eq!(drain(&mut lane), b"-after");

        // Behind other output it is copied, in order.
        lane.push_raw(b"before-");
        lane.push_shared(&frame);
        let out = lane.pop().unwrap();
        assert_ne!(out.as_ptr(), frame.as_ptr());
        assert_eq!(&out[..], b"before-shared");
        assert!(lane.pop().is_none());
    }
}
