//! What a run measured, and what it shows while running.

use crate::error::Error;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The result of one run. Its serde_json form is the `--json` output of `iomodels bench`,
/// one object on one line; `compare` parses it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The server loaded.
    pub addr: SocketAddr,
    /// Connections asked for.
    pub connections_requested: usize,
    /// Connections open at the end of the measured window and, in a closed loop, answered
    /// at least once (a connection left in a full server's listen backlog looks open but is
    /// never served).
    pub connections_held: usize,
    /// Bytes per message.
    pub payload: usize,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// Open-loop total rate in messages per second; null for closed loop.
    pub rate: Option<u64>,
    /// Warm-up length.
    pub warmup_secs: f64,
    /// Measured window length.
    pub duration_secs: f64,
    /// Messages echoed back whole and verified within the window.
    pub messages: u64,
    /// `messages` per second of the window.
    pub messages_per_sec: f64,
    /// Megabytes (10^6 bytes) per second written to the server.
    pub mb_per_sec_out: f64,
    /// Megabytes (10^6 bytes) per second read back (verified).
    pub mb_per_sec_in: f64,
    /// Round-trip latency of the window's messages.
    pub latency_us: Latency,
    /// Connection and data errors, by kind.
    pub errors: ErrorCounts,
    /// CPU time (user + system) of the load threads over the window.
    pub client_cpu_secs: f64,
    /// `client_cpu_secs` per message, in microseconds.
    pub client_cpu_us_per_msg: f64,
    /// The server process, when its pid was given.
    pub server: Option<ServerReport>,
    /// Which side's CPU was the bottleneck.
    pub limit: Limit,
    /// The server over the idle hold after the window, when one was asked for and the
    /// server's pid given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleReport>,
    /// Each client process of a run spread over several ([`crate::spread`]), in order;
    /// empty for a run in one process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientReport>,
}

impl BenchReport {
    /// What makes this run unfit to quote, one phrase each: connections that failed or
    /// were closed, echoes that were wrong, fewer connections held than asked. Empty for a
    /// clean run. `iomodels bench` exits non-zero unless this is empty (or
    /// `--allow-errors`).
    pub fn problems(&self) -> Vec<String> {
        let e = &self.errors;
        let mut problems: Vec<String> = [
            (e.connect_failed, "connection attempts failed"),
            (e.connect_timeout, "connection attempts timed out"),
            (e.disconnected, "connections closed or reset by the server"),
            (e.verify_failed, "connections got a wrong echo"),
        ]
        .into_iter()
        .filter(|&(count, _)| count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        if self.connections_held < self.connections_requested {
            problems.push(format!(
                "{} of {} connections held",
                self.connections_held, self.connections_requested
            ));
        }
        problems
    }
}

/// The server while every connection stayed open and silent after the window: what
/// holding them costs it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleReport {
    /// Length of the sampled hold, in seconds.
    pub secs: f64,
    /// Connections open when the window closed (and kept through the hold).
    pub connections: usize,
    /// The server's user + system time over the hold, in seconds (10 ms resolution on
    /// Linux).
    pub server_cpu_secs: f64,
    /// `server_cpu_secs / secs`: cores the idle server kept busy.
    pub server_cpu_per_sec: f64,
}

/// One client process of a spread run, as the merged report lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    /// Its place in the run, from 0.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// The source addresses its connections were bound to, like `127.0.0.3` or
    /// `127.0.0.3-127.0.0.4`; empty when the target is not IPv4 loopback.
    pub sources: String,
    /// Connections it was given.
    pub connections_requested: usize,
    /// Connections it held when the window closed (as [`BenchReport::connections_held`]).
    pub connections_held: usize,
    /// Messages it echoed and verified within the window.
    pub messages: u64,
    /// Its errors.
    pub errors: ErrorCounts,
    /// Its load threads' CPU time over the window.
    pub cpu_secs: f64,
}

