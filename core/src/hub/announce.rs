//! The default room's membership news, told in batches.
//!
//! Every client is in the default room, so telling everyone of each join at once makes *n*
//! joins cost *n²/2* frames and, worse, *n²/2* writes: one per member per join. Instead a
//! join or departure is encoded once per form (`presence` for 1.0 members, `member` for
//! 1.1 members) into a pending batch, and the batch is told to every member at most once per
//! [`super::HubConfig::presence_interval`]: one shared buffer, one write per member per
//! interval, however many joined. A member that is sent any chat, list, room or transfer
//! message meanwhile (anything through `Hub::deliver_with`, and relayed offers) hears what
//! is pending first, so nobody ever receives a line from someone before the news that they
//! arrived, nor an answer that contradicts the news still to come. (Heartbeats and a
//! closing `goodbye` name nobody and do not wait.)
//!
//! Items are numbered over the hub's life; each connection remembers the number of the
//! first item it has not heard (`Conn::heard`). A member welcomed (or joining again) starts
//! after the last item: its list came from the live state, which already holds everything
//! pending.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::rooms::News;
use super::{ConnId, Hub};
use crate::wire::Message;

/// The pending batch of membership news. See the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct Announcements {
    /// The pending items as `presence` frames, for 1.0 members.
    plain: BytesMut,
    /// The same items as `member` frames, for 1.1 members.
    rooms: BytesMut,
    /// Where each pending item starts in `plain` and in `rooms`.
    starts: Vec<(u32, u32)>,
    /// The number of the first pending item. Numbers wrap (32 bits of every connection
    /// hold one); fewer than 2³² items are ever pending at once.
    first: u32,
    /// When the pending items must be told: the interval after the first of them.
    due: Option<Instant>,
}

/// A batch taken to be told to every member: the pending items, frozen once and shared.
pub(super) struct Batch {
    plain: Bytes,
    rooms: Bytes,
    starts: Vec<(u32, u32)>,
    first: u32,
}

impl Announcements {
    /// The number the next item will have: a member that has heard everything has heard up
    /// to here.
    pub(super) fn next(&self) -> u32 {
        self.first.wrapping_add(self.starts.len() as u32)
    }

    /// When the pending items are due, if any are pending.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Adds one item, in both forms (the hub sets when the batch is due).
    pub(super) fn push(&mut self, plain: &Message, rooms: &Message) {
        // Offsets fit 32 bits: a batch holds at most an interval's joins and departures,
        // a few dozen bytes each.
        self.starts
            .push((self.plain.len() as u32, self.rooms.len() as u32));
        plain.encode(&mut self.plain);
        rooms.encode(&mut self.rooms);
    }

    /// What a member that has heard up to `heard` has still to hear now, in its form
    /// (`speaks_rooms`: 1.1), copied: a member told early, because something else is sent
    /// to it.
    pub(super) fn since(&self, heard: u32, speaks_rooms: bool) -> Option<Bytes> {
        let (plain, rooms) = *self.starts.get(heard.wrapping_sub(self.first) as usize)?;
        Some(if speaks_rooms {
            Bytes::copy_from_slice(&self.rooms[rooms as usize..])
        } else {
            Bytes::copy_from_slice(&self.plain[plain as usize..])
        })
    }

    /// Takes every pending item, to be told to every member ([`Batch::since`]); the next
    /// item starts a new batch.
    pub(super) fn take(&mut self) -> Batch {
        let batch = Batch {
            plain: self.plain.split().freeze(),
            rooms: self.rooms.split().freeze(),
            starts: std::mem::take(&mut self.starts),
            first: self.first,
        };
        self.first = batch.first.wrapping_add(batch.starts.len() as u32);
        self.due = None;
        batch
    }
}

impl Hub {
    /// Adds membership news of the default room (called `room`) to the pending batch: told
    /// to every member but `skip` (one just entered, whose list already holds it) when the
    /// batch is due, or at once with a zero interval.
    pub(super) fn announce_later(
        &mut self,
        room: &crate::wire::Utf8,
        news: &News,
        skip: Option<ConnId>,
    ) {
        let wait = self.config.presence_interval;
        let batch = &mut self.announcements;
        batch.push(&news.render(room, false), &news.render(room, true));
        // Due an interval after the first item of the batch, not the last.
        batch.due.get_or_insert(self.now + wait);
        let next = self.announcements.next();
        if let Some(c) = skip.and_then(|id| self.conns.get_mut(&id)) {
            c.heard = next;
        }
        if wait.is_zero() {
            self.announce();
        }
    }

