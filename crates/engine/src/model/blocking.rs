//! Blocking sockets, one reader and one writer thread per connection.
//!
//! The first model of the book, and the one its IOCP chapter argues against: every
//! connection gets threads of its own that sleep inside the kernel until their socket is
//! ready, so the code reads like the single-client echo server it grew from.
//!
//! **Syscalls.** One acceptor thread blocks in `accept4` on a blocking listener. Each
//! accepted connection gets a *reader* thread blocked in `recv`, which runs the handler and
//! then writes the reply itself with a blocking `send`, as the book's echo server does, and
//! a *writer* thread that sleeps on a condition variable paired with the session's outbox
//! mutex. The writer serves what the reader cannot: output queued by *other* threads while
//! the reader sleeps in `recv`, and the final flush after the peer's FIN. Whoever writes
//! takes every queued byte out of the outbox and sends it *outside* the lock, so other
//! threads keep queueing meanwhile; a flag under the lock makes sure only one of the two
//! is ever inside `send`. The idle timeout is `SO_RCVTIMEO` and `SO_SNDTIMEO`: `recv` fails
//! with `EAGAIN` after that long without data, and `send` after that long without the peer
//! taking a byte (a peer that floods without reading stalls the reply, and with it the
//! reading). Nothing here ever polls: each thread is parked in `accept`, `recv`, `send` or a
//! futex.
//!
//! **Closing in order.** Once a graceful close is asked for (by the application, or by a
//! shutdown) the reader keeps reading but discards what arrives, and the writer, once
//! everything queued is written, sends the FIN (`shutdown(SHUT_WR)`) and *lingers*: it
//! waits for the reader to see the peer's FIN, or for the peer to acknowledge everything
//! and fall silent (see `timers::Linger`). Closing with unread input would reset the
//! connection and drop output the kernel has not sent yet.
//!
//! **Waking a blocked thread.** A thread blocked in a syscall cannot be told to stop by a
//! flag. `shutdown(SHUT_RD)` makes a blocked `recv` (and, on a listener, `accept`) return;
//! `shutdown(SHUT_RDWR)` also fails a blocked `send`. So: the writer, when it is done (and
//! its linger is over), wakes its reader with `SHUT_RD` (never earlier: data arriving after
//! our FIN on a socket shut for reading makes Linux answer with a reset); a reader that
//! must abort wakes a writer stuck in `send` with `SO_LINGER 0` + `SHUT_RDWR`; and an abort
//! asked for by another thread (a full send queue, [`crate::Session::abort`]) while the
//! writer is inside `send` is carried out by the *keeper*, one thread per server that also
//! joins the threads of finished connections. Shutdown stops the listener with `SHUT_RD`
//! and asks every session to close in order; at its deadline it aborts the rest.
//!
//! **Cost.** Two threads, two stacks ([`crate::Config::thread_stack`], 128 KiB by default,
//! of which only the touched pages are resident) and a 16 KiB read buffer per connection;
//! one wake-up per request (the reader's), plus a futex wake of the writer when another
//! thread queues output. Thread creation (two `clone`s and their `mmap`s) is paid
//! per connection.
//!
//! **Limits.** Threads, not descriptors: two per connection against `kernel.threads-max`,
//! `kernel.pid_max` (32768 by default) and `vm.max_map_count` (two mappings per stack). A
//! connection whose threads cannot be created is refused and counted, never half-served.
//! The book puts 10,000 connections at "10-80 GB" of stacks; that is the *reserved* size of
//! 1-8 MB stacks, not what is resident. The driver's tests measure the real figure.
//!
//! Windows original: blocking sockets (one `CreateThread` per client).

use crate::close::CloseReason;
use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::policy::{self, AcceptStep};
use crate::runtime::timers::{linger_over, AckWatch, ACCEPT_BACKOFF, LINGER_QUIET};
use crate::runtime::{Core, Wake};
use crate::session::{CloseRequest, Outbox, Owner, Session, SessionId};
use crate::stats::Counters;
use crate::sys::{self, syscall};
use socket2::SockRef;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The model's name, for errors and logs.
const NAME: Model = Model::Blocking;
/// Each reader's receive buffer (on the heap; the stacks stay small).
const READ_BUFFER: usize = 16 * 1024;
/// A writer keeps a drained buffer of at most this capacity for its next write.
const KEEP_SPARE: usize = 64 * 1024;