/// What one load process measured over the window, before any percentile is taken: the
/// unit a spread run's parent merges ([`Partial::merge`]), and the last line a client
/// process writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Connections asked of this process.
    pub connections_requested: usize,
    /// Connections open when the window closed.
    pub connections_held: usize,
    /// Load threads that ran.
    pub threads: usize,
    /// Messages echoed and verified within the window.
    pub messages: u64,
    /// Bytes written within the window.
    pub bytes_out: u64,
    /// Bytes read back and verified within the window.
    pub bytes_in: u64,
    /// Errors, by kind.
    pub errors: ErrorCounts,
    /// The load threads' CPU time over the window, in seconds.
    pub cpu_secs: f64,
    /// Round-trip latencies in nanoseconds: the HdrHistogram V2 (deflate) encoding in
    /// base64 on the wire, so merging loses nothing.
    #[serde(with = "histogram_text")]
    pub histogram: Histogram<u64>,
}

impl Partial {
    /// Nothing measured yet: the identity of [`Partial::merge`].
    pub fn empty() -> Partial {
        Partial {
            connections_requested: 0,
            connections_held: 0,
            threads: 0,
            messages: 0,
            bytes_out: 0,
            bytes_in: 0,
            errors: ErrorCounts::default(),
            cpu_secs: 0.0,
            histogram: latency_histogram(),
        }
    }

    /// Add `other` to this one: counts and CPU summed, histograms merged.
    pub fn merge(&mut self, other: &Partial) -> Result<(), Error> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| Error::Histogram(e.to_string()))?;
        self.connections_requested += other.connections_requested;
        self.connections_held += other.connections_held;
        self.threads += other.threads;
        self.messages += other.messages;
        self.bytes_out += other.bytes_out;
        self.bytes_in += other.bytes_in;
        self.errors.add(&other.errors);
        self.cpu_secs += other.cpu_secs;
        Ok(())
    }
}

/// The histogram every load thread records into: 1 ns to 60 s, 3 significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// A histogram as text: its HdrHistogram V2 deflate encoding, in base64.
mod histogram_text {
    use base64::Engine as _;
    use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
    use hdrhistogram::Histogram;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        histogram: &Histogram<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(|e| S::Error::custom(format!("encoding a histogram: {e:?}")))?;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| D::Error::custom(format!("histogram base64: {e}")))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| D::Error::custom(format!("decoding a histogram: {e:?}")))
    }
}

/// Round-trip latency percentiles in microseconds. In open loop they are measured from
/// each message's scheduled send time, so a server that falls behind is charged for the
/// queueing it causes (no coordinated omission).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest seen.
    pub max: f64,
}

/// Errors by kind. None of them counts as throughput.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Connection attempts refused or failed (including local failures such as running
    /// out of ports or descriptors).
    pub connect_failed: u64,
    /// Connection attempts that did not complete within the connect timeout.
    pub connect_timeout: u64,
    /// Established connections the server closed or reset.
    pub disconnected: u64,
    /// Connections closed because an echoed byte was not the byte sent at that position
    /// (dropped, reordered, corrupted or extra bytes); each counts once.
    pub verify_failed: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect_failed + self.connect_timeout + self.disconnected + self.verify_failed
    }

    /// Add another set of counts to this one.
    pub fn add(&mut self, other: &ErrorCounts) {
        self.connect_failed += other.connect_failed;
        self.connect_timeout += other.connect_timeout;
        self.disconnected += other.disconnected;
        self.verify_failed += other.verify_failed;
    }
}

/// The server process over the window, sampled from /proc.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    /// Its process id.
    pub pid: u32,
    /// utime + stime over the window, in seconds (10 ms resolution).
    pub cpu_secs: f64,
    /// `cpu_secs` per message, in microseconds.
    pub cpu_us_per_msg: f64,
    /// VmRSS at the end of the window, in KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS) at the end of the window, in KiB.
    pub hwm_kib: u64,
}