    /// Tells every member of the default room what is pending: one shared buffer per form.
    pub(super) fn announce(&mut self) {
        // The other nodes of a cluster hear this node's news in the same rhythm.
        self.cluster_flush();
        let batch = self.announcements.take();
        let next = self.announcements.next();
        let mut behind = std::mem::take(&mut self.targets.0);
        behind.clear();
        behind.extend(
            self.conns
                .iter()
                .filter(|(_, c)| c.in_default_room && c.heard != next)
                .map(|(id, _)| id),
        );
        for &id in &behind {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let heard = std::mem::replace(&mut c.heard, next);
            if let Some(news) = batch.since(heard, c.session.rooms()) {
                let _ = self.deliver_with(id, |session| session.send_frames(&news));
            }
        }
        self.targets.0 = behind;
    }

    /// Tells `id` what is pending for it now, before anything else is sent to it.
    pub(super) fn tell_pending(&mut self, id: ConnId) {
        let next = self.announcements.next();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.in_default_room || c.heard == next {
            return;
        }
        let heard = std::mem::replace(&mut c.heard, next);
        if !c.session.is_open() {
            // Leaving (the departures of a burst each come here): nothing to copy.
            return;
        }
        if let Some(news) = self.announcements.since(heard, c.session.rooms()) {
            let _ = self.deliver_with(id, |session| session.send_frames(&news));
        }
    }
}

impl Batch {
    /// What a member that has heard up to `heard` has still to hear of this batch, shared
    /// (not copied) by every member that heard as much.
    pub(super) fn since(&self, heard: u32, speaks_rooms: bool) -> Option<Bytes> {
        let (plain, rooms) = *self.starts.get(heard.wrapping_sub(self.first) as usize)?;
        Some(if speaks_rooms {
            self.rooms.slice(rooms as usize..)
        } else {
            self.plain.slice(plain as usize..)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MemberKind, PresenceKind, Utf8};

    fn item(name: &str) -> (Message, Message) {
        let name = Utf8::from(name);
        (
            Message::Presence {
                kind: PresenceKind::Joined,
                name: name.clone(),
            },
            Message::Member {
                kind: MemberKind::Joined,
                room: Utf8::from("lobby"),
                name,
            },
        )
    }

    fn encoded(msgs: &[&Message]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for m in msgs {
            m.encode(&mut out);
        }
        out.to_vec()
    }

    #[test]
    fn a_member_hears_exactly_the_items_after_the_last_it_heard() {
        let mut a = Announcements::default();
        let (p1, r1) = item("ann");
        let (p2, r2) = item("bob");
        a.push(&p1, &r1);
        let heard_one = a.next();
        a.push(&p2, &r2);
        assert_eq!(a.since(heard_one - 1, false).unwrap(), encoded(&[&p1, &p2]));
        assert_eq!(a.since(heard_one, true).unwrap(), encoded(&[&r2]));
        assert!(a.since(a.next(), false).is_none(), "nothing left to hear");
        let next = a.next();
        let batch = a.take();
        assert_eq!(a.next(), next, "numbering goes on");
        assert_eq!(batch.since(heard_one, false).unwrap(), encoded(&[&p2]));
        assert_eq!(
            batch.since(heard_one - 1, true).unwrap(),
            encoded(&[&r1, &r2])
        );
        assert!(batch.since(next, true).is_none());
    }

    #[test]
    fn numbers_wrap_without_losing_an_item() {
        let mut a = Announcements {
            first: u32::MAX,
            ..Announcements::default()
        };
        let (p1, r1) = item("ann");
        let (p2, r2) = item("bob");
        a.push(&p1, &r1);
        a.push(&p2, &r2);
        assert_eq!(a.next(), 1);
        assert_eq!(a.since(0, false).unwrap(), encoded(&[&p2]));
        assert_eq!(
            a.take().since(u32::MAX, false).unwrap(),
            encoded(&[&p1, &p2])
        );
    }
}
