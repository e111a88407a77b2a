//! Starting, watching and stopping a server; the state every driver shares.

use crate::config::Config;
use crate::error::Error;
use crate::handler::Handler;
use crate::model;
use crate::stats::{CounterSet, Stats};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
}

impl<H: Handler> Core<H> {
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

/// What a worker thread runs once it is built.
pub(crate) type WorkerRun = Box<dyn FnOnce() -> Result<(), Error>>;

/// Bind `worker_count` listeners and start a thread for each. Every worker is built on its own
/// thread (an io_uring ring with SINGLE_ISSUER, a signal mask, a mailbox belong to a thread),
/// and the start returns only once each has reported that it is ready, or undoes itself and
/// returns the first error.
pub(crate) fn spawn_workers<H: Handler>(
    core: &Arc<Core<H>>,
    model: &'static str,
    build: fn(Arc<Core<H>>, OwnedFd) -> Result<WorkerRun, Error>,
) -> Result<model::Started, Error> {
    let workers = core.config.worker_count();
    let (listeners, local_addr) =
        crate::sys::listeners(core.config.addr, workers, core.config.backlog, true)?;
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
    Ok((threads, local_addr))
}

/// Undo a start that failed half-way: stop and join the threads already running.
pub(crate) fn abort_start<H: Handler>(
    core: &Arc<Core<H>>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
) {
    Control::shutdown(&**core);
    for thread in threads {
        let _ = thread.join();
    }
}

/// Shutdown and counters, without the handler's type: what [`ServerHandle`] holds.
trait Control: Send + Sync {
    fn shutdown(&self);
    fn stats(&self) -> Stats;
}

impl<H: Handler> Control for Core<H> {
    fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for waker in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            waker.wake();
        }
    }

    fn stats(&self) -> Stats {
        self.counters.snapshot()
    }
}

/// A cheap, cloneable way to stop a server or read its counters from any thread.
#[derive(Clone)]
pub struct ServerHandle {
    control: Arc<dyn Control>,
}

impl ServerHandle {
    /// Begin a graceful shutdown: stop accepting, send what is queued (up to
    /// [`Config::shutdown_timeout`]), close every session. Returns at once; [`Server::join`]
    /// waits for the end.
    ///
    /// Every session is closed as by [`crate::Session::close`]: its peer receives all that
    /// was queued, then end of stream, even if it keeps sending meanwhile (its input is
    /// discarded from now on). A connection accepted after the shutdown began is refused.
    /// What is still queued at the deadline is dropped and its session reset.
    pub fn shutdown(&self) {
        self.control.shutdown();
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.control.stats()
    }
}

/// A running server.
pub struct Server<H: Handler> {
    core: Arc<Core<H>>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
    local_addr: SocketAddr,
}

impl<H: Handler> Server<H> {
    /// Bind, start the configured model's threads and return once they are ready.
    pub fn start(config: Config, handler: H) -> Result<Server<H>, Error> {
        let core = Arc::new(Core {
            config,
            handler,
            counters: CounterSet::default(),
            active: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
        });
        let (threads, local_addr) = model::start(&core)?;
        tracing::info!(
            model = %core.config.model,
            addr = %local_addr,
            workers = core.config.worker_count(),
            "listening"
        );
        Ok(Server {
            core,
            threads,
            local_addr,
        })
    }

    /// The address the server listens on (with the port resolved if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.core.counters.snapshot()
    }

    /// The application handler.
    pub fn handler(&self) -> &H {
        &self.core.handler
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// A handle for stopping the server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            control: self.core.clone(),
        }
    }

    /// Begin a graceful shutdown (see [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        Control::shutdown(&*self.core);
    }

    /// Wait until every thread of the server has ended; the first error wins.
    pub fn join(self) -> Result<(), Error> {
        let model = self.core.config.model.name();
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread.join().unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(Error::Worker { model, message })
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Shut down and wait.
    pub fn stop(self) -> Result<(), Error> {
        self.shutdown();
        self.join()
    }
}
