//! `iomodels serve`: the echo server on any model, stopped by SIGINT or SIGTERM.

use anyhow::{Context, Result};
use iomodels_engine::{echo::Echo, Config, Model, Server};
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `iomodels serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The I/O model (see `iomodels models`).
    #[arg(long, default_value = "epoll")]
    model: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: String,
    /// Worker threads, for the models that have them (default: see `iomodels models`).
    #[arg(long)]
    workers: Option<usize>,
    /// Sessions open at once; connections past it are refused.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Close a session that sends nothing for this many seconds (off by default).
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Bytes a session may have queued before it is closed as a slow consumer.
    #[arg(long, default_value_t = 1024 * 1024)]
    send_queue_limit: usize,
}

/// Block SIGINT and SIGTERM in this thread (and so in every thread it starts), so they can be
/// waited for instead of killing the process mid-flush.
pub(crate) fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise a sigset_t we own; pthread_sigmask only
    // reads it. Blocking these two signals has no effect beyond their delivery.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait for SIGINT or SIGTERM (blocked by [`block_stop_signals`]).
pub(crate) fn wait_stop_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: `set` is an initialised sigset_t and `signal` a valid out-pointer.
    while unsafe { libc::sigwait(set, &mut signal) } != 0 {}
    signal
}

pub fn run(args: ServeArgs) -> Result<()> {
    let model: Model = args.model.parse()?;
    let addr: SocketAddr = args
        .addr
        .parse()
        .with_context(|| format!("'{}' is not an address like 127.0.0.1:7000", args.addr))?;
    let mut config = Config::new(model, addr);
    config.workers = args.workers;
    config.max_connections = args.max_connections;
    config.send_queue_limit = args.send_queue_limit;
    config.idle_timeout = args
        .idle_timeout
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("--idle-timeout must be a positive number of seconds")?;
    if args.workers.is_some() && !model.has_workers() {
        anyhow::bail!("the {model} model has no workers: it runs a thread per connection");
    }

    let signals = block_stop_signals();
    let server = Server::start(config, Echo)?;
    let threads = match server.config().worker_count() {
        _ if !model.has_workers() => "two threads per connection".to_string(),
        1 => "1 worker".to_string(),
        n => format!("{n} workers"),
    };
    eprintln!(
        "iomodels: {model} echo server on {} ({threads})",
        server.local_addr()
    );
    let signal = wait_stop_signal(&signals);
    tracing::info!(signal, "stopping");
    let handle = server.handle();
    handle.shutdown();
    server.join()?;
    let stats = handle.stats();
    eprintln!(
        "iomodels: stopped; accepted {}, refused {}, bytes in {}, bytes out {}",
        stats.accepted, stats.refused, stats.bytes_in, stats.bytes_out
    );
    Ok(())
}
