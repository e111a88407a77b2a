//! One worker of an overlapped model: its connections, its ops, its listener (if it has
//! one), and the loop that turns completions into handler calls.
//!
//! Each loop turn: wait for completions through the [`Source`] (until the nearest timer),
//! apply them, serve the mailbox (sends and closes asked for by other threads), then the
//! shared lifecycle ([`EventLoop::end_turn`]). Everything between bytes and the application
//! goes through [`Conn`]; everything Winsock borrows goes through the op table [`Ops`].

use super::op::{self, Event as OpEvent, Kind, Op, Ops};
use super::{Event, Outcome, Source};
use crate::chunks::Chunks;
use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::policy::{self, AcceptStep, Closing, Flow, Next};
use crate::runtime::slab::Slab;
use crate::runtime::timers::{Activity, Linger, Timers};
use crate::runtime::Core;
use crate::session::{CloseRequest, Session};
use crate::stats::Counters;
use crate::sys::{self, AsRaw, RawSock, Sock};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use windows_sys::Win32::Networking::WinSock::WSA_OPERATION_ABORTED;

/// `AcceptEx` ops kept posted on the listener: the book's default.
const ACCEPTS: usize = 10;
/// Receive buffer size: the book's memory-pool unit.
const RECV_BUF: usize = 4096;
/// Receive buffers kept for reuse per worker.
const SPARE_BUFS: usize = 1024;
/// How long the final drain of cancelled ops may take when a worker exits.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// One connection. Its slot and socket are kept until every op on it has completed, even
/// after the session was closed, and while its close lingers.
pub(super) struct Connection<S> {
    pub(super) socket: Sock,
    /// The session; `None` once closed (the slot waits for its ops, or its linger).
    pub(super) conn: Option<Conn<S>>,
    /// A receive is posted.
    pub(super) receiving: bool,
    /// A send is posted (at most one: it keeps the byte order).
    pub(super) sending: bool,
    /// What the connection policy keeps: FIN seen, back-pressure, closing.
    pub(super) flow: Flow,
    /// For the idle timeout.
    pub(super) activity: Activity,
    /// The session ended with a FIN and the socket reads until the peer's.
    pub(super) linger: Option<Linger>,
}

/// The listener, on the worker that accepts.
pub(super) struct Listener {
    pub(super) socket: Sock,
    ipv6: bool,
    /// `AcceptEx` ops in flight.
    pub(super) posted: usize,
}

pub(crate) struct Worker<H: Handler, S: Source> {
    pub(super) source: S,
    pub(super) ops: Ops,
    pub(super) core: Arc<Core<H>>,
    pub(super) conns: Slab<Connection<H::State>>,
    pub(super) listener: Option<Listener>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) counters: Arc<Counters>,
    /// Recycled receive buffers: the book's memory pool.
    pool: Vec<Vec<u8>>,
    events: Vec<Event>,
    pub(super) now: Instant,
    pub(super) timers: Timers,
    pub(super) exiting: bool,
}

impl<H: Handler, S: Source> Worker<H, S> {
    /// Set up on the worker thread (the mailbox belongs to it), with the listener if this
    /// worker accepts.
    pub(crate) fn new(
        core: Arc<Core<H>>,
        mut source: S,
        listener: Option<Sock>,
    ) -> Result<Worker<H, S>, crate::Error> {
        let setup = |context| crate::Error::setup(S::MODEL, context);
        let listener = match listener {
            Some(socket) => {
                source
                    .attach_listener(socket.raw())
                    .map_err(setup("attaching the listener"))?;
                let ipv6 = core.config.addr.is_ipv6();
                Some(Listener {
                    socket,
                    ipv6,
                    posted: 0,
                })
            }
            None => None,
        };
        let waker = source.waker();
        core.add_waker(waker.clone());
        let counters = core.counters.add_worker();
        let mailbox = Arc::new(Mailbox::new(waker, counters.clone()));
        let now = Instant::now();
        let mut worker = Worker {
            source,
            ops: Ops::default(),
            conns: Slab::new(),
            listener,
            mailbox,
            counters,
            pool: Vec::new(),
            events: Vec::new(),
            now,
            timers: Timers::new(core.config.idle_timeout, now),
            exiting: false,
            core,
        };
        worker.post_accepts().map_err(setup("posting AcceptEx"))?;
        Ok(worker)
    }

