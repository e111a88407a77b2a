//! `iomodels chat-server`, `chat-bots` and `chat-client`: the flags, and running the chat
//! library from them.

use crate::flags::{self, BotsScenario, IdleTimeout, LoginTimeout};
use crate::progress::Progress;
use anyhow::{Context, Result};
use iomodels_chat::{
    engine_config, start, AcceptAll, ChatConfig, ClusterConfig, Mode, PasswordFile, RateLimit,
    RedisUsers, SwarmConfig, UserStore, DEFAULT_MAX_ANONYMOUS, DEFAULT_MAX_PENDING, MAX_ROOMS,
};
use iomodels_engine::Model;
use iomodels_metrics::Source;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `iomodels chat-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatServerArgs {
    /// The I/O model (see `iomodels models`).
    #[arg(long, default_value = flags::default_model(), value_parser = flags::model())]
    pub model: Model,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7001", value_parser = flags::addr)]
    pub addr: SocketAddr,
    /// Number of rooms (numbered from 0), at most 100000.
    #[arg(long, default_value_t = 10, value_parser = flags::bounded(1, MAX_ROOMS))]
    pub rooms: usize,
    /// Users per room (1 to 127).
    #[arg(long, default_value_t = 20, value_parser = flags::bounded(1, 127))]
    pub room_capacity: usize,
    /// Users logged in at once.
    #[arg(long, default_value_t = 1000, value_parser = flags::bounded(1, usize::MAX))]
    pub max_users: usize,
    /// Close a session silent for this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = flags::idle_timeout)]
    pub idle_timeout: IdleTimeout,
    /// Where the game logic runs.
    #[arg(long, default_value = "logic", value_parser = flags::mode())]
    pub mode: Mode,
    /// A users file of `user:argon2-hash` lines, written by `iomodels chat-users add`, or
    /// `redis`: the same hashes kept in the --redis Redis (`chat-users add --redis`; a file
    /// named `redis` is `./redis`). Without it every password is accepted.
    #[arg(long, value_name = "FILE|redis")]
    pub users: Option<PathBuf>,
    /// Worker threads of the model (default: the model's own).
    #[arg(long)]
    pub workers: Option<usize>,
    /// A session's requests read and not yet handled, at most; past it the session is not
    /// read until the game logic catches up.
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING, value_parser = flags::bounded(1, 1 << 20))]
    pub max_pending: usize,
    /// Chats (221) per session: RATE/BURST, RATE, or off; a session over it is closed
    /// (close reason "rate limited").
    #[arg(long, value_name = "RATE/BURST", default_value = "20/40", value_parser = flags::rate_limit)]
    pub chat_limit: RateLimit,
    /// Other requests (login, room enter and leave) per session: RATE/BURST, RATE, or off.
    #[arg(long, value_name = "RATE/BURST", default_value = "30/60", value_parser = flags::rate_limit)]
    pub request_limit: RateLimit,
    /// Close a session not logged in this many seconds after it connected (0: never;
    /// close reason "login timeout").
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = flags::login_timeout)]
    pub login_timeout: LoginTimeout,
    /// Sessions not logged in yet, at most; past it the oldest of them is closed to make
    /// room (close reason "over capacity").
    #[arg(long, default_value_t = DEFAULT_MAX_ANONYMOUS, value_parser = flags::bounded(1, usize::MAX))]
    pub max_anonymous: usize,
    /// Sessions from one source address, at most (default: no cap; close reason "over
    /// capacity").
    #[arg(long, value_parser = flags::bounded(1, usize::MAX))]
    pub max_per_address: Option<usize>,
    /// Threads that check passwords (with --users).
    #[arg(long, default_value_t = 2, value_parser = flags::bounded(1, 256))]
    pub verifier_threads: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless given).
    #[arg(long, value_name = "ADDR", value_parser = flags::addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// Join the instances that share this Redis as one chat world (redis://HOST:PORT).
    /// Logins are then one per user id across the cluster, and rooms span the instances
    /// (issue 11, in progress). An unreachable Redis at start is an error.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// This instance's name in the cluster, unique among the running instances (default:
    /// HOSTNAME:PORT, or HOSTNAME:pid-PID when the port is 0). Needs --redis.
    #[arg(long, value_name = "NAME", requires = "redis")]
    pub instance: Option<String>,
    /// How long this instance's liveness key lives without a heartbeat: an instance that
    /// dies is reaped, its users logged out, within 4/3 of it. Needs --redis.
    #[arg(long, value_name = "SECS", default_value = "6", value_parser = flags::positive_seconds, requires = "redis")]
    pub instance_ttl: Duration,
    /// Users logged in across the cluster, at most (default: only --max-users per
    /// instance). Needs --redis.
    #[arg(long, value_parser = flags::bounded(1, usize::MAX), requires = "redis")]
    pub cluster_max_users: Option<usize>,
}

/// The cluster settings of `args`, if it has `--redis`.
fn cluster(args: &ChatServerArgs) -> Option<ClusterConfig> {
    let url = args.redis.clone()?;
    let instance = args.instance.clone().unwrap_or_else(|| {
        let host = hostname();
        match args.addr.port() {
            0 => format!("{host}:pid-{}", std::process::id()),
            port => format!("{host}:{port}"),
        }
    });
    Some(ClusterConfig {
        instance_ttl: args.instance_ttl,
        max_users: args.cluster_max_users,
        ..ClusterConfig::new(url, instance)
    })
}

/// This machine's name, for the default instance name.
fn hostname() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname").ok();
    from_file
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".into())
}

/// Run the chat server until SIGINT or SIGTERM, then shut down gracefully.
pub fn run_server(args: ChatServerArgs) -> Result<()> {
    let store: Arc<dyn UserStore> = match &args.users {
        Some(path) if path.as_os_str() == "redis" => {
            let url = args
                .redis
                .as_deref()
                .ok_or_else(|| crate::usage("--users redis needs --redis URL"))?;
            Arc::new(RedisUsers::connect(url)?)
        }
        Some(path) => Arc::new(PasswordFile::load(path)?),
        None => Arc::new(AcceptAll),
    };
    let mut engine = engine_config(args.model, args.addr);
    engine.idle_timeout = args.idle_timeout.0;
    engine.workers = args.workers;
    let cluster = cluster(&args);
    let joined = match &cluster {
        Some(c) => format!(", instance {} of the cluster at {}", c.instance, c.url),
        None => String::new(),
    };
    let chat = ChatConfig {
        rooms: args.rooms,
        room_capacity: args.room_capacity,
        max_users: args.max_users,
        mode: args.mode,
        max_pending: args.max_pending,
        chat_limit: args.chat_limit,
        request_limit: args.request_limit,
        login_timeout: args.login_timeout.0,
        max_anonymous: args.max_anonymous,
        max_per_address: args.max_per_address,
        verifier_threads: args.verifier_threads,
        cluster,
    };
    let descriptors = crate::raise_open_file_limit();
    // Before any thread starts, so that none of them takes the signals.
    let termination =
        iomodels_sys::signals::Termination::block().context("blocking SIGINT and SIGTERM")?;
    let server = start(engine, chat, store)?;
    let source = || Source::chat(&server, args.mode);
    let exporter = match crate::metrics::start(args.metrics_addr, source) {
        Ok(exporter) => exporter,
        Err(e) => {
            // The exporter's error is the one to report; the server only has to go.
            let _ = server.stop();
            return Err(e.into());
        }
    };
    let threads = crate::threads_text(server.config(), server.direct_rings(), descriptors);
    eprintln!(
        "iomodels: chat server on {} ({} model, {} mode, {} rooms of {}, {threads}){joined}{}; \
         Ctrl-C stops it",
        server.local_addr(),
        args.model,
        args.mode,
        args.rooms,
        args.room_capacity,
        crate::metrics::banner(exporter.as_ref())
    );
    let signal = termination.wait();
    tracing::info!(signal, "stopping");
    // Every request read so far is answered before the sessions close; the counters are
    // read after every thread has ended.
    server.shutdown();
    let stopped = server.join()?;
    drop(exporter);
    eprintln!(
        "iomodels: stopped: {} sessions, {} logins, {} chats, {} protocol errors, {} rate \
         limited, {} login timeouts, {} over capacity, {} requests dropped at shutdown",
        stopped.engine.accepted,
        stopped.chat.logins,
        stopped.chat.chats,
        stopped.chat.protocol_errors,
        stopped.chat.rate_limited,
        stopped.chat.login_timeouts,
        stopped.chat.over_capacity,
        stopped.chat.dropped
    );
    Ok(())
}

/// Flags of `iomodels chat-bots`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatBotsArgs {
    /// The chat server, or the instances of one cluster (`chat-server --redis`) as
    /// A,B,C: bot i connects to the (i mod n)th, and every check spans the instances.
    /// Chaos scenarios take one.
    #[arg(long, value_name = "ADDR[,ADDR...]", default_value = "127.0.0.1:7001", value_delimiter = ',', value_parser = flags::addr)]
    pub addr: Vec<SocketAddr>,
    /// Number of bots.
    #[arg(long, default_value_t = 100, value_parser = flags::bounded(1, 100_000))]
    pub bots: usize,
    /// Rooms to spread the bots over (bot i uses room i mod R), at most 100000.
    #[arg(long, default_value_t = 10, value_parser = flags::bounded(1, MAX_ROOMS))]
    pub rooms: usize,
    /// What the bots do: a swarm's scenario, or a chaos scenario (a verdict on how the
    /// server stands up to hostile clients).
    #[arg(long, default_value = "room-chat", value_parser = flags::scenario())]
    pub scenario: BotsScenario,
    /// Operations per second per bot (chats, logins, reconnects or enter/leave cycles)
    /// [default: 10; chaos: the well-behaved members' chats, 5].
    #[arg(long, value_parser = flags::rate)]
    pub rate: Option<f64>,
    /// How long to run, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = flags::positive_seconds)]
    pub duration: Duration,
    /// Print the report as one line of JSON on stdout (the text report goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// The first room the bots use: bot i uses room FIRST + i mod R (swarms side by side
    /// against one server need rooms of their own).
    #[arg(long, value_name = "FIRST", default_value_t = 0, value_parser = flags::bounded(0, MAX_ROOMS - 1))]
    pub first_room: usize,
    /// User ids are this prefix and the bot's number (swarms run side by side against one
    /// server need different prefixes: a user logs in once).
    #[arg(long, default_value = "bot", value_parser = flags::user_prefix)]
    pub user_prefix: String,
    /// room-chat on Linux: threads running the bots, each many bots over epoll [default:
    /// the CPUs this process may use, so 1 under `taskset -c 1`]. Other scenarios, and
    /// Windows, run a thread per bot.
    #[arg(long, value_name = "N", value_parser = flags::bounded(1, 1024))]
    pub threads: Option<usize>,
    /// Run room-chat a thread per bot with blocking sockets, as the other scenarios do (to
    /// compare the two).
    #[arg(long, conflicts_with = "threads")]
    pub thread_per_bot: bool,
    /// The chaos scenarios' own flags.
    #[command(flatten)]
    pub chaos: crate::chaos::ChaosArgs,
}

/// Run the swarm (or the chaos scenario named); the report goes to stdout (one JSON line
/// with `--json`, the text report then going to stderr), progress to stderr. A swarm that
/// saw anything wrong is an error that says what.
pub fn run_bots(args: ChatBotsArgs) -> Result<()> {
    let scenario = match args.scenario {
        BotsScenario::Swarm(scenario) => scenario,
        BotsScenario::Chaos(scenario) => return crate::chaos::run(scenario, &args),
    };
    let config = SwarmConfig {
        addr: args.addr[0],
        also: args.addr[1..].to_vec(),
        bots: args.bots,
        rooms: args.rooms,
        scenario,
        rate: args.rate.unwrap_or(10.0),
        duration: args.duration,
        user_prefix: args.user_prefix.clone(),
        first_room: args.first_room,
        threads: args.threads.and_then(NonZeroUsize::new),
        thread_per_bot: args.thread_per_bot,
        ..SwarmConfig::default()
    };
    let total = config.duration.as_millis() as u64;
    let mut progress = Progress::new(total, "{spinner} [{bar:40}] {elapsed} {msg}");
    let report = iomodels_chat::run_swarm_with_progress(&config, |p| {
        let what = format!(
            "{} requests, {} chats, {}/{} bots done",
            p.requests, p.chats_sent, p.finished, p.bots
        );
        if let Progress::Bar(bar) = &progress {
            bar.set_position((p.elapsed.as_millis() as u64).min(total));
            bar.set_message(what);
        } else if progress.line_due(false) {
            eprintln!(
                "chat-bots {}: {:.1}/{:.1} s, {what}",
                config.addr,
                p.elapsed.as_secs_f64(),
                p.duration.as_secs_f64()
            );
        }
    });
    progress.clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    let problems = report.problems();
    if !problems.is_empty() {
        anyhow::bail!("chat-bots against {}: {}", report.addr, problems.join(", "));
    }
    Ok(())
}

/// Flags of `iomodels chat-client`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatClientArgs {
    /// The chat server.
    #[arg(long, default_value = "127.0.0.1:7001", value_parser = flags::addr)]
    pub addr: SocketAddr,
}

/// Run the interactive client on standard input and output.
pub fn run_client(args: ChatClientArgs) -> Result<()> {
    Ok(iomodels_chat::interactive(args.addr)?)
}
