//! The generator's verification, tested against echo servers that break in known ways,
//! and its three modes against correct ones, over real loopback sockets.

use iomodels_engine::echo::Echo;
use iomodels_engine::{Config, Model, Server};
use iomodels_load::{connection_ceiling, run, BenchConfig, BenchReport, Error};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// How a test echo server misbehaves, at a byte position of each connection's stream.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Echo faithfully.
    None,
    /// Leave out the byte at this position.
    Drop(u64),
    /// Send the byte at this position twice.
    Duplicate(u64),
    /// Swap the byte at this position with the next.
    Swap(u64),
    /// Flip the bits of the byte at this position.
    Corrupt(u64),
    /// Close the connection once this many bytes were echoed.
    CloseAfter(u64),
}

/// Where the faults strike: inside the second 64-byte message, away from its edges.
const AT: u64 = 100;

/// A thread-per-connection echo server with `fault` on every connection. Its threads end
/// when the generator closes its connections; the accept thread ends with the test.
fn echo_server(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve(stream, fault));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, fault: Fault) {
    let mut buffer = [0u8; 4096];
    let mut position = 0u64;
    // Swap needs the byte after AT: hold one byte back across reads.
    let mut held: Option<u8> = None;
    let mut out = Vec::with_capacity(8192);
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        for &byte in &buffer[..n] {
            let here = position;
            position += 1;
            match fault {
                Fault::Drop(at) if here == at => continue,
                Fault::Duplicate(at) if here == at => out.extend([byte, byte]),
                Fault::Swap(at) if here == at => held = Some(byte),
                Fault::Swap(at) if here == at + 1 => {
                    out.push(byte);
                    out.extend(held.take());
                }
                Fault::Corrupt(at) if here == at => out.push(byte ^ 0x5A),
                _ => out.push(byte),
            }
        }
        if let Fault::CloseAfter(limit) = fault {
            if position >= limit {
                let keep = out.len() - (position - limit) as usize;
                let _ = stream.write_all(&out[..keep]);
                return;
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn config(addr: SocketAddr, connections: usize) -> BenchConfig {
    let mut config = BenchConfig::new(addr);
    config.connections = connections;
    config.payload = 64;
    config.warmup = Duration::ZERO;
    config.duration = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn bench(config: &BenchConfig) -> BenchReport {
    let report = run(config, |_| {}).expect("the run completes");
    // Whatever happened, the report must be what `--json` prints and parse back.
    let line = serde_json::to_string(&report).unwrap();
    assert!(!line.contains('\n'));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let contract = [
        "addr",
        "client_cpu_secs",
        "client_cpu_us_per_msg",
        "connections_held",
        "connections_requested",
        "duration_secs",
        "errors",
        "latency_us",
        "limit",
        "mb_per_sec_in",
        "mb_per_sec_out",
        "messages",
        "messages_per_sec",
        "payload",
        "pipeline",
        "rate",
        "server",
        "warmup_secs",
    ];
    assert_eq!(keys(&value), contract);
    assert_eq!(
        keys(&value["latency_us"]),
        ["max", "p50", "p90", "p99", "p999"]
    );
    assert_eq!(
        keys(&value["errors"]),
        [
            "connect_failed",
            "connect_timeout",
            "disconnected",
            "verify_failed"
        ]
    );
    if !value["server"].is_null() {
        assert_eq!(
            keys(&value["server"]),
            ["cpu_secs", "cpu_us_per_msg", "hwm_kib", "pid", "rss_kib"]
        );
    }
    assert!(["client", "server", "unknown"].contains(&value["limit"].as_str().unwrap()));
    let back: BenchReport = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (back.messages, back.errors),
        (report.messages, report.errors)
    );
    report
}

/// Every connection meets the fault; every one must be caught, and nothing after it
/// counted: only the first message (before the fault) may be.
fn assert_caught(fault: Fault, pipeline: usize) {
    let connections = 8;
    let mut config = config(echo_server(fault), connections);
    config.pipeline = pipeline;
    let report = bench(&config);
    assert_eq!(
        report.errors.verify_failed, connections as u64,
        "{fault:?}: {report:#?}"
    );
    assert_eq!(report.errors.disconnected, 0, "{fault:?}: {report:#?}");
    assert_eq!(report.connections_held, 0, "{fault:?}: {report:#?}");
    assert!(
        report.messages <= connections as u64,
        "{fault:?}: bad echoes counted as throughput: {report:#?}"
    );
}

#[test]
fn a_dropped_byte_is_caught() {
    assert_caught(Fault::Drop(AT), 1);
}

#[test]
fn a_duplicated_byte_is_caught() {
    assert_caught(Fault::Duplicate(AT), 1);
}

#[test]
fn two_swapped_bytes_are_caught() {
    assert_caught(Fault::Swap(AT), 1);
}

#[test]
fn a_corrupted_byte_is_caught() {
    assert_caught(Fault::Corrupt(AT), 1);
}

#[test]
fn faults_are_caught_when_pipelined() {
    for fault in [Fault::Drop(AT), Fault::Swap(AT), Fault::Corrupt(AT)] {
        assert_caught(fault, 8);
    }
}

#[test]
fn an_early_close_is_a_disconnect() {
    let connections = 8;
    let report = bench(&config(echo_server(Fault::CloseAfter(1000)), connections));
    assert_eq!(
        report.errors.disconnected, connections as u64,
        "{report:#?}"
    );
    assert_eq!(report.errors.verify_failed, 0, "{report:#?}");
    assert_eq!(report.connections_held, 0);
    // 1000 bytes hold 15 whole 64-byte messages per connection; no more can count.
    assert!(report.messages <= 15 * connections as u64, "{report:#?}");
}

fn assert_clean(report: &BenchReport, connections: usize) {
    assert_eq!(report.errors.total(), 0, "{report:#?}");
    assert_eq!(report.connections_held, connections, "{report:#?}");
    assert!(
        report.messages > 0 && report.messages_per_sec > 0.0,
        "{report:#?}"
    );
    assert!(report.mb_per_sec_in > 0.0 && report.mb_per_sec_out > 0.0);
    let l = &report.latency_us;
    assert!(0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    assert!(report.client_cpu_secs > 0.0 && report.client_cpu_us_per_msg > 0.0);
}

#[test]
fn a_correct_echo_gives_no_errors_in_every_mode() {
    let addr = echo_server(Fault::None);
    let connections = 16;

    let report = bench(&config(addr, connections));
    assert_clean(&report, connections);
    assert_eq!(report.pipeline, 1);

    let mut pipelined = config(addr, connections);
    pipelined.pipeline = 8;
    assert_clean(&bench(&pipelined), connections);

    let mut open = config(addr, connections);
    open.rate = Some(4000);
    open.duration = Duration::from_secs(1);
    let report = bench(&open);
    assert_clean(&report, connections);
    // The schedule, not the server, sets the pace: about 4000 a second.
    assert!(
        (3000.0..=4400.0).contains(&report.messages_per_sec),
        "{report:#?}"
    );
}

/// The engine model the generator is checked against: epoll on Linux, the platform's first
/// scalable model (IOCP) elsewhere.
#[cfg(target_os = "linux")]
const MODEL: Model = Model::Epoll;
#[cfg(not(target_os = "linux"))]
const MODEL: Model = Model::SCALABLE[0];

#[test]
fn the_engine_echo_gives_no_errors_in_every_mode() {
    let server = Server::start(Config::new(MODEL, "127.0.0.1:0".parse().unwrap()), Echo).unwrap();
    let addr = server.local_addr();
    let connections = 64;

    let mut ping_pong = config(addr, connections);
    ping_pong.threads = 2;
    ping_pong.server_pid = Some(std::process::id());
    let report = bench(&ping_pong);
    assert_clean(&report, connections);
    let s = report.server.expect("a server pid gives a server report");
    assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{report:#?}");
    // The "server" here is this whole process, load threads included: it was busy.
    assert!(s.cpu_secs > 0.0 && s.cpu_us_per_msg > 0.0, "{report:#?}");

    let mut pipelined = config(addr, connections);
    pipelined.pipeline = 16;
    pipelined.payload = 1000;
    assert_clean(&bench(&pipelined), connections);

    let mut open = config(addr, connections);
    open.rate = Some(20_000);
    assert_clean(&bench(&open), connections);

    server.stop().unwrap();
}

#[test]
fn refused_connections_are_counted() {
    // A port that was just free: nothing listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = bench(&config(addr, 10));
    assert_eq!(report.errors.connect_failed, 10, "{report:#?}");
    assert_eq!(report.connections_held, 0);
    assert_eq!(report.messages, 0);
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows refuses a connect past a full backlog instead of dropping its SYN"
)]
fn unanswered_connects_time_out() {
    // A listener that never accepts, with a backlog of one: once its queue is full the
    // kernel drops further SYNs, and those connects hang until the timeout.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(1).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut config = config(addr, 10);
    config.connect_timeout = Duration::from_millis(300);
    config.duration = Duration::from_millis(100);
    let report = bench(&config);
    assert!(report.errors.connect_timeout > 0, "{report:#?}");
    assert!(
        report.errors.connect_timeout + report.errors.connect_failed <= 10,
        "{report:#?}"
    );
    // The ones whose handshake the kernel completed were never answered: not held.
    assert_eq!(report.connections_held, 0, "{report:#?}");
    drop(socket);
}

/// A server at its descriptor limit accepts some connections and leaves the rest in its
/// listen backlog: their handshake completed, so they look open, but nothing answers
/// them. They are not held, and the run is not clean.
#[test]
fn connections_left_in_the_backlog_are_not_held() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const SERVED: usize = 3;
    thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in listener.incoming().take(SERVED) {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve(stream, Fault::None));
        }
        // Stop accepting, with the listener still open.
        kept.push(listener);
        thread::sleep(Duration::from_secs(30));
    });
    let report = bench(&config(addr, SERVED + 2));
    assert_eq!(report.connections_held, SERVED, "{report:#?}");
    assert_eq!(report.errors.total(), 0, "{report:#?}");
    assert!(
        report
            .problems()
            .contains(&format!("{SERVED} of {} connections held", SERVED + 2)),
        "{:?}",
        report.problems()
    );
}

#[test]
fn more_connections_than_one_process_can_hold_is_an_error() {
    // A million on Linux, where the open-file limit is the ceiling; past the handle table
    // on Windows, which has no such limit.
    let too_many = if cfg!(windows) {
        connection_ceiling(1) as usize + 1
    } else {
        1_000_000
    };
    let config = config("127.0.0.1:9".parse().unwrap(), too_many);
    match run(&config, |_| {}) {
        Err(Error::TooManyConnections { requested, ceiling }) => {
            assert_eq!(requested, too_many);
            assert!(ceiling < too_many as u64);
        }
        other => panic!("expected TooManyConnections, got {other:?}"),
    }
}
