//! `iomodels`: a thin command line over the library crates.
//!
//! Each subcommand parses its flags into a library's plain configuration and calls one
//! library function; flags, progress bars, banners and exit statuses live here and nowhere
//! else.
//!
//! Conventions shared by every subcommand: results on stdout (one JSON line with `--json`);
//! banners, progress, logs and errors on stderr, without colour when stderr is not a
//! terminal; an error is one line, `iomodels: what failed: why`, each cause once; the exit
//! status is 0 on success, 1 when the run failed, 2 for bad usage.

#![deny(clippy::undocumented_unsafe_blocks)]

mod bench;
mod chaos;
mod chat;
mod client;
mod compare;
mod flags;
mod metrics;
mod progress;
mod serve;
mod users;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;

/// Exit status of a run that failed.
const FAILURE: i32 = 1;
/// Exit status of bad usage: a flag clap refused, or settings the libraries refused.
const USAGE: i32 = 2;

/// Every socket I/O model of the book behind one API, measured.
#[derive(Parser, Debug)]
#[command(
    name = "iomodels",
    version,
    about,
    after_help = "Exit status: 0 on success; 1 when the run failed (including a bench that \
                  saw errors or held fewer connections than asked, and a chat-bots swarm \
                  that saw anything wrong); 2 for bad usage (an unknown flag, a value out of \
                  range, settings that do not fit together)."
)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the echo server on one model.
    Serve(serve::ServeArgs),
    /// List the models with their Windows originals.
    Models,
    /// An echo client: interactive (stdin lines out, echoes printed) or scripted.
    Client(client::ClientArgs),
    /// Load an echo server and measure it: every echoed byte verified.
    Bench(bench::BenchArgs),
    /// Measure every model and the peers under the same load; write report/.
    Compare(Box<compare::CompareArgs>),
    /// The chat server (the tutorial's protocol) on any model.
    ChatServer(chat::ChatServerArgs),
    /// A swarm of chat bots that checks every notify arrives once, in order.
    ChatBots(chat::ChatBotsArgs),
    /// An interactive chat client: login, join, say, leave.
    ChatClient(chat::ChatClientArgs),
    /// Manage the chat server's users file (argon2 password hashes).
    ChatUsers(users::ChatUsersArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = run(cli.command) {
        // `{:#}` prints the chain on one line; the libraries' messages leave their causes
        // to the chain, so each is printed once.
        eprintln!("iomodels: {e:#}");
        std::process::exit(exit_status(&e));
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Models => {
            print_models();
            Ok(())
        }
        Command::Client(args) => client::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare::run(*args),
        Command::ChatServer(args) => chat::run_server(args),
        Command::ChatBots(args) => chat::run_bots(args),
        Command::ChatClient(args) => chat::run_client(args),
        Command::ChatUsers(args) => users::run(args),
    }
}

/// Settings that do not fit together, found after clap parsed each flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// A usage error (exit status 2) saying `what`.
fn usage(what: impl Into<String>) -> anyhow::Error {
    Usage(what.into()).into()
}

/// [`USAGE`] when the error is bad usage (ours, or settings a library refused before
/// doing anything), else [`FAILURE`].
fn exit_status(error: &anyhow::Error) -> i32 {
    use iomodels_compare::Error as Compare;
    use iomodels_load::Error as Load;
    let is_usage = error.chain().any(|cause| {
        cause.is::<Usage>()
            || matches!(
                cause.downcast_ref::<Load>(),
                Some(Load::InvalidConfig(_) | Load::TooManyConnections { .. })
            )
            || matches!(
                cause.downcast_ref::<iomodels_chat::Error>(),
                Some(
                    iomodels_chat::Error::Config { .. }
                        | iomodels_chat::Error::InvalidUserId { .. }
                        | iomodels_chat::Error::UnusablePassword { .. }
                )
            )
            || matches!(
                cause.downcast_ref::<Compare>(),
                Some(
                    Compare::InvalidArgs(_)
                        | Compare::UnknownModel(_)
                        | Compare::UnknownPeer(_)
                        | Compare::PeerUnavailable(_)
                )
            )
    });
    if is_usage {
        USAGE
    } else {
        FAILURE
    }
}

/// Raise the open-file soft limit to the hard limit and return the ceiling, for the
/// servers' banners. (The raise lives with the load generator, which needed it first.)
fn raise_open_file_limit() -> u64 {
    iomodels_sys::raise_open_file_limit()
}

/// The servers' banners on their threads and how many connections they can hold: "1
/// worker, up to 20000 descriptors", or for uring on direct descriptors "8 rings (1
/// worker, 7 accepting only once it is full) of 18814 direct descriptors each".
fn threads_text(
    config: &iomodels_engine::Config,
    direct: Option<iomodels_engine::DirectRings>,
    descriptors: u64,
) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if let Some(direct) = direct {
        let extra = direct.rings - direct.workers;
        let spill = match extra {
            0 => String::new(),
            n => format!(", {n} accepting only once the worker{} full", {
                if direct.workers == 1 {
                    " is"
                } else {
                    "s are"
                }
            }),
        };
        return format!(
            "{} ring{} ({} worker{}{spill}) of {} direct descriptors each",
            direct.rings,
            plural(direct.rings),
            direct.workers,
            plural(direct.workers),
            direct.slots
        );
    }
    let threads = match config.worker_count() {
        _ if !config.model.has_workers() => "two threads per connection".to_string(),
        n => format!("{n} worker{}", plural(n)),
    };
    format!("{threads}, up to {descriptors} descriptors")
}

fn print_models() {
    use iomodels_engine::Model;
    println!(
        "{:<9} {:<28} {:<6} description",
        "model", "Windows original", "here"
    );
    let mut missing = Vec::new();
    for &model in Model::ALL {
        let here = match unavailable(model) {
            Some(why) => {
                missing.push(why);
                "no"
            }
            None => "yes",
        };
        println!(
            "{:<9} {:<28} {:<6} {}",
            model.name(),
            model.windows_original(),
            here,
            model.description()
        );
    }
    for why in missing {
        println!("\n{why}");
    }
}

/// Why `model` cannot run on this machine, if it cannot: only io_uring depends on the kernel.
#[cfg(target_os = "linux")]
fn unavailable(model: iomodels_engine::Model) -> Option<String> {
    match model {
        iomodels_engine::Model::Uring => {
            iomodels_engine::uring_probe().err().map(|e| e.to_string())
        }
        _ => None,
    }
}

/// Why `model` cannot run on this machine, if it cannot: every Windows model runs on every
/// supported Windows.
#[cfg(not(target_os = "linux"))]
fn unavailable(_model: iomodels_engine::Model) -> Option<String> {
    None
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
