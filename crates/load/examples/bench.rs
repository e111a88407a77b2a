//! One benchmark from a program, without the CLI:
//! `cargo run --release -p iomodels-load --example bench -- 127.0.0.1:7000 64`
//! (the server, then the connection count). `iomodels bench` is the full front end.

use iomodels_load::{run, BenchConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let Ok(addr) = addr.parse() else {
        eprintln!("bench: '{addr}' is not an address like 127.0.0.1:7000");
        std::process::exit(2);
    };
    let mut config = BenchConfig::new(addr);
    if let Some(connections) = args.next() {
        let Ok(connections) = connections.parse() else {
            eprintln!("bench: '{connections}' is not a connection count");
            std::process::exit(2);
        };
        config.connections = connections;
    }
    match run(&config, |p| {
        eprintln!("{}: {} open", p.phase, p.connections_open)
    }) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            // The message, then each cause once.
            let mut line = format!("bench: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                line += &format!(": {c}");
                cause = c.source();
            }
            eprintln!("{line}");
            std::process::exit(1);
        }
    }
}