/// Lock a mutex, ignoring poison: every structure here stays consistent between calls.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start the acceptor (and the keeper it owns); return once the listener is bound.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<crate::runtime::Started, Error> {
    let (listeners, local_addr) = sys::listeners(core.config.addr, 1, core.config.backlog, false)?;
    let Some(listener) = listeners.into_iter().next() else {
        return Err(Error::Worker {
            model: NAME,
            message: "no listener was bound".into(),
        });
    };
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry {
            listener: Some(listener.as_raw_fd()),
            conns: HashMap::new(),
        }),
        changed: Condvar::new(),
    });
    let keeper = Arc::new(Keeper::default());
    let keeper_thread = {
        let keeper = keeper.clone();
        thread::Builder::new()
            .name(format!("{NAME}-keeper"))
            .spawn(move || keeper.run())
            .map_err(Error::setup(NAME, "spawning the keeper thread"))?
    };
    let ceiling = thread_ceiling();
    tracing::info!(
        model = %NAME,
        sessions = ceiling,
        "the kernel's thread and mapping limits allow this many sessions"
    );
    let acceptor = Acceptor {
        ceiling,
        warned: std::sync::atomic::AtomicBool::new(false),
        counters: core.counters.add_worker(),
        core: core.clone(),
        shared: shared.clone(),
        keeper: keeper.clone(),
        listener,
    };
    let spawned = thread::Builder::new()
        .name(format!("{NAME}-accept"))
        .spawn(move || acceptor.run(keeper_thread));
    match spawned {
        Ok(thread) => {
            // Registered last, so that a shutdown always finds the acceptor running (or
            // about to run: it looks at the flag before its first accept).
            core.add_waker(Arc::new(ShutdownWaker(shared)));
            Ok((vec![thread], local_addr))
        }
        Err(e) => {
            // The keeper thread's handle went with the closure; stopping it lets it end.
            keeper.stop();
            Err(Error::setup(NAME, "spawning the acceptor thread")(e))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The registry of live connections, and shutdown.

/// What the acceptor, the connection threads and the shutdown waker share.
struct Shared {
    registry: Mutex<Registry>,
    /// Paired with `registry`: signalled when a connection leaves it and when shutdown
    /// begins (the acceptor waits on it while backing off and while draining).
    changed: Condvar,
}

struct Registry {
    /// The listening socket, while the acceptor has it open.
    listener: Option<RawFd>,
    /// Every live connection. A connection's descriptor stays open for as long as it is
    /// listed here, so the descriptors below may be used under the lock.
    conns: HashMap<SessionId, Entry>,
}

struct Entry {
    session: Session,
    link: Arc<Link>,
    /// The reader thread; the reader joins its writer itself.
    thread: JoinHandle<()>,
}

/// Registered with the core: wakes the blocked acceptor and every blocked reader, and asks
/// every session to flush and close.
struct ShutdownWaker(Arc<Shared>);

impl Wake for ShutdownWaker {
    fn wake(&self) {
        let registry = lock(&self.0.registry);
        if let Some(listener) = registry.listener {
            // On Linux this stops the listener and makes a blocked accept return EINVAL.
            sys::shutdown_read(listener);
        }
        for entry in registry.conns.values() {
            let mut outbox = entry.session.outbox();
            if outbox.is_closed() {
                continue;
            }
            // The writer flushes, sends the FIN and lingers; the reader discards input
            // meanwhile, and is woken by the writer once the linger is over.
            outbox.request_close(CloseRequest::Graceful(CloseReason::ServerShutdown));
            entry.link.nudge(&outbox);
        }
        self.0.changed.notify_all();
    }
}

// ---------------------------------------------------------------------------------------
// The acceptor.

/// Memory mappings one connection costs: two threads, each with a stack, its guard page,
/// and the alternate signal stack (with its guard) that Rust gives every thread. Measured:
/// 1,000 connections add 8,026 lines to /proc/PID/maps.
const MAPS_PER_CONNECTION: usize = 8;

/// Sessions the kernel lets this process hold before a thread or a stack cannot be made:
/// past `vm.max_map_count` an `mmap` for a stack fails, and an allocation failure aborts
/// the process instead of refusing a connection. Unknown limits count as no limit.
fn thread_ceiling() -> usize {
    let read =
        |path: &str| -> Option<usize> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // Room for everything else the process maps and runs.
    const MARGIN: usize = 1024;
    let by_maps =
        read("/proc/sys/vm/max_map_count").map(|n| n.saturating_sub(MARGIN) / MAPS_PER_CONNECTION);
    let by_pids = read("/proc/sys/kernel/pid_max").map(|n| n.saturating_sub(MARGIN) / 2);
    let by_threads = read("/proc/sys/kernel/threads-max").map(|n| n.saturating_sub(MARGIN) / 2);
    [by_maps, by_pids, by_threads]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(usize::MAX)
}

struct Acceptor<H: Handler> {
    /// Sessions past this are refused: see [`thread_ceiling`].
    ceiling: usize,
    /// The ceiling was reported once already.
    warned: std::sync::atomic::AtomicBool,
    core: Arc<Core<H>>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
    keeper: Arc<Keeper>,
    listener: OwnedFd,
}

impl<H: Handler> Acceptor<H> {
    fn run(self, keeper_thread: JoinHandle<()>) -> Result<(), Error> {
        let listener = self.listener.as_raw_fd();
        let mut reserve = sys::Reserve::new();
        while !self.core.is_shutting_down() {
            match sys::accept(listener, false) {
                Ok((fd, peer)) => self.admit(fd, peer),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if self.core.is_shutting_down() => break,
                Err(e) => {
                    let failure = sys::accept_failure(&e);
                    let shed = || reserve.shed(listener);
                    let step = policy::after_accept_error(NAME, &e, failure, &self.counters, shed);
                    if step == AcceptStep::Pause {
                        self.back_off();
                    }
                }
            }
        }
        self.drain();
        // Every connection is gone and every reader handed its thread to the keeper.
        self.keeper.stop();
        let keeper = keeper_thread.join();
        lock(&self.shared.registry).listener = None;
        drop(self.listener);
        keeper.map_err(|_| Error::Worker {
            model: NAME,
            message: "the keeper thread panicked".into(),
        })
    }

    /// Wait a little before accepting again; a closing connection or shutdown ends the
    /// wait early.
    fn back_off(&self) {
        let registry = lock(&self.shared.registry);
        if !self.core.is_shutting_down() {
            let _ = self.shared.changed.wait_timeout(registry, ACCEPT_BACKOFF);
        }
    }

    /// Turn an accepted socket into a session with its threads, or refuse it.
    fn admit(&self, fd: OwnedFd, peer: SocketAddr) {
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %NAME, %peer, "refused: connection limit reached");
            return;
        }
        sys::tune_accepted(&fd);
        if let Some(idle) = self.core.config.idle_timeout {
            // A zero timeout would mean "block forever" to the kernel.
            let idle = idle.max(Duration::from_millis(1));
            let socket = SockRef::from(&fd);
            if let Err(e) = socket
                .set_read_timeout(Some(idle))
                .and_then(|()| socket.set_write_timeout(Some(idle)))
            {
                self.core.release();
                self.counters.refused();
                tracing::warn!(model = %NAME, %peer, "refused: setting the idle timeout: {e}");
                return;
            }
        }
        let link = Arc::new_cyclic(|me| Link {
            me: me.clone(),
            fd: fd.as_raw_fd(),
            flags: AtomicU8::new(0),
            discarded: AtomicU32::new(0),
            to_writer: Condvar::new(),
            to_reader: Condvar::new(),
            keeper: self.keeper.clone(),
            counters: self.counters.clone(),
        });
        let session = Session::new(peer, 0, link.clone(), self.core.config.send_queue_limit);
        let id = session.id();
        let mut registry = lock(&self.shared.registry);
        if registry.conns.len() >= self.ceiling {
            self.core.release();
            self.counters.refused();
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    model = %NAME,
                    %peer,
                    sessions = self.ceiling,
                    "refused: the kernel's limits on threads and memory mappings (vm.max_map_count, kernel.pid_max) allow no more sessions; further refusals are logged at debug level"
                );
            } else {
                tracing::debug!(model = %NAME, %peer, "refused: thread ceiling reached");
            }
            return;
        }
        if self.core.is_shutting_down() {
            // The shutdown waker has been through the registry already (or will skip this
            // one): serving it would outlive the shutdown.
            self.core.release();
            self.counters.refused();
            return;
        }
        let reader = Reader {
            core: self.core.clone(),
            shared: self.shared.clone(),
            counters: self.counters.clone(),
            session: session.clone(),
            link: link.clone(),
            fd,
        };
        // Spawned under the registry lock, so the reader cannot try to leave the registry
        // before it is in it.
        let spawned = thread::Builder::new()
            .name(format!("{NAME}-r{}", id.get()))
            .stack_size(self.core.config.thread_stack)
            .spawn(move || reader.run());
        match spawned {
            Ok(thread) => {
                registry.conns.insert(
                    id,
                    Entry {
                        session,
                        link,
                        thread,
                    },
                );
            }
            Err(e) => {
                // The closure, and the socket with it, was dropped: the peer sees a close.
                self.core.release();
                self.counters.refused();
                tracing::warn!(model = %NAME, %peer, "refused: cannot start a reader thread: {e}");
            }
        }
    }

    /// Shutdown: wait for the sessions to flush and close, up to the deadline; then abort
    /// the rest and wait for their threads to leave.
    fn drain(&self) {
        let deadline = Instant::now() + self.core.config.shutdown_timeout;
        let mut registry = lock(&self.shared.registry);
        tracing::debug!(
            model = %NAME,
            sessions = registry.conns.len(),
            "shutting down"
        );
        while !registry.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    model = %NAME,
                    sessions = registry.conns.len(),
                    "shutdown deadline passed; closing sessions with output still queued"
                );
                for entry in registry.conns.values() {
                    let mut outbox = entry.session.outbox();
                    outbox.request_close(CloseRequest::Abort(CloseReason::ServerShutdown));
                    entry.link.nudge(&outbox);
                    // Listed, so open: wake the reader and a writer stuck in send.
                    abort_socket(entry.link.fd);
                }
                while !registry.conns.is_empty() {
                    registry = self
                        .shared
                        .changed
                        .wait(registry)
                        .unwrap_or_else(|p| p.into_inner());
                }
                break;
            }
            registry = self
                .shared
                .changed
                .wait_timeout(registry, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Close now, whoever is blocked on the socket: `SO_LINGER 0` (the close will send RST)
/// and `shutdown(SHUT_RDWR)`, which fails a blocked `send` and ends a blocked `recv`. The
/// caller guarantees that `fd` is still open.
fn abort_socket(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` and the length passed is its size.
    let _ = syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&linger as *const libc::linger).cast(),
        std::mem::size_of::<libc::linger>() as libc::socklen_t
    ));
    // ENOTCONN after a reset is expected and harmless.
    let _ = syscall!(shutdown(fd, libc::SHUT_RDWR));
}

// ---------------------------------------------------------------------------------------
// One connection's two threads.

/// The reader stopped reading for good (end of stream, an error, a close request).
const READ_DONE: u8 = 1;
/// The writer sleeps on `to_writer`.
const WRITER_WAITING: u8 = 2;
/// The writer is inside `send`, outside the lock.
const SENDING: u8 = 4;
/// The writer has ended.
const WRITER_DONE: u8 = 8;
/// The reader sleeps on `to_reader` (back-pressure).
const READER_PAUSED: u8 = 16;
/// The session waits in the keeper's queue.
const POKED: u8 = 32;
/// The writer sleeps because the reader is writing inline; wake it when that is done.
const DEFERRED: u8 = 64;

/// What a connection's reader, writer and outside senders share. It is the session's
/// [`Owner`]. Its flags change only while the session's outbox is locked, which is also
/// the mutex both condition variables wait with; the atomic only makes that sharing legal.
struct Link {
    me: Weak<Link>,
    /// The socket. Owned by the reader, which closes it only after its writer ended and the
    /// connection left the registry.
    fd: RawFd,
    flags: AtomicU8,
    /// Reads the reader discarded while the session was closing: the writer's linger
    /// watches it to see whether the peer is still sending.
    discarded: AtomicU32,
    /// The writer waits here for output or a close request.
    to_writer: Condvar,
    /// The reader waits here for its output to drain below the low-water mark.
    to_reader: Condvar,
    keeper: Arc<Keeper>,
    counters: Arc<Counters>,
}

impl Link {
    /// Whether `flag` is set. The outbox guard proves the caller holds the lock.
    fn is(&self, _outbox: &Outbox, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    fn set(&self, _outbox: &Outbox, flag: u8, on: bool) {
        if on {
            self.flags.fetch_or(flag, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// Wake whichever of the two threads sleeps on a condition variable, after a change
    /// they should look at (under the lock, so the wake-up cannot be lost).
    fn nudge(&self, outbox: &Outbox) {
        if self.is(outbox, WRITER_WAITING) {
            self.to_writer.notify_one();
        }
        if self.is(outbox, READER_PAUSED) {
            self.to_reader.notify_one();
        }
    }
}

impl Owner for Link {
    /// Another thread queued output or asked for a close. Called with the outbox locked,
    /// which is why the flags may be read.
    fn schedule(&self, session: &Session) -> bool {
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & WRITER_WAITING != 0 {
            self.to_writer.notify_one();
        }
        if flags & SENDING != 0 && flags & POKED == 0 {
            // A thread (writer, or reader writing inline) may be stuck in send for as long
            // as the peer does not read; if this was an abort, only a shutdown of the
            // socket reaches it. The keeper
            // looks (the outbox is locked here, so this thread cannot).
            if let Some(me) = self.me.upgrade() {
                self.flags.fetch_or(POKED, Ordering::Relaxed);
                self.keeper.poke(session.clone(), me);
            }
        }
        if flags & READER_PAUSED != 0 {
            self.to_reader.notify_one();
        }
        // Never "queued": the writer looks at the outbox every time it wakes.
        false
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// The reader thread: owns the socket and the handler's state, runs the handler, and ends
/// the session once its writer is done.
struct Reader<H: Handler> {
    core: Arc<Core<H>>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    session: Session,
    link: Arc<Link>,
    fd: OwnedFd,
}

impl<H: Handler> Reader<H> {
    fn run(self) {
        let writer = {
            let (session, link, counters) = (
                self.session.clone(),
                self.link.clone(),
                self.counters.clone(),
            );
            let linger_timeout = self.core.config.linger_timeout;
            thread::Builder::new()
                .name(format!("{NAME}-w{}", self.session.id().get()))
                .stack_size(self.core.config.thread_stack)
                .spawn(move || write_loop(&session, &link, &counters, linger_timeout))
        };
        let writer = match writer {
            Ok(writer) => writer,
            Err(e) => {
                tracing::warn!(model = %NAME, peer = %self.session.peer(), "refused: cannot start a writer thread: {e}");
                self.session.outbox().mark_closed();
                self.core.release();
                self.counters.refused();
                self.leave();
                return;
            }
        };
        self.counters.accepted();
        // A panicking handler ends its own session, not the server: the panic is caught
        // here, the session is aborted and counted closed with `Error`.
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut conn = Conn::open(&self.core, self.session.clone());
            self.read_loop(&mut conn);
            conn
        }));
        if served.is_err() {
            let mut outbox = self.session.outbox();
            outbox.request_close(CloseRequest::Abort(CloseReason::Error));
            self.link.set(&outbox, READ_DONE, true);
            if self.link.is(&outbox, SENDING) {
                abort_socket(self.fd.as_raw_fd());
            }
            self.link.nudge(&outbox);
        }
        if writer.join().is_err() {
            self.session
                .outbox()
                .request_close(CloseRequest::Abort(CloseReason::Error));
        }
        // The writer recorded how the session ends (or the reader did, or someone else).
        let request = self.session.outbox().close_request();
        let reason = match request {
            Some(CloseRequest::Graceful(reason)) => {
                // Everything queued was written: FIN after it.
                sys::shutdown_write(self.fd.as_raw_fd());
                reason
            }
            Some(CloseRequest::Abort(reason)) => {
                let _ = SockRef::from(&self.fd).set_linger(Some(Duration::ZERO));
                reason
            }
            None => CloseReason::Error,
        };
        let closed = match served {
            Ok(conn) => {
                panic::catch_unwind(AssertUnwindSafe(|| conn.close(&self.core, reason))).is_ok()
            }
            Err(_) => false,
        };
        if !closed {
            // The handler panicked (in a callback, or in `closed` itself): do what
            // `Conn::close` did not get to.
            tracing::error!(model = %NAME, session = %self.session.id(), "the handler panicked; session closed");
            self.session.outbox().mark_closed();
            self.counters.closed(reason);
            self.core.release();
        }
        self.leave();
    }

    /// Read and deliver until something ends the reading; then tell the writer. While the
    /// session closes in order, what arrives is read and discarded.
    fn read_loop(&self, conn: &mut Conn<H::State>) {
        let fd = self.fd.as_raw_fd();
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut spare = Vec::new();
        let mut acks = AckWatch::default();
        while let Some(closing) = self.may_read(&mut spare) {
            match sys::recv(fd, &mut buffer) {
                // End of stream, or shutdown(SHUT_RD) from the writer.
                Ok(0) => break,
                Ok(n) => {
                    self.counters.received(n);
                    if closing {
                        self.link.discarded.fetch_add(1, Ordering::Relaxed);
                    } else if let Err(reason) = conn.deliver(&self.core, &buffer[..n]) {
                        self.session
                            .outbox()
                            .request_close(CloseRequest::Abort(reason));
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_RCVTIMEO: nothing arrived for the idle timeout. A closing session is
                // ended by its writer's linger; a peer still taking output is not idle.
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && (closing || acks.moved(sys::send_progress(fd))) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && self.core.config.idle_timeout.is_some() =>
                {
                    let mut outbox = self.session.outbox();
                    outbox.request_close(CloseRequest::Abort(CloseReason::IdleTimeout));
                    break;
                }
                Err(e) => {
                    self.session
                        .outbox()
                        .request_close(CloseRequest::Abort(sys::close_reason(&e)));
                    break;
                }
            }
        }
        let outbox = self.session.outbox();
        self.link.set(&outbox, READ_DONE, true);
        if let Some(CloseRequest::Abort(_)) = outbox.close_request() {
            if self.link.is(&outbox, SENDING) {
                // The writer may be stuck in send: only a shutdown reaches it.
                abort_socket(fd);
            }
        }
        self.link.nudge(&outbox);
    }

    /// Whether to read again, and if so whether the session is closing (what is read is
    /// then discarded): not when the session is aborted or its writer ended, and not while
    /// its output is above the high-water mark (wait until it drains to the low one).
    ///
    /// Output queued by the handler's last call is written here, inline, when no one else
    /// is writing: the reply leaves on the thread that computed it, as in the book's
    /// blocking echo server, without waking the writer (one context switch saved per
    /// message, and no second thread between request and reply). The writer thread covers
    /// what this cannot: sends from other threads while the reader sleeps in `recv`, and
    /// the final flush.
    fn may_read(&self, spare: &mut Vec<u8>) -> Option<bool> {
        let (high, low) = (self.core.config.high_water(), self.core.config.low_water());
        let fd = self.fd.as_raw_fd();
        let mut outbox = self.session.outbox();
        let mut paused = false;
        loop {
            let closing = match outbox.close_request() {
                Some(CloseRequest::Abort(_)) => return None,
                Some(CloseRequest::Graceful(_)) => true,
                None => false,
            };
            if self.link.is(&outbox, WRITER_DONE) {
                return None;
            }
            if !outbox.pending().is_empty() && !self.link.is(&outbox, SENDING) {
                let batch = outbox.take(std::mem::take(spare));
                self.link.set(&outbox, SENDING, true);
                drop(outbox);
                let written = send_all(fd, &batch, &self.counters);
                outbox = self.session.outbox();
                self.link.set(&outbox, SENDING, false);
                outbox.finish(batch.len());
                if self.link.is(&outbox, DEFERRED) {
                    self.link.to_writer.notify_one();
                }
                if let Err(reason) = written {
                    outbox.request_close(CloseRequest::Abort(reason));
                    return None;
                }
                *spare = recycle(batch);
                continue;
            }
            if closing {
                // The writer ends the session; it may not know of a close asked for inside
                // a callback of this thread (no wake-up is sent then).
                self.link.nudge(&outbox);
                // Discarding adds no output: no back-pressure.
                return Some(true);
            }
            // Someone else is writing: back-pressure applies.
            let queued = outbox.len();
            if queued > high {
                paused = true;
            } else if queued <= low {
                paused = false;
            }
            if !paused {
                return Some(false);
            }
            self.link.set(&outbox, READER_PAUSED, true);
            outbox = self
                .link
                .to_reader
                .wait(outbox)
                .unwrap_or_else(|p| p.into_inner());
            self.link.set(&outbox, READER_PAUSED, false);
        }
    }

    /// Leave the registry, handing this thread's handle to the keeper to be joined; the
    /// socket closes when `self` drops, after that.
    fn leave(self) {
        let mut registry = lock(&self.shared.registry);
        if let Some(entry) = registry.conns.remove(&self.session.id()) {
            // Under the registry lock: the acceptor stops the keeper only once the registry
            // is empty, so the keeper gets this before it stops.
            self.link.keeper.reap(entry.thread);
        }
        self.shared.changed.notify_all();
        drop(registry);
        drop(self.fd);
    }
}

/// The writer thread: sleep until there is output or a close request, write the output
/// outside the lock, and decide how the session ends once it has nothing left to do.
fn write_loop(session: &Session, link: &Link, counters: &Counters, linger_timeout: Duration) {
    let fd = link.fd;
    let mut spare = Vec::new();
    let mut outbox = session.outbox();
    loop {
        if let Some(CloseRequest::Abort(_)) = outbox.close_request() {
            if link.is(&outbox, SENDING) {
                // The reader is writing inline and may be stuck in send.
                abort_socket(fd);
            }
            break;
        }
        if link.is(&outbox, SENDING) {
            // The reader is writing inline; it wakes this thread when it is done.
            link.set(&outbox, WRITER_WAITING | DEFERRED, true);
            outbox = link
                .to_writer
                .wait(outbox)
                .unwrap_or_else(|p| p.into_inner());
            link.set(&outbox, WRITER_WAITING | DEFERRED, false);
            continue;
        }
        if !outbox.pending().is_empty() {
            let batch = outbox.take(spare);
            link.set(&outbox, SENDING, true);
            drop(outbox);
            let written = send_all(fd, &batch, counters);
            outbox = session.outbox();
            link.set(&outbox, SENDING, false);
            outbox.finish(batch.len());
            if let Err(reason) = written {
                outbox.request_close(CloseRequest::Abort(reason));
                break;
            }
            // A paused reader may read again.
            link.nudge(&outbox);
            spare = recycle(batch);
            continue;
        }
        // Everything is written.
        if let Some(CloseRequest::Graceful(_)) = outbox.close_request() {
            break;
        }
        if link.is(&outbox, READ_DONE) {
            // The peer half-closed and has its whole echo: end the session. Recorded as a
            // request so that later sends fail instead of vanishing.
            outbox.request_close(CloseRequest::Graceful(CloseReason::PeerClosed));
            break;
        }
        link.set(&outbox, WRITER_WAITING, true);
        outbox = link
            .to_writer
            .wait(outbox)
            .unwrap_or_else(|p| p.into_inner());
        link.set(&outbox, WRITER_WAITING, false);
    }
    if matches!(outbox.close_request(), Some(CloseRequest::Graceful(_)))
        && !link.is(&outbox, READ_DONE)
    {
        outbox = linger(outbox, link, linger_timeout);
    }
    link.set(&outbox, WRITER_DONE, true);
    let reading = !link.is(&outbox, READ_DONE);
    link.nudge(&outbox);
    drop(outbox);
    if reading {
        // The reader may be blocked in recv. The socket is open: the reader closes it only
        // after joining this thread.
        sys::shutdown_read(fd);
    }
}

/// Everything queued is written and the session closes in order: send the FIN, then wait
/// (with the outbox unlocked) while the reader discards input, until the reader saw the
/// peer's FIN, the linger rule of `timers::Linger` says the socket may close, or an abort
/// is asked for. Returns with the outbox locked again.
fn linger<'a>(
    mut outbox: MutexGuard<'a, Outbox>,
    link: &Link,
    limit: Duration,
) -> MutexGuard<'a, Outbox> {
    sys::shutdown_write(link.fd);
    let start = Instant::now();
    let mut heard = start;
    let mut seen = link.discarded.load(Ordering::Relaxed);
    loop {
        link.set(&outbox, WRITER_WAITING, true);
        outbox = match link.to_writer.wait_timeout(outbox, LINGER_QUIET) {
            Ok((outbox, _)) => outbox,
            Err(poisoned) => poisoned.into_inner().0,
        };
        link.set(&outbox, WRITER_WAITING, false);
        if link.is(&outbox, READ_DONE) {
            return outbox;
        }
        if let Some(CloseRequest::Abort(_)) = outbox.close_request() {
            // The socket is open: the reader closes it only after joining this thread.
            abort_socket(link.fd);
            return outbox;
        }
        let now = Instant::now();
        let discarded = link.discarded.load(Ordering::Relaxed);
        if discarded != seen {
            (seen, heard) = (discarded, now);
        }
        if linger_over(now - start, now - heard, limit, || {
            sys::send_progress(link.fd)
        }) {
            return outbox;
        }
    }
}

/// A written batch, kept as the next spare buffer unless it grew large.
fn recycle(batch: Vec<u8>) -> Vec<u8> {
    if batch.capacity() > KEEP_SPARE {
        Vec::new()
    } else {
        batch
    }
}

/// Write all of `buf`, retrying after signals.
fn send_all(fd: RawFd, buf: &[u8], counters: &Counters) -> Result<(), CloseReason> {
    let mut done = 0;
    let mut acks = AckWatch::default();
    while done < buf.len() {
        match sys::send(fd, &buf[done..]) {
            Ok(0) => return Err(CloseReason::Error),
            Ok(n) => {
                counters.sent(n);
                done += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The socket blocks: only SO_SNDTIMEO, set with the idle timeout, ends a send
            // with EAGAIN, when no room was made for that long. A peer that still
            // acknowledges output (reading slowly, while the kernel waits to have a third of
            // the buffer free) is not idle.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !acks.moved(sys::send_progress(fd)) {
                    return Err(CloseReason::IdleTimeout);
                }
            }
            Err(e) => return Err(sys::close_reason(&e)),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The keeper.

/// One thread per server that does what no connection thread can do for itself: abort a
/// session whose writer is stuck in `send` when another thread asked for the abort, and
/// join the threads of finished connections (their stacks are freed only then).
#[derive(Default)]
struct Keeper {
    queue: Mutex<KeeperQueue>,
    work: Condvar,
}

#[derive(Default)]
struct KeeperQueue {
    pokes: Vec<(Session, Arc<Link>)>,
    reaps: Vec<JoinHandle<()>>,
    stop: bool,
}

impl Keeper {
    fn poke(&self, session: Session, link: Arc<Link>) {
        let mut queue = lock(&self.queue);
        queue.pokes.push((session, link));
        self.work.notify_one();
    }

    fn reap(&self, thread: JoinHandle<()>) {
        let mut queue = lock(&self.queue);
        queue.reaps.push(thread);
        self.work.notify_one();
    }

    /// Finish what is queued, then end.
    fn stop(&self) {
        lock(&self.queue).stop = true;
        self.work.notify_one();
    }

    fn run(&self) {
        loop {
            let (pokes, reaps, stop) = {
                let mut queue = lock(&self.queue);
                while queue.pokes.is_empty() && queue.reaps.is_empty() && !queue.stop {
                    queue = self.work.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
                (
                    std::mem::take(&mut queue.pokes),
                    std::mem::take(&mut queue.reaps),
                    queue.stop,
                )
            };
            for (session, link) in pokes {
                let outbox = session.outbox();
                link.set(&outbox, POKED, false);
                // SENDING means the writer is alive, so the reader has not closed the socket.
                if matches!(outbox.close_request(), Some(CloseRequest::Abort(_)))
                    && link.is(&outbox, SENDING)
                {
                    abort_socket(link.fd);
                }
            }
            for thread in reaps {
                // A connection thread never panics out of its epilogue; if the handler
                // panicked, the session was already counted closed or never opened.
                let _ = thread.join();
            }
            if stop {
                return;
            }
        }
    }
}
