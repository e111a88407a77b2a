//! The errors that stop a comparison; a failing model or bench is a row, not an error.

use std::io;
use std::path::PathBuf;

/// Why `compare` could not run or could not write its report. Messages leave the cause to
/// [`std::error::Error::source`], so a chain is printed with each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A binary `compare` drives is not beside the running executable.
    #[error(
        "{name} not found at {}: build it with `cargo build --release -p iomodels -p iomodels-peers`",
        path.display()
    )]
    MissingBinary {
        /// The binary's name.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The running executable's own path is unknown.
    #[error("cannot locate the running executable")]
    CurrentExe(#[source] io::Error),
    /// A name in `--models` is not a model.
    #[error("unknown model '{0}' (see `iomodels models`)")]
    UnknownModel(String),
    /// A name in `--peers` is not a peer.
    #[error("unknown peer '{0}': expected tokio-current, tokio-multi or monoio")]
    UnknownPeer(String),
    /// A name in `--chat-servers` is neither a model nor `tokio-chat`.
    #[error("unknown chat server '{0}': expected a model (see `iomodels models`) or tokio-chat")]
    UnknownChatServer(String),
    /// A name in `--peers` is a peer this platform cannot run (monoio off Linux).
    #[error("the {0} peer runs only on Linux")]
    PeerUnavailable(String),
    /// Flags that contradict each other or cannot be parsed.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// The report folder or one of its files could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// The raw rows could not be encoded or decoded.
    #[error("report JSON")]
    Json(#[from] serde_json::Error),
}
