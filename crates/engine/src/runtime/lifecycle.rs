//! The part of an event-loop worker's turn that does not depend on its model, written once
//! for the readiness loop and for io_uring: beginning a graceful shutdown, the timers (a
//! paused accept resuming, lingering closes, the idle sweep), and deciding when the worker
//! may exit. A driver implements [`EventLoop`]'s hooks (how it stops accepting, closes a
//! session, looks at one linger); [`EventLoop::end_turn`] does the rest.

use crate::close::CloseReason;
use crate::config::Model;
use crate::runtime::timers::{IdleCheck, Stamp, Timers};
use crate::session::SessionId;
use std::time::{Duration, Instant};

/// An event-loop worker, as the shared lifecycle sees it. Keys are the driver's slots.
pub(crate) trait EventLoop {
    /// The model, for logs.
    const MODEL: Model;

    /// The worker's timers.
    fn timers(&mut self) -> &mut Timers;
    /// The time of this turn.
    fn now(&self) -> Instant;
    /// Whether shutdown was asked for, and how long it may flush.
    fn shutdown_asked(&self) -> Option<Duration>;

    /// The keys of the open sessions.
    fn sessions(&self) -> Vec<usize>;
    /// Whether no session is open and no close lingers.
    fn is_drained(&self) -> bool;
    /// Stop accepting for good (shutdown).
    fn stop_accepting(&mut self);
    /// Accepting paused for lack of descriptors may resume.
    fn resume_accepting(&mut self);
    /// Ask session `key` to close in order ([`CloseReason::ServerShutdown`]) and service it.
    fn close_gracefully(&mut self, key: usize);
    /// Whether session `id`, in slot `key`, has been idle for `idle`, and if not when to
    /// look again (see `timers::Activity::check`); `None` if the slot holds no session
    /// or another one by now.
    fn idle_check(&mut self, key: usize, id: SessionId, idle: Duration) -> Option<IdleCheck>;
    /// Close session `key` now, dropping its output.
    fn abort(&mut self, key: usize, reason: CloseReason);
    /// Look at the lingering close of `key` begun at `since`: `None` if it is no longer
    /// there (ended, or the key names a newer one), else whether it is over.
    fn linger_over(&mut self, key: usize, since: Stamp) -> Option<bool>;
    /// End the lingering close of `key`: close its socket.
    fn end_linger(&mut self, key: usize);
    /// Close every session and lingering socket now.
    fn abort_all(&mut self, reason: CloseReason);

    /// After a turn's events: begin a shutdown that was asked for, run the timers, and say
    /// whether the worker is done (every session closed, or the shutdown deadline passed
    /// and the rest were aborted).
    fn end_turn(&mut self) -> bool {
        let now = self.now();
        if let (Some(timeout), None) = (self.shutdown_asked(), self.timers().shutdown_deadline) {
            self.begin_shutdown(now + timeout);
        }
        self.run_timers(now);
        let Some(deadline) = self.timers().shutdown_deadline else {
            return false;
        };
        if self.is_drained() {
            return true;
        }
        if now >= deadline {
            let sessions = self.sessions().len();
            tracing::warn!(
                model = %Self::MODEL,
                sessions,
                "shutdown deadline passed; closing sessions with output still queued"
            );
            self.abort_all(CloseReason::ServerShutdown);
            return true;
        }
        false
    }

    /// Stop accepting and ask every session to close in order, by `deadline`.
    fn begin_shutdown(&mut self, deadline: Instant) {
        let sessions = self.sessions();
        tracing::debug!(model = %Self::MODEL, sessions = sessions.len(), "shutting down");
        self.timers().shutdown_deadline = Some(deadline);
        self.stop_accepting();
        for key in sessions {
            self.close_gracefully(key);
        }
    }

    /// The timers that are due: accepting resumes, lingers are looked at, idle sessions
    /// are closed.
    fn run_timers(&mut self, now: Instant) {
        if self.timers().accept_resumes(now) && self.timers().shutdown_deadline.is_none() {
            self.resume_accepting();
        }
        while let Some((key, since)) = self.timers().linger_due(now) {
            match self.linger_over(key, since) {
                Some(true) => self.end_linger(key),
                Some(false) => self.timers().linger(key, since, now),
                None => {}
            }
        }
        let Some(idle) = self.timers().idle_timeout() else {
            return;
        };
        while let Some(mut due) = self.timers().idle_due(now) {
            for (key, id) in due.drain(..) {
                let key = key as usize;
                match self.idle_check(key, id, idle) {
                    None => {}
                    Some(IdleCheck::Idle) => self.abort(key, CloseReason::IdleTimeout),
                    Some(IdleCheck::LookAgain(at)) => self.timers().look_again(key, id, at),
                }
            }
            self.timers().idle_bucket_done(due);
        }
    }
}
