//! What a run measured, and what it shows while running.

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
    /// Connections open at the end of the measured window.
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
    /// The window is over; connections are being closed.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connecting => "connecting",
            Phase::Warmup => "warm-up",
            Phase::Measuring => "measuring",
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
        write!(f, "\n  limit: {}", self.limit)
    }
}
