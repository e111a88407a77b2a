//! Errors of starting and running a server.
//!
//! A message never repeats its cause: the OS error is the [`std::error::Error::source`], so a
//! reporter that walks the chain (anyhow's `{:#}`) prints it once.

use crate::config::Model;
use std::io;
use std::net::SocketAddr;

/// A server could not start, or a driver failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another socket holds the address.
    #[error("address {addr} is already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding or listening failed for another reason.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The kernel lacks something a model needs.
    #[error("the {model} model cannot run on this kernel: {what}")]
    Unsupported {
        /// The model.
        model: Model,
        /// What is missing.
        what: String,
    },
    /// Setting up a driver failed.
    #[error("{model}: {context}")]
    Setup {
        /// The model.
        model: Model,
        /// What was being done.
        context: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// A worker thread stopped with an error or a panic.
    #[error("a {model} worker failed: {message}")]
    Worker {
        /// The model.
        model: Model,
        /// What happened.
        message: String,
    },
}

impl Error {
    pub(crate) fn setup(model: Model, context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Setup {
            model,
            context,
            source,
        }
    }
}
