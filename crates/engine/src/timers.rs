//! The timers every event-loop worker keeps (the reactor's and io_uring's): the next sweep
//! for idle sessions, the shutdown deadline, and the end of an accept paused for lack of
//! descriptors. Written once so both loops wait for the same things the same way.

use std::time::{Duration, Instant};

/// How long accepting pauses when descriptors run out and the reserve did not help.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When a session last heard from its peer, coarsely: milliseconds since its worker
/// started, wrapping after about 49 days. Four bytes per connection where an `Instant`
/// takes sixteen; a session silent for a whole wrap looks fresh once, which only delays
/// its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

/// A worker's deadlines.
#[derive(Debug)]
pub(crate) struct Timers {
    started: Instant,
    idle: Option<Duration>,
    next_idle_check: Option<Instant>,
    /// When a graceful shutdown gives up on flushing; set once shutdown began.
    pub(crate) shutdown_deadline: Option<Instant>,
    /// Accepting is paused until then.
    pub(crate) accept_paused_until: Option<Instant>,
}

impl Timers {
    /// Timers for sessions closed after `idle` without input (never, if `None`).
    pub(crate) fn new(idle: Option<Duration>, now: Instant) -> Timers {
        Timers {
            started: now,
            idle,
            next_idle_check: idle.map(|t| now + idle_period(t)),
            shutdown_deadline: None,
            accept_paused_until: None,
        }
    }

    /// How long the next wait may last: until the nearest deadline, or forever.
    pub(crate) fn next_wait(&self) -> Option<Duration> {
        [
            self.next_idle_check,
            self.shutdown_deadline,
            self.accept_paused_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// `now` as a [`Stamp`].
    pub(crate) fn stamp(&self, now: Instant) -> Stamp {
        Stamp(now.duration_since(self.started).as_millis() as u32)
    }

    /// How long before `now` the `since` stamp was taken.
    pub(crate) fn elapsed(&self, since: Stamp, now: Instant) -> Duration {
        Duration::from_millis(u64::from(self.stamp(now).0.wrapping_sub(since.0)))
    }

    /// Pause accepting for [`ACCEPT_BACKOFF`].
    pub(crate) fn pause_accept(&mut self, now: Instant) {
        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Whether a paused accept should resume now (the pause is then over).
    pub(crate) fn accept_resumes(&mut self, now: Instant) -> bool {
        match self.accept_paused_until {
            Some(until) if now >= until => {
                self.accept_paused_until = None;
                true
            }
            _ => false,
        }
    }

    /// The idle timeout, if it is time to look for idle sessions (the next look is then
    /// scheduled).
    pub(crate) fn idle_sweep_due(&mut self, now: Instant) -> Option<Duration> {
        let (Some(check), Some(idle)) = (self.next_idle_check, self.idle) else {
            return None;
        };
        if now < check {
            return None;
        }
        self.next_idle_check = Some(now + idle_period(idle));
        Some(idle)
    }
}

/// How often idle sessions are looked for: a quarter of the timeout, at most a second.
fn idle_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    #[test]
    fn stamps_count_milliseconds_and_survive_the_wrap() {
        let start = Instant::now();
        let timers = Timers::new(None, start);
        let later = start + Duration::from_millis(1500);
        assert_eq!(timers.stamp(later), Stamp(1500));
        assert_eq!(
            timers.elapsed(Stamp(1000), later),
            Duration::from_millis(500)
        );
        assert_eq!(
            timers.elapsed(Stamp(u32::MAX - 99), start + Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }
}
