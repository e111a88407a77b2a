//! # iomodels-engine
//!
//! One handler API over every socket I/O model of the book *TCP/IP Windows socket
//! programming for game-server developers*, ported to Linux: blocking threads,
//! non-blocking polling, select, poll, signal-driven I/O, epoll and io_uring.
//!
//! Write a [`Handler`] once; start it on any [`Model`] with [`Server::start`].
//!
//! ```no_run
//! use iomodels_engine::{Config, Handler, Model, Server, Session};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type State = ();
//!     fn opened(&self, _: &Session) {}
//!     fn data(&self, _: &mut (), session: &Session, data: &[u8]) -> usize {
//!         let _ = session.send(data);
//!         data.len()
//!     }
//! }
//!
//! let config = Config::new(Model::SCALABLE[0], "127.0.0.1:7000".parse().unwrap());
//! let server = Server::start(config, Echo).unwrap();
//! server.stop().unwrap();
//! ```
#![deny(clippy::undocumented_unsafe_blocks)]

// The user-facing API: depends on nothing else in the crate.
mod chunks;
mod close;
mod config;
mod error;
mod handler;
mod session;
mod stats;
// The runtime every driver shares: depends on the API only.
mod runtime;
// The system layer and the drivers: platform types live here and nowhere above.
mod model;
mod sys;
// The top: picks and starts a driver.
mod server;

pub mod echo;

pub use chunks::SharedMessage;
pub use close::CloseReason;
pub use config::{
    Config, DirectRings, Model, UnknownDescriptors, UnknownModel, UringDescriptors, UringSetup,
    DEFAULT_MAX_CONNECTIONS,
};
pub use error::Error;
pub use handler::Handler;
#[cfg(target_os = "linux")]
pub use model::uring::probe as uring_probe;
pub use server::{Server, ServerHandle};
pub use session::{DetachedSession, SendError, Session, SessionId};
pub use stats::Stats;
