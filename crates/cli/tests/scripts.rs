//! What scripts rely on: exit statuses (0 success, 1 failure, 2 bad usage), one JSON line
//! on stdout with `--json`, and errors that say what went wrong.

mod util;

use std::net::TcpListener;
use std::process::Output;
use util::{model, output as iomodels, serve, stop, FOREIGN_MODEL};

/// A loopback address where nothing listens.
fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

/// The one line of stdout, parsed as JSON.
fn json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

const SHORT_BENCH: [&str; 6] = ["--warmup", "0", "--duration", "0.2", "--connections", "4"];

#[test]
fn bench_against_a_dead_port_fails_unless_errors_are_allowed() {
    let addr = dead_addr();
    let mut args = vec!["bench", "--addr", &addr, "--json"];
    args.extend(SHORT_BENCH);
    let output = iomodels(&args);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = json_line(&output);
    assert_eq!(report["errors"]["connect_failed"], 4);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("4 connection attempts failed"), "{stderr}");
    assert!(last.contains("0 of 4 connections held"), "{stderr}");

    args.push("--allow-errors");
    let output = iomodels(&args);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(json_line(&output)["connections_held"], 0);
}

#[test]
fn bench_against_a_server_that_drops_connections_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accept and close at once, until the test process ends.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let mut args = vec!["bench", "--addr", &addr];
    args.extend(SHORT_BENCH);
    let output = iomodels(&args);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("closed or reset by the server"), "{stderr}");
}

#[test]
fn bench_against_a_healthy_server_exits_zero() {
    let (server, addr) = serve(model());
    let mut args = vec!["bench", "--addr", &addr, "--json"];
    args.extend(SHORT_BENCH);
    let output = iomodels(&args);
    assert!(stop(server).success());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(json_line(&output)["connections_held"], 4);
}

#[test]
fn chat_bots_that_cannot_connect_say_so_in_one_json_line() {
    let addr = dead_addr();
    let output = iomodels(&[
        "chat-bots",
        "--addr",
        &addr,
        "--bots",
        "3",
        "--duration",
        "0.2",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = json_line(&output);
    assert_eq!(report["connected"], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("no bot could connect"), "{stderr}");
    assert!(!last.contains("protocol"), "{stderr}");
}

#[test]
fn bad_usage_exits_2_everywhere() {
    let cases: &[&[&str]] = &[
        &["bench", "--duration", "inf"],
        &["bench", "--connections", "0"],
        &["chat-bots", "--duration", "inf"],
        &["chat-bots", "--rate", "NaN"],
        &["chat-server", "--rooms", "2147483647"],
        &["chat-server", "--idle-timeout", "-1"],
        &["serve", "--idle-timeout", "inf"],
        &["serve", "--model", "blocking", "--workers", "2"],
        &["serve", "--addr", "localhost:seven"],
        &["client", "--addr", "nowhere"],
        &["compare", "--duration", "inf"],
        &["compare", "--models", FOREIGN_MODEL],
        #[cfg(not(target_os = "linux"))]
        &["compare", "--models", "none", "--peers", "monoio"],
    ];
    for args in cases {
        let output = iomodels(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let output = iomodels(&["chat-server", "--rooms", "2147483647"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 to 100000"), "{stderr}");
}
