//! The hub's connections: one growable array of slots, found by the low half of their ids.
//!
//! A table of boxed connections hashed by id cost every connection a heap block of its own
//! (with the allocator's header) and ~28 bytes of hash slots, and the blocks landed between
//! the short-lived buffers of other connections' handshakes, where their holes stayed
//! resident. Here the connections lie side by side in one block, which grows by doubling
//! without touching its unused tail (so that tail costs address space, not memory).
//!
//! An id is `seq << 32 | slot`: `seq` counts connections in the order they arrive, so ids grow
//! as before and a slot's next tenant gets a different id (stale ids find nothing). Ids
//! repeat only after 2³² connections, and then only if one falls in the same slot.

use super::ConnId;

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct ConnTable<T> {
    slots: Vec<Slot<T>>,
    /// Vacant slots, reused last-freed first.
    free: Vec<u32>,
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
            free: Vec::new(),
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
            Some(i) => i as usize,
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

    fn slot(&self, id: ConnId) -> Option<&Slot<T>> {
        self.slots.get(id as u32 as usize).filter(|s| s.id == id)
    }

    pub(super) fn get(&self, id: &ConnId) -> Option<&T> {
        self.slot(*id)?.value.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: &ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(*id as u32 as usize)?;
        if slot.id != *id {
            return None;
        }
        slot.value.as_mut()
    }

    pub(super) fn remove(&mut self, id: &ConnId) -> Option<T> {
        let index = *id as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if slot.id != *id {
            return None;
        }
        slot.id = 0;
        let value = slot.value.take();
        self.len -= 1;
        self.free.push(index);
        if self.len == 0 {
            // Every connection left: give the block back (a burst must not keep its peak).
            *self = ConnTable {
                seq: self.seq,
                ..ConnTable::default()
            };
        }
        value
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The ids of all connections, in slot order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.slots.iter().filter(|s| s.id != 0).map(|s| &s.id)
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
    fn an_empty_table_lets_its_slots_go() {
        let mut t = ConnTable::default();
        let ids: Vec<_> = (0..100).map(|i| t.insert(i)).collect();
        for id in &ids {
            t.remove(id);
        }
        assert_eq!(t.slots.capacity(), 0);
        let next = t.insert(7);
        assert!(next > *ids.last().unwrap(), "ids keep growing");
    }
}
