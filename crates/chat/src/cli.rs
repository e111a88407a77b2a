//! Command-line front ends: `chat-server`, `chat-bots` and `chat-client`. The binary parses
//! these argument structs and calls the matching `run_` function.

use crate::bots::{run_swarm, BotsReport, Scenario, SwarmConfig};
use crate::error::Error;
use crate::server::{engine_config, start, ChatConfig, Mode};
use crate::signals::Termination;
use crate::store::{AcceptAll, PasswordFile, UserStore};
use iomodels_engine::Model;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `chat-server`: run the chat server until SIGINT or SIGTERM.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatServerArgs {
    /// The I/O model (blocking, polling, select, poll, signal, epoll, uring).
    #[arg(long, default_value = "epoll")]
    pub model: Model,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub addr: SocketAddr,
    /// Number of rooms (numbered from 0).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Users per room (1 to 127).
    #[arg(long, default_value_t = 20)]
    pub room_capacity: usize,
    /// Users logged in at once.
    #[arg(long, default_value_t = 1000)]
    pub max_users: usize,
    /// Close sessions silent for this many seconds (0: never).
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Where the game logic runs: one logic thread fed by a queue, or the I/O threads.
    #[arg(long, value_enum, default_value_t = Mode::Logic)]
    pub mode: Mode,
    /// A file of `user:password` lines; without it every password is accepted.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Worker threads of the model (default: the model's own).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// Run the chat server until SIGINT or SIGTERM, then shut down gracefully.
pub fn run_server(args: ChatServerArgs) -> Result<(), Error> {
    let store: Arc<dyn UserStore> = match &args.users {
        Some(path) => Arc::new(PasswordFile::load(path)?),
        None => Arc::new(AcceptAll),
    };
    let mut engine = engine_config(args.model, args.addr);
    engine.idle_timeout = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    engine.workers = args.workers;
    let chat = ChatConfig {
        rooms: args.rooms,
        room_capacity: args.room_capacity,
        max_users: args.max_users,
        mode: args.mode,
    };
    // Before any thread starts, so that none of them takes the signals.
    let termination = Termination::block().map_err(Error::io("blocking SIGINT and SIGTERM"))?;
    let server = start(engine, chat, store)?;
    println!(
        "chat server on {} ({} model, {} mode, {} rooms of {}); Ctrl-C stops it",
        server.local_addr(),
        args.model,
        match args.mode {
            Mode::Logic => "logic-thread",
            Mode::Io => "io-thread",
        },
        args.rooms,
        args.room_capacity
    );
    let signal = termination.wait();
    tracing::info!(signal, "stopping");
    // Every request read so far is answered before the sessions close; the counters are
    // read after every thread has ended.
    server.shutdown();
    let stopped = server.join()?;
    println!(
        "stopped: {} sessions, {} logins, {} chats, {} protocol errors, {} requests dropped at shutdown",
        stopped.engine.accepted,
        stopped.chat.logins,
        stopped.chat.chats,
        stopped.chat.protocol_errors,
        stopped.chat.dropped
    );
    Ok(())
}

/// `chat-bots`: a swarm of bots against a chat server.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatBotsArgs {
    /// The chat server.
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub addr: SocketAddr,
    /// Number of bots.
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Rooms to spread the bots over (bot i uses room i mod R).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// What the bots do.
    #[arg(long, value_enum, default_value_t = Scenario::RoomChat)]
    pub scenario: Scenario,
    /// Operations per second per bot (chats, logins, reconnects or enter/leave cycles).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Print a JSON summary instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Run the swarm and print its report (as JSON with `--json`).
pub fn run_bots(args: ChatBotsArgs) -> Result<BotsReport, Error> {
    let config = SwarmConfig {
        addr: args.addr,
        bots: args.bots,
        rooms: args.rooms,
        scenario: args.scenario,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        progress: std::io::stderr().is_terminal() && !args.json,
        ..SwarmConfig::default()
    };
    let report = run_swarm(&config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report)
}

/// `chat-client`: an interactive client.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatClientArgs {
    /// The chat server.
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub addr: SocketAddr,
}

/// Run the interactive client on standard input and output.
pub fn run_client(args: ChatClientArgs) -> Result<(), Error> {
    crate::client::interactive(args.addr)
}
