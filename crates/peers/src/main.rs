//! The peers `iomodels compare` measures our drivers against: echo servers written the way
//! their authors' examples write them, so the comparison is with what a user would pick.
//!
//! - `tokio-current`: a current_thread runtime, a `TcpListener` accept loop and one spawned
//!   task per connection that reads into a 4 KiB buffer and `write_all`s it back
//!   (tokio's `examples/echo.rs`, with the buffer at 4 KiB).
//! - `tokio-multi`: the same code on a multi_thread runtime with `--workers N` workers
//!   (default: the number of CPUs, as tokio's own default).
//! - `monoio` (Linux only): monoio's echo example with owned buffers, on
//!   `RuntimeBuilder<FusionDriver>`, which picks the io_uring driver when the kernel allows
//!   it and the legacy (epoll) driver otherwise; `--workers N` runs N such threads, each
//!   with its own `SO_REUSEPORT` listener (monoio is thread-per-core; its listeners set
//!   `SO_REUSEPORT` by default). monoio has no Windows driver: there the binary says so
//!   and exits 2.
//!
//! One deviation from the examples, shared with our engine: every accepted socket gets
//! `TCP_NODELAY`, so pipelined echoes are not held back by Nagle's algorithm in one server
//! and not in another.
//!
//! And one chat server, to measure `iomodels chat-server` against:
//!
//! - `tokio-chat`: the chat protocol of `iomodels-chat` as a straightforward tokio server (a
//!   task per connection, one mutex-guarded world, a channel per session drained by a
//!   writer task that batches), current_thread by default, multi_thread with `--workers N`;
//!   `--rooms`, `--room-capacity` and `--max-users` as `chat-server`'s (see [`chat`]).
//!
//! Nothing is printed on stdout. Once listening, one line goes to stderr:
//! `iomodels-peers: <server> echo server on <addr> (<n> workers)` (`tokio-chat`:
//! `iomodels-peers: tokio-chat chat server on <addr> (<n> workers)`), with the port the kernel
//! chose when `--addr` asks for port 0 (so a caller needs no "free port" that someone else
//! could take first); errors go to stderr too. SIGTERM and SIGINT end the process with
//! status 0; on Windows Ctrl-C, Ctrl-Break and a stop request
//! (`iomodels_sys::process::request_stop`) do.

#![deny(clippy::undocumented_unsafe_blocks)]

mod chat;

use clap::{Parser, ValueEnum};
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

/// The echo server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Peer {
    /// tokio, current_thread runtime.
    TokioCurrent,
    /// tokio, multi_thread runtime with `--workers` workers.
    TokioMulti,
    /// monoio, thread-per-core, io_uring when available (Linux only).
    Monoio,
    /// The chat server on tokio: current_thread, or multi_thread with `--workers` above 1.
    TokioChat,
}

/// Run a peer echo or chat server.
#[derive(Debug, Parser)]
#[command(name = "iomodels-peers", version, about)]
struct Args {
    /// Which server to run.
    #[arg(long, value_enum)]
    server: Peer,
    /// Address to listen on.
    #[arg(long)]
    addr: SocketAddr,
    /// Worker threads (tokio-multi, monoio, tokio-chat); tokio-current accepts only 1.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    workers: Option<usize>,
    /// tokio-chat: rooms, numbered from 0 (1 to 100000).
    #[arg(long)]
    rooms: Option<usize>,
    /// tokio-chat: members a room holds (1 to 127).
    #[arg(long)]
    room_capacity: Option<usize>,
    /// tokio-chat: users logged in at once.
    #[arg(long)]
    max_users: Option<usize>,
}

