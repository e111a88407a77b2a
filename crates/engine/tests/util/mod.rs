//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use iomodels_engine::{CloseReason, Config, Error, Handler, Model, Server, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

std::thread_local! {
    /// The descriptors the uring model is set to use by [`config`] on this thread.
    static URING_DESCRIPTORS: std::cell::Cell<iomodels_engine::UringDescriptors> =
        const { std::cell::Cell::new(iomodels_engine::UringDescriptors::Auto) };
}

/// Make [`config`] on this thread ask the uring model for `descriptors` (a test runs the
/// same scenario on direct and on normal descriptors this way).
pub fn uring_descriptors(descriptors: iomodels_engine::UringDescriptors) {
    URING_DESCRIPTORS.with(|d| d.set(descriptors));
}

/// A config for `model` on a free loopback port.
pub fn config(model: Model) -> Config {
    let mut config = Config::new(model, "127.0.0.1:0".parse().unwrap());
    config.uring_descriptors = URING_DESCRIPTORS.with(|d| d.get());
    if model.has_workers() && model.default_workers() > 1 {
        // Exercise more than one worker where the model has them.
        config.workers = Some(2);
    }
    config
}

/// Start a server, or `None` with a printed reason when the kernel lacks what the model
/// needs (only io_uring may be missing; every other model must start).
pub fn start<H: Handler>(config: Config, handler: H) -> Option<Server<H>> {
    match Server::start(config, handler) {
        Ok(server) => Some(server),
        Err(Error::Unsupported { model, what }) if model.name() == "uring" => {
            eprintln!("SKIPPED: the uring model cannot run here: {what}");
            None
        }
        Err(e) => panic!("server failed to start: {e}"),
    }
}

/// Connect with a generous timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Connect with a 4 KiB receive buffer, so that the server's output backs up in its queue
/// instead of in this socket.
pub fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Wait up to `limit` for `condition`, checking every few milliseconds.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Read until end of stream; a reset counts as the end too. Returns the bytes and whether
/// the stream ended with a reset.
pub fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, true),
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Bytes that differ per stream and per position, so a misplaced byte is caught.
pub fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(offset + i);
            (x ^ (x >> 7) ^ (x >> 13)) as u8
        })
        .collect()
}

/// Wait until the server has no session open, and fail with its counters if that takes
/// more than 20 seconds.
pub fn settle<H: Handler>(server: &Server<H>) {
    assert!(
        wait_until(Duration::from_secs(20), || server.stats().active == 0),
        "sessions still open: {:?}",
        server.stats()
    );
}

/// Write `message` and read its echo: whether the whole echo came back unchanged.
pub fn echo_once(stream: &mut TcpStream, message: &[u8]) -> bool {
    if stream.write_all(message).is_err() {
        return false;
    }
    let mut echo = vec![0; message.len()];
    stream.read_exact(&mut echo).is_ok() && echo == message
}

/// One streaming client of an echo server: a writer thread sends `sizes.len()` writes of
/// `pattern(seed, ..)`, then shuts down its write side, while this thread reads the echo
/// to the end, concurrently. With `pace` `Some((every, pause))` the reader is slow: it
/// sleeps `pause` after every `every` reads of 16 KiB, so the server's output backs up.
///
/// Checks that every byte came back in order and the stream ended with EOF, not a reset.
/// Returns the bytes sent.
pub fn stream_echo(
    addr: SocketAddr,
    seed: u64,
    sizes: Vec<usize>,
    pace: Option<(u32, Duration)>,
) -> u64 {
    let total: usize = sizes.iter().sum();
    let mut stream = connect(addr);
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut offset = 0;
        for len in sizes {
            writer.write_all(&pattern(seed, offset, len)).unwrap();
            offset += len as u64;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let (echo, reset) = match pace {
        None => read_to_end(&mut stream),
        Some((every, pause)) => read_slowly(&mut stream, every, pause),
    };
    sender.join().unwrap();
    assert!(!reset, "client {seed}: reset instead of an orderly close");
    assert_eq!(echo.len(), total, "client {seed}: echo length");
    assert!(
        echo == pattern(seed, 0, total),
        "client {seed}: echo differs"
    );
    total as u64
}

/// Like [`read_to_end`], but 16 KiB at a time with a `pause` after every `every` reads.
fn read_slowly(stream: &mut TcpStream, every: u32, pause: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    let mut reads = 0u32;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, true),
            Err(e) => panic!("read failed: {e}"),
        }
        reads += 1;
        if reads % every == 0 {
            std::thread::sleep(pause);
        }
    }
}

/// A handler that keeps every open session in a list, for tests that send from other
/// threads, and the reason of every close; it consumes what it receives.
#[derive(Default)]
pub struct Registry {
    /// The sessions open now.
    pub sessions: Mutex<Vec<Session>>,
    /// Why each closed session closed, in order.
    pub closed: Mutex<Vec<CloseReason>>,
}

impl Handler for Registry {
    type State = ();
    fn opened(&self, session: &Session) {
        self.sessions.lock().unwrap().push(session.clone());
    }
    fn data(&self, _: &mut (), _: &Session, data: &[u8]) -> usize {
        data.len()
    }
    fn closed(&self, _: (), session: &Session, reason: CloseReason) {
        self.sessions.lock().unwrap().retain(|s| !s.same(session));
        self.closed.lock().unwrap().push(reason);
    }
}

/// Tests share one descriptor table. A test that opens a thousand connections takes this
/// exclusively (`heavy`), the others shared: otherwise a select server started meanwhile
/// could get descriptors past FD_SETSIZE and refuse connections its test expects served.
pub enum DescriptorGuard {
    /// Held by a test that opens many descriptors.
    Heavy(std::sync::RwLockWriteGuard<'static, ()>),
    /// Held by every other test.
    Light(std::sync::RwLockReadGuard<'static, ()>),
}

/// Take the descriptor table, exclusively when `heavy`.
pub fn descriptors(heavy: bool) -> DescriptorGuard {
    static TABLE: std::sync::RwLock<()> = std::sync::RwLock::new(());
    if heavy {
        DescriptorGuard::Heavy(TABLE.write().unwrap_or_else(|p| p.into_inner()))
    } else {
        DescriptorGuard::Light(TABLE.read().unwrap_or_else(|p| p.into_inner()))
    }
}
