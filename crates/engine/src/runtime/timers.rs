//! The timers every event-loop worker keeps (the reactor's and io_uring's): the idle
//! sessions' wheel, the checks of lingering closes, the shutdown deadline, and the end of
//! an accept paused for lack of descriptors. Written once so both loops wait for the same
//! things the same way; with them, what counts as activity for the idle timeout
//! ([`Activity`]) and when a lingering close may end ([`Linger`]), for every driver.

use crate::session::SessionId;
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// How far the peer has taken what a TCP connection sent, as the kernel counts it (the
/// system layer reads it: `TCP_INFO` on Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendProgress {
    /// Bytes the peer has acknowledged since the connection began. It grows when the
    /// peer's application reads (that is what reopens its window), and only then while
    /// nothing is written. It is compared only for a change, so a driver that can read only
    /// the bytes not yet acknowledged (an io_uring direct descriptor: `SIOCOUTQ`, no
    /// `TCP_INFO`) passes a value that changes with them: a write changes it too, but a
    /// write counts as activity by itself.
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
    idle: Option<IdleWheel>,
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
            idle: idle.map(|timeout| IdleWheel::new(timeout, now)),
            lingers: VecDeque::new(),
            shutdown_deadline: None,
            accept_paused_until: None,
        }
    }

    /// How long the next wait may last: until the nearest deadline, or forever.
    pub(crate) fn next_wait(&self) -> Option<Duration> {
        [
            self.idle.as_ref().and_then(IdleWheel::next_due),
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

    /// The idle timeout, if there is one.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.idle.as_ref().map(|wheel| wheel.timeout)
    }

    /// Watch session `id` in slot `key`, opened `now`, for the idle timeout (if any): it is
    /// looked at once its timeout could have passed.
    pub(crate) fn watch_idle(&mut self, key: usize, id: SessionId, now: Instant) {
        if let Some(wheel) = &mut self.idle {
            let at = now + wheel.timeout;
            wheel.insert(key, id, at);
        }
    }

    /// Look at session `id` in slot `key` again at `at` (an [`IdleCheck::LookAgain`]).
    pub(crate) fn look_again(&mut self, key: usize, id: SessionId, at: Instant) {
        if let Some(wheel) = &mut self.idle {
            wheel.insert(key, id, at);
        }
    }

    /// The sessions due for a look at `now`, one bucket at a time (`None` when none is
    /// due). The caller looks at each, then hands the emptied bucket back
    /// ([`Timers::idle_bucket_done`]) to keep its allocation.
    pub(crate) fn idle_due(&mut self, now: Instant) -> Option<Vec<(u32, SessionId)>> {
        self.idle.as_mut()?.due(now)
    }

    /// The bucket [`Timers::idle_due`] gave, emptied.
    pub(crate) fn idle_bucket_done(&mut self, bucket: Vec<(u32, SessionId)>) {
        if let Some(wheel) = &mut self.idle {
            wheel.give_back(bucket);
        }
    }
}

/// The sessions watched for the idle timeout, in buckets by when to look at them: a timing
/// wheel. A session is looked at when its timeout could first have passed, not on every
/// tick: one that keeps talking is looked at about once per timeout (and put back at its
/// last activity plus the timeout), one that is silent once, when it is closed. So an idle
/// server holding 150,000 sessions under a 60 s timeout looks at 2,500 a second, where a
/// sweep of all of them every second would look at 150,000. Entries name the session's id
/// as well as its slot: slots are reused, and a look at a slot that holds another session
/// by now drops the entry. Each open session has one entry (12 bytes, in a bucket).
#[derive(Debug)]
struct IdleWheel {
    timeout: Duration,
    /// Width of a bucket: an idle session is closed at most this late.
    tick: Duration,
    /// `buckets[cursor]` is due at `due`, the next ones one tick apart each.
    buckets: Vec<Vec<(u32, SessionId)>>,
    cursor: usize,
    due: Instant,
    /// Entries in all buckets.
    entries: usize,
    /// An emptied bucket kept for its allocation.
    spare: Vec<(u32, SessionId)>,
}

/// Buckets per timeout: a session is closed at most an eighth of the timeout late.
const IDLE_TICKS: u32 = 8;
/// Buckets in the wheel: twice the timeout (a slow reader's limit) and the look between.
const IDLE_BUCKETS: usize = 3 * IDLE_TICKS as usize;

impl IdleWheel {
    fn new(timeout: Duration, now: Instant) -> IdleWheel {
        let tick = (timeout / IDLE_TICKS).max(Duration::from_millis(10));
        IdleWheel {
            timeout,
            tick,
            buckets: (0..IDLE_BUCKETS).map(|_| Vec::new()).collect(),
            cursor: 0,
            due: now + tick,
            entries: 0,
            spare: Vec::new(),
        }
    }

