//! What keeps one abuser from hurting the other players, each piece per session and O(1):
//!
//! - [`Inflow`]: a session's requests read and not yet handled, bounded. At the bound the
//!   I/O thread stops decoding and pauses the session's input
//!   ([`Session::pause_input`]); whoever handles a request resumes it at half the bound. A
//!   sender is then slowed by its own TCP window, never buffered in our memory, and the
//!   broadcasts it causes come no faster than the game logic takes its requests.
//! - [`TokenBucket`]: a rate limit per session and kind of request; a session over it is
//!   closed with [`CloseReason::RateLimited`].
//! - [`Admission`]: the cap on sessions per source address, checked when a session opens
//!   (a session past it is closed: [`CloseReason::OverCapacity`]).
//! - [`Lobby`]: the sessions not logged in yet, oldest first. Past the cap on them, the
//!   *oldest* is closed to make room ([`CloseReason::OverCapacity`]), not the newcomer: a
//!   flood of silent connections then cannot lock real players out, who log in within a
//!   round trip of connecting. A thread closes those still not logged in at their deadline
//!   ([`CloseReason::LoginTimeout`]). Every session gets the same timeout, so deadlines
//!   come in the order sessions opened: a queue, not a timer wheel.

use crate::config::RateLimit;
use crate::stats::Counters;
use iomodels_engine::{CloseReason, Session};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A session's requests in the game logic's hands, shared by its I/O thread and whoever
/// handles its requests.
#[derive(Debug)]
pub(crate) struct Inflow {
    /// Requests read and not yet handled (queued, or waiting behind a password check).
    pending: AtomicUsize,
    /// The I/O thread paused the session's input at the bound; whoever takes `pending`
    /// down to the low mark and clears this resumes it.
    held: AtomicBool,
    /// Not logged in yet: counted in [`Counters::anonymous`] until cleared.
    anonymous: AtomicBool,
}

impl Inflow {
    /// A new session's: nothing pending, not logged in (counted as anonymous).
    pub(crate) fn new(counters: &Counters) -> Inflow {
        counters.anonymous.fetch_add(1, Relaxed);
        Inflow {
            pending: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            anonymous: AtomicBool::new(true),
        }
    }

    /// A request was read, about to be handed on.
    pub(crate) fn queued(&self, counters: &Counters) {
        counters.pending.fetch_add(1, Relaxed);
        self.pending.fetch_add(1, SeqCst);
    }

    /// Whether the session has `max` requests pending: the caller then stops decoding and
    /// calls [`Inflow::hold`].
    pub(crate) fn at_bound(&self, max: usize) -> bool {
        self.pending.load(SeqCst) >= max
    }

    /// Pause the session's input until [`Inflow::handled`] brings `pending` down to half of
    /// `max`. The pause comes first and the flag after, so whoever sees the flag resumes a
    /// pause that has happened; the check after covers a handler that finished everything
    /// in between.
    pub(crate) fn hold(&self, session: &Session, max: usize) {
        session.pause_input();
        self.held.store(true, SeqCst);
        if self.pending.load(SeqCst) <= max / 2 && self.held.swap(false, SeqCst) {
            session.resume_input();
        }
    }

    /// A request of this session was handled (or dropped): resume its input if it was held
    /// and is down to the low mark.
    pub(crate) fn handled(&self, session: &Session, max: usize, counters: &Counters) {
        counters.pending.fetch_sub(1, Relaxed);
        let left = self.pending.fetch_sub(1, SeqCst) - 1;
        if left <= max / 2 && self.held.load(SeqCst) && self.held.swap(false, SeqCst) {
            session.resume_input();
        }
    }

    /// Whether the session has not logged in yet.
    pub(crate) fn is_anonymous(&self) -> bool {
        self.anonymous.load(Relaxed)
    }

    /// The session logged in, or ended: it no longer counts as anonymous.
    pub(crate) fn not_anonymous(&self, counters: &Counters) {
        if self.anonymous.swap(false, Relaxed) {
            counters.anonymous.fetch_sub(1, Relaxed);
        }
    }
}

