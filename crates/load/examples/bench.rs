//! `iomodels bench` without the rest of the CLI:
//! `cargo run --release -p iomodels-load --example bench -- --addr 127.0.0.1:7000 --connections 64`.

use clap::Parser;
use iomodels_load::cli::{self, BenchArgs};

/// Load an echo server and report what it sustained.
#[derive(Parser)]
struct Command {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() {
    if let Err(e) = cli::run(Command::parse().args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
