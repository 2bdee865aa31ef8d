//! The two clocks of one transfer: the last sign of life and the last keepalive sent.

use std::time::Instant;

use super::TransferConfig;

/// What one end of a transfer times: the offer and stall timeouts run from the last sign of
/// life, keepalives from the last one sent.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Last sign of life (an answer, a chunk, credit, a local read or write).
    pub(crate) since: Instant,
    /// When the last keepalive went out.
    pub(crate) keepalive: Instant,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Self {
        Timers {
            since: now,
            keepalive: now,
        }
    }

    /// The next deadline: the offer timeout while `offered`, the next keepalive while
    /// `keeping_alive` (waiting on the other connection of a relay), otherwise the stall
    /// timeout.
    pub(crate) fn deadline(
        &self,
        offered: bool,
        keeping_alive: bool,
        cfg: &TransferConfig,
    ) -> Instant {
        if offered {
            self.since + cfg.offer_timeout
        } else if keeping_alive {
            self.keepalive + keepalive_interval(cfg)
        } else {
            self.since + cfg.stall_timeout
        }
    }

    /// Whether a keepalive is due at `now`.
    pub(crate) fn keepalive_due(&self, now: Instant, cfg: &TransferConfig) -> bool {
        now >= self.keepalive + keepalive_interval(cfg)
    }
}

/// How often a side that makes progress the peer cannot see tells it that it is alive:
/// hashing a resumed file's prefix (an empty `chunk` from the sender, a zero `credit` from
/// the receiver), writing to a slow disk (a small or zero `credit`), or relaying and waiting
/// on the other connection. Well within the peer's stall timeout, which we assume is no
/// shorter than ours.
fn keepalive_interval(cfg: &TransferConfig) -> core::time::Duration {
    (cfg.stall_timeout / 4).min(core::time::Duration::from_secs(1))
}
