//! The message-rate limit of one connection: a token bucket on the hub's injected clock.
//!
//! What counts is what makes the hub work for others: chat (`text`, `blob`, which may fan out
//! to every client), `list-request` and `offer`. File data (`chunk`, `credit`, `done` …) is
//! already paced by credit, and heartbeats cost the hub nothing beyond their own connection,
//! so neither is counted.
//!
//! A client over its rate is first **slowed**: the hub stops taking its decoded messages, its
//! session stops decoding once its event queue is full, and [`super::Hub::wants_input`] turns
//! false, so the runtime stops reading and TCP flow control slows the client. Reading resumes
//! as the bucket refills. A client that is still over its rate after
//! [`super::HubConfig::rate_limit_grace`] of being slowed (it never let its backlog drain),
//! or that keeps sending bytes while paused although its runtime was told to stop reading,
//! is **disconnected** with `rate-limited` (14).

use std::time::{Duration, Instant};

use super::{ConnId, Hub, HubConfig};
use crate::session::Event;
use crate::transfer::TransferEvent;
use crate::ErrorCode;

/// Bytes a paused connection may still deliver (a read already in flight when the pause
/// began) before it counts as flooding. A runtime that honours [`super::Hub::wants_input`]
/// delivers at most one read buffer.
pub(super) const PAUSED_INPUT_ALLOWANCE: usize = 1 << 20;

/// Whether an event of a client's session is charged against its rate.
pub(super) fn counts(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Text { .. }
            | Event::Blob { .. }
            | Event::PeerListRequested
            | Event::RoomRequest(_)
            | Event::Transfer(TransferEvent::Offered(_))
    )
}

/// The settings the bucket needs (from [`super::HubConfig`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Messages per second; 0 means no limit.
    pub(super) rate: u32,
    /// Bucket size (at least 1).
    pub(super) burst: u32,
    pub(super) grace: Duration,
}

impl Limits {
    fn enabled(&self) -> bool {
        self.rate > 0
    }

    /// Tokens a paused connection waits for before it is read again: at most a tenth of a
    /// second's worth, so a flooding connection is woken at most ten times a second.
    fn resume_level(&self) -> f64 {
        (self.rate as f64 / 10.0).clamp(1.0, self.burst.max(1) as f64)
    }
}

/// What charging one message decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charge {
    /// Within the rate: handle it.
    Allowed,
    /// Within the rate, but the client has been over it for longer than the grace:
    /// handle it, then disconnect the client.
    Flood,
    /// Over the rate with the session already closed (its backlog is being drained): drop it.
    Dropped,
}

/// One connection's bucket.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
    /// Only while the client is (or was just) over its rate: most connections never are,
    /// and inline these fields were 40 of every idle connection's bytes.
    throttle: Option<Box<Throttle>>,
}

/// The state of a client over its rate.
#[derive(Debug, Default)]
struct Throttle {
    /// Not read until then.
    paused_until: Option<Instant>,
    /// Since when the client has been over its rate without its backlog draining.
    since: Option<Instant>,
    /// Bytes that arrived while paused.
    paused_input: usize,
    /// A pause ended and the runtime has not been told yet (its writer must be woken, so that
    /// it asks [`super::Hub::wants_input`] again).
    resumed: bool,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(limits: &Limits, now: Instant) -> Self {
        Bucket {
            tokens: limits.burst.max(1) as f64,
            at: now,
            throttle: None,
        }
    }

    /// Whether the hub must not take this connection's messages now.
    pub(super) fn is_paused(&self, now: Instant) -> bool {
        self.paused_until().is_some_and(|t| t > now)
    }

    /// The instant the pause ends, while paused.
    pub(super) fn paused_until(&self) -> Option<Instant> {
        self.throttle.as_ref()?.paused_until
    }

