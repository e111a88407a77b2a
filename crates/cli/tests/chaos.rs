//! `chat-bots --scenario` with the chaos scenarios, as scripts see it: one JSON line with
//! `--json`, exit status 0 for a verdict that passes, 1 with one line saying what failed.

mod util;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Output, Stdio};
use util::{iomodels, output, stop};

/// Start `chat-server` on a free port; returns the child and the address it printed.
fn chat_server() -> (Child, String) {
    let mut child = iomodels()
        .args(["chat-server", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "iomodels: chat server on 127.0.0.1:PORT (...)".
    let addr = line
        .split_once(" chat server on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// The one line of stdout, parsed as JSON.
fn json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The last line of stderr: the error, if any.
fn last_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.trim().lines().last().unwrap_or_default().to_string()
}

#[test]
fn churn_against_a_chat_server_passes_with_its_memory_sampled() {
    let (server, addr) = chat_server();
    let pid = server.id().to_string();
    let output = output(&[
        "chat-bots",
        "--addr",
        &addr,
        "--scenario",
        "churn",
        "--rounds",
        "2",
        "--per-round",
        "20",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(stop(server).success());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report = json_line(&output);
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["scenario"], "churn");
    assert_eq!(
        report["details"]["churn"]["rounds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        report["server"]["rss_after_kib"].as_u64().unwrap() > 0,
        "{report}"
    );
}

#[test]
fn a_failed_verdict_exits_1_with_one_line_saying_what() {
    let (server, addr) = chat_server();
    // The server's login timeout is 10 s: connections silent for 1 s (and 1 s of slack)
    // are still open, which is what this asks the server to have closed.
    let output = output(&[
        "chat-bots",
        "--addr",
        &addr,
        "--scenario",
        "anonymous",
        "--connections",
        "5",
        "--login-timeout",
        "1",
        "--slack",
        "1",
        "--json",
    ]);
    assert!(stop(server).success());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(json_line(&output)["passed"], false);
    let last = last_line(&output);
    assert!(
        last.starts_with("iomodels: chat-bots anonymous against"),
        "{last}"
    );
    assert!(
        last.contains("5 of 5 silent connections still open"),
        "{last}"
    );
}

#[test]
fn a_chaos_scenario_without_a_server_says_it_cannot_connect() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let output = output(&["chat-bots", "--addr", &addr, "--scenario", "flood"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty());
    let last = last_line(&output);
    assert!(last.contains("flood: cannot connect to"), "{last}");
}

#[test]
fn chaos_flags_out_of_range_are_bad_usage() {
    for args in [
        &["chat-bots", "--scenario", "flood", "--readers", "0"][..],
        &["chat-bots", "--scenario", "churn", "--rounds", "1"],
        &[
            "chat-bots",
            "--scenario",
            "anonymous",
            "--login-timeout",
            "0",
        ],
        &["chat-bots", "--scenario", "stampede"],
    ] {
        let output = output(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
}