    pub(crate) fn run(mut self) -> Result<(), crate::Error> {
        loop {
            let timeout = self.timers.next_wait();
            let mut events = std::mem::take(&mut self.events);
            if let Err(e) = self.source.wait(timeout, &mut events) {
                self.events = events;
                self.abort_all(CloseReason::Error);
                self.drain_ops();
                return Err(crate::Error::Setup {
                    model: S::MODEL,
                    context: "waiting for completions",
                    source: e,
                });
            }
            self.now = Instant::now();
            for event in events.drain(..) {
                self.apply(event);
            }
            self.events = events;
            self.drain_mailbox();
            if self.end_turn() {
                self.drain_ops();
                return Ok(());
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Done(overlapped, outcome) => {
                let Some(mut op) = self.ops.complete(overlapped) else {
                    tracing::warn!(model = %S::MODEL, "completion for an unknown op");
                    return;
                };
                self.source.reclaim(&mut op);
                let (bytes, error) = match outcome {
                    Outcome::Known(bytes, error) => (bytes, error),
                    Outcome::Ask => op.result(),
                };
                self.complete(*op, bytes as usize, error);
            }
            // The mailbox and the shutdown flag are looked at every turn.
            Event::Wake => {}
            Event::Adopt(socket) => self.open(socket),
        }
    }

    fn complete(&mut self, op: Op, bytes: usize, error: i32) {
        let Op { slot, kind, .. } = op;
        match (kind, slot) {
            (Kind::Recv { buf }, Some(slot)) => self.on_recv(slot, buf, bytes, error),
            (Kind::Send { buf }, Some(slot)) => self.on_send(slot, buf, bytes, error),
            (Kind::Accept { socket, .. }, _) => self.on_accept(socket, error),
            (_, None) => tracing::warn!(model = %S::MODEL, "a connection op without a slot"),
        }
    }

    // ----- posting -------------------------------------------------------------------

    /// Post `op`; on an immediate failure, the op comes back with the error.
    pub(super) fn post(&mut self, mut op: Box<Op>) -> Result<(), (io::Error, Box<Op>)> {
        if let Err(e) = self.source.prepare(&mut op) {
            return Err((e, op));
        }
        let event = op.event.as_ref().map(OpEvent::handle);
        match self.ops.post(op, self.source.routine()) {
            Ok(in_flight) => {
                self.source.posted(in_flight.overlapped(), event);
                Ok(())
            }
            Err((e, mut op)) => {
                self.source.reclaim(&mut op);
                Err((e, op))
            }
        }
    }

    /// Keep [`ACCEPTS`] `AcceptEx` ops posted on the listener (none while shutting down).
    pub(super) fn post_accepts(&mut self) -> io::Result<()> {
        if self.timers.shutdown_deadline.is_some() || self.exiting {
            return Ok(());
        }
        while let Some(listener) = self.listener.as_ref().filter(|l| l.posted < ACCEPTS) {
            let op = Op::accept(listener.socket.raw(), listener.ipv6)?;
            self.post(op).map_err(|(e, _)| e)?;
            if let Some(listener) = self.listener.as_mut() {
                listener.posted += 1;
            }
        }
        Ok(())
    }

    fn post_recv(&mut self, slot: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get(slot as usize) else {
            return Ok(());
        };
        if entry.receiving || self.exiting {
            return Ok(());
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.resize(RECV_BUF, 0);
        let op = Op::new(entry.socket.raw(), Some(slot), Kind::Recv { buf });
        match self.post(op) {
            Ok(()) => {
                if let Some(entry) = self.conns.get_mut(slot as usize) {
                    entry.receiving = true;
                }
                Ok(())
            }
            Err((e, op)) => {
                if let Kind::Recv { buf } = op.kind {
                    self.recycle(buf);
                }
                Err(e)
            }
        }
    }

    /// Post a send of `buf[sent..]`; a failure ends the session.
    fn post_send(&mut self, slot: u32, buf: Chunks) {
        let Some(entry) = self.conns.get(slot as usize) else {
            return;
        };
        let unsent = buf.len();
        let op = Op::new(entry.socket.raw(), Some(slot), Kind::Send { buf });
        match self.post(op) {
            Ok(()) => {
                if let Some(entry) = self.conns.get_mut(slot as usize) {
                    entry.sending = true;
                }
            }
            Err((e, _)) => {
                let reason = failed_post(S::MODEL, "a send", &e);
                if let Some(Connection {
                    conn: Some(conn), ..
                }) = self.conns.get(slot as usize)
                {
                    conn.session().outbox().finish(unsent);
                }
                self.close(slot, reason, Closing::Abortive);
            }
        }
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < SPARE_BUFS && buf.capacity() == RECV_BUF {
            self.pool.push(buf);
        }
    }

    // ----- completions ---------------------------------------------------------------

    fn on_accept(&mut self, socket: Sock, error: i32) {
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        listener.posted -= 1;
        let listener_raw = listener.socket.raw();
        if error == 0 {
            match op::update_accept_context(&socket, listener_raw) {
                Ok(()) => {
                    sys::tune_accepted(&socket);
                    if let Some(socket) = self.source.dispatch(socket) {
                        self.open(socket);
                    }
                }
                Err(e) => tracing::debug!(model = %S::MODEL, "SO_UPDATE_ACCEPT_CONTEXT: {e}"),
            }
        } else if error != WSA_OPERATION_ABORTED {
            self.accept_failed(io::Error::from_raw_os_error(error));
        }
        let stopping = self.timers.shutdown_deadline.is_some() || self.exiting;
        if stopping {
            if self.listener.as_ref().is_some_and(|l| l.posted == 0) {
                self.listener = None;
            }
        } else if self.timers.accept_paused_until.is_none() {
            if let Err(e) = self.post_accepts() {
                tracing::warn!(model = %S::MODEL, "posting AcceptEx: {e}; retrying later");
                self.timers.pause_accept(self.now);
            }
        }
    }

    /// A failed accept: the policy says retry (the next `AcceptEx` is posted at once) or
    /// pause (no new `AcceptEx` until the pause is over).
    fn accept_failed(&mut self, err: io::Error) {
        let failure = sys::accept_failure(&err);
        let step = policy::after_accept_error(S::MODEL, &err, failure, &self.counters, || false);
        if step == AcceptStep::Pause && self.timers.accept_paused_until.is_none() {
            self.timers.pause_accept(self.now);
        }
    }

    /// Serve a new connection.
    pub(super) fn open(&mut self, socket: Sock) {
        if self.timers.shutdown_deadline.is_some() || self.exiting {
            // Accepted before the cancel of the accepts landed: shutdown has asked every
            // session to close already, so serving this one would outlive it.
            self.counters.refused();
            tracing::debug!(model = %S::MODEL, "refused: shutting down");
            return;
        }
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %S::MODEL, "refused: connection limit reached");
            return;
        }
        let peer = match socket2::SockRef::from(&socket)
            .peer_addr()
            .map(|a| a.as_socket())
        {
            Ok(Some(peer)) => peer,
            other => {
                tracing::debug!(model = %S::MODEL, ?other, "accepted a connection without a peer address");
                let ip: std::net::IpAddr = match self.core.config.addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                };
                std::net::SocketAddr::new(ip, 0)
            }
        };
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
                receiving: false,
                sending: false,
                flow: Flow::default(),
                activity: Activity::new(self.timers.stamp(self.now)),
                linger: None,
            },
        );
        // Posts the receive and sends whatever `opened` queued.
        self.flush(slot);
    }

    fn on_recv(&mut self, slot: u32, buf: Vec<u8>, bytes: usize, error: i32) {
        let now = self.timers.stamp(self.now);
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            tracing::warn!(slot, "receive completion for a free slot");
            return;
        };
        entry.receiving = false;
        let mut close = None;
        if error == 0 && bytes > 0 {
            if let Some(conn) = entry.conn.as_mut() {
                self.counters.received(bytes);
                entry.activity.input(now);
                // A closing session discards what still arrives.
                if !entry.flow.closing {
                    if let Err(reason) = conn.deliver(&self.core, &buf[..bytes.min(buf.len())]) {
                        close = Some((reason, Closing::Abortive));
                    }
                }
            } else if let Some(linger) = entry.linger.as_mut() {
                linger.heard(now);
            }
        } else if error == 0 {
            entry.flow.read_closed = true;
        } else if error != WSA_OPERATION_ABORTED {
            let err = io::Error::from_raw_os_error(error);
            close = Some((sys::close_reason(&err), Closing::Abortive));
        }
        self.recycle(buf);
        let Some(entry) = self.conns.get(slot as usize) else {
            return;
        };
        if entry.conn.is_none() {
            if entry.linger.is_some() {
                if entry.flow.read_closed || close.is_some() || error != 0 || self.exiting {
                    self.finish_linger(slot);
                } else {
                    self.linger_recv(slot);
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

    fn on_send(&mut self, slot: u32, mut buf: Chunks, bytes: usize, error: i32) {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            tracing::warn!(slot, "send completion for a free slot");
            return;
        };
        entry.sending = false;
        let Some(conn) = entry.conn.as_ref() else {
            // Closed meanwhile: the bytes are dropped (the outbox is closed already).
            self.release_if_done(slot);
            return;
        };
        let remaining = buf.len();
        if error == 0 {
            let n = bytes.min(remaining);
            if n > 0 {
                self.counters.sent(n);
                entry.activity.output(self.timers.stamp(self.now));
                conn.session().outbox().finish(n);
            }
            buf.advance(n);
            if !buf.is_empty() {
                // A chunk (or a short send): the rest goes next, ahead of anything queued
                // since.
                self.post_send(slot, buf);
                return;
            }
            self.flush(slot);
        } else {
            conn.session().outbox().finish(remaining);
            let reason = if error == WSA_OPERATION_ABORTED {
                CloseReason::Error
            } else {
                sys::close_reason(&io::Error::from_raw_os_error(error))
            };
            self.close(slot, reason, Closing::Abortive);
        }
    }

    // ----- one connection ------------------------------------------------------------

    /// Send what is queued (one send at a time), close when asked and drained, apply
    /// back-pressure, and keep a receive posted exactly when reading is wanted (a paused
    /// connection is simply not given a new receive).
    pub(super) fn flush(&mut self, slot: u32) {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let Some(conn) = entry.conn.as_mut() else {
            return;
        };
        if std::mem::take(&mut entry.flow.redeliver) && !entry.flow.closing {
            // The application resumed its input: first what it left unconsumed.
            if let Err(reason) = conn.redeliver(&self.core) {
                return self.close(slot, reason, Closing::Abortive);
            }
        }
        let session = conn.session();
        let mut outbox = session.outbox();
        outbox.unschedule();
        let aborted = matches!(outbox.close_request(), Some(CloseRequest::Abort(_)));
        let mut send = None;
        if !aborted && !entry.sending && outbox.has_pending() && !self.exiting {
            // The queue is left with no buffer: an idle session holds none.
            send = Some(outbox.take());
        }
        let next = entry.flow.settle(session, &mut outbox, &self.core.config);
        drop(outbox);
        if entry.flow.redeliver {
            // Resumed: once more, now redelivering (after this send is posted).
            if let Some(buf) = send {
                self.post_send(slot, buf);
            }
            return self.flush(slot);
        }
        if let Some(buf) = send {
            self.post_send(slot, buf);
        }
        let want = match next {
            Next::Close(reason, how) => return self.close(slot, reason, how),
            Next::Keep { read, .. } => read,
        };
        // A failed send closed it.
        let Some(entry) = self.conns.get(slot as usize) else {
            return;
        };
        // A handler that left a backlog when it paused reads nothing new until it has been
        // handed the backlog again.
        if !want || entry.receiving || entry.conn.as_ref().is_none_or(|c| c.stalled()) {
            return;
        }
        if let Err(e) = self.post_recv(slot) {
            let reason = failed_post(S::MODEL, "a receive", &e);
            self.close(slot, reason, Closing::Abortive);
        }
    }

    /// End the session now. An orderly close sends a FIN after the output and, unless the
    /// peer's FIN came already, lingers (see [`Linger`]); the socket is closed once the
    /// linger is over and every op on it has completed.
    pub(super) fn close(&mut self, slot: u32, reason: CloseReason, how: Closing) {
        let now = self.timers.stamp(self.now);
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let Some(conn) = entry.conn.take() else {
            return;
        };
        match how {
            Closing::Orderly => sys::shutdown_write(entry.socket.raw()),
            Closing::Abortive => {
                let _ = socket2::SockRef::from(&entry.socket).set_linger(Some(Duration::ZERO));
            }
        }
        conn.close(&self.core, reason);
        if how == Closing::Orderly && !entry.flow.read_closed && !self.exiting {
            entry.linger = Some(Linger::new(now));
            self.timers.linger(slot as usize, now, self.now);
            self.linger_recv(slot);
            return;
        }
        self.finish(slot);
    }

    /// Keep a receive posted on a lingering socket (its data is discarded); end the
    /// linger if that fails.
    fn linger_recv(&mut self, slot: u32) {
        if let Err(e) = self.post_recv(slot) {
            tracing::debug!(model = %S::MODEL, "lingering: {e}");
            self.finish_linger(slot);
        }
    }

    /// The linger of a closed session is over: close its socket.
    pub(super) fn finish_linger(&mut self, slot: u32) {
        if let Some(entry) = self.conns.get_mut(slot as usize) {
            if entry.linger.take().is_some() {
                self.finish(slot);
            }
        }
    }

    /// A closed session's socket is done with: cancel what is in flight on it, and free
    /// the slot (closing the socket) once nothing is. The cancelled ops complete with
    /// `WSA_OPERATION_ABORTED`, and the last one frees the slot.
    pub(super) fn finish(&mut self, slot: u32) {
        let Some(entry) = self.conns.get(slot as usize) else {
            return;
        };
        if self.ops.on_conn(slot) > 0 {
            op::cancel_all(entry.socket.raw());
        } else {
            self.release_if_done(slot);
        }
    }

    /// Free a closed connection's slot and socket once nothing of it is in flight and it
    /// no longer lingers.
    pub(super) fn release_if_done(&mut self, slot: u32) {
        let done = matches!(
            self.conns.get(slot as usize),
            Some(entry) if entry.conn.is_none() && entry.linger.is_none()
        ) && self.ops.on_conn(slot) == 0;
        if done {
            // Dropping the entry closes the socket (with SO_LINGER 0 after an abort: RST).
            self.conns.remove(slot as usize);
        }
    }

    pub(super) fn drain_mailbox(&mut self) {
        for session in self.mailbox.take() {
            let slot = session.slot() as u32;
            let owned = matches!(
                self.conns.get(slot as usize),
                Some(Connection { conn: Some(conn), .. }) if conn.session().same(&session)
            );
            if owned {
                self.flush(slot);
            }
        }
    }

    /// The listener's socket, while it is open.
    pub(super) fn listener_raw(&self) -> Option<RawSock> {
        self.listener.as_ref().map(|l| l.socket.raw())
    }

    /// Cancel whatever is still in flight and wait for its completions, so that no op's
    /// memory or socket is released while Winsock may use it; leak what does not come
    /// back within [`EXIT_DRAIN`].
    pub(super) fn drain_ops(&mut self) {
        self.exiting = true;
        let deadline = Instant::now() + EXIT_DRAIN;
        let mut cancelled = false;
        while self.ops.live() > 0 {
            if !cancelled {
                for slot in self.conns.keys() {
                    if let Some(entry) = self.conns.get(slot) {
                        if self.ops.on_conn(slot as u32) > 0 {
                            op::cancel_all(entry.socket.raw());
                        }
                    }
                }
                if let Some(listener) = self.listener_raw() {
                    op::cancel_all(listener);
                }
                cancelled = true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    model = %S::MODEL,
                    ops = self.ops.live(),
                    "ops still in flight at exit; their memory is left allocated"
                );
                self.ops.abandon();
                break;
            }
            let mut events = std::mem::take(&mut self.events);
            if self.source.wait(Some(left), &mut events).is_err() {
                self.ops.abandon();
                break;
            }
            self.now = Instant::now();
            for event in events.drain(..) {
                self.apply(event);
            }
            self.events = events;
        }
        self.source.close();
    }
}

/// Why a session ends whose op could not be posted: a peer that reset the connection is an
/// ordinary end (logged at debug, as the readiness loop treats a failed `send`); anything
/// else is an error worth a warning.
fn failed_post(model: crate::config::Model, what: &str, e: &std::io::Error) -> CloseReason {
    let reason = crate::sys::close_reason(e);
    if reason == CloseReason::Reset {
        tracing::debug!(%model, "posting {what}: {e}");
    } else {
        tracing::warn!(%model, "posting {what}: {e}");
    }
    reason
}
