//! The loop's timers: a task sleeps until a deadline ([`LoopTimer`]), and `epoll_wait`
//! sleeps no longer than until the earliest one.
//!
//! They fire no earlier than their deadline, and within a millisecond after it when the loop
//! sleeps (`epoll_wait`'s resolution).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::EventLoop;

/// The deadlines tasks wait for, earliest first, each with the waker of its task. The
/// number after a deadline tells apart timers due at the same instant.
#[derive(Default)]
pub(super) struct Timers {
    due: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl EventLoop {
    /// How long the loop may sleep before the next timer is due (`None`: no timer).
    pub(super) fn until_next_timer(&self) -> Option<Duration> {
        let timers = self.timers.borrow();
        let (&(at, _), _) = timers.due.first_key_value()?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// Wakes the tasks whose timers are due (they find them due when they poll).
    pub(super) fn fire_timers(&self) {
        let now = Instant::now();
        loop {
            // Not borrowed while waking: a task's waker may run anything.
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.due.first_key_value() {
                    Some((&(at, _), _)) if at <= now => timers.due.pop_first(),
                    _ => None,
                }
            };
            match due {
                Some((_, waker)) => waker.wake(),
                None => return,
            }
        }
    }
}

/// A deadline on the [`EventLoop`] that a task can wait for; it can be moved, and it is
/// forgotten when dropped. Never due while it has no deadline.
pub(crate) struct LoopTimer {
    event_loop: Weak<EventLoop>,
    at: Option<Instant>,
    /// Its entry in the loop's list, while it has one.
    entry: Option<(Instant, u64)>,
}

impl LoopTimer {
    /// A timer on `event_loop` due at `at` (`None`: never).
    pub(crate) fn new(event_loop: &Rc<EventLoop>, at: Option<Instant>) -> LoopTimer {
        LoopTimer::on(Rc::downgrade(event_loop), at)
    }

    pub(super) fn on(event_loop: Weak<EventLoop>, at: Option<Instant>) -> LoopTimer {
        LoopTimer {
            event_loop,
            at,
            entry: None,
        }
    }

    /// Moves the deadline to `at` (`None`: never).
    pub(crate) fn set(&mut self, at: Option<Instant>) {
        if at != self.at {
            self.forget();
            self.at = at;
        }
    }

    /// Ready once the deadline has come; until then the loop wakes `cx`'s task at the
    /// deadline.
    pub(crate) fn poll_due(&mut self, cx: &Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        if at <= Instant::now() {
            self.forget();
            return Poll::Ready(());
        }
        let Some(event_loop) = self.event_loop.upgrade() else {
            return Poll::Pending;
        };
        let mut timers = event_loop.timers.borrow_mut();
        if let Some(waker) = self.entry.and_then(|key| timers.due.get_mut(&key)) {
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        let key = (at, timers.next_id);
        timers.next_id += 1;
        timers.due.insert(key, cx.waker().clone());
        self.entry = Some(key);
        Poll::Pending
    }

    /// Takes the timer's entry off the loop's list.
    fn forget(&mut self) {
        if let (Some(key), Some(event_loop)) = (self.entry.take(), self.event_loop.upgrade()) {
            // (While the loop is torn down its list may be borrowed: then it goes anyway.)
            if let Ok(mut timers) = event_loop.timers.try_borrow_mut() {
                timers.due.remove(&key);
            }
        }
    }
}

impl Future for LoopTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_due(cx)
    }
}

impl Drop for LoopTimer {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use futures_lite::future;
    use smol::LocalExecutor;

    use super::*;

    /// Timers fire in the order of their deadlines, not of their creation, none before its
    /// deadline; a moved timer fires at its new deadline, and a dropped one leaves the loop's
    /// list (so the loop does not wake up for it).
    #[test]
    fn timers_fire_in_deadline_order_and_dropped_ones_are_forgotten() {
        let event_loop = EventLoop::new().unwrap();
        let ex = LocalExecutor::new();
        let start = Instant::now();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let (done, done_rx) = async_channel::unbounded();
        let at = move |ms| Some(start + Duration::from_millis(ms));
        for (name, ms, moved_to) in [
            ("late", 80, None),
            ("moved", 10, Some(60)),
            ("early", 20, None),
            ("middle", 40, None),
        ] {
            let (event_loop, fired, done) = (event_loop.clone(), fired.clone(), done.clone());
            ex.spawn(async move {
                let mut timer = LoopTimer::new(&event_loop, at(ms));
                if let Some(later) = moved_to {
                    // Filed at the first deadline, then moved.
                    assert!(future::poll_once(&mut timer).await.is_none());
                    timer.set(at(later));
                }
                timer.await;
                let deadline = Duration::from_millis(moved_to.unwrap_or(ms));
                fired.borrow_mut().push((name, start.elapsed() >= deadline));
                let _ = done.send(()).await;
            })
            .detach();
        }
        let mut forgotten = LoopTimer::new(&event_loop, Some(start + Duration::from_secs(3600)));
        let main = async move {
            assert!(future::poll_once(&mut forgotten).await.is_none());
            drop(forgotten);
            for _ in 0..4 {
                done_rx.recv().await.unwrap();
            }
        };
        event_loop.block_on(&ex, main, || false).unwrap();
        assert_eq!(
            *fired.borrow(),
            [
                ("early", true),
                ("middle", true),
                ("moved", true),
                ("late", true)
            ]
        );
        assert_eq!(event_loop.until_next_timer(), None);
    }
}
