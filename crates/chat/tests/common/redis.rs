//! A Redis of the test's own: `redis-server` (Debian's 7.0 here) started on a free
//! loopback port with persistence off, ready once it answers PING, killed when dropped.
//!
//! Without `redis-server` on PATH, [`Redis::start`] returns `None` after printing which
//! test did not run, so a plain `cargo test` on a machine without it stays green; under
//! `CI=true` it panics saying what is missing (`.ci/run` installs it).
//!
//! The binary's tests include this file too (`#[path]`), each using its own part.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer PING.
const READY: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    program: PathBuf,
}

/// Where `redis-server` is: `$IOMODELS_REDIS_SERVER`, else the first on PATH.
fn program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IOMODELS_REDIS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl Redis {
    /// Start a Redis for `test`, or `None` (having printed that `test` did not run) when
    /// `redis-server` is missing and this is not CI.
    pub fn start(test: &str) -> Option<Redis> {
        let Some(program) = program() else {
            let message = format!(
                "NOT RUN: {test}: redis-server is not on PATH (apt-get install redis-server, \
                 or set IOMODELS_REDIS_SERVER)"
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{message}");
            }
            println!("{message}");
            return None;
        };
        // A free port: the kernel's pick, let go just before Redis binds it. Another
        // process may take it in between; then Redis exits and we try another.
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let mut redis = Redis {
                child: None,
                port,
                program: program.clone(),
            };
            if redis.launch() {
                return Some(redis);
            }
        }
        panic!("redis-server ({}) would not start", program.display());
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it with SIGKILL (everything it held is gone: persistence is off) and wait
    /// for it to end. [`Redis::restart`] brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill it if it runs, then start a fresh, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // The port is ours until someone else binds it; Redis sets SO_REUSEADDR, so
        // connections left in TIME_WAIT do not stand in the way.
        let deadline = Instant::now() + READY;
        while !self.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server would not start again on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Start `redis-server` on `self.port` and wait until it answers PING; `false` if it
    /// exited first (the port was taken).
    fn launch(&mut self) -> bool {
        let mut child = Command::new(&self.program)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            // No dump.rdb in the test's directory even if something asks for a save.
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.program.display()));
        let deadline = Instant::now() + READY;
        loop {
            if ping(self.addr()) {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING within {READY:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis at `addr` answers PING with PONG (RESP by hand: the helper needs no
/// client).
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
