//! The smallest echo server on the engine: `echo MODEL ADDR [WORKERS]`, stopped by SIGTERM.
//! What `iomodels compare` measures when it asks for the engine alone.

use iomodels_engine::{echo::Echo, Config, Model, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: echo MODEL ADDR [WORKERS]");
        std::process::exit(2);
    };
    let model: Model = model.parse().unwrap_or_else(|e| {
        eprintln!("echo: {e}");
        std::process::exit(2)
    });
    let mut config = Config::new(model, addr.parse().expect("an address like 127.0.0.1:7000"));
    config.workers = args.next().map(|w| w.parse().expect("a worker count"));
    let server = Server::start(config, Echo).unwrap_or_else(|e| {
        eprintln!("echo: {e}");
        std::process::exit(1)
    });
    let _ = server;
    std::thread::park();
}
