//! `iomodels compare`: the flags, and progress while it measures.

use crate::flags;
use crate::progress::Progress as Bar;
use anyhow::Result;
use iomodels_compare::{CompareConfig, Progress};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `iomodels compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Models to measure: `all`, `none`, or a list like `epoll,uring` (see `iomodels models`).
    #[arg(long, default_value = "all")]
    pub models: String,
    /// Peers to measure: `all`, `none`, or a list of tokio-current, tokio-multi, monoio.
    #[arg(long, default_value = "all")]
    pub peers: String,
    /// Connection counts of the bench matrix [default: 1,100,1000,10000; --quick: 1,100].
    #[arg(long, value_delimiter = ',')]
    pub connections: Option<Vec<u64>>,
    /// Payload sizes in bytes [default: 64].
    #[arg(long, value_delimiter = ',')]
    pub payloads: Option<Vec<u64>>,
    /// Pipeline depths; 1 is ping-pong [default: 1,16].
    #[arg(long, value_delimiter = ',')]
    pub pipelines: Option<Vec<u64>>,
    /// Warm-up seconds per run [default: 1; --quick: 0.5].
    #[arg(long, value_name = "SECS", value_parser = flags::seconds)]
    pub warmup: Option<Duration>,
    /// Measured seconds per run [default: 5; --quick: 1].
    #[arg(long, value_name = "SECS", value_parser = flags::positive_seconds)]
    pub duration: Option<Duration>,
    /// Highest connection count of the capacity ramp [default: 150000; --quick: 1000].
    /// Past ~19,900 connections bench spreads over client processes.
    #[arg(long)]
    pub capacity_cap: Option<u64>,
    /// Steps of the capacity ramp [default: 1000,2000,5000,10000,20000,50000,100000,150000
    /// up to the cap, then the cap].
    #[arg(long, value_delimiter = ',')]
    pub capacity_steps: Option<Vec<u64>>,
    /// Seconds each capacity step keeps its connections open and silent after the window,
    /// sampling the server's idle CPU [default: 2; --quick: 1; 0: no idle hold].
    #[arg(long, value_name = "SECS", value_parser = flags::seconds)]
    pub capacity_idle: Option<Duration>,
    /// Pin every server to these CPUs, like `0` or `0-1`.
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Pin the load generator to these CPUs (passed to bench as --cpus).
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// Workers for our models and the multi-threaded peers [default: the number of server
    /// CPUs when pinned, else each model's default and all CPUs for the peers].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Load generator threads (passed to bench as --threads).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run the matrix this many times, every server once per round in turn, and report
    /// each cell's median round (the machine's noise shows in the spread; see compare.json).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// A short run (about a minute for two servers): counts 1,100, 1 s windows, one
    /// capacity step of 1000, a chat swarm of 100 bots at 500 and 1000 chats/s.
    #[arg(long)]
    pub quick: bool,
    /// Folder the report is written to.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Folder holding the `iomodels` and `iomodels-peers` binaries [default: the folder
    /// of the running executable].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Measure nothing: rewrite compare.md and the charts in `--out` from this compare.json.
    #[arg(long, value_name = "FILE")]
    pub from_json: Option<PathBuf>,
    /// Root of the iomodels source tree, to count the drivers' lines [default: found from
    /// the current directory].
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Chat servers of the chat matrix: `all` (the scalable models and tokio-chat), `none`,
    /// or a list like `epoll,uring,tokio-chat`.
    #[arg(long, default_value = "all")]
    pub chat_servers: String,
    /// Bots of the chat swarm, in rooms of 20 [default: 1000; --quick: 100].
    #[arg(long, value_parser = flags::bounded(1, 100_000))]
    pub chat_bots: Option<usize>,
    /// Offered chats per second of the whole swarm, one run each [default:
    /// 1000,2000,5000,10000; --quick: 500,1000].
    #[arg(long, value_delimiter = ',')]
    pub chat_rates: Option<Vec<u64>>,
}

impl From<CompareArgs> for CompareConfig {
    fn from(args: CompareArgs) -> CompareConfig {
        CompareConfig {
            models: args.models,
            peers: args.peers,
            connections: args.connections,
            payloads: args.payloads,
            pipelines: args.pipelines,
            warmup: args.warmup.map(|d| d.as_secs_f64()),
            duration: args.duration.map(|d| d.as_secs_f64()),
            capacity_cap: args.capacity_cap,
            capacity_steps: args.capacity_steps,
            capacity_idle: args.capacity_idle.map(|d| d.as_secs_f64()),
            server_cpus: args.server_cpus,
            client_cpus: args.client_cpus,
            workers: args.workers,
            threads: args.threads,
            rounds: args.rounds,
            quick: args.quick,
            out: args.out,
            bin_dir: args.bin_dir,
            from_json: args.from_json,
            source: args.source,
            chat_servers: args.chat_servers,
            chat_bots: args.chat_bots,
            chat_rates: args.chat_rates,
        }
    }
}

/// A bar counting runs on a terminal; a line per run otherwise.
struct Runs {
    bar: Option<Bar>,
    total: u64,
    done: u64,
}

impl Progress for Runs {
    fn begin(&mut self, total: u64) {
        self.total = total;
        self.bar = Some(Bar::new(
            total,
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        ));
    }

    fn start(&mut self, what: &str) {
        if let Some(Bar::Bar(bar)) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    fn finish(&mut self, line: &str) {
        self.done += 1;
        match &self.bar {
            Some(Bar::Bar(bar)) => {
                bar.println(line);
                bar.inc(1);
            }
            _ => eprintln!("compare [{}/{}] {line}", self.done, self.total),
        }
    }

    fn skip(&mut self, runs: u64) {
        self.done += runs;
        if let Some(Bar::Bar(bar)) = &self.bar {
            bar.inc(runs);
        }
    }

    fn close(&mut self) {
        if let Some(bar) = &self.bar {
            bar.clear();
        }
    }
}

/// Run `iomodels compare`.
pub fn run(args: CompareArgs) -> Result<()> {
    let mut runs = Runs {
        bar: None,
        total: 0,
        done: 0,
    };
    Ok(iomodels_compare::run(args.into(), &mut runs)?)
}
