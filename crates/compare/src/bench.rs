//! The result of one `iomodels bench --json` run: the contract with the load generator.
//!
//! Deserialized into our own types on purpose, so `compare` depends on the JSON, not on
//! the load crate's internals. Unknown fields are ignored, so the load generator may add.

use serde::{Deserialize, Serialize};

/// One line of `iomodels bench --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The address benched.
    pub addr: String,
    /// Connections asked for.
    pub connections_requested: u64,
    /// Connections open and echoing through the measured window.
    pub connections_held: u64,
    /// Bytes per message.
    pub payload: u64,
    /// Messages in flight per connection (1: ping-pong).
    pub pipeline: u64,
    /// Open-loop total rate, if any.
    pub rate: Option<f64>,
    /// Warm-up before the measured window.
    pub warmup_secs: f64,
    /// The measured window.
    pub duration_secs: f64,
    /// Messages echoed and verified in the window.
    pub messages: u64,
    /// `messages / duration_secs`.
    pub messages_per_sec: f64,
    /// MB/s sent.
    pub mb_per_sec_out: f64,
    /// MB/s received.
    pub mb_per_sec_in: f64,
    /// Round-trip latency percentiles, in microseconds.
    pub latency_us: Latency,
    /// Failures, by kind.
    pub errors: Errors,
    /// The load generator's CPU time in the window.
    pub client_cpu_secs: f64,
    /// The load generator's CPU microseconds per message.
    pub client_cpu_us_per_msg: f64,
    /// The server's CPU and memory, when `--server-pid` was given.
    pub server: Option<ServerSample>,
    /// Which side's core was saturated: "client", "server" or "unknown".
    pub limit: String,
    /// The server while every connection stayed open and silent after the window (`bench
    /// --idle`, which each capacity step passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleSample>,
    /// The client processes bench spread the run over (empty: one process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientSample>,
}

/// The server over bench's idle hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleSample {
    /// Length of the hold.
    pub secs: f64,
    /// Connections held through it.
    pub connections: u64,
    /// The server's CPU time over the hold.
    pub server_cpu_secs: f64,
    /// `server_cpu_secs / secs`: cores the idle server kept busy.
    pub server_cpu_per_sec: f64,
}

/// One client process of a spread bench run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSample {
    /// Its place, from 0.
    pub index: usize,
    /// Its pid.
    pub pid: u32,
    /// The source addresses its connections came from.
    pub sources: String,
    /// Connections it was given.
    pub connections_requested: u64,
    /// Connections it held.
    pub connections_held: u64,
    /// Messages it echoed in the window.
    pub messages: u64,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Failures counted by the load generator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    /// connect(2) refused or failed.
    pub connect_failed: u64,
    /// connect did not finish in time.
    pub connect_timeout: u64,
    /// An established connection was closed or reset.
    pub disconnected: u64,
    /// An echo differed from what was sent.
    pub verify_failed: u64,
}

impl Errors {
    /// All failures together.
    pub fn total(&self) -> u64 {
        self.connect_failed + self.connect_timeout + self.disconnected + self.verify_failed
    }
}

/// The server process as sampled from /proc over the measured window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// Its pid.
    pub pid: u32,
    /// utime + stime in the window.
    pub cpu_secs: f64,
    /// Server CPU microseconds per message.
    pub cpu_us_per_msg: f64,
    /// Resident set at the end of the window, KiB.
    pub rss_kib: u64,
    /// Peak resident set, KiB.
    pub hwm_kib: u64,
}

impl BenchResult {
    /// Parse bench's stdout: the last line that holds a JSON object.
    pub fn from_stdout(stdout: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(crate::process::last_json_line(stdout))
    }

    /// Every requested connection held, at least one message, and no failure of any kind.
    pub fn is_clean(&self) -> bool {
        self.connections_held == self.connections_requested
            && self.messages > 0
            && self.errors.total() == 0
    }

    /// Messages per second of server CPU time, if the server was sampled.
    pub fn messages_per_server_cpu_sec(&self) -> Option<f64> {
        let server = self.server.as_ref()?;
        (server.cpu_secs > 0.0).then(|| self.messages as f64 / server.cpu_secs)
    }
}
