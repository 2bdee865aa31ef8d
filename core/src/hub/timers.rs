//! The deadlines of every connection, ordered, so the earliest is found in O(log n) however
//! many connections there are.

use std::collections::BTreeSet;
use std::time::Instant;

use super::ConnId;

/// One entry per connection that has a deadline; the connection keeps its own copy so the
/// entry can be found again when it moves.
#[derive(Debug, Default)]
pub(super) struct Timers {
    set: BTreeSet<(Instant, ConnId)>,
}

impl Timers {
    /// Moves `conn`'s deadline from `old` to `new` (either may be `None`).
    pub(super) fn reschedule(&mut self, conn: ConnId, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(t) = old {
            self.set.remove(&(t, conn));
        }
        if let Some(t) = new {
            self.set.insert((t, conn));
        }
    }

    /// The earliest deadline.
    pub(super) fn first(&self) -> Option<Instant> {
        self.set.first().map(|&(t, _)| t)
    }

    /// Removes and returns the connections whose deadline is at or before `now`.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<ConnId> {
        let mut due = Vec::new();
        while let Some(&(t, conn)) = self.set.first() {
            if t > now {
                break;
            }
            self.set.pop_first();
            due.push(conn);
        }
        due
    }
}
