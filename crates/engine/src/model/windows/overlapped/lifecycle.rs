//! The overlapped worker's hooks for the shared event-loop lifecycle (shutdown, timers,
//! exit).

use super::op;
use super::worker::{Connection, Worker};
use super::Source;
use crate::close::CloseReason;
use crate::config::Model;
use crate::handler::Handler;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::policy::Closing;
use crate::runtime::timers::{IdleCheck, Stamp, Timers};
use crate::session::{CloseRequest, SessionId};
use crate::sys::{self, AsRaw};
use std::time::{Duration, Instant};

impl<H: Handler, S: Source> EventLoop for Worker<H, S> {
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
        let open = |&slot: &usize| matches!(self.conns.get(slot), Some(c) if c.conn.is_some());
        self.conns.keys().filter(open).collect()
    }

    fn is_drained(&self) -> bool {
        // Closed connections stay until their lingers end and their ops complete.
        self.conns.is_empty()
    }

    fn stop_accepting(&mut self) {
        match &self.listener {
            // The listener is closed when the last AcceptEx's completion arrives.
            Some(listener) if listener.posted > 0 => op::cancel_all(listener.socket.raw()),
            _ => self.listener = None,
        }
    }

    fn resume_accepting(&mut self) {
        if let Err(e) = self.post_accepts() {
            tracing::warn!(model = %S::MODEL, "posting AcceptEx: {e}; retrying later");
            self.timers.pause_accept(self.now);
        }
    }

    fn close_gracefully(&mut self, slot: usize) {
        if let Some(Connection {
            conn: Some(conn), ..
        }) = self.conns.get(slot)
        {
            let request = CloseRequest::Graceful(CloseReason::ServerShutdown);
            conn.session().outbox().request_close(request);
            self.flush(slot as u32);
        }
    }

    fn idle_check(&mut self, slot: usize, id: SessionId, idle: Duration) -> Option<IdleCheck> {
        let entry = self.conns.get_mut(slot)?;
        if entry.conn.as_ref()?.session().id() != id {
            return None;
        }
        let raw = entry.socket.raw();
        Some((entry.activity).check(&self.timers, self.now, idle, || sys::send_progress(raw)))
    }

    fn abort(&mut self, slot: usize, reason: CloseReason) {
        self.close(slot as u32, reason, Closing::Abortive);
    }

    fn linger_over(&mut self, slot: usize, since: Stamp) -> Option<bool> {
        let entry = self.conns.get(slot)?;
        let linger = entry.linger.filter(|l| l.since == since)?;
        let limit = self.core.config.linger_timeout;
        let raw = entry.socket.raw();
        Some(linger.over(&self.timers, self.now, limit, || sys::send_progress(raw)))
    }

    fn end_linger(&mut self, slot: usize) {
        self.finish_linger(slot as u32);
    }

    fn abort_all(&mut self, reason: CloseReason) {
        for slot in self.conns.keys().map(|k| k as u32) {
            self.close(slot, reason, Closing::Abortive);
            self.finish_linger(slot);
        }
    }
}
