//! The event loop every readiness model shares.
//!
//! polling, select, poll, signal-driven I/O and epoll all answer one question, "which
//! sockets can I read or write without blocking?", in different ways. Each answers it in a
//! [`Selector`]; everything else (accepting, reading into one scratch buffer, calling the
//! handler, writing the outbox, back-pressure, idle timeouts, shutdown) is written once here.
//!
//! The loop keeps two hints per connection, `readable` and `writable`, set by events and
//! cleared only when a call returns EAGAIN. That makes it correct for edge-triggered
//! selectors (epoll with EPOLLET, real-time signals), which report a change once, and for
//! level-triggered ones (select, poll), which keep reporting it.

pub(crate) mod watched;

use crate::close::CloseReason;
use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::policy::{self, AcceptStep, Closing, Flow, Next};
use crate::runtime::slab::Slab;
use crate::runtime::timers::{Activity, Linger, Stamp, Timers};
use crate::runtime::{Core, Wake};
use crate::session::{CloseRequest, Session};
use crate::stats::Counters;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a connection wants to hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    /// Tell when reading would not block.
    pub(crate) read: bool,
    /// Tell when writing would not block.
    pub(crate) write: bool,
}

impl Interest {
    /// Readable only.
    pub(crate) const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable and writable.
    pub(crate) const BOTH: Interest = Interest {
        read: true,
        write: true,
    };
    /// Nothing (a paused listener).
    pub(crate) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// One readiness report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// The token the descriptor was registered with.
    pub(crate) token: usize,
    /// Reading would not block (data, end of stream, an error, or a pending connection).
    pub(crate) readable: bool,
    /// Writing would not block (or would fail at once).
    pub(crate) writable: bool,
    /// The peer hung up or the socket failed (EPOLLRDHUP, HUP, ERR): read to the end.
    pub(crate) hangup: bool,
}

/// The token of a worker's listening socket.
pub(crate) const LISTENER: usize = usize::MAX;

/// Tokens with this bit name a lingering close (a socket whose session has ended, reading
/// until the peer's FIN), not a connection.
const LINGERING: usize = 1 << (usize::BITS - 2);

