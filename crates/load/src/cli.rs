//! `iomodels bench`: the flags, and running one benchmark from them.
//!
//! With `--json`, stdout carries exactly one line, the [`BenchReport`] as JSON; progress
//! always goes to stderr (a progress bar on a terminal, plain lines otherwise).

use crate::config::BenchConfig;
use crate::error::Error;
use crate::report::{BenchReport, Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Flags of `iomodels bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// The echo server to load.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub addr: SocketAddr,
    /// Connections to open and keep busy (one process holds at most about 19,900).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Bytes per message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Messages in flight per connection (1 = ping-pong); ignored with --rate.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Open loop: total messages per second over all connections, latency measured from
    /// each message's scheduled send time.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub rate: Option<u64>,
    /// Seconds of traffic before measuring.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// Seconds measured.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Load threads, each with its own epoll and share of the connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The server's pid, to report its CPU per message and memory from /proc.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// CPUs to pin the load threads to, e.g. `1` or `0,2-3`.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
    /// New connections per second during the connect phase.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub connect_rate: u64,
    /// Seconds one connection attempt may take.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub connect_timeout: Duration,
    /// Source addresses 127.0.0.x to spread connections over (0: enough for the count).
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// Print the report as one line of JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> BenchConfig {
        BenchConfig {
            addr: self.addr,
            connections: self.connections,
            payload: self.payload,
            pipeline: self.pipeline,
            rate: self.rate,
            warmup: self.warmup,
            duration: self.duration,
            threads: self.threads,
            connect_rate: self.connect_rate,
            connect_timeout: self.connect_timeout,
            sources: self.sources,
            server_pid: self.server_pid,
            cpus: self.cpus.as_ref().map(|list| list.0.clone()),
        }
    }
}

/// A CPU list such as `1`, `0,2` or `0-3,6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// A CPU list that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("not a CPU list (expected e.g. `1`, `0,2` or `0-3`): {0:?}")]
pub struct BadCpuList(String);

impl FromStr for CpuList {
    type Err = BadCpuList;

    fn from_str(s: &str) -> Result<CpuList, BadCpuList> {
        let bad = || BadCpuList(s.to_string());
        let mut cpus = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let low: usize = low.trim().parse().map_err(|_| bad())?;
            let high: usize = high.trim().parse().map_err(|_| bad())?;
            if low > high {
                return Err(bad());
            }
            cpus.extend(low..=high);
        }
        Ok(CpuList(cpus))
    }
}

/// Seconds as a decimal number.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{e}"))
}

/// Run `iomodels bench`: the report goes to stdout (one JSON line with `--json`),
/// progress to stderr.
pub fn run(args: BenchArgs) -> Result<(), Error> {
    let config = args.config();
    let report = if std::io::stderr().is_terminal() {
        with_bar(&config)?
    } else {
        with_lines(&config)?
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let line = serde_json::to_string(&report)?;
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{report}")
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing the report", e))
}

/// One line describing a progress snapshot.
fn describe(p: &Progress) -> String {
    let mut line = format!(
        "{}/{} connections",
        p.connections_open, p.connections_requested
    );
    if p.phase != Phase::Connecting {
        line += &format!(", {:.0} msgs/s", p.messages_per_sec);
    }
    let errors = p.errors.total();
    if errors > 0 {
        line += &format!(
            ", errors: {} connect failed, {} timed out, {} disconnected, {} verify failed",
            p.errors.connect_failed,
            p.errors.connect_timeout,
            p.errors.disconnected,
            p.errors.verify_failed
        );
    }
    line
}

/// Run with an indicatif bar on stderr, restarted at each phase; a plain summary line at
/// the end.
fn with_bar(config: &BenchConfig) -> Result<BenchReport, Error> {
    let style =
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {elapsed_precise} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let bar = ProgressBar::new(1).with_style(style);
    let mut phase = None;
    let mut last = None;
    let report = crate::run(config, |p| {
        if phase != Some(p.phase) {
            phase = Some(p.phase);
            bar.set_length(p.phase_length.as_millis().max(1) as u64);
            bar.set_prefix(p.phase.to_string());
            bar.reset_elapsed();
        }
        bar.set_position(p.elapsed.as_millis() as u64);
        bar.set_message(describe(p));
        last = Some(*p);
    });
    bar.finish_and_clear();
    if let Some(p) = last {
        eprintln!("bench {}: {}: {}", config.addr, p.phase, describe(&p));
    }
    report
}

/// Run with a plain progress line on stderr about once a second and at each phase change.
fn with_lines(config: &BenchConfig) -> Result<BenchReport, Error> {
    let mut last: Option<(Phase, Instant)> = None;
    crate::run(config, |p| {
        let due = match last {
            Some((phase, at)) => phase != p.phase || at.elapsed() >= Duration::from_secs(1),
            None => true,
        };
        if due {
            eprintln!(
                "bench {}: {}: {:.1}/{:.1} s, {}",
                config.addr,
                p.phase,
                p.elapsed.as_secs_f64(),
                p.phase_length.as_secs_f64(),
                describe(p)
            );
            last = Some((p.phase, Instant::now()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn cpu_lists() {
        assert_eq!("1".parse::<CpuList>().unwrap().0, vec![1]);
        assert_eq!("0,2-4".parse::<CpuList>().unwrap().0, vec![0, 2, 3, 4]);
        assert!("3-1".parse::<CpuList>().is_err());
        assert!("a".parse::<CpuList>().is_err());
    }

    #[test]
    fn flags_parse_into_config() {
        let cli = Cli::parse_from([
            "bench",
            "--addr",
            "127.0.0.1:9000",
            "--connections",
            "1000",
            "--payload",
            "128",
            "--pipeline",
            "4",
            "--warmup",
            "0.5",
            "--duration",
            "2",
            "--cpus",
            "1",
            "--server-pid",
            "42",
            "--json",
        ]);
        let config = cli.args.config();
        assert_eq!(config.connections, 1000);
        assert_eq!(config.payload, 128);
        assert_eq!(config.pipeline, 4);
        assert_eq!(config.warmup, Duration::from_millis(500));
        assert_eq!(config.duration, Duration::from_secs(2));
        assert_eq!(config.cpus, Some(vec![1]));
        assert_eq!(config.server_pid, Some(42));
        assert_eq!(config.rate, None);
        assert!(cli.args.json);
    }
}