/// Which side limited the throughput: the one whose CPU time over the window came closer
/// to wall time times the cores it could use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    /// The load generator's threads were the busier.
    Client,
    /// The server was the busier.
    Server,
    /// No server pid, or neither side used even half of its cores (latency-bound, or an
    /// open-loop rate below both capacities).
    Unknown,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Client => "client",
            Limit::Server => "server",
            Limit::Unknown => "unknown",
        })
    }
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opening connections.
    Connecting,
    /// Sending, not yet measuring.
    Warmup,
    /// Inside the measured window.
    Measuring,
    /// After the window: every connection open and silent while the server's idle cost
    /// is sampled.
    Holding,
    /// The window (and the idle hold) is over; connections are being closed.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connecting => "connecting",
            Phase::Warmup => "warm-up",
            Phase::Measuring => "measuring",
            Phase::Holding => "idle hold",
            Phase::Done => "done",
        })
    }
}

/// A snapshot handed to the progress callback of [`crate::run`] a few times a second.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Time spent in this phase so far.
    pub elapsed: Duration,
    /// How long this phase lasts (the connect phase: the time the connect rate needs).
    pub phase_length: Duration,
    /// Connections open now.
    pub connections_open: usize,
    /// Connections asked for.
    pub connections_requested: usize,
    /// Messages echoed and verified since traffic began (warm-up included).
    pub messages: u64,
    /// Messages per second over the last interval; in [`Phase::Done`], over the window.
    pub messages_per_sec: f64,
    /// Errors so far.
    pub errors: ErrorCounts,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match (self.rate, self.pipeline) {
            (Some(rate), _) => format!("open loop at {rate} msgs/s"),
            (None, 1) => "ping-pong".to_string(),
            (None, k) => format!("pipelined, {k} in flight"),
        };
        writeln!(
            f,
            "{}: {} of {} connections held, {} B payload, {mode}, {:.1} s measured",
            self.addr,
            self.connections_held,
            self.connections_requested,
            self.payload,
            self.duration_secs
        )?;
        writeln!(
            f,
            "  {:.0} msgs/s ({} messages), {:.2} MB/s out, {:.2} MB/s in",
            self.messages_per_sec, self.messages, self.mb_per_sec_out, self.mb_per_sec_in
        )?;
        let l = &self.latency_us;
        writeln!(
            f,
            "  latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        let e = &self.errors;
        writeln!(
            f,
            "  errors: connect_failed {}  connect_timeout {}  disconnected {}  verify_failed {}",
            e.connect_failed, e.connect_timeout, e.disconnected, e.verify_failed
        )?;
        write!(
            f,
            "  client CPU {:.2} s = {:.2} us/msg",
            self.client_cpu_secs, self.client_cpu_us_per_msg
        )?;
        if let Some(s) = &self.server {
            write!(
                f,
                "; server (pid {}) CPU {:.2} s = {:.2} us/msg, RSS {} KiB, peak {} KiB",
                s.pid, s.cpu_secs, s.cpu_us_per_msg, s.rss_kib, s.hwm_kib
            )?;
        }
        write!(f, "\n  limit: {}", self.limit)?;
        if let Some(idle) = &self.idle {
            write!(
                f,
                "\n  idle {:.1} s holding {} connections: server CPU {:.2} s = {:.4} CPU-s/s",
                idle.secs, idle.connections, idle.server_cpu_secs, idle.server_cpu_per_sec
            )?;
        }
        let count = self.clients.len();
        for c in &self.clients {
            let e = &c.errors;
            write!(
                f,
                "\n  client {}/{count} (pid {}, from {}): {} of {} held, {} messages, CPU {:.2} s, \
                 errors {}",
                c.index + 1,
                c.pid,
                if c.sources.is_empty() { "any" } else { &c.sources },
                c.connections_held,
                c.connections_requested,
                c.messages,
                c.cpu_secs,
                e.total()
            )?;
        }
        Ok(())
    }
}