impl Args {
    /// The chat settings asked for, each missing one at `chat-server`'s default; `None`
    /// when none was given.
    fn chat_settings(&self) -> Option<chat::Settings> {
        if self.rooms.is_none() && self.room_capacity.is_none() && self.max_users.is_none() {
            return None;
        }
        let default = chat::Settings::default();
        Some(chat::Settings {
            rooms: self.rooms.unwrap_or(default.rooms),
            room_capacity: self.room_capacity.unwrap_or(default.room_capacity),
            max_users: self.max_users.unwrap_or(default.max_users),
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Bad usage exits 2, as clap's own errors and `iomodels` do; a failed run exits 1.
    if let (Peer::TokioCurrent, Some(n)) = (args.server, args.workers.filter(|&n| n != 1)) {
        eprintln!(
            "iomodels-peers: tokio-current runs on one thread; --workers {n} is not possible"
        );
        return ExitCode::from(2);
    }
    let chat_settings = args.chat_settings();
    if args.server == Peer::TokioChat {
        let settings = chat_settings.unwrap_or_default();
        if let Err(error) = settings.validate() {
            eprintln!("iomodels-peers: {error}");
            return ExitCode::from(2);
        }
    } else if chat_settings.is_some() {
        eprintln!(
            "iomodels-peers: --rooms, --room-capacity and --max-users apply to tokio-chat only"
        );
        return ExitCode::from(2);
    }
    // Before any runtime starts a thread, so that only the waiting thread takes the signals.
    if let Err(error) = iomodels_sys::signals::Termination::block().and_then(|t| t.exit_on_signal())
    {
        eprintln!("iomodels-peers: cannot install the signal handler: {error}");
        return ExitCode::FAILURE;
    }
    let result: Result<(), Box<dyn std::error::Error>> = match args.server {
        Peer::TokioCurrent => tokio_peer::current_thread(args.addr).map_err(Into::into),
        Peer::TokioMulti => tokio_peer::multi_thread(args.addr, args.workers).map_err(Into::into),
        #[cfg(target_os = "linux")]
        Peer::Monoio => monoio_peer::run(args.addr, args.workers.unwrap_or(1)).map_err(Into::into),
        #[cfg(not(target_os = "linux"))]
        Peer::Monoio => {
            eprintln!(
                "iomodels-peers: the monoio peer exists only on Linux (monoio has no Windows \
                 driver); run tokio-current or tokio-multi"
            );
            return ExitCode::from(2);
        }
        Peer::TokioChat => chat::run(
            args.addr,
            args.workers.unwrap_or(1),
            chat_settings.unwrap_or_default(),
        )
        .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, each cause once.
            let name = args
                .server
                .to_possible_value()
                .map_or_else(|| format!("{:?}", args.server), |v| v.get_name().to_owned());
            let mut line = format!("iomodels-peers: {name} on {}: {error}", args.addr);
            let mut cause = error.source();
            while let Some(error) = cause {
                line.push_str(&format!(": {error}"));
                cause = error.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// The tokio echo servers: one accept loop, one task per connection.
mod tokio_peer {
    use std::io;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Run on a current_thread runtime.
    pub fn current_thread(addr: SocketAddr) -> io::Result<()> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve(addr, "tokio-current", 1))
    }

    /// Run on a multi_thread runtime with `workers` workers (tokio's default if `None`).
    pub fn multi_thread(addr: SocketAddr, workers: Option<usize>) -> io::Result<()> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = workers {
            builder.worker_threads(workers);
        }
        let runtime = builder.enable_all().build()?;
        let workers = runtime.metrics().num_workers();
        runtime.block_on(serve(addr, "tokio-multi", workers))
    }

    async fn serve(addr: SocketAddr, name: &str, workers: usize) -> io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        super::announce(name, "echo", listener.local_addr()?, workers);
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: the listener
                // is still good, so keep serving the connections already held.
                Err(error) if super::is_transient(&error) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            tokio::spawn(echo(socket));
        }
    }

    async fn echo(mut socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if socket.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// The monoio echo server: owned buffers handed to the driver and handed back.
#[cfg(target_os = "linux")]
mod monoio_peer {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    use monoio::net::{TcpListener, TcpStream};
    use std::io;
    use std::net::SocketAddr;

    /// Run `workers` threads, each with its own runtime and `SO_REUSEPORT` listener.
    ///
    /// Every listener is bound before any worker starts, so that once the port accepts at
    /// all, every worker's listener is in the kernel's SO_REUSEPORT group: a listener still
    /// being bound by a late worker could otherwise see connections hashed to it refused.
    pub fn run(addr: SocketAddr, workers: usize) -> io::Result<()> {
        let first = bind(addr)?;
        // Port 0 means "any": every other worker joins the port the first one was given.
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers.max(1) {
            listeners.push(bind(addr)?);
        }
        super::announce("monoio", "echo", addr, listeners.len());
        let mut listeners = listeners.into_iter();
        let first = listeners
            .next()
            .ok_or_else(|| io::Error::other("no listener"))?;
        let mut threads = Vec::new();
        for (index, listener) in listeners.enumerate() {
            threads.push(
                std::thread::Builder::new()
                    .name(format!("monoio-{}", index + 1))
                    .spawn(move || worker(listener))?,
            );
        }
        let result = worker(first);
        for thread in threads {
            thread
                .join()
                .map_err(|_| io::Error::other("a monoio worker panicked"))??;
        }
        result
    }

    /// A listener as monoio's `TcpListener::bind` makes one: SO_REUSEADDR, SO_REUSEPORT,
    /// non-blocking (its legacy driver needs that; io_uring does not mind), backlog 1024.
    fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    }

    fn worker(listener: std::net::TcpListener) -> io::Result<()> {
        let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .map_err(context("building the runtime"))?;
        runtime.block_on(serve(listener))
    }

    /// The same error with what was being done in front of it.
    fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
        move |error| io::Error::new(error.kind(), format!("{what}: {error}"))
    }

    async fn serve(listener: std::net::TcpListener) -> io::Result<()> {
        let listener = TcpListener::from_std(listener).map_err(context("adopting the listener"))?;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) if super::is_transient(&error) => continue,
                Err(error) => return Err(context("accepting")(error)),
            };
            monoio::spawn(echo(stream));
        }
    }

    async fn echo(mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut res;
        loop {
            (res, buf) = stream.read(buf).await;
            if res? == 0 {
                return Ok(());
            }
            (res, buf) = stream.write_all(buf).await;
            res?;
            buf.clear();
        }
    }
}