    /// When the next bucket is due, if any session is watched.
    fn next_due(&self) -> Option<Instant> {
        (self.entries > 0).then_some(self.due)
    }

    /// Put an entry in the bucket due first at or after `at` (the last bucket if `at` lies
    /// beyond the wheel: looked at early, it is put back).
    fn insert(&mut self, key: usize, id: SessionId, at: Instant) {
        let ahead = at.saturating_duration_since(self.due);
        let slots = ahead.as_nanos().div_ceil(self.tick.as_nanos().max(1));
        let slots = (slots as usize).min(IDLE_BUCKETS - 1);
        let index = (self.cursor + slots) % IDLE_BUCKETS;
        // Slots are driver slab keys: a slab never holds 2^32 sessions.
        self.buckets[index].push((key as u32, id));
        self.entries += 1;
    }

    /// The next bucket, if it is due at `now`; the wheel turns one tick.
    fn due(&mut self, now: Instant) -> Option<Vec<(u32, SessionId)>> {
        if now < self.due {
            return None;
        }
        let bucket = std::mem::replace(
            &mut self.buckets[self.cursor],
            std::mem::take(&mut self.spare),
        );
        self.entries -= bucket.len();
        self.cursor = (self.cursor + 1) % IDLE_BUCKETS;
        self.due += self.tick;
        if self.entries == 0 && now >= self.due {
            // Nothing watched: no need to turn through the missed ticks one by one.
            self.due = now + self.tick;
        }
        Some(bucket)
    }

    fn give_back(&mut self, mut bucket: Vec<(u32, SessionId)>) {
        bucket.clear();
        if self.spare.capacity() < bucket.capacity() {
            self.spare = bucket;
        }
    }
}