/// How one readiness model waits. A selector belongs to one worker thread and is created
/// on it.
pub(crate) trait Selector: Sized + 'static {
    /// The model, for errors and logs.
    const MODEL: Model;

    /// `true` if readiness is reported once per change (the loop then registers read and
    /// write interest once and never changes it), `false` if it is reported for as long as
    /// it lasts (the loop then keeps interest exact, or the wait would return at once).
    const EDGE_TRIGGERED: bool;

    /// `true` if, after a read that returned less than asked, the loop may wait for the
    /// next event instead of reading until EAGAIN: the selector reports the socket again if
    /// anything is left, or sets [`Event::hangup`] when a FIN may sit behind the data. That
    /// saves a `recv` returning EAGAIN per message. `false` (the safe default) for a
    /// selector that cannot promise it (signals: a FIN merged into a data signal).
    const SHORT_READ_DRAINS: bool = false;

    /// Create the selector on the worker thread that will use it.
    fn new() -> io::Result<Self>;

    /// A handle other threads use to interrupt [`Selector::select`].
    fn waker(&self) -> Arc<dyn Wake>;

    /// Start watching `fd`. An error refuses the connection (select's FD_SETSIZE).
    fn register(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()>;

    /// Change what `fd` is watched for.
    fn reregister(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()>;

    /// Stop watching `fd` (called before it is closed).
    fn deregister(&mut self, fd: RawFd, token: usize) -> io::Result<()>;

    /// Wait until something is ready, the waker fires, or `timeout` passes; append what is
    /// ready to `events`. EINTR may be returned; the loop just goes round again.
    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;

    /// Told after each round whether it moved any byte or connection (the polling model
    /// sleeps after a round that did not).
    fn round_done(&mut self, progressed: bool) {
        let _ = progressed;
    }
}

/// Start the loop for selector `S`: one thread per worker, each with its own selector and
/// listener.
pub(crate) fn start<S: Selector, H: Handler>(
    core: &Arc<Core<H>>,
) -> Result<crate::runtime::Started, Error> {
    let (listeners, local_addr) = sys::listeners(
        core.config.addr,
        core.config.worker_count(),
        core.config.backlog,
        true,
    )?;
    let threads = crate::runtime::spawn_workers(core, S::MODEL, listeners, |core, listener| {
        let mut worker = Worker::<S, H>::new(core, listener)?;
        Ok(Box::new(move || worker.run()))
    })?;
    Ok((threads, local_addr))
}

/// One connection as the loop sees it.
struct Entry<St> {
    fd: OwnedFd,
    conn: Conn<St>,
    /// The last event said readable and no read has returned EAGAIN since.
    readable: bool,
    /// Likewise for writing.
    writable: bool,
    /// What the connection policy keeps: FIN seen, back-pressure, closing.
    flow: Flow,
    /// An event said the peer hung up: a short read no longer proves the socket empty.
    hangup: bool,
    /// Interest registered with a level-triggered selector.
    interest: Interest,
    /// For the idle timeout.
    activity: Activity,
}

/// A socket whose session ended with a FIN: read and discard until the peer's FIN.
struct Lingerer {
    fd: OwnedFd,
    linger: Linger,
}

/// Reads per service call before other connections get a turn.
const READ_BUDGET: usize = 16;
/// Accepts per round before connections get a turn.
const ACCEPT_BUDGET: usize = 128;
/// The read buffer shared by every connection of a worker.
const SCRATCH: usize = 64 * 1024;

struct Worker<S: Selector, H: Handler> {
    core: Arc<Core<H>>,
    selector: S,
    listener: Option<OwnedFd>,
    entries: Slab<Entry<H::State>>,
    /// Closes in progress, keyed by their token without [`LINGERING`].
    lingering: Slab<Lingerer>,
    mailbox: Arc<Mailbox>,
    /// The mailbox's queue, swapped out each round (its allocation is reused).
    mail: Vec<Session>,
    counters: Arc<Counters>,
    scratch: Box<[u8]>,
    events: Vec<Event>,
    /// Connections to service without waiting for an event (new, or out of budget).
    ready: Vec<usize>,
    accept_ready: bool,
    reserve: sys::Reserve,
    now: Instant,
    timers: Timers,
    progressed: bool,
}

impl<S: Selector, H: Handler> Worker<S, H> {
    fn new(core: Arc<Core<H>>, listener: OwnedFd) -> Result<Self, Error> {
        let mut selector = S::new().map_err(Error::setup(S::MODEL, "creating the selector"))?;
        selector
            .register(listener.as_raw_fd(), LISTENER, Interest::READ)
            .map_err(Error::setup(S::MODEL, "watching the listener"))?;
        let waker = selector.waker();
        core.add_waker(waker.clone());
        let counters = core.counters.add_worker();
        let mailbox = Arc::new(Mailbox::new(waker, counters.clone()));
        let now = Instant::now();
        Ok(Worker {
            selector,
            listener: Some(listener),
            entries: Slab::new(),
            lingering: Slab::new(),
            mailbox,
            mail: Vec::new(),
            counters,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            events: Vec::with_capacity(1024),
            ready: Vec::new(),
            accept_ready: true,
            reserve: sys::Reserve::new(),
            now,
            timers: Timers::new(core.config.idle_timeout, now),
            progressed: false,
            core,
        })
    }

    fn run(&mut self) -> Result<(), Error> {
        loop {
            let timeout = self.timeout();
            self.events.clear();
            match self.selector.select(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.abort_all(CloseReason::Error);
                    return Err(Error::Setup {
                        model: S::MODEL,
                        context: "waiting for events",
                        source: e,
                    });
                }
            }
            self.now = Instant::now();
            self.progressed = false;

            let mut events = std::mem::take(&mut self.events);
            for event in &events {
                if event.token == LISTENER {
                    self.accept_ready = true;
                    continue;
                }
                if event.token & LINGERING != 0 {
                    self.service_lingerer(event.token & !LINGERING);
                    continue;
                }
                if let Some(entry) = self.entries.get_mut(event.token) {
                    entry.readable |= event.readable;
                    entry.writable |= event.writable;
                    entry.hangup |= event.hangup;
                    self.service(event.token);
                }
            }
            events.clear();
            self.events = events;

            if self.accept_ready
                && self.listener.is_some()
                && self.timers.accept_paused_until.is_none()
            {
                self.accept_some();
            }
            let mut ready = std::mem::take(&mut self.ready);
            for &token in &ready {
                if token & LINGERING != 0 {
                    self.service_lingerer(token & !LINGERING);
                } else {
                    self.service(token);
                }
            }
            ready.clear();
            if self.ready.is_empty() {
                // Keep the allocation for the next round.
                self.ready = ready;
            }
            self.drain_mailbox();
            self.selector.round_done(self.progressed);

            if self.end_turn() {
                return Ok(());
            }
        }
    }

    /// How long the next wait may last.
    fn timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty()
            || (self.accept_ready
                && self.listener.is_some()
                && self.timers.accept_paused_until.is_none())
        {
            return Some(Duration::ZERO);
        }
        self.timers.next_wait()
    }

    fn accept_some(&mut self) {
        let Some(listener) = self.listener.as_ref().map(|l| l.as_raw_fd()) else {
            return;
        };
        for _ in 0..ACCEPT_BUDGET {
            match sys::accept(listener, true) {
                Ok((fd, peer)) => {
                    self.progressed = true;
                    self.open(fd, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let reserve = &mut self.reserve;
                    let failure = sys::accept_failure(&e);
                    let shed = || reserve.shed(listener);
                    let step =
                        policy::after_accept_error(S::MODEL, &e, failure, &self.counters, shed);
                    if step == AcceptStep::Pause {
                        self.pause_accept(listener);
                        return;
                    }
                }
            }
        }
    }

    /// Stop accepting for a while (see [`Timers::pause_accept`]).
    fn pause_accept(&mut self, listener: RawFd) {
        self.timers.pause_accept(self.now);
        if !S::EDGE_TRIGGERED {
            // Without this a level-triggered selector reports the listener every round;
            // failing it costs only those wake-ups.
            if let Err(e) = self.selector.reregister(listener, LISTENER, Interest::NONE) {
                tracing::warn!(model = %S::MODEL, "pausing the listener: {e}");
            }
        }
    }

    fn open(&mut self, fd: OwnedFd, peer: std::net::SocketAddr) {
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %S::MODEL, %peer, "refused: connection limit reached");
            return;
        }
        let token = self.entries.reserve();
        let interest = if S::EDGE_TRIGGERED {
            Interest::BOTH
        } else {
            Interest::READ
        };
        if let Err(e) = self.selector.register(fd.as_raw_fd(), token, interest) {
            self.core.release();
            self.entries.unreserve(token);
            self.counters.refused();
            tracing::warn!(model = %S::MODEL, %peer, "refused: {e}");
            return;
        }
        sys::tune_accepted(&fd);
        self.counters.accepted();
        let session = Session::new(
            peer,
            token,
            self.mailbox.clone(),
            self.core.config.send_queue_limit,
        );
        let conn = Conn::open(&self.core, session);
        self.entries.put(
            token,
            Entry {
                fd,
                conn,
                readable: true,
                writable: true,
                flow: Flow::default(),
                hangup: false,
                interest,
                activity: Activity::new(self.timers.stamp(self.now)),
            },
        );
        // Data may already wait (edge-triggered selectors and signals report only changes),
        // and `opened` may have queued output.
        self.ready.push(token);
    }

    /// Read, call the handler, write, and decide the connection's fate.
    fn service(&mut self, token: usize) {
        let Some(entry) = self.entries.get_mut(token) else {
            return;
        };
        let mut turn = Turn {
            core: &self.core,
            scratch: &mut self.scratch,
            counters: &self.counters,
            now: self.timers.stamp(self.now),
            progressed: &mut self.progressed,
            ready: &mut self.ready,
            token,
            short_read_drains: S::SHORT_READ_DRAINS,
        };
        match drive(entry, &mut turn) {
            Next::Close(reason, how) => self.close(token, reason, how),
            Next::Keep { read, write } => {
                if S::EDGE_TRIGGERED {
                    return;
                }
                let want = Interest { read, write };
                if want != entry.interest {
                    match self.selector.reregister(entry.fd.as_raw_fd(), token, want) {
                        Ok(()) => entry.interest = want,
                        Err(e) => {
                            tracing::warn!(model = %S::MODEL, "changing interest: {e}");
                            self.close(token, CloseReason::Error, Closing::Abortive);
                        }
                    }
                }
            }
        }
    }

    /// End a session. An orderly close sends a FIN after the output; unless the peer's
    /// FIN came already, the socket then lingers (see [`Linger`]).
    fn close(&mut self, token: usize, reason: CloseReason, how: Closing) {
        let Some(entry) = self.entries.remove(token) else {
            return;
        };
        let fd = entry.fd.as_raw_fd();
        let _ = self.selector.deregister(fd, token);
        match how {
            Closing::Orderly => sys::shutdown_write(fd),
            Closing::Abortive => {
                let _ = socket2::SockRef::from(&entry.fd).set_linger(Some(Duration::ZERO));
            }
        }
        entry.conn.close(&self.core, reason);
        if how == Closing::Orderly && !entry.flow.read_closed {
            self.linger(entry.fd);
        }
    }

    /// Watch a socket whose session ended with a FIN until its linger is over.
    fn linger(&mut self, fd: OwnedFd) {
        let now = self.timers.stamp(self.now);
        let key = self.lingering.reserve();
        if let Err(e) = self
            .selector
            .register(fd.as_raw_fd(), LINGERING | key, Interest::READ)
        {
            // Closing now may reset the connection; nothing else can be done.
            tracing::debug!(model = %S::MODEL, "lingering: {e}");
            self.lingering.unreserve(key);
            return;
        }
        self.lingering.put(
            key,
            Lingerer {
                fd,
                linger: Linger::new(now),
            },
        );
        self.timers.linger(key, now, self.now);
        // Input may be waiting already, and edge-triggered selectors report only changes.
        self.ready.push(LINGERING | key);
    }

    /// Read and discard what a lingering socket has; end the linger at the peer's FIN.
    fn service_lingerer(&mut self, key: usize) {
        let now = self.timers.stamp(self.now);
        let Some(lingerer) = self.lingering.get_mut(key) else {
            return;
        };
        for _ in 0..READ_BUDGET {
            match sys::recv(lingerer.fd.as_raw_fd(), &mut self.scratch) {
                Ok(0) => return self.end_linger(key),
                Ok(_) => {
                    self.progressed = true;
                    lingerer.linger.heard(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.end_linger(key),
            }
        }
        self.ready.push(LINGERING | key);
    }

    fn drain_mailbox(&mut self) {
        let mut mail = std::mem::take(&mut self.mail);
        self.mailbox.swap(&mut mail);
        for session in mail.drain(..) {
            let token = session.slot();
            let owned = matches!(
                self.entries.get(token),
                Some(entry) if entry.conn.session().same(&session)
            );
            if owned {
                self.service(token);
            }
        }
        self.mail = mail;
    }
}

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
            let _ = self.selector.deregister(listener.as_raw_fd(), LISTENER);
        }
    }

    fn resume_accepting(&mut self) {
        self.accept_ready = true;
        if let (false, Some(listener)) = (S::EDGE_TRIGGERED, &self.listener) {
            let fd = listener.as_raw_fd();
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

    fn is_idle(&mut self, token: usize, idle: Duration) -> bool {
        let Some(entry) = self.entries.get_mut(token) else {
            return false;
        };
        let fd = entry.fd.as_raw_fd();
        (entry.activity).is_idle(&self.timers, self.now, idle, || sys::send_progress(fd))
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
        let progress = || sys::send_progress(lingerer.fd.as_raw_fd());
        Some(
            lingerer
                .linger
                .over(&self.timers, self.now, limit, progress),
        )
    }

    fn end_linger(&mut self, key: usize) {
        if let Some(lingerer) = self.lingering.remove(key) {
            let _ = self
                .selector
                .deregister(lingerer.fd.as_raw_fd(), LINGERING | key);
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

/// What one service of a connection needs besides the connection.
struct Turn<'a, H: Handler> {
    core: &'a Core<H>,
    /// The worker's read buffer.
    scratch: &'a mut [u8],
    counters: &'a Counters,
    now: Stamp,
    /// Set when a byte or a connection moved.
    progressed: &'a mut bool,
    /// Connections to service again without waiting for an event.
    ready: &'a mut Vec<usize>,
    token: usize,
    /// [`Selector::SHORT_READ_DRAINS`].
    short_read_drains: bool,
}

/// The readiness side of a connection: read what the socket has (within a budget), let
/// the handler consume it, write what it queued, and let the policy decide what follows.
fn drive<H: Handler>(entry: &mut Entry<H::State>, turn: &mut Turn<'_, H>) -> Next {
    let fd = entry.fd.as_raw_fd();
    let mut reads = 0;
    loop {
        // Read once, if reading may succeed and the policy wants it: while the session is
        // open and not paused by back-pressure, or while it closes (input is discarded).
        let mut more = false;
        if entry.readable && entry.flow.wants_read() {
            if reads == READ_BUDGET {
                // Let the others have a turn; come back without waiting for an event.
                turn.ready.push(turn.token);
            } else {
                reads += 1;
                match sys::recv(fd, turn.scratch) {
                    Ok(0) => {
                        entry.flow.read_closed = true;
                        *turn.progressed = true;
                    }
                    Ok(n) => {
                        *turn.progressed = true;
                        turn.counters.received(n);
                        entry.activity.input(turn.now);
                        // A short read emptied the queue, unless a FIN may sit behind
                        // the data (an edge-triggered selector would not report it
                        // again): then, or if the selector cannot tell, read to EAGAIN.
                        let drained =
                            turn.short_read_drains && !entry.hangup && n < turn.scratch.len();
                        entry.readable = !drained;
                        more = !drained;
                        if !entry.flow.closing {
                            if let Err(reason) = entry.conn.deliver(turn.core, &turn.scratch[..n]) {
                                return Next::Close(reason, Closing::Abortive);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => entry.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => more = true,
                    Err(e) => return Next::Close(sys::close_reason(&e), Closing::Abortive),
                }
            }
        }

        // Write what is queued, as far as the socket takes it (not for an aborted session).
        let session = entry.conn.session();
        let mut outbox = session.outbox();
        outbox.unschedule();
        let aborted = matches!(outbox.close_request(), Some(CloseRequest::Abort(_)));
        while !aborted && entry.writable && !outbox.pending().is_empty() {
            match sys::send(fd, outbox.pending()) {
                Ok(n) => {
                    *turn.progressed = true;
                    turn.counters.sent(n);
                    entry.activity.output(turn.now);
                    outbox.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => entry.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Next::Close(sys::close_reason(&e), Closing::Abortive),
            }
        }
        let was_paused = entry.flow.paused;
        let next = entry.flow.settle(&mut outbox, &turn.core.config);
        drop(outbox);
        if was_paused && !entry.flow.paused {
            // Back-pressure lifted: what waits in the socket can be read now.
            more = entry.readable;
        }
        if !more || matches!(next, Next::Close(..)) {
            return next;
        }
    }
}
