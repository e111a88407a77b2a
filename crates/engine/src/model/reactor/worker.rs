//! One worker of the readiness loop: its selector, its listener, its connections, and the
//! loop that waits for events and services what they name.

use super::drive::{drive, Entry, Lingerer, Turn, READ_BUDGET};
use super::{Event, Interest, Selector, LINGERING, LISTENER};
use crate::close::CloseReason;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::lifecycle::EventLoop;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::policy::{self, AcceptStep, Closing, Flow, Next};
use crate::runtime::slab::Slab;
use crate::runtime::timers::{Activity, Linger, Timers};
use crate::runtime::Core;
use crate::session::Session;
use crate::stats::Counters;
use crate::sys;
use crate::sys::{AsRaw, RawSock, Sock};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts per round before connections get a turn.
const ACCEPT_BUDGET: usize = 128;
/// The read buffer shared by every connection of a worker.
const SCRATCH: usize = 64 * 1024;

pub(super) struct Worker<S: Selector, H: Handler> {
    pub(super) core: Arc<Core<H>>,
    pub(super) selector: S,
    pub(super) listener: Option<Sock>,
    pub(super) entries: Slab<Entry<H::State>>,
    /// Closes in progress, keyed by their token without [`LINGERING`].
    pub(super) lingering: Slab<Lingerer>,
    pub(super) mailbox: Arc<Mailbox>,
    /// The mailbox's queue, swapped out each round (its allocation is reused).
    pub(super) mail: Vec<Session>,
    pub(super) counters: Arc<Counters>,
    pub(super) scratch: Box<[u8]>,
    pub(super) events: Vec<Event>,
    /// Connections to service without waiting for an event (new, or out of budget).
    pub(super) ready: Vec<usize>,
    pub(super) accept_ready: bool,
    pub(super) reserve: sys::Reserve,
    pub(super) now: Instant,
    pub(super) timers: Timers,
    pub(super) progressed: bool,
}

impl<S: Selector, H: Handler> Worker<S, H> {
    pub(super) fn new(core: Arc<Core<H>>, listener: Sock) -> Result<Self, Error> {
        let mut selector = S::new().map_err(Error::setup(S::MODEL, "creating the selector"))?;
        selector
            .register(listener.raw(), LISTENER, Interest::READ)
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

    pub(super) fn run(&mut self) -> Result<(), Error> {
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
        let Some(listener) = self.listener.as_ref().map(|l| l.raw()) else {
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
    fn pause_accept(&mut self, listener: RawSock) {
        self.timers.pause_accept(self.now);
        if !S::EDGE_TRIGGERED {
            // Without this a level-triggered selector reports the listener every round;
            // failing it costs only those wake-ups.
            if let Err(e) = self.selector.reregister(listener, LISTENER, Interest::NONE) {
                tracing::warn!(model = %S::MODEL, "pausing the listener: {e}");
            }
        }
    }

    fn open(&mut self, fd: Sock, peer: std::net::SocketAddr) {
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
        if let Err(e) = self.selector.register(fd.raw(), token, interest) {
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
        self.timers.watch_idle(token, session.id(), self.now);
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
    pub(super) fn service(&mut self, token: usize) {
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
                    match self.selector.reregister(entry.fd.raw(), token, want) {
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
    pub(super) fn close(&mut self, token: usize, reason: CloseReason, how: Closing) {
        let Some(entry) = self.entries.remove(token) else {
            return;
        };
        let fd = entry.fd.raw();
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
    fn linger(&mut self, fd: Sock) {
        let now = self.timers.stamp(self.now);
        let key = self.lingering.reserve();
        if let Err(e) = self
            .selector
            .register(fd.raw(), LINGERING | key, Interest::READ)
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
            match sys::recv(lingerer.fd.raw(), &mut self.scratch) {
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
