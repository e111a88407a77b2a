//! One worker thread: its ring, its listener, its connections, and the loop that turns
//! completions into handler calls.
//!
//! Each loop turn: publish recycled buffers, submit every queued entry and wait in one
//! `io_uring_enter`, then process the completions in batches, then serve the mailbox
//! (sends and closes asked for by other threads), then timers. Everything between bytes
//! and the application goes through [`Conn`]; everything the kernel borrows goes through
//! the op table of [`Ring`].

use super::ring::{Kind, Op, Ring, SendBuf, Target, UserData};
use super::MODEL;
use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::policy::{self, AcceptStep, Closing, Flow};
use crate::runtime::slab::Slab;
use crate::runtime::timers::{Activity, Linger, Timers};
use crate::runtime::Core;
use crate::session::Session;
use crate::stats::Counters;
use crate::sys::{self, EventFd};
use io_uring::cqueue;
use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Completions taken from the queue at a time.
const BATCH: usize = 512;
/// Send-buffer boxes kept for reuse per worker.
pub(super) const SPARE_BUFS: usize = 1024;
/// How soon a cancel that could not be submitted is tried again.
const CANCEL_RETRY: Duration = Duration::from_millis(10);
/// How long the final drain of ops may take when a worker exits.
pub(super) const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// The state of a connection's multishot receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Recv {
    /// None armed.
    Idle,
    /// Armed; this op.
    Armed(UserData),
    /// A cancel is on its way; its final completion is still to come.
    Cancelling,
}

/// One connection. Its slot and socket are kept until every op on it has completed, even
/// after the session itself was closed, and while its close lingers.
pub(super) struct Connection<S> {
    pub(super) fd: OwnedFd,
    /// The session; `None` once closed (the slot waits for its ops, or its linger).
    pub(super) conn: Option<Conn<S>>,
    pub(super) recv: Recv,
    /// A send is in flight (at most one).
    pub(super) sending: bool,
    /// What the connection policy keeps: FIN seen, back-pressure, closing.
    pub(super) flow: Flow,
    /// For the idle timeout.
    pub(super) activity: Activity,
    /// The session ended with a FIN and the socket reads until the peer's.
    pub(super) linger: Option<Linger>,
}

pub(super) struct Worker<H: Handler> {
    pub(super) ring: Ring,
    pub(super) core: Arc<Core<H>>,
    pub(super) conns: Slab<Connection<H::State>>,
    /// Occupied slots, closing ones included.
    pub(super) listener: Option<OwnedFd>,
    /// The armed multishot accept.
    pub(super) accept: Option<UserData>,
    pub(super) reserve: sys::Reserve,
    pub(super) waker: Arc<EventFd>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) counters: Arc<Counters>,
    /// Recycled send buffers. Boxed on purpose: an op holds a `Box<SendBuf>` (keeping the
    /// op table's entries small), and reusing the boxes avoids an allocation per send.
    #[allow(clippy::vec_box)]
    pub(super) spare: Vec<Box<SendBuf>>,
    pub(super) batch: Vec<cqueue::Entry>,
    /// Cancels whose submission failed, to try again (see [`Worker::cancel`]).
    pub(super) cancels: Vec<(Option<u32>, Target)>,
    pub(super) now: Instant,
    pub(super) timers: Timers,
    pub(super) exiting: bool,
}

impl<H: Handler> Worker<H> {
    /// Set up on the worker thread (the ring is single-issuer).
    pub(super) fn new(core: Arc<Core<H>>, listener: OwnedFd) -> Result<Worker<H>, crate::Error> {
        let ring = Ring::new(core.config.uring_setup)
            .map_err(crate::Error::setup(MODEL, "creating the ring"))?;
        tracing::debug!(mode = ?ring.mode(), "uring worker ring ready");
        let waker =
            Arc::new(EventFd::new().map_err(crate::Error::setup(MODEL, "creating the eventfd"))?);
        core.add_waker(waker.clone());
        let counters = core.counters.add_worker();
        let mailbox = Arc::new(Mailbox::new(waker.clone(), counters.clone()));
        let now = Instant::now();
        let mut worker = Worker {
            ring,
            conns: Slab::new(),
            listener: Some(listener),
            accept: None,
            reserve: sys::Reserve::new(),
            waker,
            mailbox,
            counters,
            spare: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            cancels: Vec::new(),
            now,
            timers: Timers::new(core.config.idle_timeout, now),
            exiting: false,
            core,
        };
        worker
            .arm_accept()
            .map_err(crate::Error::setup(MODEL, "arming accept"))?;
        worker
            .arm_wake()
            .map_err(crate::Error::setup(MODEL, "arming the wake-up read"))?;
        Ok(worker)
    }