    fn refill(&mut self, limits: &Limits, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limits.rate as f64).min(limits.burst.max(1) as f64);
        self.at = now;
    }

    /// Lets the throttle state go once nothing in it is left to remember.
    fn settle(&mut self) {
        if self
            .throttle
            .as_deref()
            .is_some_and(|t| t.paused_until.is_none() && t.since.is_none() && !t.resumed)
        {
            self.throttle = None;
        }
    }

    /// Ends a pause that is due. True if it ended now.
    pub(super) fn resume_if_due(&mut self, now: Instant) -> bool {
        let Some(t) = self.throttle.as_deref_mut() else {
            return false;
        };
        if t.paused_until.is_some_and(|at| at <= now) {
            t.paused_until = None;
            t.paused_input = 0;
            t.resumed = true;
            return true;
        }
        false
    }

    /// Whether a pause ended since the last call.
    pub(super) fn take_resumed(&mut self) -> bool {
        let resumed = self
            .throttle
            .as_deref_mut()
            .is_some_and(|t| std::mem::take(&mut t.resumed));
        self.settle();
        resumed
    }

    /// Charges one counted message (of a session that is `closed` already, or not). Pauses
    /// the connection when the bucket runs dry.
    pub(super) fn charge(&mut self, limits: &Limits, now: Instant, closed: bool) -> Charge {
        if !limits.enabled() {
            return Charge::Allowed;
        }
        self.refill(limits, now);
        if self.tokens < 1.0 && closed {
            // The backlog of a closed session is drained without pausing; what is over the
            // rate is dropped rather than sent on all at once. (An open session was paused
            // before its bucket ran dry; rounding may leave it a hair short, which is let go.)
            return Charge::Dropped;
        }
        self.tokens -= 1.0;
        if self.tokens >= 1.0 {
            return Charge::Allowed;
        }
        // Rounded up by a microsecond, so the bucket holds the level when the pause ends.
        let wait = (limits.resume_level() - self.tokens) / limits.rate as f64 + 1e-6;
        let t = self.throttle.get_or_insert_with(Box::default);
        t.paused_until = Some(now + Duration::from_secs_f64(wait));
        let since = *t.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= limits.grace {
            Charge::Flood
        } else {
            Charge::Allowed
        }
    }

    /// The client's backlog drained (its session had no message left): it is no longer over
    /// its rate.
    pub(super) fn drained(&mut self) {
        if let Some(t) = self.throttle.as_deref_mut() {
            t.since = None;
            self.settle();
        }
    }

    /// `len` bytes arrived. True if the connection keeps sending while paused beyond
    /// [`PAUSED_INPUT_ALLOWANCE`] (its runtime does not honour the pause).
    pub(super) fn input(&mut self, limits: &Limits, now: Instant, len: usize) -> bool {
        if !limits.enabled() || !self.is_paused(now) {
            return false;
        }
        let Some(t) = self.throttle.as_deref_mut() else {
            return false;
        };
        t.paused_input += len;
        t.paused_input > PAUSED_INPUT_ALLOWANCE
    }
}

/// The reason sent with `rate-limited` to a client that kept sending while paused.
pub(super) const PAUSED_INPUT_REASON: &str = "kept sending while the server was not reading";

/// The rate settings of a hub configuration.
pub(super) fn rate_limits(config: &HubConfig) -> Limits {
    Limits {
        rate: config.message_rate,
        burst: config.message_burst.max(1),
        grace: config.rate_limit_grace,
    }
}

impl Hub {
    /// Hands `id`'s session events to the hub, as far as its message rate allows: counted
    /// messages are charged, and once the bucket runs dry the rest wait in the session (which
    /// stops decoding when its event queue is full) until the pause ends. A closed session's
    /// backlog is drained at once, with what is over the rate dropped.
    pub(super) fn drain_events(&mut self, id: ConnId) {
        let limits = rate_limits(&self.config);
        let now = self.now;
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let closed = c.session.is_closed();
            c.rate.resume_if_due(now);
            if !closed && c.rate.is_paused(now) {
                return;
            }
            let Some(ev) = c.session.poll_event() else {
                // Nothing left to take: the client is not (or no longer) over its rate.
                c.rate.drained();
                return;
            };
            if counts(&ev) {
                match c.rate.charge(&limits, now, closed) {
                    Charge::Allowed => {}
                    Charge::Dropped => continue,
                    Charge::Flood => {
                        let reason = format!(
                            "sent messages faster than {} a second for {} s",
                            limits.rate,
                            limits.grace.as_secs_f64()
                        );
                        c.session.goodbye(ErrorCode::RateLimited, &reason);
                    }
                }
            }
            self.on_event(id, ev);
        }
    }
}