/// Say on stderr where the server listens, once it does: `what` is `echo` or `chat`.
fn announce(name: &str, what: &str, addr: SocketAddr, workers: usize) {
    eprintln!("iomodels-peers: {name} {what} server on {addr} ({workers} workers)");
}

/// Out of descriptors, buffers or memory, or a connection aborted (on Windows, reset)
/// before it was accepted.
#[cfg(target_os = "linux")]
const TRANSIENT: [i32; 5] = [
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOBUFS,
    libc::ENOMEM,
    libc::ECONNABORTED,
];
#[cfg(windows)]
const TRANSIENT: [i32; 4] = {
    use windows_sys::Win32::Networking::WinSock::{
        WSAECONNABORTED, WSAECONNRESET, WSAEMFILE, WSAENOBUFS,
    };
    [WSAEMFILE, WSAENOBUFS, WSAECONNABORTED, WSAECONNRESET]
};

/// Accept errors after which the listener still works.
///
/// `EAGAIN` belongs here too: io_uring gives an accept up to a poll after 128 wake-ups that
/// found nothing to accept and runs it on an io-wq thread, where a listener opened
/// `O_NONBLOCK` (as monoio's are) returns `EAGAIN` to the caller instead of waiting.
fn is_transient(error: &io::Error) -> bool {
    error
        .raw_os_error()
        .is_some_and(|code| TRANSIENT.contains(&code))
        || matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
        )
}
