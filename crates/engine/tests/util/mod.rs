//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use iomodels_engine::{Config, Error, Handler, Model, Server};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A config for `model` on a free loopback port.
pub fn config(model: Model) -> Config {
    let mut config = Config::new(model, "127.0.0.1:0".parse().unwrap());
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
        Err(Error::Unsupported {
            model: "uring",
            what,
        }) => {
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
