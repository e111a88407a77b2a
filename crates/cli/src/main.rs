//! `iomodels`: a thin command line over the library crates.
//!
//! Each subcommand parses its flags and calls one library function; nothing else lives here.

#![deny(clippy::undocumented_unsafe_blocks)]

mod client;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Every socket I/O model of the book behind one API, measured.
#[derive(Parser, Debug)]
#[command(name = "iomodels", version, about)]
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
    Bench(iomodels_load::cli::BenchArgs),
    /// Measure every model and the peers under the same load; write report/.
    Compare(iomodels_compare::CompareArgs),
    /// The chat server (the tutorial's protocol) on any model.
    ChatServer(iomodels_chat::cli::ChatServerArgs),
    /// A swarm of chat bots that checks every notify arrives once, in order.
    ChatBots(iomodels_chat::cli::ChatBotsArgs),
    /// An interactive chat client: login, join, say, leave.
    ChatClient(iomodels_chat::cli::ChatClientArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = run(cli.command) {
        eprintln!("iomodels: {e:#}");
        std::process::exit(1);
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
        Command::Bench(args) => Ok(iomodels_load::cli::run(args)?),
        Command::Compare(args) => Ok(iomodels_compare::run(args)?),
        Command::ChatServer(args) => Ok(iomodels_chat::cli::run_server(args)?),
        Command::ChatBots(args) => {
            let report = iomodels_chat::cli::run_bots(args)?;
            if !report.is_clean() {
                anyhow::bail!("the swarm saw protocol errors or lost or duplicated notifies");
            }
            Ok(())
        }
        Command::ChatClient(args) => Ok(iomodels_chat::cli::run_client(args)?),
    }
}

fn print_models() {
    use iomodels_engine::Model;
    println!(
        "{:<9} {:<28} {:<6} description",
        "model", "Windows original", "here"
    );
    let mut missing = Vec::new();
    for model in Model::ALL {
        let here = match (model, iomodels_engine::uring_probe()) {
            (Model::Uring, Err(e)) => {
                missing.push(e.to_string());
                "no"
            }
            _ => "yes",
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
        .init();
}
