//! Running a peer as its own process: start it on a port of the kernel's choosing, learn
//! the address from its stderr, and kill it when the test ends, passed or failed, so that no
//! peer outlives its test and `cargo test` never waits on one.
#![allow(dead_code)]

use iomodels_compare::process::announced_addr;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback address with port 0 on a 127.0.0.x of its own for each call: the peer takes
/// whatever port the kernel gives it and says which. (Asking the kernel for a free port here
/// and handing it over races with any other test that spawns a child meanwhile: the child
/// inherits the probe listener until it execs, and answers connects meant for the peer.)
pub fn any_port() -> SocketAddr {
    static NEXT: AtomicU8 = AtomicU8::new(10);
    (
        Ipv4Addr::new(127, 0, 0, NEXT.fetch_add(1, Ordering::Relaxed)),
        0,
    )
        .into()
}

/// A running peer: the child, the address it serves, and everything it wrote on stderr.
/// Dropping it kills the child (a no-op for one already waited for).
pub struct Running {
    pub server: String,
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Fail the test with what the peer said and whether it is still running: a connect
    /// refused by a peer that exited is a different bug from one refused by a live peer.
    pub fn fail(&mut self, what: &str) -> ! {
        std::thread::sleep(Duration::from_millis(200));
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            Ok(None) => "still running".to_string(),
            Err(error) => format!("cannot be polled: {error}"),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{}: {what} (peer on {} {status}; its stderr: {:?})",
            self.server,
            self.addr,
            self.stderr()
        );
    }

    /// What the peer has written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start peer `server` with `args` after `--server` and `--addr`, and wait (with a
/// deadline) until it says where it listens.
pub fn start(server: &str, args: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"));
    command
        .args(["--server", server, "--addr", &any_port().to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn iomodels-peers");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr piped");
    let sink = Arc::clone(&stderr);
    // Drained to the end, so the peer never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut chunk = [0u8; 512];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
    });
    let mut running = Running {
        server: server.to_string(),
        child,
        addr: (Ipv4Addr::LOCALHOST, 0).into(),
        stderr,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(addr) = announced_addr(&running.stderr()) {
            running.addr = addr;
            return running;
        }
        if let Some(status) = running.child.try_wait().expect("poll the child") {
            running.fail(&format!("exited before listening: {status}"));
        }
        if Instant::now() >= deadline {
            running.fail("never said where it listens");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
