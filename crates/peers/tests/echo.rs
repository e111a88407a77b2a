//! Each peer, run as its own process, echoes every byte back in order on many connections
//! at once, and exits with status 0 on SIGTERM.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A loopback address whose port was free a moment ago, on a 127.0.0.x of its own for
/// each call: the monoio peer listens with SO_REUSEPORT, so two tests handed the same
/// port would silently share it and see each other's listeners come and go.
fn free_addr() -> SocketAddr {
    static NEXT: AtomicU8 = AtomicU8::new(10);
    let host = NEXT.fetch_add(1, Ordering::Relaxed);
    let listener =
        TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

/// Start a peer and wait (with a deadline) until its port accepts.
fn start(server: &str, workers: Option<usize>) -> (Child, SocketAddr) {
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"));
    command
        .args(["--server", server, "--addr", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(workers) = workers {
        command.args(["--workers", &workers.to_string()]);
    }
    let mut child = command.spawn().expect("spawn iomodels-peers");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!("{server} exited before listening: {status}");
        }
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return (child, addr),
            Err(error) if Instant::now() < deadline => {
                assert!(
                    matches!(
                        error.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::TimedOut
                    ),
                    "unexpected connect error: {error}"
                );
                std::thread::yield_now();
            }
            Err(error) => panic!("{server} never accepted on {addr}: {error}"),
        }
    }
}

/// A payload that differs per connection and per message.
fn pattern(connection: usize, message: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (connection * 131 + message * 31 + i * 7) as u8)
        .collect()
}

fn check_echo(server: &str, workers: Option<usize>) {
    let (mut child, addr) = start(server, workers);
    let mut streams: Vec<TcpStream> = (0..16)
        .map(|_| {
            let stream = TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            stream
        })
        .collect();
    // Sizes from one byte to more than the peers' 4 KiB buffer.
    for (message, len) in [1usize, 64, 1000, 4096, 10_000, 32_768]
        .into_iter()
        .enumerate()
    {
        for (connection, stream) in streams.iter_mut().enumerate() {
            stream
                .write_all(&pattern(connection, message, len))
                .expect("write");
        }
        for (connection, stream) in streams.iter_mut().enumerate() {
            let mut echoed = vec![0u8; len];
            stream.read_exact(&mut echoed).expect("read the echo");
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

    // SAFETY: kill(2) with the pid of a child we own and have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
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
fn monoio_echoes() {
    check_echo("monoio", None);
}

#[test]
fn monoio_with_two_workers_echoes() {
    check_echo("monoio", Some(2));
}

#[test]
fn tokio_current_refuses_more_workers() {
    let addr = free_addr();
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
}
