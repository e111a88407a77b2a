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
         (open-file limit less reserved descriptors); spread the run over more client \
         processes"
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
    /// Two latency histograms could not be merged.
    #[error("merging latency histograms: {0}")]
    Histogram(String),
    /// A client process of a spread run failed; the run has no report.
    #[error("{client}")]
    Client {
        /// Which one, as the run names it: `client process 2/3 (pid 4242, from 127.0.0.2)`.
        client: String,
        /// What went wrong.
        #[source]
        failure: ClientFailure,
    },
    /// This client process of a spread run lost its parent before the start (its input
    /// ended), or was sent something else than the start.
    #[error("no start from the parent process: {0}")]
    NoStart(String),
    /// A load thread panicked.
    #[error("a load thread panicked")]
    ThreadPanicked,
    /// The report could not be written out.
    #[error("writing the report")]
    Output(#[from] serde_json::Error),
}

/// How a client process of a spread run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientFailure {
    /// It could not be started.
    #[error("could not be started")]
    Spawn(#[source] io::Error),
    /// It exited, or closed its output, before giving its result.
    #[error("ended before its result ({status}): {stderr}")]
    Ended {
        /// How it ended: its exit status, or what is known of it.
        status: String,
        /// The last line it wrote on stderr (its error), or "no error output".
        stderr: String,
    },
    /// It gave its result but exited with a failure status.
    #[error("exited with {status} after its result: {stderr}")]
    FailedAfter {
        /// Its exit status.
        status: String,
        /// The last line it wrote on stderr.
        stderr: String,
    },
    /// It wrote a line that is not the protocol's.
    #[error("wrote an unreadable line ({reason}): {line}")]
    Garbled {
        /// Why the line did not parse.
        reason: String,
        /// The start of the line.
        line: String,
    },
    /// It did not reach the next step in time, and was killed.
    #[error("did not {step} within {secs} s; killed")]
    TimedOut {
        /// What it should have done: `connect`, `finish`, `exit`.
        step: &'static str,
        /// The deadline.
        secs: u64,
    },
    /// It could not be told to start (its input pipe failed).
    #[error("could not be sent the start")]
    Start(#[source] io::Error),
}

impl Error {
    /// An [`Error::Io`] for `context`.
    pub(crate) fn io(context: &'static str, source: io::Error) -> Error {
        Error::Io { context, source }
    }
}
