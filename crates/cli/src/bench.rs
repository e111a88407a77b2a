//! `iomodels bench`: the flags, progress on stderr, the report on stdout, and the exit
//! status decided from the report.
//!
//! With `--json`, stdout carries exactly one line, the [`BenchReport`] as JSON. The run
//! exits 1 when any connection failed, any echo was wrong, or fewer connections were held
//! than asked, unless `--allow-errors`; the report is printed either way.
//!
//! More connections than one process can hold (or `--clients N`) spread the run over
//! client processes ([`iomodels_load::spread`]): this binary started again with the hidden
//! `--client-part K/N`, which makes it client K of N, speaking the spread protocol on its
//! stdin and stdout instead of printing a report.

use crate::flags;
use crate::progress::Progress as Bar;
use anyhow::{Context, Result};
use iomodels_load::{spread, BenchConfig, BenchReport, Phase, Progress};
use iomodels_sys::CpuList;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `iomodels bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// The echo server to load.
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = flags::addr)]
    pub addr: SocketAddr,
    /// Connections to open and keep busy (one process holds at most about 19,900; more are
    /// spread over client processes).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Client processes to spread the connections over, each on source addresses of its
    /// own, merged into one report (0: as many as the count needs, one per ~19,900).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub clients: usize,
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
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = flags::seconds)]
    pub warmup: Duration,
    /// Seconds measured.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = flags::positive_seconds)]
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
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = flags::positive_seconds)]
    pub connect_timeout: Duration,
    /// Source addresses 127.0.0.x to spread connections over (0: enough for the count).
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// After the window, seconds to keep every connection open and silent while the
    /// server's CPU is sampled (its idle cost; needs --server-pid).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = flags::seconds)]
    pub idle: Duration,
    /// Run as client K of N of a spread run (set by the parent process, not by hand).
    #[arg(long, value_name = "K/N", hide = true, value_parser = client_part)]
    pub client_part: Option<ClientPart>,
    /// Print the report as one line of JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 even when connections failed, echoes were wrong or fewer connections were
    /// held than asked (the report shows them either way).
    #[arg(long)]
    pub allow_errors: bool,
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
            first_source: 1,
            first_connection: 0,
            idle: self.idle,
        }
    }
}

/// The value of the hidden `--client-part K/N`: client `index` (from 0) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientPart {
    /// From 0.
    pub index: usize,
    /// How many clients the run has.
    pub count: usize,
}

/// `--client-part K/N`: K from 1 to N.
fn client_part(text: &str) -> Result<ClientPart, String> {
    let bad = || format!("'{text}' is not K/N with 1 <= K <= N");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok(ClientPart {
        index: k - 1,
        count: n,
    })
}

/// Run `iomodels bench`: the report goes to stdout, progress to stderr; an unclean run is
/// an error unless `--allow-errors`.
pub fn run(args: BenchArgs) -> Result<()> {
    let config = args.config();
    if let Some(part) = args.client_part {
        return run_client(&config, part);
    }
    let count = match args.clients {
        0 => spread::clients_needed(&config),
        n => n,
    };
    let report = if count > 1 {
        let program = std::env::current_exe().context("locating this program to spread the run")?;
        let own_args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let command = |index: usize| {
            let mut command = std::process::Command::new(&program);
            command
                .args(&own_args)
                .arg("--client-part")
                .arg(format!("{}/{count}", index + 1));
            command
        };
        measure(&config, |progress| {
            spread::run(&config, count, command, progress)
        })?
    } else {
        measure(&config, |progress| iomodels_load::run(&config, progress))?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)
    } else {
        writeln!(out, "{report}")
    }
    .and_then(|()| out.flush())
    .context("writing the report")?;
    check(&report, args.allow_errors)
}

/// Run as one client process of a spread run: the protocol on stdin and stdout.
fn run_client(config: &BenchConfig, part: ClientPart) -> Result<()> {
    let config = spread::part(config, part.index, part.count)?;
    spread::run_client(&config, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(())
}

/// `Err` naming what went wrong, unless the run was clean or errors are allowed.
fn check(report: &BenchReport, allow_errors: bool) -> Result<()> {
    let problems = report.problems();
    if problems.is_empty() || allow_errors {
        return Ok(());
    }
    anyhow::bail!(
        "bench against {}: {} (--allow-errors exits 0 anyway)",
        report.addr,
        problems.join(", ")
    )
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
    if p.errors.total() > 0 {
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

/// Run with a bar on a terminal (restarted at each phase, a summary line at the end), or
/// a plain line about once a second and at each phase change.
fn measure(
    config: &BenchConfig,
    runner: impl FnOnce(&mut dyn FnMut(&Progress)) -> Result<BenchReport, iomodels_load::Error>,
) -> Result<BenchReport> {
    let mut bar = Bar::new(1, "{prefix:>10} [{bar:30}] {elapsed_precise} {wide_msg}");
    let mut phase = None;
    let mut last = None;
    let report = runner(&mut |p: &Progress| {
        let changed = phase != Some(p.phase);
        phase = Some(p.phase);
        if let Bar::Bar(bar) = &bar {
            if changed {
                bar.set_length(p.phase_length.as_millis().max(1) as u64);
                bar.set_prefix(p.phase.to_string());
                bar.reset_elapsed();
            }
            bar.set_position(p.elapsed.as_millis() as u64);
            bar.set_message(describe(p));
        } else if bar.line_due(changed) {
            eprintln!(
                "bench {}: {}: {:.1}/{:.1} s, {}",
                config.addr,
                p.phase,
                p.elapsed.as_secs_f64(),
                p.phase_length.as_secs_f64(),
                describe(p)
            );
        }
        last = Some(*p);
    });
    if matches!(bar, Bar::Bar(_)) {
        bar.clear();
        if let Some(p) = last {
            eprintln!("bench {}: {}: {}", config.addr, p.phase, describe(&p));
        }
    }
    Ok(report?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use iomodels_sys::parse_cpu_list;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
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
        assert!(!cli.args.allow_errors);
    }

    #[test]
    fn out_of_range_durations_are_usage_errors() {
        for bad in [
            ["--duration", "inf"],
            ["--duration", "0"],
            ["--warmup", "-1"],
        ] {
            let error = Cli::try_parse_from(["bench", bad[0], bad[1]])
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(error.exit_code(), 2, "{error}");
        }
    }
}
