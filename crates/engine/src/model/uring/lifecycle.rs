//! The uring worker's hooks for the shared event-loop lifecycle (shutdown, timers, exit).

use super::ring::Look;
use super::worker::{Connection, Socket, Worker};
use super::MODEL;
use crate::close::CloseReason;
use crate::config::Model;
use crate::handler::Handler;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::policy::Closing;
use crate::runtime::timers::{self, IdleCheck, Stamp, Timers};
use crate::session::{CloseRequest, SessionId};
use crate::sys;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

impl<H: Handler> EventLoop for Worker<H> {
    const MODEL: Model = MODEL;

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
        let direct = self.table.as_ref().map(|t| t.accepts.len());
        if self.accept.is_none() && direct.unwrap_or(0) == 0 {
            self.listener = None;
        }
        // The listener is released when the accepts' last completion arrives.
        self.cancel_accepts();
    }

    fn resume_accepting(&mut self) {
        if let Err(e) = self.arm_accept() {
            tracing::warn!(model = %MODEL, "re-arming accept: {e}; retrying later");
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
        match &entry.socket {
            Socket::Fd(fd) => {
                let fd = fd.as_raw_fd();
                let progress = || sys::send_progress(fd);
                Some((entry.activity).check(&self.timers, self.now, idle, progress))
            }
            // No TCP_INFO on a direct descriptor: its unsent bytes are asked of the ring, and
            // the answer decides (`Worker::on_unsent`); the wheel looks again meanwhile.
            Socket::Direct(_) => {
                if let Some(check) = entry.activity.check_unread(&self.timers, self.now, idle) {
                    return Some(check);
                }
                self.look_unsent(slot as u32, Look::Idle);
                Some(IdleCheck::LookAgain(self.now + timers::idle_period(idle)))
            }
        }
    }

    fn abort(&mut self, slot: usize, reason: CloseReason) {
        self.close(slot as u32, reason, Closing::Abortive);
    }

    fn linger_over(&mut self, slot: usize, since: Stamp) -> Option<bool> {
        let entry = self.conns.get(slot)?;
        let linger = entry.linger.filter(|l| l.since == since)?;
        let limit = self.core.config.linger_timeout;
        match &entry.socket {
            Socket::Fd(fd) => {
                let progress = || sys::send_progress(fd.as_raw_fd());
                Some(linger.over(&self.timers, self.now, limit, progress))
            }
            Socket::Direct(_) => match linger.over_unread(&self.timers, self.now, limit) {
                Some(over) => Some(over),
                None => {
                    // Asked of the ring; the answer may end the linger (`on_unsent`), and
                    // the next look comes as usual if it does not.
                    self.look_unsent(slot as u32, Look::Linger(since));
                    Some(false)
                }
            },
        }
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