    pub(super) fn run(mut self) -> Result<(), crate::Error> {
        loop {
            self.retry_cancels();
            let timeout = self.timeout();
            if let Err(e) = self.ring.wait(timeout) {
                self.abort_all(CloseReason::Error);
                self.drain_ops();
                return Err(crate::Error::Setup {
                    model: MODEL,
                    context: "waiting for completions",
                    source: e,
                });
            }
            self.now = Instant::now();
            loop {
                let mut batch = std::mem::take(&mut self.batch);
                self.ring.completions(&mut batch);
                let more = batch.len() == batch.capacity();
                for cqe in &batch {
                    self.complete(cqe);
                }
                self.batch = batch;
                if !more {
                    break;
                }
            }
            self.drain_mailbox();

            if self.end_turn() {
                self.drain_ops();
                return Ok(());
            }
        }
    }

    /// How long the next wait may last: until the nearest timer.
    pub(super) fn timeout(&self) -> Option<Duration> {
        let next = self.timers.next_wait();
        if self.cancels.is_empty() {
            return next;
        }
        // A cancel waits to be submitted again: soon, whatever else happens.
        Some(next.map_or(CANCEL_RETRY, |t| t.min(CANCEL_RETRY)))
    }

    // ----- completions -------------------------------------------------------------------

