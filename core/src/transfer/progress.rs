//! Progress reports with a rate from the injected clock, spaced for a smooth bar.

use std::time::Instant;

use super::{Direction, TransferId};

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Which transfer.
    pub id: TransferId,
    /// Sending or receiving.
    pub direction: Direction,
    /// Bytes of the file that are done (a resumed transfer starts at its offset).
    pub done: u64,
    /// File size.
    pub total: u64,
    /// Recent rate in bytes per second (smoothed; 0 until two reports exist).
    pub bytes_per_sec: u64,
}

/// Decides when to report and computes the rate.
#[derive(Debug)]
pub(crate) struct Meter {
    last: Option<(Instant, u64)>,
    rate: f64,
}

impl Meter {
    pub(crate) fn new() -> Self {
        Meter {
            last: None,
            rate: 0.0,
        }
    }

    /// A report if `interval` has passed since the last one, or if the transfer is complete.
    pub(crate) fn update(
        &mut self,
        now: Instant,
        interval: core::time::Duration,
        id: TransferId,
        direction: Direction,
        done: u64,
        total: u64,
    ) -> Option<Progress> {
        if let Some((t, bytes)) = self.last {
            let dt = now.saturating_duration_since(t);
            if dt < interval && done < total {
                return None;
            }
            if !dt.is_zero() {
                let inst = (done - bytes) as f64 / dt.as_secs_f64();
                // Smooth over a few reports so the ETA does not jump around.
                self.rate = if self.rate == 0.0 {
                    inst
                } else {
                    0.7 * self.rate + 0.3 * inst
                };
            }
        }
        self.last = Some((now, done));
        Some(Progress {
            id,
            direction,
            done,
            total,
            bytes_per_sec: self.rate as u64,
        })
    }
}
