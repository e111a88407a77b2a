//! What to run: the target, the load shape and the phases.

use crate::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

/// Descriptors kept free for the process itself (stdio, epoll instances, /proc files,
/// whatever the embedding program holds) when computing the connection ceiling.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// One benchmark run: where to connect, how many connections, what load, for how long.
///
/// Build one with [`BenchConfig::new`] and set the public fields; [`crate::run`] checks
/// them with [`BenchConfig::validate`].
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The echo server to load.
    pub addr: SocketAddr,
    /// How many connections to open and keep busy.
    pub connections: usize,
    /// Bytes per message; every message is echoed whole.
    pub payload: usize,
    /// Messages in flight per connection in closed loop (1 = ping-pong). Ignored when
    /// `rate` is set, where the schedule alone decides when a message is sent.
    pub pipeline: usize,
    /// Open loop: the total messages per second over all connections, each sent at its
    /// scheduled time whether or not earlier ones were answered. `None` is closed loop.
    pub rate: Option<u64>,
    /// Traffic before the measured window; not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Load threads, each with its own epoll instance (WSAPoll array on Windows) and share
    /// of the connections.
    pub threads: usize,
    /// New connections per second during the connect phase (over all threads).
    pub connect_rate: u64,
    /// How long one connection attempt may take before it counts as `connect_timeout`.
    pub connect_timeout: Duration,
    /// Source addresses to spread connections over when the target is IPv4 loopback:
    /// connection `i` binds to `127.0.0.(1 + i % sources)` before connecting. 0 picks
    /// enough for the connection count (one per 16,384 connections, at least 4).
    pub sources: usize,
    /// The server's process id, to sample its CPU time and memory (from /proc on Linux).
    pub server_pid: Option<u32>,
    /// CPUs to pin the load threads to: thread `i` runs on `cpus[i % cpus.len()]`.
    pub cpus: Option<Vec<usize>>,
}

impl BenchConfig {
    /// A closed-loop ping-pong run against `addr` with defaults: 100 connections,
    /// 64-byte messages, 1 s warm-up, 5 s measured, one thread.
    pub fn new(addr: SocketAddr) -> BenchConfig {
        BenchConfig {
            addr,
            connections: 100,
            payload: 64,
            pipeline: 1,
            rate: None,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            threads: 1,
            connect_rate: 20_000,
            connect_timeout: Duration::from_secs(5),
            sources: 0,
            server_pid: None,
            cpus: None,
        }
    }

    /// Check the fields make sense together and fit in this process's descriptor limit.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |what: &'static str| Err(Error::InvalidConfig(what));
        if self.connections == 0 {
            return invalid("connections must be at least 1");
        }
        if self.payload == 0 {
            return invalid("payload must be at least 1 byte");
        }
        if self.pipeline == 0 {
            return invalid("pipeline must be at least 1");
        }
        if self.rate == Some(0) {
            return invalid("rate must be at least 1 message per second");
        }
        if self.threads == 0 {
            return invalid("threads must be at least 1");
        }
        if self.connect_rate == 0 {
            return invalid("connect rate must be at least 1 per second");
        }
        if self.duration.is_zero() {
            return invalid("duration must be longer than zero");
        }
        if self.cpus.as_ref().is_some_and(|cpus| cpus.is_empty()) {
            return invalid("the CPU list is empty");
        }
        let ceiling = connection_ceiling(self.threads);
        if self.connections as u64 > ceiling {
            return Err(Error::TooManyConnections {
                requested: self.connections,
                ceiling,
            });
        }
        Ok(())
    }

    /// Threads that will actually run: never more than there are connections.
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.min(self.connections).max(1)
    }

    /// Source addresses to spread over (see [`BenchConfig::sources`]).
    pub(crate) fn source_count(&self) -> usize {
        if self.sources > 0 {
            self.sources.min(254)
        } else {
            self.connections.div_ceil(16_384).clamp(4, 254)
        }
    }
}

/// The most connections one load process can hold with `threads` load threads: the
/// open-file limit (raised to its hard limit first) less the epoll instances and
/// [`RESERVED_DESCRIPTORS`]. Here the limit is 20,000, so about 19,900.
pub fn connection_ceiling(threads: usize) -> u64 {
    let limit = iomodels_sys::raise_open_file_limit();
    limit.saturating_sub(RESERVED_DESCRIPTORS + threads as u64)
}
