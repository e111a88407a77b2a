//! `iomodels chat-bots --scenario flood|anonymous|stall|spray|churn`: the chaos suite's
//! own flags, and running it. `--addr`, `--duration`, `--rate` and `--json` are the
//! swarm's; the verdict decides the exit status, and a failed one is one line saying what
//! failed.

use crate::chat::ChatBotsArgs;
use crate::flags;
use anyhow::Result;
use iomodels_chat::{ChaosConfig, ChaosScenario};
use std::time::Duration;

/// Flags of the chaos scenarios of `iomodels chat-bots`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Chaos scenarios (flood, anonymous, stall, spray, churn)")]
pub struct ChaosArgs {
    /// The server's process id: its resident memory and CPU time are sampled (and the
    /// memory judged by flood and churn). Same machine only.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// anonymous, stall: the login deadline the server is expected to enforce.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = flags::positive_seconds)]
    pub login_timeout: Duration,
    /// anonymous, stall: how late after the login deadline a close still counts.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = flags::seconds)]
    pub slack: Duration,
    /// anonymous, stall, spray: hostile connections [default: 2000, 500, 50].
    #[arg(long, value_parser = flags::bounded(1, 100_000))]
    pub connections: Option<usize>,
    /// flood: members that read and chat beside the flooder.
    #[arg(long, default_value_t = 4, value_parser = flags::bounded(1, 126))]
    pub readers: usize,
    /// churn: rounds (the memory of the first and the last are compared).
    #[arg(long, default_value_t = 5, value_parser = flags::bounded(2, 100_000))]
    pub rounds: usize,
    /// churn: connections per round.
    #[arg(long, default_value_t = 300, value_parser = flags::bounded(1, 10_000_000))]
    pub per_round: usize,
    /// flood: the most the server's memory may grow; churn: the most it may move from the
    /// first round to the last. MiB [default: flood 64, churn 8].
    #[arg(long, value_name = "MIB", value_parser = flags::bounded(1, 1 << 20))]
    pub rss_bound: Option<usize>,
    /// spray: the seed of the random bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The room the well-behaved users meet in.
    #[arg(long, default_value_t = 0)]
    pub room: i32,
}

/// Run chaos `scenario` with the flags of `args`; the report goes to stdout (one JSON line
/// with `--json`, the text then on stderr). A failed verdict is an error naming each
/// reason.
pub fn run(scenario: ChaosScenario, args: &ChatBotsArgs) -> Result<()> {
    let chaos = &args.chaos;
    let [addr] = args.addr[..] else {
        return Err(crate::usage(format!(
            "chat-bots --scenario {scenario} attacks one server: give one --addr"
        )));
    };
    let mut config = ChaosConfig::new(scenario, addr);
    config.duration = args.duration;
    if let Some(rate) = args.rate {
        config.rate = rate;
    }
    if let Some(connections) = chaos.connections {
        config.connections = connections;
    }
    if let Some(mib) = chaos.rss_bound {
        config.rss_bound = mib as u64 * 1024 * 1024;
    }
    config.server_pid = chaos.server_pid;
    config.login_timeout = chaos.login_timeout;
    config.slack = chaos.slack;
    config.readers = chaos.readers;
    config.rounds = chaos.rounds;
    config.per_round = chaos.per_round;
    config.seed = chaos.seed;
    config.room = chaos.room;
    // anonymous and stall hold thousands of sockets.
    crate::raise_open_file_limit();
    eprintln!(
        "chat-bots {scenario} against {addr}: {}",
        scenario.description()
    );
    let report = iomodels_chat::run_chaos(&config)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    if !report.passed {
        anyhow::bail!(
            "chat-bots {scenario} against {}: {}",
            report.addr,
            report.problems.join("; ")
        );
    }
    Ok(())
}
