//! The driver's file reads for one end of a transfer: asked for, then answered, in order.

/// Reads are answered in the order they were asked for, so two offsets describe them all.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reads {
    /// Next byte to ask the driver for.
    requested: u64,
    /// Next byte the driver must provide.
    provided: u64,
}

impl Reads {
    /// Reads that start (again) at `offset`.
    pub(crate) fn at(offset: u64) -> Self {
        Reads {
            requested: offset,
            provided: offset,
        }
    }

    /// Next byte the driver must provide.
    pub(crate) fn provided(&self) -> u64 {
        self.provided
    }

    /// Bytes asked for and not yet provided.
    pub(crate) fn outstanding(&self) -> u64 {
        self.requested - self.provided
    }

    /// Whether more can be asked for below `limit`.
    pub(crate) fn can_read(&self, limit: u64) -> bool {
        self.requested < limit
    }

    /// Asks for the next piece below `limit`, at most `max_len` bytes.
    pub(crate) fn next(&mut self, limit: u64, max_len: usize) -> Option<(u64, usize)> {
        let room = limit.saturating_sub(self.requested);
        if room == 0 || max_len == 0 {
            return None;
        }
        let len = room.min(max_len as u64) as usize;
        let at = self.requested;
        self.requested += len as u64;
        Some((at, len))
    }

    /// Records `len` bytes at `offset` if they answer the oldest pending read; a driver that
    /// answers out of order or with more than it was asked is refused.
    pub(crate) fn answer(&mut self, offset: u64, len: usize) -> bool {
        let fits = len > 0
            && offset == self.provided
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.requested);
        if fits {
            self.provided += len as u64;
        }
        fits
    }
}
