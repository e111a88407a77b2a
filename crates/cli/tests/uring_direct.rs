//! `iomodels serve --model uring` on io_uring direct descriptors, as a user runs it: a
//! process whose open-file limit is far below the connections it holds, and a table that
//! fills without a connection lost.
//!
//! Each server is started with its open-file limit (soft and hard, since `serve` raises
//! the soft limit to the hard one) lowered to [`LIMIT`] and killed when its test ends,
//! passed or failed. On a kernel without direct descriptors the tests print `SKIPPED`.
#![cfg(target_os = "linux")]

mod util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::iomodels;

/// The server's open-file limit.
const LIMIT: u64 = 256;

/// A server killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Descriptors the server process has open.
    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }
}

/// `serve --model uring --uring-descriptors direct` with `extra` flags and its open-file
/// limit at [`LIMIT`]; `None` (and a SKIPPED line) when the kernel cannot run it.
fn serve(extra: &[&str]) -> Option<Server> {
    if let Err(why) = iomodels_engine::uring_probe() {
        eprintln!("SKIPPED: uring: {why}");
        return None;
    }
    let mut command = iomodels();
    command
        .args(["serve", "--model", "uring", "--addr", "127.0.0.1:0"])
        .args(["--uring-descriptors", "direct"])
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, on a value it owns.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    // The rest of its stderr is drained, so that a chatty log never blocks it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let Some(addr) = iomodels_compare::process::announced_addr(&banner) else {
        let _ = child.kill();
        let _ = child.wait();
        if banner.contains("direct") || banner.contains("not supported") {
            eprintln!("SKIPPED: {banner}");
            return None;
        }
        panic!("no address in {banner:?}");
    };
    let addr = addr.to_string().parse().unwrap();
    Some(Server { child, addr })
}

/// Raise this test process's own open-file limit to its hard limit (it holds the clients).
fn raise_own_limit() {
    let hard = iomodels_sys::raise_open_file_limit();
    assert!(
        hard >= 2_000,
        "the tests need 2,000 descriptors, have {hard}"
    );
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Send a message unique to `id` and read its echo back, failing on anything else
/// (a reset, an end of stream, other bytes).
fn echo(stream: &mut TcpStream, id: usize) {
    let message = format!("client {id:05}");
    stream.write_all(message.as_bytes()).unwrap();
    expect_echo(stream, id);
}

fn expect_echo(stream: &mut TcpStream, id: usize) {
    let message = format!("client {id:05}");
    let mut back = vec![0; message.len()];
    if let Err(e) = stream.read_exact(&mut back) {
        panic!("client {id}: no echo: {e}");
    }
    assert_eq!(back, message.as_bytes(), "client {id}");
}

/// A server limited to 256 descriptors holds 1,500 connections (on eight rings, each
/// table at most 256 slots), echoes on every one, resets none, and keeps only a few
/// descriptors of its own open.
#[test]
fn holds_several_times_its_descriptor_limit() {
    raise_own_limit();
    let Some(server) = serve(&["--max-connections", "2000"]) else {
        return;
    };
    const CLIENTS: usize = 1_500;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr)).collect();
    for (id, client) in clients.iter_mut().enumerate() {
        echo(client, id);
    }
    // Every one is still served, after all of them were accepted.
    for (id, client) in clients.iter_mut().enumerate() {
        echo(client, id + CLIENTS);
    }
    let open = server.descriptors();
    assert!(
        open < LIMIT as usize,
        "the server has {open} descriptors open for {CLIENTS} connections"
    );
    eprintln!("{CLIENTS} connections served with {open} descriptors open");
}

/// One ring of 256 slots and 300 clients: the first 256 are served, the other 44 wait in
/// the listen backlog, not reset, not closed; once 50 of the first hang up, the waiting
/// ones are accepted and served (they had sent their message while waiting).
#[test]
fn a_full_table_keeps_the_rest_waiting() {
    raise_own_limit();
    let Some(server) = serve(&["--workers", "1", "--max-connections", &LIMIT.to_string()]) else {
        return;
    };
    const SLOTS: usize = LIMIT as usize;
    const CLIENTS: usize = SLOTS + 44;
    let mut clients: Vec<TcpStream> = Vec::with_capacity(CLIENTS);
    for id in 0..CLIENTS {
        let mut client = connect(server.addr);
        if id < SLOTS {
            // One at a time, so that the first SLOTS are the ones accepted.
            echo(&mut client, id);
        } else {
            client
                .write_all(format!("client {id:05}").as_bytes())
                .unwrap();
        }
        clients.push(client);
    }
    // The waiting ones hear nothing: no echo, no end of stream, no reset.
    let quiet_until = Instant::now() + Duration::from_millis(500);
    for (id, client) in clients.iter_mut().enumerate().skip(SLOTS) {
        let left = quiet_until.saturating_duration_since(Instant::now());
        client
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut byte = [0; 1];
        match client.read(&mut byte) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("client {id} waiting for a slot got {other:?}"),
        }
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    // The first ones are still served.
    for (id, client) in clients.iter_mut().enumerate().take(SLOTS).skip(50) {
        echo(client, id);
    }
    // 50 hang up: their slots go to the waiting ones, which get their echo.
    clients.drain(..50);
    for (index, client) in clients.iter_mut().enumerate().skip(SLOTS - 50) {
        expect_echo(client, index + 50);
    }
    for (index, client) in clients.iter_mut().enumerate() {
        echo(client, index + 50 + CLIENTS);
    }
}
