//! What to run: the target, the load shape and the phases.

use crate::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

/// Descriptors kept free for the process itself (stdio, epoll instances, /proc files,
/// whatever the embedding program holds) when computing the connection ceiling.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The highest host number of a source address 127.0.0.x (255 is the broadcast address).
pub(crate) const MAX_SOURCE_HOST: usize = 254;

/// Connections given to one source address when the count picks them: half the 28,232
/// ephemeral ports of Linux's default range, so ports never run out even with earlier
/// connections in TIME_WAIT.
pub(crate) const CONNECTIONS_PER_SOURCE: usize = 16_384;

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
    /// The first source host: connection `i` binds to `127.0.0.(first_source + i %
    /// sources)`. 1 unless this process is one part of a run spread over several
    /// ([`crate::spread`]), whose parts use disjoint addresses.
    pub first_source: u8,
    /// The run-wide number of this process's first connection, which picks the byte
    /// pattern of each stream: 0 unless this process is one part of a spread run, so no
    /// two connections of a run carry the same bytes.
    pub first_connection: u64,
    /// After the window, how long to keep every connection open with no traffic while the
    /// server's CPU time is sampled (its idle cost; see [`crate::IdleReport`]). Zero skips
    /// the idle hold.
    pub idle: Duration,
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
            first_source: 1,
            first_connection: 0,
            idle: Duration::ZERO,
        }
    }

    /// Check the fields make sense together and fit in this process's descriptor limit.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_shape()?;
        let ceiling = connection_ceiling(self.threads);
        if self.connections as u64 > ceiling {
            return Err(Error::TooManyConnections {
                requested: self.connections,
                ceiling,
            });
        }
        Ok(())
    }

    /// Check the fields make sense together, whatever the descriptor limit.
    pub(crate) fn validate_shape(&self) -> Result<(), Error> {
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
        if self.first_source == 0
            || self.first_source as usize + self.source_count() - 1 > MAX_SOURCE_HOST
        {
            return invalid("source addresses must lie within 127.0.0.1 to 127.0.0.254");
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
            self.sources.min(MAX_SOURCE_HOST)
        } else {
            self.connections
                .div_ceil(CONNECTIONS_PER_SOURCE)
                .clamp(4, MAX_SOURCE_HOST)
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
