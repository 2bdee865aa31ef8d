//! The hub's connections: one growable array of slots, found by the low half of their ids.
//!
//! A table of boxed connections hashed by id cost every connection a heap block of its own
//! (with the allocator's header) and ~28 bytes of hash slots, and the blocks landed between
//! the short-lived buffers of other connections' handshakes, where their holes stayed
//! resident. Here the connections lie side by side in one block, which grows by doubling
//! without touching its unused tail (so that tail costs address space, not memory).
//!
//! A newcomer takes the lowest free slot, so connections gather at the front and the slots
//! behind the last one are cut off (and the block shrunk) as connections leave: after a
//! burst the table keeps about as many slots as the highest place still in use.
//!
//! An id is `seq << 32 | slot`: `seq` counts connections in the order they arrive, so ids grow
//! and a slot's next tenant gets a different id (stale ids find nothing). After 2³²
//! connections `seq` starts again at 1; an id then repeats only if it falls in the same slot.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::ConnId;

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct ConnTable<T> {
    slots: Vec<Slot<T>>,
    /// Vacant slots before the last occupied one, lowest first.
    free: BinaryHeap<Reverse<u32>>,
    len: usize,
    /// The `seq` of the last id handed out.
    seq: u32,
}

#[derive(Debug)]
struct Slot<T> {
    /// 0 while vacant (no id is 0: `seq` starts at 1).
    id: ConnId,
    value: Option<T>,
}

impl<T> Default for ConnTable<T> {
    fn default() -> Self {
        ConnTable {
            slots: Vec::new(),
            free: BinaryHeap::new(),
            len: 0,
            seq: 0,
        }
    }
}

impl<T> ConnTable<T> {
    /// Stores `value` under a new id, which it returns.
    pub(super) fn insert(&mut self, value: T) -> ConnId {
        self.seq = self.seq.checked_add(1).unwrap_or(1);
        let index = match self.free.pop() {
            Some(Reverse(i)) => i as usize,
            None => {
                self.slots.push(Slot { id: 0, value: None });
                self.slots.len() - 1
            }
        };
        let slot_bits = u32::try_from(index).expect("fewer than 2^32 connections at once");
        let id = u64::from(self.seq) << 32 | u64::from(slot_bits);
        self.slots[index] = Slot {
            id,
            value: Some(value),
        };
        self.len += 1;
        id
    }

    /// The slot of `id`, if `id` is its tenant.
    fn index(&self, id: ConnId) -> Option<usize> {
        let index = id as u32 as usize;
        (self.slots.get(index)?.id == id).then_some(index)
    }

    pub(super) fn get(&self, id: &ConnId) -> Option<&T> {
        self.slots[self.index(*id)?].value.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: &ConnId) -> Option<&mut T> {
        let index = self.index(*id)?;
        self.slots[index].value.as_mut()
    }

    pub(super) fn remove(&mut self, id: &ConnId) -> Option<T> {
        let index = self.index(*id)?;
        let slot = &mut self.slots[index];
        slot.id = 0;
        let value = slot.value.take();
        self.len -= 1;
        if index + 1 < self.slots.len() {
            self.free.push(Reverse(index as u32));
        } else {
            self.cut_tail();
        }
        value
    }

    /// Cuts off the vacant slots behind the last occupied one, and shrinks the block once
    /// it is mostly unused.
    fn cut_tail(&mut self) {
        let before = self.slots.len();
        while self.slots.last().is_some_and(|s| s.id == 0) {
            self.slots.pop();
        }
        let len = self.slots.len();
        if before - len > 1 {
            // Vacant slots before the one just left were in `free`.
            self.free.retain(|&Reverse(i)| (i as usize) < len);
        }
        if self.slots.capacity() > 2 * len + 64 {
            self.slots.shrink_to(len + len / 2);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The ids of all connections, in slot order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.slots.iter().filter(|s| s.id != 0).map(|s| &s.id)
    }

    /// Every connection with its id, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> {
        self.slots
            .iter()
            .filter_map(|s| s.value.as_ref().map(|v| (s.id, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_a_reused_slot_does_not_answer_to_the_old_id() {
        let mut t = ConnTable::default();
        let a = t.insert("a");
        let b = t.insert("b");
        assert!(b > a);
        assert_eq!(t.remove(&a), Some("a"));
        assert_eq!(t.get(&a), None);
        let c = t.insert("c");
        assert_eq!(c as u32, a as u32, "the freed slot is reused");
        assert!(c > b);
        assert_eq!(t.get(&a), None);
        assert_eq!(t.get(&c), Some(&"c"));
        assert_eq!(t.remove(&a), None);
        assert_eq!(t.len(), 2);
        let mut keys: Vec<_> = t.keys().copied().collect();
        keys.sort();
        assert_eq!(keys, vec![b, c]);
    }

    #[test]
    fn newcomers_fill_the_lowest_slots_and_the_tail_is_let_go() {
        let mut t = ConnTable::default();
        let ids: Vec<_> = (0..1000).map(|i| t.insert(i)).collect();
        // All but the first ten leave, the front ones first: the tail goes with the last.
        for id in &ids[10..] {
            t.remove(id);
        }
        assert_eq!(t.slots.len(), 10);
        assert!(t.slots.capacity() < 100, "{}", t.slots.capacity());
        // Holes at the front are filled lowest first.
        t.remove(&ids[3]);
        t.remove(&ids[1]);
        let a = t.insert(1000);
        let b = t.insert(1001);
        assert_eq!((a as u32, b as u32), (1, 3));
        assert!(a > *ids.last().unwrap(), "ids keep growing");
        assert_eq!(
            t.get(&ids[1]),
            None,
            "a stale id finds nothing in its old slot"
        );
        assert_eq!(t.len(), 10);
        for id in t.keys().copied().collect::<Vec<_>>() {
            t.remove(&id);
        }
        assert_eq!((t.len(), t.slots.len()), (0, 0));
    }
}