/// A token bucket (see [`RateLimit`]), kept by the session's I/O thread: no lock.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Take a token for a request at `now`; `false` if the bucket is empty (the session is
    /// over its limit).
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.limit.is_off() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens =
            (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The cap on sessions per source address.
#[derive(Debug)]
pub(crate) struct Admission {
    per_address: Option<(usize, Mutex<HashMap<IpAddr, usize>>)>,
}

impl Admission {
    pub(crate) fn new(max_per_address: Option<usize>) -> Admission {
        Admission {
            per_address: max_per_address.map(|max| (max, Mutex::new(HashMap::new()))),
        }
    }

    /// Admit a session from `peer`: `false` if its address is at its cap. Once admitted,
    /// the session counts against its address until [`Admission::left`].
    pub(crate) fn admit(&self, peer: IpAddr) -> bool {
        if let Some((max, addresses)) = &self.per_address {
            let mut addresses = addresses.lock().unwrap_or_else(|p| p.into_inner());
            let count = addresses.entry(peer).or_insert(0);
            if *count >= *max {
                return false;
            }
            *count += 1;
        }
        true
    }

    /// A session admitted from `peer` ended.
    pub(crate) fn left(&self, peer: IpAddr) {
        if let Some((_, addresses)) = &self.per_address {
            let mut addresses = addresses.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = addresses.get_mut(&peer) {
                *count -= 1;
                if *count == 0 {
                    addresses.remove(&peer);
                }
            }
        }
    }
}

/// Sessions not logged in yet, oldest first, each with its deadline.
struct Queue {
    waiting: VecDeque<(Instant, Session, Arc<Inflow>)>,
    stop: bool,
}

impl Queue {
    /// Drop the entries at the front that need nothing more (logged in, or closed).
    fn prune(&mut self) {
        while let Some((_, session, inflow)) = self.waiting.front() {
            if inflow.is_anonymous() && !session.is_closed() {
                return;
            }
            self.waiting.pop_front();
        }
    }
}

/// The sessions not logged in yet: the cap on them, and their login deadline.
pub(crate) struct Lobby {
    max_anonymous: usize,
    timeout: Option<Duration>,
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Lobby {
    /// A lobby of at most `max_anonymous` sessions, each closed if not logged in by
    /// `timeout` (a thread enforces it; none without a timeout).
    pub(crate) fn start(
        max_anonymous: usize,
        timeout: Option<Duration>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Lobby> {
        let queue = Arc::new((
            Mutex::new(Queue {
                waiting: VecDeque::new(),
                stop: false,
            }),
            Condvar::new(),
        ));
        let thread = match timeout {
            Some(_) => {
                let queue = queue.clone();
                Some(
                    std::thread::Builder::new()
                        .name("chat-deadlines".into())
                        .spawn(move || enforce(&queue, &counters))?,
                )
            }
            None => None,
        };
        Ok(Lobby {
            max_anonymous,
            timeout,
            queue,
            thread,
        })
    }

    /// A new session (counted anonymous already) enters the lobby. If that takes the
    /// lobby past its cap, the oldest session still in it is closed to make room, and
    /// returned.
    pub(crate) fn enter(
        &self,
        session: &Session,
        inflow: &Arc<Inflow>,
        counters: &Counters,
    ) -> Option<Session> {
        let (queue, wake) = &*self.queue;
        let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.prune();
        let mut evicted = None;
        if counters.anonymous.load(Relaxed) > self.max_anonymous {
            if let Some((_, oldest, its_inflow)) = queue.waiting.pop_front() {
                // Not anonymous from now on: the count drops at once, so that a burst of
                // newcomers evicts one session each, not one per close still on its way.
                its_inflow.not_anonymous(counters);
                oldest.close_for(CloseReason::OverCapacity);
                evicted = Some(oldest);
                queue.prune();
            }
        }
        let was_empty = queue.waiting.is_empty();
        let deadline = Instant::now() + self.timeout.unwrap_or_default();
        queue
            .waiting
            .push_back((deadline, session.clone(), inflow.clone()));
        if was_empty && self.thread.is_some() {
            wake.notify_one();
        }
        evicted
    }
}

impl Drop for Lobby {
    fn drop(&mut self) {
        let (queue, wake) = &*self.queue;
        queue.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The deadline thread: sleep until the oldest deadline, close its session if it has not
/// logged in (and is still open), repeat.
fn enforce(queue: &(Mutex<Queue>, Condvar), counters: &Counters) {
    let (queue, wake) = queue;
    let mut guard = queue.lock().unwrap_or_else(|p| p.into_inner());
    while !guard.stop {
        let now = Instant::now();
        match guard.waiting.front() {
            None => guard = wake.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some((deadline, ..)) if *deadline > now => {
                let wait = *deadline - now;
                guard = match wake.wait_timeout(guard, wait) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            Some(_) => {
                let (_, session, inflow) = guard.waiting.pop_front().expect("a front entry");
                drop(guard);
                if inflow.is_anonymous() && !session.is_closed() {
                    counters.login_timeouts.fetch_add(1, Relaxed);
                    tracing::info!(
                        peer = %session.peer(),
                        session = %session.id(),
                        "no login from {} in time; closing the session",
                        session.peer()
                    );
                    session.close_for(CloseReason::LoginTimeout);
                }
                guard = queue.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 10.0,
                burst: 3,
            },
            start,
        );
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        // 100 ms brings one token back, and no more than the burst ever.
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }

    #[test]
    fn an_unlimited_bucket_never_empties() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::OFF, now);
        assert!((0..100_000).all(|_| bucket.take(now)));
    }

    #[test]
    fn the_address_cap_counts_per_address_and_frees_on_leave() {
        let admission = Admission::new(Some(2));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(admission.admit(a));
        assert!(admission.admit(a));
        assert!(!admission.admit(a));
        assert!(admission.admit(b));
        admission.left(a);
        assert!(admission.admit(a));
    }
}
