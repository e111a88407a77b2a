//! `iomodels bench` spread over client processes (`--clients N`): one merged report, each
//! client on a source address of its own, and a client that fails failing the run with one
//! line and leaving no process behind.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};
use util::iomodels;

/// An echo server on a thread per connection that records each peer's address.
struct Echo {
    addr: SocketAddr,
    peers: Arc<Mutex<BTreeSet<IpAddr>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = peers.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if let Ok(peer) = stream.peer_addr() {
                    seen.lock().unwrap().insert(peer.ip());
                }
                thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buffer) {
                        if stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Echo { addr, peers }
    }

    fn peers(&self) -> BTreeSet<IpAddr> {
        self.peers.lock().unwrap().clone()
    }
}

/// Kills the child when dropped, so a failing test leaves nothing running.
#[cfg(target_os = "linux")]
struct Running(std::process::Child);

#[cfg(target_os = "linux")]
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn three_clients_merge_into_one_report_from_three_addresses() {
    let echo = Echo::start();
    let output = iomodels()
        .args([
            "bench",
            "--addr",
            &echo.addr.to_string(),
            "--connections",
            "300",
            "--clients",
            "3",
            "--warmup",
            "0.2",
            "--duration",
            "1",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["connections_requested"], 300, "{report}");
    assert_eq!(report["connections_held"], 300, "{report}");
    let messages = report["messages"].as_u64().unwrap();
    assert!(messages > 0, "{report}");
    for kind in [
        "connect_failed",
        "connect_timeout",
        "disconnected",
        "verify_failed",
    ] {
        assert_eq!(report["errors"][kind], 0, "{kind}: {report}");
    }
    assert!(report["latency_us"]["p50"].as_f64().unwrap() > 0.0);

    let clients = report["clients"]
        .as_array()
        .expect("a per-client breakdown");
    assert_eq!(clients.len(), 3, "{report}");
    let sum = |field: &str| -> u64 { clients.iter().map(|c| c[field].as_u64().unwrap()).sum() };
    assert_eq!(sum("connections_requested"), 300);
    assert_eq!(sum("connections_held"), 300);
    assert_eq!(sum("messages"), messages);
    let client_cpu: f64 = clients
        .iter()
        .map(|c| c["cpu_secs"].as_f64().unwrap())
        .sum();
    let cpu = report["client_cpu_secs"].as_f64().unwrap();
    assert!((client_cpu - cpu).abs() < 1e-6, "{client_cpu} vs {cpu}");
    let sources: BTreeSet<&str> = clients
        .iter()
        .map(|c| c["sources"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    );
    let pids: BTreeSet<u64> = clients.iter().map(|c| c["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 3, "{report}");

    // What the server saw: every client from its own address.
    let expected: BTreeSet<IpAddr> = (1..=3)
        .map(|host| IpAddr::from([127, 0, 0, host]))
        .collect();
    assert_eq!(echo.peers(), expected);
}

#[test]
fn the_text_report_lists_each_client() {
    let echo = Echo::start();
    let output = iomodels()
        .args([
            "bench",
            "--addr",
            &echo.addr.to_string(),
            "--connections",
            "20",
            "--clients",
            "2",
            "--warmup",
            "0",
            "--duration",
            "0.3",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("20 of 20 connections held"), "{stdout}");
    for line in ["client 1/2 (pid ", "client 2/2 (pid "] {
        assert!(stdout.contains(line), "{stdout}");
    }
    assert!(
        stdout.contains("from 127.0.0.2): 10 of 10 held"),
        "{stdout}"
    );
}

/// Live processes whose parent is `parent` (from /proc), with their pids.
#[cfg(target_os = "linux")]
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Whether `pid` is still a running (not zombie) process.
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Wait until none of `pids` runs; false if one still does after 5 s.
#[cfg(target_os = "linux")]
fn all_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !pids.iter().any(|&pid| alive(pid)) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A three-client bench of 30 connections against `addr`, measuring for `duration`
/// seconds, with its output piped.
#[cfg(target_os = "linux")]
fn three_client_bench(addr: SocketAddr, duration: &str) -> std::process::Child {
    iomodels()
        .args([
            "bench",
            "--addr",
            &addr.to_string(),
            "--connections",
            "30",
            "--clients",
            "3",
            "--warmup",
            "0",
            "--duration",
            duration,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Start a long three-client bench against `addr` and wait until its three clients run.
#[cfg(target_os = "linux")]
fn long_bench(addr: SocketAddr) -> (Running, Vec<u32>) {
    let child = three_client_bench(addr, "60");
    let parent = child.id();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let clients = children_of(parent);
        if clients.len() == 3 {
            return (running, clients);
        }
        assert!(Instant::now() < deadline, "clients: {clients:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_client_that_dies_fails_the_run_with_one_line_and_no_orphans() {
    let echo = Echo::start();
    let (mut bench, clients) = long_bench(echo.addr);
    // Let them connect and start, then kill one.
    thread::sleep(Duration::from_millis(800));
    let victim = clients[1];
    // SAFETY: kill(2) takes no pointers; the pid is a live child of our child.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = bench.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "bench still running 20 s after a client was killed"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    bench
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("iomodels:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    assert!(line.contains(&format!("(pid {victim},")), "{line}");
    assert!(line.contains("client process"), "{line}");
    assert!(
        line.contains("SIGKILL") || line.contains("signal: 9"),
        "{line}"
    );
    assert!(all_gone(&clients), "clients {clients:?} outlived the run");
}

#[test]
#[cfg(target_os = "linux")]
fn clients_die_with_a_killed_parent() {
    let echo = Echo::start();
    let (mut bench, clients) = long_bench(echo.addr);
    // Into the window, where a client only writes progress (whose failures it ignores) and
    // nothing but the kernel's parent-death signal ends it before its 60 s.
    thread::sleep(Duration::from_millis(1500));
    bench.0.kill().unwrap();
    bench.0.wait().unwrap();
    assert!(
        all_gone(&clients),
        "clients {clients:?} outlived their killed parent"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn an_unreachable_target_is_one_line_and_exit_one() {
    // A port nothing listens on: bind one, note it, close it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = three_client_bench(addr, "0.5");
    let parent = child.id();
    let mut bench = Running(child);
    let mut seen = Vec::new();
    let status = loop {
        for pid in children_of(parent) {
            if !seen.contains(&pid) {
                seen.push(pid);
            }
        }
        if let Some(status) = bench.0.try_wait().unwrap() {
            break status;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    bench
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("iomodels:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("30 connection attempts failed"),
        "{stderr}"
    );
    assert!(all_gone(&seen), "clients {seen:?} outlived the run");
}
