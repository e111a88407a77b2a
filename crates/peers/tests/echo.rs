//! Each peer, run as its own process, echoes every byte back in order on many connections
//! at once, and exits with status 0 on SIGTERM (on Windows, a stop request).

use iomodels_compare::process::announced_addr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback address with port 0 on a 127.0.0.x of its own for each call: the peer takes
/// whatever port the kernel gives it and says which. (Asking the kernel for a free port here
/// and handing it over races with any other test that spawns a child meanwhile: the child
/// inherits the probe listener until it execs, and answers connects meant for the peer.)
fn any_port() -> SocketAddr {
    static NEXT: AtomicU8 = AtomicU8::new(10);
    (
        Ipv4Addr::new(127, 0, 0, NEXT.fetch_add(1, Ordering::Relaxed)),
        0,
    )
        .into()
}

/// A running peer: the child, the address it serves, and everything it wrote on stderr.
struct Running {
    server: String,
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Fail the test with what the peer said and whether it is still running: a connect
    /// refused by a peer that exited is a different bug from one refused by a live peer.
    fn fail(&mut self, what: &str) -> ! {
        std::thread::sleep(Duration::from_millis(200));
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            Ok(None) => "still running".to_string(),
            Err(error) => format!("cannot be polled: {error}"),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        panic!(
            "{}: {what} (peer on {} {status}; its stderr: {stderr:?})",
            self.server, self.addr
        );
    }
}

/// Start a peer and wait (with a deadline) until it says where it listens.
fn start(server: &str, workers: Option<usize>) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"));
    command
        .args(["--server", server, "--addr", &any_port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(workers) = workers {
        command.args(["--workers", &workers.to_string()]);
    }
    let mut child = command.spawn().expect("spawn iomodels-peers");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr piped");
    let sink = Arc::clone(&stderr);
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
        let said = announced_addr(&running.stderr.lock().expect("stderr lock"));
        if let Some(addr) = said {
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

/// A payload that differs per connection and per message.
fn pattern(connection: usize, message: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (connection * 131 + message * 31 + i * 7) as u8)
        .collect()
}

fn check_echo(server: &str, workers: Option<usize>) {
    let mut peer = start(server, workers);
    let mut streams = Vec::new();
    for connection in 0..16 {
        match TcpStream::connect(peer.addr) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("read timeout");
                streams.push(stream);
            }
            Err(error) => peer.fail(&format!(
                "connect {connection} after the port accepted: {error}"
            )),
        }
    }
    // Sizes from one byte to more than the peers' 4 KiB buffer.
    for (message, len) in [1usize, 64, 1000, 4096, 10_000, 32_768]
        .into_iter()
        .enumerate()
    {
        for (connection, stream) in streams.iter_mut().enumerate() {
            if let Err(error) = stream.write_all(&pattern(connection, message, len)) {
                peer.fail(&format!("write on connection {connection}: {error}"));
            }
        }
        for (connection, stream) in streams.iter_mut().enumerate() {
            let mut echoed = vec![0u8; len];
            if let Err(error) = stream.read_exact(&mut echoed) {
                peer.fail(&format!(
                    "reading the echo on connection {connection}: {error}"
                ));
            }
            assert_eq!(
                echoed,
                pattern(connection, message, len),
                "{server}: connection {connection} message {message} echoed wrong bytes"
            );
        }
    }
    // A closed connection is closed back, not held.
    let mut last = streams.pop().expect("a stream");
    last.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    last.read_to_end(&mut rest).expect("read to the end");
    assert!(rest.is_empty(), "{server} sent bytes after the echo");

    let child = &mut peer.child;
    iomodels_sys::process::request_stop(child).expect("SIGTERM or a stop request");
    let status = child.wait().expect("wait for the peer");
    assert!(
        status.success(),
        "{server} did not exit 0 on SIGTERM: {status}"
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert!(stdout.is_empty(), "{server} printed on stdout: {stdout:?}");
}

#[test]
fn tokio_current_thread_echoes() {
    check_echo("tokio-current", None);
}

#[test]
fn tokio_multi_thread_echoes() {
    check_echo("tokio-multi", Some(2));
}

#[test]
#[cfg(target_os = "linux")]
fn monoio_echoes() {
    check_echo("monoio", None);
}

#[test]
#[cfg(target_os = "linux")]
fn monoio_with_two_workers_echoes() {
    check_echo("monoio", Some(2));
}

#[test]
#[cfg(not(target_os = "linux"))]
fn monoio_is_refused_off_linux() {
    let output = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"))
        .args(["--server", "monoio", "--addr", &any_port().to_string()])
        .output()
        .expect("run iomodels-peers");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only on Linux"), "{stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
}

#[test]
fn tokio_current_refuses_more_workers() {
    let addr = any_port();
    let output = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"))
        .args([
            "--server",
            "tokio-current",
            "--addr",
            &addr.to_string(),
            "--workers",
            "2",
        ])
        .output()
        .expect("run iomodels-peers");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--workers 2"));
    // Bad usage: status 2, as for clap's own errors.
    assert_eq!(output.status.code(), Some(2));
}
