//! The chat layer's errors.

use std::path::PathBuf;

/// Something the chat server, the swarm or the client could not do. Messages leave the
/// cause to [`std::error::Error::source`], so a chain is printed with each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not start or failed while running.
    #[error(transparent)]
    Engine(#[from] iomodels_engine::Error),
    /// A setting is out of range.
    #[error("invalid setting: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// The users file could not be read.
    #[error("cannot read users file {path}")]
    UsersFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the users file is not `user:password`.
    #[error("{path}:{line}: expected `user:password` with a user id of 1 to 32 bytes")]
    UsersFileLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// A socket operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A connection to the chat server failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// Printing the JSON summary failed.
    #[error("cannot write the JSON summary")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}