    pub(super) fn complete(&mut self, cqe: &cqueue::Entry) {
        let (user_data, result, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
        if cqueue::more(flags) {
            // A multishot op that keeps running: look, do not take.
            match self.ring.ops.kind(user_data) {
                Some(Kind::Accept) => self.on_accept(result, false),
                Some(Kind::Recv { slot }) => self.on_recv(slot, result, flags, false),
                other => tracing::warn!(?other, "unexpected multishot completion"),
            }
            return;
        }
        let Some(op) = self.ring.ops.complete(user_data) else {
            tracing::warn!(user_data, "completion for an unknown op");
            return;
        };
        match op {
            Op::Accept { .. } => self.on_accept(result, true),
            Op::Recv { slot, .. } => self.on_recv(slot, result, flags, true),
            Op::Send { slot, buf, .. } => self.on_send(slot, result, buf),
            Op::Cancel { slot, .. } => {
                if let Some(slot) = slot {
                    self.release_if_done(slot);
                }
            }
            Op::Wake { value, .. } => self.on_wake(result, value),
        }
    }

    pub(super) fn on_accept(&mut self, result: i32, done: bool) {
        if done {
            self.accept = None;
        }
        if result >= 0 {
            // SAFETY: a successful accept completion carries a new descriptor that nothing
            // else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            self.open(fd);
        } else {
            if result != -libc::ECANCELED {
                self.accept_failed(io::Error::from_raw_os_error(-result));
            }
        }
        if done {
            if self.timers.shutdown_deadline.is_some() || self.exiting {
                self.listener = None;
            } else if self.timers.accept_paused_until.is_none() {
                if let Err(e) = self.arm_accept() {
                    tracing::warn!(model = %MODEL, "re-arming accept: {e}; retrying later");
                    self.timers.pause_accept(self.now);
                }
            }
        }
    }

    /// A failed accept: shed a connection through the reserve, or pause accepting (the
    /// armed multishot accept is cancelled, and re-armed when the pause is over).
    pub(super) fn accept_failed(&mut self, err: io::Error) {
        let failure = sys::accept_failure(&err);
        let listener = self.listener.as_ref().map(|l| l.as_raw_fd());
        let reserve = &mut self.reserve;
        let shed = || listener.is_some_and(|l| reserve.shed(l));
        let step = policy::after_accept_error(MODEL, &err, failure, &self.counters, shed);
        if step == AcceptStep::Pause && self.timers.accept_paused_until.is_none() {
            self.timers.pause_accept(self.now);
            if let Some(accept) = self.accept {
                self.cancel(None, Target::Op(accept));
            }
        }
    }

    pub(super) fn open(&mut self, fd: OwnedFd) {
        if self.timers.shutdown_deadline.is_some() || self.exiting {
            // Accepted by the kernel before the accept's cancel landed (without
            // DEFER_TASKRUN completions keep coming in any enter). Shutdown has asked every
            // session to close already: serving this one would outlive it.
            self.counters.refused();
            tracing::debug!(model = %MODEL, "refused: shutting down");
            return;
        }
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %MODEL, "refused: connection limit reached");
            return;
        }
        // Multishot accept returns no address. A connection reset while it waited in the
        // accept queue has none left (ENOTCONN): it still becomes a session, with an
        // unspecified peer, and ends as Reset on its first receive, as with accept4.
        let peer = match socket2::SockRef::from(&fd)
            .peer_addr()
            .map(|a| a.as_socket())
        {
            Ok(Some(peer)) => peer,
            other => {
                tracing::debug!(
                    model = %MODEL,
                    ?other,
                    "accepted a connection without a peer address"
                );
                let ip: std::net::IpAddr = match self.core.config.addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                };
                std::net::SocketAddr::new(ip, 0)
            }
        };
        sys::tune_accepted(&fd);
        let slot = self.conns.reserve() as u32;
        self.counters.accepted();
        let session = Session::new(
            peer,
            slot as usize,
            self.mailbox.clone(),
            self.core.config.send_queue_limit,
        );
        self.timers
            .watch_idle(slot as usize, session.id(), self.now);
        let conn = Conn::open(&self.core, session);
        self.conns.put(
            slot as usize,
            Connection {
                fd,
                conn: Some(conn),
                recv: Recv::Idle,
                sending: false,
                flow: Flow::default(),
                activity: Activity::new(self.timers.stamp(self.now)),
                linger: None,
            },
        );
        // Arms the receive and sends whatever `opened` queued.
        self.flush(slot);
    }

    pub(super) fn on_recv(&mut self, slot: u32, result: i32, flags: u32, done: bool) {
        let now = self.timers.stamp(self.now);
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            tracing::warn!(slot, "receive completion for a free slot");
            return;
        };
        if done {
            entry.recv = Recv::Idle;
        }
        let mut close = None;
        if result > 0 {
            match self.ring.bufs.filled(flags, result) {
                Some(filled) => {
                    if let Some(conn) = entry.conn.as_mut() {
                        self.counters.received(result as usize);
                        entry.activity.input(now);
                        // A closing session discards what still arrives.
                        if !entry.flow.closing {
                            let data = self.ring.bufs.data(&filled);
                            if let Err(reason) = conn.deliver(&self.core, data) {
                                close = Some((reason, Closing::Abortive));
                            }
                        }
                    } else if let Some(linger) = entry.linger.as_mut() {
                        linger.heard(now);
                    }
                    // Straight back to the kernel: `deliver` copied what it kept.
                    self.ring.bufs.recycle(filled);
                }
                None => close = Some((CloseReason::Error, Closing::Abortive)),
            }
        } else if result == 0 {
            entry.flow.read_closed = true;
        } else {
            match -result {
                // Out of provided buffers: the data stays in the socket; the receive is
                // re-armed below once buffers were recycled this turn.
                libc::ENOBUFS | libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
                errno => {
                    let err = io::Error::from_raw_os_error(errno);
                    close = Some((sys::close_reason(&err), Closing::Abortive));
                }
            }
        }
        if entry.conn.is_none() {
            if entry.linger.is_some() {
                if entry.flow.read_closed || close.is_some() {
                    self.finish_linger(slot);
                } else if entry.recv == Recv::Idle {
                    self.arm_linger_recv(slot);
                }
                return;
            }
            self.release_if_done(slot);
            return;
        }
        match close {
            Some((reason, how)) => self.close(slot, reason, how),
            None => self.flush(slot),
        }
    }

    pub(super) fn on_send(&mut self, slot: u32, result: i32, mut buf: Box<SendBuf>) {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            tracing::warn!(slot, "send completion for a free slot");
            return;
        };
        entry.sending = false;
        let Some(conn) = entry.conn.as_ref() else {
            // Closed meanwhile: the bytes are dropped (the outbox is closed already).
            self.recycle_send(buf);
            self.release_if_done(slot);
            return;
        };
        let remaining = buf.len();
        if result >= 0 || result == -libc::EINTR || result == -libc::EAGAIN {
            let n = (result.max(0) as usize).min(remaining);
            if n > 0 {
                self.counters.sent(n);
                entry.activity.output(self.timers.stamp(self.now));
                conn.session().outbox().finish(n);
            }
            if buf.advance(n) {
                // Partial send: the tail goes next, ahead of anything queued since.
                let fd = entry.fd.as_raw_fd();
                self.submit_send(slot, fd, buf);
                return;
            }
            self.recycle_send(buf);
            self.flush(slot);
        } else {
            conn.session().outbox().finish(remaining);
            self.recycle_send(buf);
            let err = io::Error::from_raw_os_error(-result);
            self.close(slot, sys::close_reason(&err), Closing::Abortive);
        }
    }

    pub(super) fn on_wake(&mut self, result: i32, value: Box<UnsafeCell<u64>>) {
        if result < 0 && result != -libc::ECANCELED && result != -libc::EINTR {
            tracing::warn!(
                model = %MODEL,
                "wake-up read: {}",
                io::Error::from_raw_os_error(-result)
            );
        }
        if self.exiting {
            return;
        }
        // The mailbox and the shutdown flag are checked every turn; re-arm for the next.
        let op = Op::Wake {
            fd: self.waker.as_raw_fd(),
            value,
        };
        if let Err(e) = self.ring.submit(op) {
            tracing::error!(model = %MODEL, "re-arming the wake-up read: {e}");
        }
    }
}
