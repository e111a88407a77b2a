//! The runtime every driver shares: what a running server holds ([`Core`]), starting worker
//! threads, the handler's side of a connection ([`conn`]), the mailbox other threads wake a
//! worker through ([`mailbox`]), timers and what counts as activity ([`timers`]), the
//! connection policy ([`policy`]) and the slab connections live in ([`slab`]).
//!
//! This layer sits between the user-facing API (handler, session, config, error, stats),
//! which it builds on, and the drivers, which build on it. It is free of platform types:
//! descriptors, `libc` and the system calls live in the drivers and in `crate::sys`.

pub(crate) mod conn;
pub(crate) mod lifecycle;
pub(crate) mod mailbox;
pub(crate) mod policy;
pub(crate) mod slab;
pub(crate) mod timers;

use crate::config::{Config, DirectRings, Model};
use crate::error::Error;
use crate::handler::Handler;
use crate::stats::CounterSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Something a driver thread waits on that another thread can interrupt.
pub(crate) trait Wake: Send + Sync {
    /// Make the waiting thread return from its wait soon.
    fn wake(&self);
}

/// What every driver of a running server shares: the configuration, the handler, the
/// counters, the connection count and the shutdown flag.
pub(crate) struct Core<H> {
    pub(crate) config: Config,
    pub(crate) handler: H,
    pub(crate) counters: CounterSet,
    active: AtomicUsize,
    shutdown: AtomicBool,
    wakers: Mutex<Vec<Arc<dyn Wake>>>,
    /// The uring driver's rings, when it runs on direct descriptors.
    pub(crate) direct_rings: OnceLock<DirectRings>,
}

impl<H: Handler> Core<H> {
    /// The shared state of a server about to start.
    pub(crate) fn new(config: Config, handler: H) -> Core<H> {
        Core {
            config,
            handler,
            counters: CounterSet::default(),
            active: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            direct_rings: OnceLock::new(),
        }
    }

    /// Count a new session if the limit allows it.
    pub(crate) fn admit(&self) -> bool {
        let before = self.active.fetch_add(1, Ordering::AcqRel);
        if before >= self.config.max_connections {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// A session admitted with [`Core::admit`] ended.
    pub(crate) fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether shutdown was asked for.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Ask every driver thread to shut down (see [`crate::ServerHandle::shutdown`]).
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for waker in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            waker.wake();
        }
    }

    /// Register a driver thread's waker; it is woken on shutdown. If shutdown has already
    /// begun, it is woken at once.
    pub(crate) fn add_waker(&self, waker: Arc<dyn Wake>) {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(waker.clone());
        if self.is_shutting_down() {
            waker.wake();
        }
    }
}

/// The threads a driver started, and the address it listens on.
pub(crate) type Started = (Vec<JoinHandle<Result<(), Error>>>, SocketAddr);

/// What a worker thread runs once it is built.
pub(crate) type WorkerRun = Box<dyn FnOnce() -> Result<(), Error>>;

/// Start a thread per listener (each worker owns one). Every worker is built on its own
/// thread (an io_uring ring with SINGLE_ISSUER, a signal mask, a mailbox belong to a
/// thread), and the start returns only once each has reported that it is ready, or undoes
/// itself and returns the first error.
pub(crate) fn spawn_workers<H: Handler, L: Send + 'static>(
    core: &Arc<Core<H>>,
    model: Model,
    listeners: Vec<L>,
    build: fn(Arc<Core<H>>, L) -> Result<WorkerRun, Error>,
) -> Result<Vec<JoinHandle<Result<(), Error>>>, Error> {
    let workers = listeners.len();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let mut threads = Vec::with_capacity(workers);
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker_core = core.clone();
        let ready_tx = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{model}-{index}"))
            .spawn(move || {
                let run = match build(worker_core, listener) {
                    Ok(run) => run,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok(()));
                drop(ready_tx);
                run()
            });
        match thread {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                abort_start(core, threads);
                return Err(Error::setup(model, "spawning a worker")(e));
            }
        }
    }
    drop(ready_tx);
    for _ in 0..workers {
        let failure = match ready_rx.recv() {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(_) => Error::Worker {
                model,
                message: "a worker died while starting".into(),
            },
        };
        abort_start(core, threads);
        return Err(failure);
    }
    Ok(threads)
}

/// Undo a start that failed half-way: stop and join the threads already running.
pub(crate) fn abort_start<H: Handler>(
    core: &Arc<Core<H>>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
) {
    core.begin_shutdown();
    for thread in threads {
        let _ = thread.join();
    }
}
