//! The drivers, one file (or folder) per I/O model, and the one place that picks among them.
//!
//! Readiness models (polling, select, poll, signal, epoll) are [`crate::reactor::Selector`]s
//! run by the shared event loop; blocking and io_uring have loops of their own because
//! their shape differs: threads that block, and completions instead of readiness.

mod blocking;
mod epoll;
mod poll;
mod polling;
mod select;
mod signal;
mod uring;

use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::reactor;
use crate::server::Core;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The threads a driver started, and the address it listens on.
pub(crate) type Started = (Vec<JoinHandle<Result<(), Error>>>, SocketAddr);

/// Start the configured model.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<Started, Error> {
    match core.config.model {
        Model::Blocking => blocking::start(core),
        Model::Polling => reactor::start::<polling::Polling, H>(core),
        Model::Select => reactor::start::<select::Select, H>(core),
        Model::Poll => reactor::start::<poll::Poll, H>(core),
        Model::Signal => reactor::start::<signal::Signal, H>(core),
        Model::Epoll => reactor::start::<epoll::Epoll, H>(core),
        Model::Uring => uring::start(core),
    }
}

pub use uring::probe as uring_probe;
