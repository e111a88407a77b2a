//! Starting, watching and stopping a server: the top of the crate, where the configured
//! model's driver is picked and started on the shared runtime.

use crate::config::{Config, DirectRings, Model};
use crate::error::Error;
use crate::handler::Handler;
use crate::model::{blocking, polling, reactor};
#[cfg(target_os = "linux")]
use crate::model::{epoll, poll, select, signal, uring};
use crate::runtime::{Core, Started};
use crate::stats::Stats;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Start the configured model's driver.
fn start_driver<H: Handler>(core: &Arc<Core<H>>) -> Result<Started, Error> {
    match core.config.model {
        Model::Blocking => blocking::start(core),
        Model::Polling => reactor::start::<polling::Polling, H>(core),
        #[cfg(target_os = "linux")]
        Model::Select => reactor::start::<select::Select, H>(core),
        #[cfg(target_os = "linux")]
        Model::Poll => reactor::start::<poll::Poll, H>(core),
        #[cfg(target_os = "linux")]
        Model::Signal => reactor::start::<signal::Signal, H>(core),
        #[cfg(target_os = "linux")]
        Model::Epoll => reactor::start::<epoll::Epoll, H>(core),
        #[cfg(target_os = "linux")]
        Model::Uring => uring::start(core),
        #[cfg(windows)]
        windows_model => crate::model::windows::start(windows_model, core),
    }
}

/// Shutdown and counters, without the handler's type: what [`ServerHandle`] holds.
trait Control: Send + Sync {
    fn shutdown(&self);
    fn stats(&self) -> Stats;
}

impl<H: Handler> Control for Core<H> {
    fn shutdown(&self) {
        self.begin_shutdown();
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
        let core = Arc::new(Core::new(config, handler));
        let (threads, local_addr) = start_driver(&core)?;
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

    /// The rings of a uring server that accepts into direct descriptors; `None` for
    /// every other server.
    pub fn direct_rings(&self) -> Option<DirectRings> {
        self.core.direct_rings.get().copied()
    }

    /// A handle for stopping the server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            control: self.core.clone(),
        }
    }

    /// Begin a graceful shutdown (see [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.core.begin_shutdown();
    }

    /// Wait until every thread of the server has ended; the first error wins.
    pub fn join(mut self) -> Result<(), Error> {
        self.join_threads()
    }

    /// Shut down and wait.
    pub fn stop(self) -> Result<(), Error> {
        self.shutdown();
        self.join()
    }

    /// Join the threads not joined yet; the first error wins.
    fn join_threads(&mut self) -> Result<(), Error> {
        let model = self.core.config.model;
        let mut result = Ok(());
        for thread in std::mem::take(&mut self.threads) {
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
}

/// A server dropped without [`Server::join`] is stopped as by [`Server::stop`]: it does
/// not go on serving, listening and holding its threads behind its owner's back. An error
/// of its threads is logged, since nobody is left to return it to.
impl<H: Handler> Drop for Server<H> {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shutdown();
        if let Err(error) = self.join_threads() {
            tracing::error!(%error, "stopping a dropped server");
        }
    }
}