/// What a look at a watched session found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdleCheck {
    /// Idle past its timeout: close it.
    Idle,
    /// Not idle: look again then.
    LookAgain(Instant),
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
    /// acknowledgements of earlier output as activity, and if not, when to look again;
    /// `progress` reads the connection's [`SendProgress`] (called only when it is needed).
    pub(crate) fn check(
        &mut self,
        timers: &Timers,
        now: Instant,
        idle: Duration,
        progress: impl FnOnce() -> io::Result<SendProgress>,
    ) -> IdleCheck {
        match self.check_unread(timers, now, idle) {
            Some(check) => check,
            None => self.check_given(timers, now, idle, progress()),
        }
    }

    /// The answer of [`Activity::check`] when it needs no look at the send progress, or
    /// `None` when it does: then read the progress (a driver may do so asynchronously)
    /// and ask [`Activity::check_given`].
    pub(crate) fn check_unread(
        &self,
        timers: &Timers,
        now: Instant,
        idle: Duration,
    ) -> Option<IdleCheck> {
        let elapsed = timers.elapsed(self.last, now);
        if self.acked == QUIET {
            return Some(match idle.checked_sub(elapsed) {
                Some(left) if !left.is_zero() => IdleCheck::LookAgain(now + left),
                _ => IdleCheck::Idle,
            });
        }
        // Output is outstanding: the peer's progress is looked at a quarter of the timeout
        // into a silence, and every quarter after.
        (elapsed < idle / 4).then(|| IdleCheck::LookAgain(now + (idle / 4 - elapsed)))
    }

    /// The answer of [`Activity::check`], given the send progress read just now.
    pub(crate) fn check_given(
        &mut self,
        timers: &Timers,
        now: Instant,
        idle: Duration,
        progress: io::Result<SendProgress>,
    ) -> IdleCheck {
        match progress {
            Ok(progress) => {
                let acked = (progress.acked & 0x7fff_ffff) as u32;
                if self.acked != UNKNOWN && self.acked != QUIET && acked != self.acked {
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
        let elapsed = timers.elapsed(self.last, now);
        if elapsed >= limit {
            IdleCheck::Idle
        } else if self.acked == QUIET {
            IdleCheck::LookAgain(now + (limit - elapsed))
        } else {
            IdleCheck::LookAgain(now + idle_period(idle).min(limit - elapsed))
        }
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
        self.over_unread(timers, now, limit)
            .unwrap_or_else(|| linger_over_given(progress()))
    }

    /// The answer of [`Linger::over`] when it needs no look at the send progress, or `None`
    /// when it does: then the linger is over once [`linger_over_given`] says so.
    pub(crate) fn over_unread(
        &self,
        timers: &Timers,
        now: Instant,
        limit: Duration,
    ) -> Option<bool> {
        if timers.elapsed(self.since, now) >= limit {
            return Some(true);
        }
        (timers.elapsed(self.heard, now) < LINGER_QUIET).then_some(false)
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
    lingered >= limit || (silent >= LINGER_QUIET && linger_over_given(progress()))
}

/// Whether a linger whose peer has been silent long enough may end, given its send progress
/// (see [`linger_over`]): a socket that cannot tell may close.
pub(crate) fn linger_over_given(progress: io::Result<SendProgress>) -> bool {
    progress.map_or(true, |p| !p.outstanding)
}

/// How often a session with output outstanding has its peer's progress looked at: a
/// quarter of the timeout, at most a second.
pub(crate) fn idle_period(idle: Duration) -> Duration {
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

#[cfg(test)]
mod idle_wheel_tests {
    use super::*;

    /// Every entry due by `now`, in the order the wheel hands them out.
    fn due(timers: &mut Timers, now: Instant) -> Vec<(u32, SessionId)> {
        let mut all = Vec::new();
        while let Some(mut bucket) = timers.idle_due(now) {
            all.append(&mut bucket);
            timers.idle_bucket_done(bucket);
        }
        all
    }

    #[test]
    fn a_session_is_looked_at_once_its_timeout_could_have_passed_not_before() {
        let start = Instant::now();
        let idle = Duration::from_secs(8);
        let mut timers = Timers::new(Some(idle), start);
        let (a, b) = (SessionId::next(), SessionId::next());
        timers.watch_idle(3, a, start);
        timers.watch_idle(4, b, start + Duration::from_secs(2));
        // Nothing is due before the first timeout; the loop may sleep until a tick.
        assert!(due(&mut timers, start + Duration::from_millis(7_999)).is_empty());
        assert!(timers.next_wait().is_some());
        // By the timeout plus one tick (an eighth), the first is handed out, alone.
        assert_eq!(due(&mut timers, start + Duration::from_secs(9)), [(3, a)]);
        assert_eq!(due(&mut timers, start + Duration::from_secs(11)), [(4, b)]);
        // The wheel is empty: no wake-ups for it.
        assert_eq!(timers.next_wait(), None);
    }

    #[test]
    fn a_look_again_beyond_the_wheel_comes_early_and_never_late() {
        let start = Instant::now();
        let idle = Duration::from_secs(1);
        let mut timers = Timers::new(Some(idle), start);
        let id = SessionId::next();
        timers.look_again(7, id, start + Duration::from_secs(60));
        let handed = due(&mut timers, start + Duration::from_secs(4));
        assert_eq!(handed, [(7, id)]);
    }

    #[test]
    fn a_quiet_session_that_talks_is_put_back_at_its_last_activity_plus_the_timeout() {
        let start = Instant::now();
        let idle = Duration::from_secs(8);
        let timers = Timers::new(Some(idle), start);
        let mut activity = Activity::new(timers.stamp(start));
        activity.input(timers.stamp(start + Duration::from_secs(5)));
        let now = start + Duration::from_secs(8);
        let check = activity.check(&timers, now, idle, || panic!("nothing is outstanding"));
        assert_eq!(check, IdleCheck::LookAgain(start + Duration::from_secs(13)));
        let later = start + Duration::from_secs(13);
        let check = activity.check(&timers, later, idle, || panic!("nothing is outstanding"));
        assert_eq!(check, IdleCheck::Idle);
    }

    #[test]
    fn a_peer_still_taking_output_is_not_idle_and_is_watched_closely() {
        let start = Instant::now();
        let idle = Duration::from_secs(8);
        let timers = Timers::new(Some(idle), start);
        let mut activity = Activity::new(timers.stamp(start));
        activity.output(timers.stamp(start));
        let progress = |acked| {
            move || {
                Ok(SendProgress {
                    acked,
                    outstanding: true,
                })
            }
        };
        // The first look sets the baseline, the next ones see the peer take bytes.
        let mut now = start + Duration::from_secs(2);
        assert_eq!(
            activity.check(&timers, now, idle, progress(100)),
            IdleCheck::LookAgain(now + Duration::from_secs(1))
        );
        for acked in [200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200] {
            now += Duration::from_secs(1);
            assert!(matches!(
                activity.check(&timers, now, idle, progress(acked)),
                IdleCheck::LookAgain(_)
            ));
        }
        // Then it stops taking them: idle after twice the timeout without progress.
        let stalled = now;
        loop {
            now += Duration::from_secs(1);
            match activity.check(&timers, now, idle, progress(1200)) {
                IdleCheck::LookAgain(_) => assert!(now < stalled + 2 * idle, "never idle"),
                IdleCheck::Idle => break,
            }
        }
        assert!(now >= stalled + 2 * idle);
    }
}
