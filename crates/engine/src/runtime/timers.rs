//! The timers every event-loop worker keeps (the reactor's and io_uring's): the next sweep
//! for idle sessions, the checks of lingering closes, the shutdown deadline, and the end of
//! an accept paused for lack of descriptors. Written once so both loops wait for the same
//! things the same way; with them, what counts as activity for the idle timeout
//! ([`Activity`]) and when a lingering close may end ([`Linger`]), for every driver.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// How far the peer has taken what a TCP connection sent, as the kernel counts it (the
/// system layer reads it: `TCP_INFO` on Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendProgress {
    /// Bytes the peer has acknowledged since the connection began. It only grows, and it
    /// grows when the peer's application reads (that is what reopens its window).
    pub(crate) acked: u64,
    /// Some sent byte is not acknowledged yet, or some written byte is not sent yet.
    pub(crate) outstanding: bool,
}

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
    /// Lingering closes to look at again, oldest first: (the driver's key, the linger's
    /// start, when to look). Every entry is queued [`LINGER_QUIET`] ahead, so the queue
    /// stays in order of its deadlines.
    lingers: VecDeque<(usize, Stamp, Instant)>,
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
            lingers: VecDeque::new(),
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
            self.lingers.front().map(|&(_, _, at)| at),
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

impl Timers {
    /// Look at the lingering close of `key`, begun at `since`, again in [`LINGER_QUIET`].
    pub(crate) fn linger(&mut self, key: usize, since: Stamp, now: Instant) {
        self.lingers.push_back((key, since, now + LINGER_QUIET));
    }

    /// A lingering close due for a look: its key and start. The driver checks that the key
    /// still names a linger begun then (keys are reused), and queues it again if it goes on.
    pub(crate) fn linger_due(&mut self, now: Instant) -> Option<(usize, Stamp)> {
        match self.lingers.front() {
            Some(&(key, since, at)) if at <= now => {
                self.lingers.pop_front();
                Some((key, since))
            }
            _ => None,
        }
    }
}

/// What counts as activity for the idle timeout, per session: bytes from the peer, bytes
/// written to the peer, and the peer taking (acknowledging) what was written earlier.
///
/// The last is what a session paused by back-pressure, or waiting for a full socket buffer
/// to drain, shows of a peer that reads slowly but steadily: nothing arrives and nothing
/// can be written for a while, yet the peer keeps reading. Such a session is closed after
/// twice the timeout without progress, since TCP reveals a reader's progress only in
/// receive-window steps. The kernel's count of
/// acknowledged bytes (`TCP_INFO`) tells it, for one `getsockopt` per sweep, and only for
/// sessions that have been silent for a quarter of the timeout with output outstanding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activity {
    /// The last activity seen.
    last: Stamp,
    /// The acknowledged-byte count at the last look (31 bits), or [`QUIET`] when nothing
    /// was outstanding then and nothing was written since, or [`UNKNOWN`].
    acked: u32,
}

/// Nothing sent is outstanding: no acknowledgement to wait for, no need to look.
const QUIET: u32 = u32::MAX;
/// Written to since it was quiet: look, but the first look only sets the baseline.
const UNKNOWN: u32 = u32::MAX - 1;

impl Activity {
    /// A session that just opened.
    pub(crate) fn new(now: Stamp) -> Activity {
        Activity {
            last: now,
            acked: QUIET,
        }
    }

    /// Bytes arrived.
    pub(crate) fn input(&mut self, now: Stamp) {
        self.last = now;
    }

    /// Bytes were written to the socket.
    pub(crate) fn output(&mut self, now: Stamp) {
        self.last = now;
        if self.acked == QUIET {
            self.acked = UNKNOWN;
        }
    }

