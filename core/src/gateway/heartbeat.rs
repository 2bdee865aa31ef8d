//! The legacy mode's heartbeats. A legacy client knows nothing of tidings heartbeats, so
//! the gateway keeps two for it: toward the hub it pings after its own silence (a server may
//! leave a busy client unpinged, spec §6.6.1), and toward the client it sends WebSocket pings
//! while the client is silent, so that a client that vanished without closing is found and
//! its name freed, instead of being kept alive by the gateway forever.

use std::time::{Duration, Instant};

/// What [`Heartbeat::fire`] found due.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Due {
    /// Send the hub a `ping` (nothing was sent to it for an interval).
    pub(super) ping_hub: bool,
    /// Send the client a WebSocket ping (nothing heard from it for an interval).
    pub(super) probe_client: bool,
    /// Nothing heard from the client for the timeout: it is gone.
    pub(super) client_dead: bool,
}

#[derive(Debug)]
pub(super) struct Heartbeat {
    /// Interval and timeout, from `welcome`; no heartbeat before it.
    timing: Option<(Duration, Duration)>,
    /// When bytes toward the hub were last queued.
    last_sent: Instant,
    /// When the client last sent anything (a pong included).
    last_heard: Instant,
    /// When the client was last sent a WebSocket ping.
    last_probe: Instant,
}

impl Heartbeat {
    pub(super) fn new(now: Instant) -> Self {
        Heartbeat {
            timing: None,
            last_sent: now,
            last_heard: now,
            last_probe: now,
        }
    }

    /// Starts the heartbeats with the hub's announced values (milliseconds, at least 1).
    pub(super) fn start(&mut self, interval_ms: u32, timeout_ms: u32) {
        let ms = |v: u32| Duration::from_millis(v.max(1).into());
        self.timing = Some((ms(interval_ms), ms(timeout_ms)));
    }

    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// The earliest instant something falls due; `None` before `welcome`.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let (interval, timeout) = self.timing?;
        let ping_hub = self.last_sent + interval;
        let probe = self.last_heard.max(self.last_probe) + interval;
        let dead = self.last_heard + timeout;
        Some(ping_hub.min(probe).min(dead))
    }

    /// What is due at `now`; the caller acts on it (the probe is counted as sent here, the
    /// hub ping when the caller queues it, through [`Heartbeat::sent`]).
    pub(super) fn fire(&mut self, now: Instant) -> Due {
        let Some((interval, timeout)) = self.timing else {
            return Due::default();
        };
        if now >= self.last_heard + timeout {
            return Due {
                client_dead: true,
                ..Due::default()
            };
        }
        let probe_client = now >= self.last_heard.max(self.last_probe) + interval;
        if probe_client {
            self.last_probe = now;
        }
        Due {
            ping_hub: now >= self.last_sent + interval,
            probe_client,
            client_dead: false,
        }
    }
}
