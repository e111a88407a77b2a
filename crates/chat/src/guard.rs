//! What keeps one abuser from hurting the other players, each piece per session and O(1):
//!
//! - [`Inflow`]: a session's requests read and not yet handled, bounded. At the bound the
//!   I/O thread stops decoding and pauses the session's input
//!   ([`Session::pause_input`]); whoever handles a request resumes it at half the bound. A
//!   sender is then slowed by its own TCP window, never buffered in our memory, and the
//!   broadcasts it causes come no faster than the game logic takes its requests.
//! - [`TokenBucket`]: a rate limit per session and kind of request; a session over it is
//!   closed with [`CloseReason::RateLimited`].
//! - [`Admission`]: caps on sessions not logged in yet and on sessions per source address,
//!   checked when a session opens ([`CloseReason::OverCapacity`]).
//! - [`Deadlines`]: one thread that closes sessions still not logged in at their deadline
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

/// Caps checked when a session opens.
#[derive(Debug)]
pub(crate) struct Admission {
    max_anonymous: usize,
    per_address: Option<(usize, Mutex<HashMap<IpAddr, usize>>)>,
}

/// Which cap turned a session away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cap {
    /// Too many sessions not logged in yet.
    Anonymous,
    /// Too many sessions from its address.
    Address,
}

impl Cap {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cap::Anonymous => "too many sessions not logged in",
            Cap::Address => "too many sessions from its address",
        }
    }
}

impl Admission {
    pub(crate) fn new(max_anonymous: usize, max_per_address: Option<usize>) -> Admission {
        Admission {
            max_anonymous,
            per_address: max_per_address.map(|max| (max, Mutex::new(HashMap::new()))),
        }
    }

    /// Admit a session from `peer`, already counted as anonymous in `counters`. On `Ok`,
    /// the session counts against its address until [`Admission::left`].
    pub(crate) fn admit(&self, peer: IpAddr, counters: &Counters) -> Result<(), Cap> {
        if counters.anonymous.load(Relaxed) > self.max_anonymous {
            return Err(Cap::Anonymous);
        }
        if let Some((max, addresses)) = &self.per_address {
            let mut addresses = addresses.lock().unwrap_or_else(|p| p.into_inner());
            let count = addresses.entry(peer).or_insert(0);
            if *count >= *max {
                if *count == 0 {
                    addresses.remove(&peer);
                }
                return Err(Cap::Address);
            }
            *count += 1;
        }
        Ok(())
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

/// Sessions waiting for their login deadline, oldest first.
struct Queue {
    waiting: VecDeque<(Instant, Session, Arc<Inflow>)>,
    stop: bool,
}

/// The login deadline: a thread that closes every session still not logged in
/// `timeout` after it opened.
pub(crate) struct Deadlines {
    timeout: Duration,
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Deadlines {
    /// Start the deadline thread.
    pub(crate) fn start(timeout: Duration, counters: Arc<Counters>) -> std::io::Result<Deadlines> {
        let queue = Arc::new((
            Mutex::new(Queue {
                waiting: VecDeque::new(),
                stop: false,
            }),
            Condvar::new(),
        ));
        let thread = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("chat-deadlines".into())
                .spawn(move || enforce(&queue, &counters))?
        };
        Ok(Deadlines {
            timeout,
            queue,
            thread: Some(thread),
        })
    }

    /// Watch a new session.
    pub(crate) fn watch(&self, session: &Session, inflow: &Arc<Inflow>) {
        let (queue, wake) = &*self.queue;
        let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = queue.waiting.is_empty();
        queue.waiting.push_back((
            Instant::now() + self.timeout,
            session.clone(),
            inflow.clone(),
        ));
        if was_empty {
            wake.notify_one();
        }
    }
}

impl Drop for Deadlines {
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
        let counters = Counters::default();
        let admission = Admission::new(100, Some(2));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert_eq!(admission.admit(a, &counters), Ok(()));
        assert_eq!(admission.admit(a, &counters), Ok(()));
        assert_eq!(admission.admit(a, &counters), Err(Cap::Address));
        assert_eq!(admission.admit(b, &counters), Ok(()));
        admission.left(a);
        assert_eq!(admission.admit(a, &counters), Ok(()));
    }

    #[test]
    fn the_anonymous_cap_counts_sessions_not_logged_in() {
        let counters = Counters::default();
        let admission = Admission::new(2, None);
        let peer: IpAddr = [127, 0, 0, 1].into();
        let inflows: Vec<_> = (0..3).map(|_| Inflow::new(&counters)).collect();
        // The third is counted before it is checked: over the cap of 2.
        assert_eq!(admission.admit(peer, &counters), Err(Cap::Anonymous));
        inflows[0].not_anonymous(&counters);
        inflows[0].not_anonymous(&counters);
        assert_eq!(counters.anonymous.load(Relaxed), 2);
        assert_eq!(admission.admit(peer, &counters), Ok(()));
    }
}
