//! `iomodels`: a thin command line over the library crates.
//!
//! Each subcommand parses its flags and calls one library function; nothing else lives here.

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
    }
}

fn print_models() {
    use iomodels_engine::Model;
    println!("{:<9} {:<28} description", "model", "Windows original");
    for model in Model::ALL {
        println!(
            "{:<9} {:<28} {}",
            model.name(),
            model.windows_original(),
            model.description()
        );
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