    /// Whether the session has been idle for `idle` at `now`, counting the peer's
    /// acknowledgements of earlier output as activity; `progress` reads the connection's
    /// [`SendProgress`] (called only when it is needed).
    pub(crate) fn is_idle(
        &mut self,
        timers: &Timers,
        now: Instant,
        idle: Duration,
        progress: impl FnOnce() -> io::Result<SendProgress>,
    ) -> bool {
        if timers.elapsed(self.last, now) < idle / 4 || self.acked == QUIET {
            return timers.elapsed(self.last, now) >= idle;
        }
        match progress() {
            Ok(progress) => {
                let acked = (progress.acked & 0x7fff_ffff) as u32;
                if self.acked != UNKNOWN && acked != self.acked {
                    self.last = timers.stamp(now);
                }
                self.acked = if progress.outstanding { acked } else { QUIET };
            }
            // The socket failed; its next read or write says how.
            Err(_) => self.acked = QUIET,
        }
        // A peer that has not taken all the output yet gets twice the timeout: TCP shows a
        // reader's progress only when its receive window reopens, and for a slow reader
        // with a large receive buffer that can take as long as the timeout itself (seen:
        // 16 KiB read every 60 ms shows as 126 KiB acknowledged every 500 ms).
        let limit = if self.acked == QUIET { idle } else { idle * 2 };
        timers.elapsed(self.last, now) >= limit
    }
}

/// For a thread blocked in `recv` or `send` whose timeout expired (the blocking model):
/// whether the peer took any output since the last time it asked. The first time, with
/// no baseline, any outstanding output counts, so a stalled peer is idle after at most
/// twice the timeout.
#[derive(Debug, Default)]
pub(crate) struct AckWatch(Option<u64>);

impl AckWatch {
    /// Whether the peer acknowledged output since the last call, given its progress now.
    pub(crate) fn moved(&mut self, progress: io::Result<SendProgress>) -> bool {
        match progress {
            Ok(progress) if progress.outstanding => {
                let moved = self.0 != Some(progress.acked);
                self.0 = Some(progress.acked);
                moved
            }
            _ => false,
        }
    }
}

/// How often a lingering close looks whether it may end, and how long the peer must have
/// been silent for it to end before the peer's FIN.
pub(crate) const LINGER_QUIET: Duration = Duration::from_millis(100);

/// A close in progress: everything queued was handed to the kernel and a FIN follows it
/// (`shutdown(SHUT_WR)`); the socket stays open, reading and discarding what the peer
/// still sends, until the peer's own FIN.
///
/// Why: closing a socket with unread input makes Linux send a reset and throw away what
/// it has not sent yet, so the peer would lose the end of the output that the close was
/// meant to deliver (a client that sends heartbeats or pipelines requests always has input
/// in flight). The linger ends at the peer's FIN; or once the peer has acknowledged every
/// byte and sent nothing for [`LINGER_QUIET`] (a close now loses nothing: the peer has it
/// all); or, for a peer that keeps sending, at [`crate::Config::linger_timeout`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linger {
    /// When the FIN was sent.
    pub(crate) since: Stamp,
    /// When the peer last sent something.
    heard: Stamp,
}

impl Linger {
    /// A linger starting now.
    pub(crate) fn new(now: Stamp) -> Linger {
        Linger {
            since: now,
            heard: now,
        }
    }

    /// The peer sent more (it was discarded).
    pub(crate) fn heard(&mut self, now: Stamp) {
        self.heard = now;
    }

    /// Whether the socket may be closed now; `progress` reads its [`SendProgress`].
    pub(crate) fn over(
        &self,
        timers: &Timers,
        now: Instant,
        limit: Duration,
        progress: impl FnOnce() -> io::Result<SendProgress>,
    ) -> bool {
        linger_over(
            timers.elapsed(self.since, now),
            timers.elapsed(self.heard, now),
            limit,
            progress,
        )
    }
}

/// The rule of [`Linger`]: a socket lingering for `lingered`, its peer silent for
/// `silent`, may be closed when the linger reached `limit`, or when the peer has been
/// silent for [`LINGER_QUIET`] and has acknowledged everything sent (`progress` reads
/// that, called only when needed; a socket that cannot tell may close).
pub(crate) fn linger_over(
    lingered: Duration,
    silent: Duration,
    limit: Duration,
    progress: impl FnOnce() -> io::Result<SendProgress>,
) -> bool {
    lingered >= limit || (silent >= LINGER_QUIET && progress().map_or(true, |p| !p.outstanding))
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
