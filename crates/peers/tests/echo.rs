//! Each peer, run as its own process, echoes every byte back in order on many connections
//! at once, and exits with status 0 on SIGTERM (on Windows, a stop request).

mod common;

use common::{any_port, start};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A payload that differs per connection and per message.
fn pattern(connection: usize, message: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (connection * 131 + message * 31 + i * 7) as u8)
        .collect()
}

fn check_echo(server: &str, workers: Option<usize>) {
    let workers = workers.map(|n| n.to_string());
    let args: Vec<&str> = match &workers {
        Some(n) => vec!["--workers", n],
        None => vec![],
    };
    let mut peer = start(server, &args);
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
