//! The acceptor thread: accept, start each connection's reader, refuse what cannot be
//! served; and, at shutdown, drain the registry and join what is left.

use super::link::{abort_socket, Link};
use super::reader::Reader;
use super::{lock, Entry, Shared, NAME};
use crate::close::CloseReason;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::policy::{self, AcceptStep};
use crate::runtime::timers::ACCEPT_BACKOFF;
use crate::runtime::{Core, Wake};
use crate::session::{CloseRequest, Session};
use crate::stats::Counters;
use crate::sys;
use crate::sys::{AsRaw, Sock};
use socket2::SockRef;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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

/// Registered with the core: wakes the blocked acceptor, and asks every session to flush
/// and close (its writer is woken; its reader keeps reading, and is woken by the writer
/// once the linger is over).
pub(super) struct ShutdownWaker(pub(super) Arc<Shared>);

impl Wake for ShutdownWaker {
    fn wake(&self) {
        let registry = lock(&self.0.registry);
        if let Some((listener, addr)) = registry.listener {
            sys::unblock_accept(listener, addr);
        }
        for entry in registry.conns.values() {
            let mut outbox = entry.session.outbox();
            if outbox.is_closed() {
                continue;
            }
            outbox.request_close(CloseRequest::Graceful(CloseReason::ServerShutdown));
            entry.link.nudge(&outbox);
        }
        self.0.changed.notify_all();
    }
}

pub(super) struct Acceptor<H: Handler> {
    /// Sessions past this are refused: see [`thread_ceiling`].
    ceiling: usize,
    /// The ceiling was reported once already.
    warned: AtomicBool,
    core: Arc<Core<H>>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
    listener: Sock,
}

impl<H: Handler> Acceptor<H> {
    pub(super) fn new(core: &Arc<Core<H>>, shared: Arc<Shared>, listener: Sock) -> Self {
        let ceiling = thread_ceiling();
        tracing::info!(
            model = %NAME,
            sessions = ceiling,
            "the kernel's thread and mapping limits allow this many sessions"
        );
        Acceptor {
            ceiling,
            warned: AtomicBool::new(false),
            counters: core.counters.add_worker(),
            core: core.clone(),
            shared,
            listener,
        }
    }

    pub(super) fn run(self) -> Result<(), Error> {
        let listener = self.listener.raw();
        let mut reserve = sys::Reserve::new();
        while !self.core.is_shutting_down() {
            match sys::accept(listener, false) {
                // On Windows the shutdown wakes this accept with a connection of its own
                // (see `sys::unblock_accept`): dropped unserved, and not counted.
                Ok(_) if self.core.is_shutting_down() => break,
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
        // Every connection left the registry; the reader that left last is joined here,
        // and it joined the one before it, and so on.
        let last = {
            let mut registry = lock(&self.shared.registry);
            registry.listener = None;
            registry.finished.take()
        };
        if let Some(last) = last {
            let _ = last.join();
        }
        drop(self.listener);
        Ok(())
    }

    /// Wait a little before accepting again; a closing connection or shutdown ends the
    /// wait early.
    fn back_off(&self) {
        let registry = lock(&self.shared.registry);
        if !self.core.is_shutting_down() {
            let _ = self.shared.changed.wait_timeout(registry, ACCEPT_BACKOFF);
        }
    }

    /// An admitted connection is not served after all.
    fn refuse(&self) {
        self.core.release();
        self.counters.refused();
    }

    /// Turn an accepted socket into a session with its threads, or refuse it.
    fn admit(&self, fd: Sock, peer: SocketAddr) {
        if !self.core.admit() {
            self.counters.refused();
            tracing::debug!(model = %NAME, %peer, "refused: connection limit reached");
            return;
        }
        sys::tune_accepted(&fd);
        if let Err(e) = self.set_idle_timeout(&fd) {
            self.refuse();
            tracing::warn!(model = %NAME, %peer, "refused: setting the idle timeout: {e}");
            return;
        }
        let link = Arc::new(Link::new(fd.raw(), self.counters.clone()));
        let session = Session::new(peer, 0, link.clone(), self.core.config.send_queue_limit);
        let id = session.id();
        let mut registry = lock(&self.shared.registry);
        if registry.conns.len() >= self.ceiling {
            self.refuse();
            self.warn_ceiling(peer);
            return;
        }
        if self.core.is_shutting_down() {
            // The shutdown waker has been through the registry already (or will skip this
            // one): serving it would outlive the shutdown.
            self.refuse();
            return;
        }
        let reader = Reader {
            core: self.core.clone(),
            shared: self.shared.clone(),
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
                let entry = Entry {
                    session,
                    link,
                    thread,
                };
                registry.conns.insert(id, entry);
            }
            Err(e) => {
                // The closure, and the socket with it, was dropped: the peer sees a close.
                self.refuse();
                tracing::warn!(model = %NAME, %peer, "refused: cannot start a reader thread: {e}");
            }
        }
    }

    /// The idle timeout, as the socket's receive and send timeouts.
    fn set_idle_timeout(&self, fd: &Sock) -> io::Result<()> {
        let Some(idle) = self.core.config.idle_timeout else {
            return Ok(());
        };
        // A zero timeout would mean "block forever" to the kernel.
        let idle = idle.max(Duration::from_millis(1));
        let socket = SockRef::from(fd);
        socket.set_read_timeout(Some(idle))?;
        socket.set_write_timeout(Some(idle))
    }

    /// Log a refusal at the thread ceiling: a warning the first time, then at debug level.
    fn warn_ceiling(&self, peer: SocketAddr) {
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
    }

    /// Shutdown: wait for the sessions to flush and close, up to the deadline; then abort
    /// the rest and wait for them to leave the registry.
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
