//! Why a benchmark could not run.

use std::io;

/// Why [`crate::run`] could not produce a report. Failures of single connections are not
/// errors: they are counted in [`crate::ErrorCounts`]. Messages leave the cause to
/// [`std::error::Error::source`], so a chain is printed with each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration does not make sense.
    #[error("invalid benchmark configuration: {0}")]
    InvalidConfig(&'static str),
    /// More connections than one process can hold under its open-file limit.
    #[error(
        "{requested} connections asked for, but one load process can hold at most {ceiling} \
         (open-file limit less reserved descriptors); run several bench processes and add \
         their results"
    )]
    TooManyConnections {
        /// Connections asked for.
        requested: usize,
        /// The most this process can hold.
        ceiling: u64,
    },
    /// A system call the benchmark itself needs failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A load thread panicked.
    #[error("a load thread panicked")]
    ThreadPanicked,
    /// The report could not be written out.
    #[error("writing the report")]
    Output(#[from] serde_json::Error),
}

impl Error {
    /// An [`Error::Io`] for `context`.
    pub(crate) fn io(context: &'static str, source: io::Error) -> Error {
        Error::Io { context, source }
    }
}
