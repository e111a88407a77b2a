//! Why an exporter could not start.
//!
//! A message never repeats its cause: the OS error is the [`std::error::Error::source`], so a
//! reporter that walks the chain (anyhow's `{:#}`) prints it once.

use std::io;
use std::net::SocketAddr;

/// An [`Exporter`](crate::Exporter) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another socket holds the address.
    #[error("metrics address {addr} is already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding or listening failed for another reason.
    #[error("cannot serve metrics on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The exporter's thread could not be started.
    #[error("cannot start the metrics thread")]
    Thread(#[source] io::Error),
}
