//! The readiness loop's hooks for the shared event-loop lifecycle (shutdown, timers, exit).

use super::worker::Worker;
use super::{Interest, Selector, LINGERING, LISTENER};
use crate::close::CloseReason;
use crate::config::Model;
use crate::handler::Handler;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::policy::Closing;
use crate::runtime::timers::{IdleCheck, Stamp, Timers};
use crate::session::{CloseRequest, SessionId};
use crate::sys;
use crate::sys::AsRaw;
use std::time::{Duration, Instant};

impl<S: Selector, H: Handler> EventLoop for Worker<S, H> {
    const MODEL: Model = S::MODEL;

    fn timers(&mut self) -> &mut Timers {
        &mut self.timers
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn shutdown_asked(&self) -> Option<Duration> {
        (self.core.is_shutting_down()).then_some(self.core.config.shutdown_timeout)
    }

    fn sessions(&self) -> Vec<usize> {
        self.entries
            .keys()
            .filter(|&token| self.entries.get(token).is_some())
            .collect()
    }

    fn is_drained(&self) -> bool {
        self.entries.is_empty() && self.lingering.is_empty()
    }

    fn stop_accepting(&mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = self.selector.deregister(listener.raw(), LISTENER);
        }
    }

    fn resume_accepting(&mut self) {
        self.accept_ready = true;
        if let (false, Some(listener)) = (S::EDGE_TRIGGERED, &self.listener) {
            let fd = listener.raw();
            if let Err(e) = self.selector.reregister(fd, LISTENER, Interest::READ) {
                // A listener left unwatched would never be reported again: retry.
                tracing::warn!(model = %S::MODEL, "resuming the listener: {e}; retrying");
                self.timers.pause_accept(self.now);
            }
        }
    }

    fn close_gracefully(&mut self, token: usize) {
        if let Some(entry) = self.entries.get(token) {
            let request = CloseRequest::Graceful(CloseReason::ServerShutdown);
            entry.conn.session().outbox().request_close(request);
            self.service(token);
        }
    }

    fn idle_check(&mut self, token: usize, id: SessionId, idle: Duration) -> Option<IdleCheck> {
        let entry = self.entries.get_mut(token)?;
        if entry.conn.session().id() != id {
            return None;
        }
        let fd = entry.fd.raw();
        Some((entry.activity).check(&self.timers, self.now, idle, || sys::send_progress(fd)))
    }

    fn abort(&mut self, token: usize, reason: CloseReason) {
        self.close(token, reason, Closing::Abortive);
    }

    fn linger_over(&mut self, key: usize, since: Stamp) -> Option<bool> {
        let lingerer = self
            .lingering
            .get(key)
            .filter(|l| l.linger.since == since)?;
        let limit = self.core.config.linger_timeout;
        let progress = || sys::send_progress(lingerer.fd.raw());
        Some(
            lingerer
                .linger
                .over(&self.timers, self.now, limit, progress),
        )
    }

    fn end_linger(&mut self, key: usize) {
        if let Some(lingerer) = self.lingering.remove(key) {
            let _ = self.selector.deregister(lingerer.fd.raw(), LINGERING | key);
        }
    }

    fn abort_all(&mut self, reason: CloseReason) {
        for token in self.entries.keys() {
            self.close(token, reason, Closing::Abortive);
        }
        for key in self.lingering.keys() {
            self.end_linger(key);
        }
    }
}
