//! `iomodels serve`: the echo server on any model, stopped by SIGINT or SIGTERM.

use crate::flags::{self, IdleTimeout};
use anyhow::{Context, Result};
use iomodels_engine::{echo::Echo, Config, Model, Server, UringDescriptors};
use iomodels_metrics::Source;
use std::net::SocketAddr;

/// Flags of `iomodels serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The I/O model (see `iomodels models`).
    #[arg(long, default_value = flags::default_model(), value_parser = flags::model())]
    model: Model,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = flags::addr)]
    addr: SocketAddr,
    /// Worker threads, for the models that have them (default: see `iomodels models`).
    #[arg(long)]
    workers: Option<usize>,
    /// Sessions open at once; connections past it are refused.
    #[arg(long, default_value_t = iomodels_engine::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Close a session silent for this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = flags::idle_timeout)]
    idle_timeout: IdleTimeout,
    /// Bytes a session may have queued before it is closed as a slow consumer.
    #[arg(long, default_value_t = 1024 * 1024)]
    send_queue_limit: usize,
    /// For --model uring: accept into io_uring direct descriptors, which do not count
    /// against the open-file limit (auto: when the kernel can; direct: or fail; normal:
    /// never). With direct descriptors, a ring per worker, and more rings (threads that
    /// accept only once the workers' tables are full) if --max-connections needs them at
    /// the soft open-file limit per ring.
    #[arg(long, value_name = "KIND", default_value = "auto")]
    uring_descriptors: UringDescriptors,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless given).
    #[arg(long, value_name = "ADDR", value_parser = flags::addr)]
    metrics_addr: Option<SocketAddr>,
}

/// Serve until SIGINT or SIGTERM, then stop gracefully.
pub fn run(args: ServeArgs) -> Result<()> {
    let model = args.model;
    if args.workers.is_some() && !model.has_workers() {
        return Err(crate::usage(format!(
            "the {model} model has no workers: it runs a thread per connection"
        )));
    }
    let mut config = Config::new(model, args.addr);
    config.workers = args.workers;
    config.max_connections = args.max_connections;
    config.send_queue_limit = args.send_queue_limit;
    config.idle_timeout = args.idle_timeout.0;
    config.uring_descriptors = args.uring_descriptors;

    let descriptors = crate::raise_open_file_limit();
    // Before any thread starts, so that none of them takes the signals.
    let termination =
        iomodels_sys::signals::Termination::block().context("blocking SIGINT and SIGTERM")?;
    let server = Server::start(config, Echo)?;
    let exporter = match crate::metrics::start(args.metrics_addr, || Source::engine(&server)) {
        Ok(exporter) => exporter,
        Err(e) => {
            // The exporter's error is the one to report; the server only has to go.
            let _ = server.stop();
            return Err(e.into());
        }
    };
    let threads = crate::threads_text(server.config(), server.direct_rings(), descriptors);
    // Compare reads the address after "echo server on".
    eprintln!(
        "iomodels: {model} echo server on {} ({threads}){}",
        server.local_addr(),
        crate::metrics::banner(exporter.as_ref())
    );
    let signal = termination.wait();
    tracing::info!(signal, "stopping");
    let handle = server.handle();
    handle.shutdown();
    server.join()?;
    drop(exporter);
    let stats = handle.stats();
    eprintln!(
        "iomodels: stopped; accepted {}, refused {}, bytes in {}, bytes out {}",
        stats.accepted, stats.refused, stats.bytes_in, stats.bytes_out
    );
    Ok(())
}
