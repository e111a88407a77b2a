//! One worker thread: its ring, its listener, its connections, and the loop that turns
//! completions into handler calls.
//!
//! Each loop turn: publish recycled buffers, submit every queued entry and wait in one
//! `io_uring_enter`, then process the completions in batches, then serve the mailbox
//! (sends and closes asked for by other threads), then timers. Everything between bytes
//! and the application goes through [`Conn`]; everything the kernel borrows goes through
//! the op table of [`Ring`].

use super::direct::{DirectRing, Spill};
use super::ring::{Kind, Look, Op, Ops, PeerAddr, Ring, SendBuf, Sock, Target, UserData};
use super::MODEL;
use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::policy::{self, AcceptStep, Closing, Flow};
use crate::runtime::slab::Slab;
use crate::runtime::timers::{self, Activity, IdleCheck, Linger, SendProgress, Timers};
use crate::runtime::Core;
use crate::session::Session;
use crate::stats::Counters;
use crate::sys::{self, EventFd};
use io_uring::cqueue;
use std::cell::UnsafeCell;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU64;
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
/// Single-shot accepts in flight per ring with direct descriptors (never more than the
/// table's free slots).
const ACCEPT_DEPTH: usize = 8;

/// A connection's socket: a normal descriptor (closed when dropped), or a slot of the
/// ring's direct-descriptor table (closed by an `IORING_OP_CLOSE` the worker submits when
/// it frees the connection).
#[derive(Debug)]
pub(super) enum Socket {
    Fd(OwnedFd),
    Direct(u32),
}

impl Socket {
    /// The socket as ops name it.
    pub(super) fn sock(&self) -> Sock {
        match self {
            Socket::Fd(fd) => Sock::Fd(fd.as_raw_fd()),
            Socket::Direct(index) => Sock::Fixed(*index),
        }
    }
}

/// The ring's table of direct descriptors and the accepts that may fill it. Every slot is
/// counted from the accept that fills it until the completion of the close that empties
/// it, and accepts in flight never outnumber the free slots: a full table would make the
/// kernel accept a connection and then drop it (ENFILE), which the peer sees as a reset.
#[derive(Debug)]
pub(super) struct Table {
    /// Slots registered.
    pub(super) capacity: u32,
    /// Slots holding a socket, or waiting for its close to complete.
    pub(super) used: u32,
    /// The single-shot accepts in flight.
    pub(super) accepts: Vec<UserData>,
    /// Whether this ring always accepts, or only while the primaries are full.
    primary: bool,
    spill: Arc<Spill>,
}

impl Table {
    /// Whether another accept may be armed.
    pub(super) fn room(&self) -> bool {
        self.accepts.len() < ACCEPT_DEPTH
            && self.used as usize + self.accepts.len() < self.capacity as usize
            && (self.primary || self.spill.spilling())
    }

    /// A slot was filled (`true`) or emptied: a primary tells the spill rings when
    /// its table is full and when it is not any more.
    pub(super) fn used_changed(&mut self, filled: bool) {
        let was_full = self.used >= self.capacity;
        if filled {
            self.used += 1;
        } else {
            self.used = self.used.saturating_sub(1);
        }
        let full = self.used >= self.capacity;
        if self.primary && full != was_full {
            if full {
                self.spill.primary_filled();
            } else {
                self.spill.primary_freed();
            }
        }
    }
}

/// The state of a connection's multishot receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Recv {
    /// None armed.
    Idle,
    /// Armed (its user data is [`Ops::recv_data`] of the slot).
    Armed,
    /// Ended for lack of provided buffers (ENOBUFS): armed again at the start of the next
    /// turn, once the buffers recycled in this one are published. Re-armed at once, it
    /// would fail again at once, and a turn with thousands of them would never end.
    Starved,
    /// A cancel is on its way; its final completion is still to come.
    Cancelling,
}

/// One connection. Its slot and socket are kept until every op on it has completed, even
/// after the session itself was closed, and while its close lingers.
pub(super) struct Connection<S> {
    pub(super) socket: Socket,
    /// The session; `None` once closed (the slot waits for its ops, or its linger).
    pub(super) conn: Option<Conn<S>>,
    pub(super) recv: Recv,
    /// The send in flight (at most one). An op's user data is never zero (its generation
    /// starts at 1), so this takes 8 bytes, not 16: a connection's bytes count here.
    pub(super) send: Option<NonZeroU64>,
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
    /// The listener: this worker's own (SO_REUSEPORT), or with direct descriptors the one
    /// every ring accepts from.
    pub(super) listener: Option<Arc<OwnedFd>>,
    /// The armed multishot accept (normal descriptors).
    pub(super) accept: Option<UserData>,
    /// The direct-descriptor table, when the ring accepts into one.
    pub(super) table: Option<Table>,
    /// Closes of direct descriptors whose submission failed, to try again.
    pub(super) closes: Vec<u32>,
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
    /// Connections whose receive ended with ENOBUFS this turn ([`Recv::Starved`]).
    pub(super) starved: Vec<u32>,
    pub(super) now: Instant,
    pub(super) timers: Timers,
    pub(super) exiting: bool,
}

