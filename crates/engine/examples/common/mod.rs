//! Plumbing shared by the engine's examples, kept out of the way of the lesson: the
//! command line, starting a server (with the exit code that says "io_uring is missing
//! here"), and the small client helpers their `--self-test` runs use.
//!
//! Not an example itself: cargo only builds `examples/*.rs` and `examples/*/main.rs`.
#![allow(dead_code)] // Each example uses its own part.

use iomodels_engine::{Config, Error, Handler, Model, Server};
use iomodels_sys::signals::Termination;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Exit code of a run whose model the kernel cannot serve (only io_uring may be missing).
/// 77 is what automake-style test harnesses read as "skipped".
pub const UNSUPPORTED: i32 = 77;

/// Exit code of a bad command line.
pub const USAGE: i32 = 2;

/// Why a self-test failed: any error, printed once by [`exit_with`].
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What a self-test step returns.
pub type Outcome = Result<(), Failure>;

/// The command line every example takes:
/// `[--model NAME] [--seconds N] [--self-test] [ADDR]`.
#[derive(Debug)]
pub struct Args {
    /// `--model NAME`, the platform's first scalable model (epoll, iocp) by default.
    pub model: Model,
    /// The address to listen on; `127.0.0.1:0` (a free port) by default.
    pub addr: SocketAddr,
    /// `--seconds N`: stop gracefully after N seconds. Without it the server runs until
    /// the process is killed.
    pub seconds: Option<u64>,
    /// `--self-test`: start, check the behaviour with real client sockets, stop.
    pub self_test: bool,
    /// SIGINT and SIGTERM, blocked before any thread starts so that [`Args::wait`] can take
    /// them (not for a self-test, which ends by itself).
    stop: Option<Termination>,
}

impl Args {
    /// Parse `std::env::args()`, or print one line and exit with [`USAGE`].
    pub fn parse(example: &str) -> Args {
        Args::parse_from(std::env::args().skip(1)).unwrap_or_else(|message| {
            eprintln!(
                "{example}: {message} (usage: {example} [--model NAME] [--seconds N] [--self-test] [ADDR])"
            );
            std::process::exit(USAGE)
        })
    }

    fn parse_from(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            model: Model::SCALABLE[0],
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seconds: None,
            stop: None,
            self_test: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--model" => {
                    let name = args.next().ok_or("--model needs a model name")?;
                    parsed.model = name.parse().map_err(|e| format!("{e}"))?;
                }
                "--seconds" => {
                    let n = args.next().ok_or("--seconds needs a number")?;
                    let n = n
                        .parse()
                        .map_err(|_| format!("--seconds wants a whole number, not '{n}'"))?;
                    parsed.seconds = Some(n);
                }
                "--self-test" => parsed.self_test = true,
                addr if !addr.starts_with('-') => {
                    parsed.addr = addr
                        .parse()
                        .map_err(|_| format!("'{addr}' is not an address like 127.0.0.1:7000"))?;
                }
                other => return Err(format!("unknown option '{other}'")),
            }
        }
        if !parsed.self_test {
            // Before the server starts its threads, so that they inherit the mask.
            parsed.stop = Termination::block().ok();
        }
        Ok(parsed)
    }
}

/// `error` and its causes on one line, each said once: some errors show their cause in
/// their own message, others leave it to [`std::error::Error::source`].
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = error.source();
    }
    text
}

/// Start `handler` on `config`, print where it listens, or print why not and exit: with
/// [`UNSUPPORTED`] if the kernel cannot run io_uring, 1 otherwise.
pub fn start<H: Handler>(example: &str, config: Config, handler: H) -> Server<H> {
    let model = config.model;
    match Server::start(config, handler) {
        Ok(server) => {
            eprintln!("{example}: listening on {} ({model})", server.local_addr());
            server
        }
        Err(error @ Error::Unsupported { .. }) => {
            eprintln!("{example}: {}", describe(&error));
            std::process::exit(UNSUPPORTED)
        }
        Err(error) => {
            eprintln!("{example}: {}", describe(&error));
            std::process::exit(1)
        }
    }
}

impl Args {
    /// Wait until `--seconds` have passed, or, without it, until Ctrl-C or SIGTERM.
    pub fn wait(&self, example: &str) {
        match (self.seconds, &self.stop) {
            (Some(seconds), _) => std::thread::sleep(Duration::from_secs(seconds)),
            (None, Some(stop)) => {
                eprintln!("{example}: serving until Ctrl-C or SIGTERM (or pass --seconds N)");
                stop.wait();
            }
            (None, None) => {
                eprintln!("{example}: serving until the process is killed (or pass --seconds N)");
                loop {
                    std::thread::park();
                }
            }
        }
    }
}

/// Serve until [`Args::wait`] returns, then shut down gracefully: every session receives
/// what was queued for it, then end of stream.
pub fn serve<H: Handler>(example: &str, server: Server<H>, args: &Args) -> ! {
    args.wait(example);
    let handle = server.handle();
    if let Err(error) = server.stop() {
        eprintln!("{example}: {}", describe(&error));
        std::process::exit(1)
    }
    let stats = handle.stats();
    eprintln!(
        "{example}: stopped: {} sessions, {} bytes in, {} bytes out",
        stats.accepted, stats.bytes_in, stats.bytes_out
    );
    std::process::exit(0)
}

/// Report a self-test and exit: 0 if it passed, 1 with one line if it did not.
pub fn exit_with(example: &str, outcome: Outcome) -> ! {
    match outcome {
        Ok(()) => {
            eprintln!("{example}: self-test passed");
            std::process::exit(0)
        }
        Err(error) => {
            eprintln!("{example}: self-test failed: {}", describe(&*error));
            std::process::exit(1)
        }
    }
}

/// How long a self-test waits for any one thing before calling it a failure.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A client socket to `addr`, with `TCP_NODELAY` and read and write timeouts of
/// [`PATIENCE`], so that a broken server fails the self-test instead of hanging it.
pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Wait up to [`PATIENCE`] for `condition`, looking every few milliseconds.
pub fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Read until the server ends the connection, expecting nothing more from it: end of
/// stream and a reset both count as the end; any byte is an error.
pub fn expect_end(stream: &mut TcpStream, what: &str) -> Outcome {
    let mut buf = [0; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => return Err(format!("{what}: {n} unexpected bytes before the end").into()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(format!("{what}: waiting for the end: {e}").into()),
        }
    }
}