impl<H: Handler> Worker<H> {
    /// Set up on the worker thread (the ring is single-issuer); with `slots`, the ring
    /// accepts into a table of that many direct descriptors.
    pub(super) fn new(
        core: Arc<Core<H>>,
        listener: Arc<OwnedFd>,
        direct: Option<DirectRing>,
    ) -> Result<Worker<H>, crate::Error> {
        let slots = direct.as_ref().map(|d| d.slots);
        let ring = Ring::new(core.config.uring_setup)
            .map_err(crate::Error::setup(MODEL, "creating the ring"))?;
        if let Some(slots) = slots {
            ring.register_table(slots).map_err(crate::Error::setup(
                MODEL,
                "registering the direct-descriptor table",
            ))?;
        }
        tracing::debug!(mode = ?ring.mode(), ?slots, "uring worker ring ready");
        let waker =
            Arc::new(EventFd::new().map_err(crate::Error::setup(MODEL, "creating the eventfd"))?);
        core.add_waker(waker.clone());
        if let Some(ring) = direct.as_ref().filter(|d| !d.primary) {
            ring.spill.add_spill_waker(waker.clone());
        }
        let counters = core.counters.add_worker();
        let mailbox = Arc::new(Mailbox::new(waker.clone(), counters.clone()));
        let now = Instant::now();
        let mut worker = Worker {
            ring,
            conns: Slab::new(),
            listener: Some(listener),
            accept: None,
            table: direct.map(|ring| Table {
                capacity: ring.slots,
                used: 0,
                accepts: Vec::with_capacity(ACCEPT_DEPTH),
                primary: ring.primary,
                spill: ring.spill,
            }),
            closes: Vec::new(),
            reserve: sys::Reserve::new(),
            waker,
            mailbox,
            counters,
            spare: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            cancels: Vec::new(),
            starved: Vec::new(),
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
            self.retry_closes();
            self.rearm_starved();
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
        if self.cancels.is_empty() && self.closes.is_empty() {
            return next;
        }
        // A cancel waits to be submitted again: soon, whatever else happens.
        Some(next.map_or(CANCEL_RETRY, |t| t.min(CANCEL_RETRY)))
    }

    // ----- completions -------------------------------------------------------------------

    pub(super) fn complete(&mut self, cqe: &cqueue::Entry) {
        let (user_data, result, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
        if let Some(slot) = Ops::recv_slot(user_data) {
            let done = !cqueue::more(flags);
            if done {
                self.ring.ops.complete(user_data);
            }
            return self.on_recv(slot, result, flags, done);
        }
        if cqueue::more(flags) {
            // A multishot op that keeps running: look, do not take.
            match self.ring.ops.kind(user_data) {
                Some(Kind::Accept) => self.on_accept(result, false),
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
            Op::AcceptDirect { peer, .. } => self.on_accept_direct(user_data, result, &peer),
            Op::Recv { .. } => unreachable!("the op table keeps no receive"),
            Op::Send { slot, buf, .. } => self.on_send(slot, result, buf),
            Op::Cancel { slot, .. } => {
                if let Some(slot) = slot {
                    self.release_if_done(slot);
                }
            }
            Op::Shutdown { slot, .. } | Op::Linger { slot, .. } => {
                if result < 0 && result != -libc::ENOTCONN && result != -libc::ECANCELED {
                    let err = io::Error::from_raw_os_error(-result);
                    tracing::debug!(model = %MODEL, "shutdown or SO_LINGER: {err}");
                }
                self.release_if_done(slot);
            }
            Op::Unsent { slot, look, .. } => self.on_unsent(slot, look, result),
            Op::Close { index } => self.on_close(index, result),
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
            self.open(Socket::Fd(fd), None);
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

    /// The completion of a single-shot accept into the direct-descriptor table: the result
    /// is the slot the kernel chose. Arms the next accept while the table has room.
    pub(super) fn on_accept_direct(&mut self, user_data: UserData, result: i32, peer: &PeerAddr) {
        if let Some(table) = self.table.as_mut() {
            table.accepts.retain(|&accept| accept != user_data);
            if result >= 0 {
                table.used_changed(true);
            }
        }
        if result >= 0 {
            self.open(Socket::Direct(result as u32), peer.addr());
        } else if result != -libc::ECANCELED {
            self.accept_failed(io::Error::from_raw_os_error(-result));
        }
        if self.timers.shutdown_deadline.is_some() || self.exiting {
            if self.table.as_ref().is_some_and(|t| t.accepts.is_empty()) {
                self.listener = None;
            }
        } else if self.timers.accept_paused_until.is_none() {
            if let Err(e) = self.arm_accept() {
                tracing::warn!(model = %MODEL, "re-arming accept: {e}; retrying later");
                self.timers.pause_accept(self.now);
            }
        }
    }

    /// A failed accept: shed a connection through the reserve, or pause accepting (the
    /// armed accepts are cancelled, and armed again when the pause is over).
    pub(super) fn accept_failed(&mut self, err: io::Error) {
        let failure = sys::accept_failure(&err);
        // The reserve sheds a connection when normal descriptors ran out; accepts into
        // direct descriptors take none.
        let listener = match self.table {
            None => self.listener.as_ref().map(|l| l.as_raw_fd()),
            Some(_) => None,
        };
        let reserve = &mut self.reserve;
        let shed = || listener.is_some_and(|l| reserve.shed(l));
        let step = policy::after_accept_error(MODEL, &err, failure, &self.counters, shed);
        if step == AcceptStep::Pause && self.timers.accept_paused_until.is_none() {
            self.timers.pause_accept(self.now);
            self.cancel_accepts();
        }
    }

    /// Cancel every accept in flight (their completions end them).
    pub(super) fn cancel_accepts(&mut self) {
        if let Some(accept) = self.accept {
            self.cancel(None, Target::Op(accept));
        }
        let direct = self.table.as_ref().map(|t| t.accepts.clone());
        for accept in direct.into_iter().flatten() {
            self.cancel(None, Target::Op(accept));
        }
    }

    /// Serve a connection the kernel accepted, or close it at once when shutting down or
    /// over the connection limit. `peer` is its address if the accept gave it.
    pub(super) fn open(&mut self, socket: Socket, peer: Option<SocketAddr>) {
        if self.timers.shutdown_deadline.is_some() || self.exiting {
            // Accepted by the kernel before the accept's cancel landed (without
            // DEFER_TASKRUN completions keep coming in any enter). Shutdown has asked every
            // session to close already: serving this one would outlive it.
            self.counters.refused();
            tracing::debug!(model = %MODEL, "refused: shutting down");
            return self.discard(socket);
        }
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %MODEL, "refused: connection limit reached");
            return self.discard(socket);
        }
        // Multishot accept returns no address. A connection reset while it waited in the
        // accept queue has none left (ENOTCONN): it still becomes a session, with an
        // unspecified peer, and ends as Reset on its first receive, as with accept4.
        let looked_up = || match &socket {
            Socket::Fd(fd) => socket2::SockRef::from(fd)
                .peer_addr()
                .map(|a| a.as_socket()),
            Socket::Direct(_) => Ok(None),
        };
        let peer = match peer.map(|p| Ok(Some(p))).unwrap_or_else(looked_up) {
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
        // A direct descriptor inherited TCP_NODELAY from the listener (see `mod.rs`).
        if let Socket::Fd(fd) = &socket {
            sys::tune_accepted(fd);
        }
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
                socket,
                conn: Some(conn),
                recv: Recv::Idle,
                send: None,
                flow: Flow::default(),
                activity: Activity::new(self.timers.stamp(self.now)),
                linger: None,
            },
        );
        // Arms the receive and sends whatever `opened` queued.
        self.flush(slot);
    }

    /// Arm again the receives that ran out of buffers last turn (see [`Recv::Starved`]):
    /// called before the wait, which publishes the recycled buffers first.
    fn rearm_starved(&mut self) {
        for slot in std::mem::take(&mut self.starved) {
            let Some(entry) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if entry.recv != Recv::Starved {
                continue;
            }
            entry.recv = Recv::Idle;
            if entry.conn.is_some() {
                self.flush(slot);
            } else if entry.linger.is_some() {
                self.arm_linger_recv(slot);
            } else {
                self.release_if_done(slot);
            }
        }
    }

    pub(super) fn on_recv(&mut self, slot: u32, result: i32, flags: u32, done: bool) {
        // The buffer the completion carries, if any, goes back to the ring exactly once:
        // after its bytes were delivered, or at once if there are none to deliver (a
        // completion without data may carry one: the kernel picked it before it saw the end
        // of stream). A buffer kept is one fewer for every later receive; one given back
        // twice could be handed to two receives at once.
        let filled = self.ring.bufs.filled(flags, result.max(0));
        let now = self.timers.stamp(self.now);
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            tracing::warn!(slot, "receive completion for a free slot");
            if let Some(filled) = filled {
                self.ring.bufs.recycle(filled);
            }
            return;
        };
        if done {
            entry.recv = Recv::Idle;
        }
        let filled = match filled {
            Some(filled) if result <= 0 => {
                self.ring.bufs.recycle(filled);
                None
            }
            filled => filled,
        };
        let mut close = None;
        if result > 0 {
            match filled {
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
                // armed again next turn, after the buffers recycled in this one are
                // published (`Recv::Starved`).
                libc::ENOBUFS if done => {
                    entry.recv = Recv::Starved;
                    self.starved.push(slot);
                }
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
        entry.send = None;
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
                let sock = entry.socket.sock();
                self.submit_send(slot, sock, buf);
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
        // A spill ring is woken when the primaries' tables are full: it accepts now.
        let accepting = self.timers.shutdown_deadline.is_none()
            && self.timers.accept_paused_until.is_none()
            && self.table.as_ref().is_some_and(|t| !t.primary);
        if accepting {
            if let Err(e) = self.arm_accept() {
                tracing::warn!(model = %MODEL, "arming a spill ring's accept: {e}; retrying later");
                self.timers.pause_accept(self.now);
            }
        }
    }
}

impl<H: Handler> Worker<H> {
    /// The answer to a look at a direct descriptor's unacknowledged output (SIOCOUTQ): the
    /// idle sweep or a lingering close decides with it, as they decide with `TCP_INFO` on
    /// a normal descriptor.
    pub(super) fn on_unsent(&mut self, slot: u32, look: Look, result: i32) {
        let progress = unsent_progress(result);
        let idle = self.core.config.idle_timeout;
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        match look {
            Look::Idle => {
                if let (Some(_), Some(idle)) = (&entry.conn, idle) {
                    let check =
                        (entry.activity).check_given(&self.timers, self.now, idle, progress);
                    if check == IdleCheck::Idle {
                        return self.close(slot, CloseReason::IdleTimeout, Closing::Abortive);
                    }
                }
            }
            Look::Linger(since) => {
                let ours = entry.linger.is_some_and(|l| l.since == since);
                if ours && timers::linger_over_given(progress) {
                    self.finish_linger(slot);
                }
            }
        }
        self.release_if_done(slot);
    }

    /// A direct descriptor's close completed: its slot is free for the next accept.
    pub(super) fn on_close(&mut self, index: u32, result: i32) {
        if result < 0 {
            let err = io::Error::from_raw_os_error(-result);
            tracing::warn!(model = %MODEL, index, "closing a direct descriptor: {err}");
        }
        if let Some(table) = self.table.as_mut() {
            table.used_changed(false);
        }
        let accepting = self.timers.shutdown_deadline.is_none()
            && !self.exiting
            && self.timers.accept_paused_until.is_none();
        if accepting {
            if let Err(e) = self.arm_accept() {
                tracing::warn!(model = %MODEL, "re-arming accept: {e}; retrying later");
                self.timers.pause_accept(self.now);
            }
        }
    }
}

/// A direct descriptor's [`SendProgress`] from its unacknowledged bytes (SIOCOUTQ): the
/// complement of that count stands for the acknowledged bytes (see `SendProgress::acked`).
fn unsent_progress(result: i32) -> io::Result<SendProgress> {
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result));
    }
    Ok(SendProgress {
        acked: u64::from(u32::MAX - result as u32),
        outstanding: result > 0,
    })
}

#[cfg(test)]
mod tests {
    /// What a connection costs the worker besides its session: its slab entry (the armed
    /// receive keeps nothing in the op table). 150,000 connections are held in one
    /// process, in at most 300 bytes each with the session (issue 12).
    #[test]
    fn a_connection_entry_stays_small() {
        let entry = std::mem::size_of::<Option<super::Connection<()>>>();
        assert!(
            entry <= 88,
            "a connection's slab entry grew to {entry} bytes"
        );
    }
}
