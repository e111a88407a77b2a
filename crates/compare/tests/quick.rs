//! `iomodels compare --quick` end to end, on two models and one peer, and the chat matrix
//! on the first model and tokio-chat with a tiny swarm, when the binaries are built (`cargo build --release -p iomodels -p iomodels-peers`). Set IOMODELS_BIN_DIR
//! to use binaries from another folder.

use iomodels_compare::chat::ChatRow;
use iomodels_compare::report::Phase;
use iomodels_compare::Report;
use std::env::consts::EXE_SUFFIX;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The two models compared: epoll and poll on Linux; elsewhere the first scalable model and
/// select.
#[cfg(target_os = "linux")]
const MODELS: [&str; 2] = ["epoll", "poll"];
#[cfg(not(target_os = "linux"))]
fn models() -> [&'static str; 2] {
    use iomodels_engine::Model;
    [Model::SCALABLE[0].name(), Model::Select.name()]
}
#[cfg(target_os = "linux")]
fn models() -> [&'static str; 2] {
    MODELS
}

/// A folder holding both binaries, with a `compare` subcommand: the test's own profile
/// folder first (fresh from this build), then the release folder.
fn binaries() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("IOMODELS_BIN_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> → target/<profile>, and target/release.
    if let Some(profile) = exe.parent().and_then(Path::parent) {
        candidates.push(profile.to_path_buf());
        if let Some(target) = profile.parent() {
            candidates.push(target.join("release"));
        }
    }
    for dir in &candidates {
        let iomodels = dir.join(format!("iomodels{EXE_SUFFIX}"));
        if !iomodels.is_file() || !dir.join(format!("iomodels-peers{EXE_SUFFIX}")).is_file() {
            continue;
        }
        let help = Command::new(&iomodels).args(["compare", "--help"]).output();
        if help.is_ok_and(|out| out.status.success()) {
            return Ok(dir.clone());
        }
    }
    Err(format!(
        "no folder among {candidates:?} holds iomodels (with `compare`) and iomodels-peers"
    ))
}

#[test]
fn quick_compare_writes_a_well_formed_report() {
    let bin_dir = match binaries() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!(
                "skipped: {why}; build them with `cargo build --release -p iomodels -p iomodels-peers`"
            );
            return;
        }
    };
    let out = tempfile::tempdir().expect("temporary folder");
    let [first, second] = models();
    let status = Command::new(bin_dir.join(format!("iomodels{EXE_SUFFIX}")))
        .args([
            "compare",
            "--quick",
            "--models",
            &format!("{first},{second}"),
            "--peers",
            "tokio-current",
            "--chat-servers",
            &format!("{first},tokio-chat"),
            "--chat-bots",
            "40",
            "--chat-rates",
            "100,400",
        ])
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run iomodels compare");
    assert!(status.success(), "compare exited with {status}");

    let json = std::fs::read_to_string(out.path().join("compare.json")).expect("compare.json");
    let report: Report = serde_json::from_str(&json).expect("compare.json is a report");
    let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [first, second, "tokio-current"]);
    assert!(report.settings.quick);
    for name in names {
        let matrix: Vec<_> = report.rows_of(name, Phase::Matrix).collect();
        // counts 1 and 100, ping-pong and pipelined 16.
        assert_eq!(matrix.len(), 4, "{name}: {matrix:?}");
        for row in matrix {
            let bench = row
                .clean()
                .unwrap_or_else(|| panic!("{name} C={} failed: {row:?}", row.connections));
            assert!(bench.messages > 0);
            assert_eq!(bench.connections_held, row.connections);
            let server = bench
                .server
                .as_ref()
                .expect("server sampled via --server-pid");
            assert!(server.rss_kib > 0);
        }
        assert_eq!(report.capacity(name).held, Some(1000), "{name}");
        // The step's idle hold: 1000 connections open and silent for 1 s, the server's CPU
        // read over it (an idle server keeps well under half a core busy).
        let step = report
            .rows_of(name, Phase::Capacity)
            .next()
            .expect("a capacity step");
        let idle = step
            .bench
            .as_ref()
            .and_then(|bench| bench.idle.as_ref())
            .unwrap_or_else(|| panic!("{name}: no idle hold in {step:?}"));
        assert_eq!((idle.connections, idle.secs), (1000, 1.0), "{name}");
        assert!(
            (0.0..0.5).contains(&idle.server_cpu_per_sec),
            "{name}: idle server CPU {} CPU-s/s",
            idle.server_cpu_per_sec
        );
    }

    let md = std::fs::read_to_string(out.path().join("compare.md")).expect("compare.md");
    assert!(md.contains("## The book's table, measured"));
    assert!(md.contains(&format!("- CPUs: {}", report.machine.cpus)));
    for name in [first, second, "tokio-current"] {
        let line = md
            .lines()
            .find(|line| line.starts_with(&format!("| {name} | 1000 (cap) |")))
            .unwrap_or_else(|| panic!("no summary line for {name} in\n{md}"));
        assert!(!line.contains("failed"), "{line}");
        let capacity = format!("| {name} | 1000 | 1000 (cap) | — | reached the cap | 0.");
        assert!(
            md.lines().any(|line| line.starts_with(&capacity)),
            "no capacity line {capacity} in\n{md}"
        );
    }
    for chart in [
        "msgs_per_sec.svg",
        "msgs_per_sec_pipelined_16.svg",
        "cpu_per_msg.svg",
        "memory_per_connection.svg",
    ] {
        let svg = std::fs::read_to_string(out.path().join(chart)).expect(chart);
        assert!(svg.starts_with("<svg"), "{chart} is not SVG");
        // Legend entries are text elements of their own.
        assert!(
            svg.contains(&format!("\n{first}\n")),
            "{chart} has no line for {first}"
        );
        assert!(md.contains(&format!("]({chart})")), "{chart} not linked");
    }
    check_chat(&report, &md, out.path(), first);
}

/// The chat matrix of the quick run: both servers clean at both rates, every chat notified
/// to its whole room, the numbers in the table and the charts written.
fn check_chat(report: &Report, md: &str, out: &Path, ours: &str) {
    let chat = report.settings.chat.as_ref().expect("the chat matrix ran");
    assert_eq!((chat.bots, chat.rooms, chat.room_size), (40, 2, 20));
    assert_eq!(chat.rates, [100, 400]);
    assert_eq!(chat.servers, [ours, "tokio-chat"]);
    for server in [ours, "tokio-chat"] {
        let rows: Vec<&ChatRow> = report
            .chat_rows
            .iter()
            .filter(|row| row.target == server)
            .collect();
        let rates: Vec<u64> = rows.iter().map(|row| row.offered_per_sec).collect();
        assert_eq!(rates, [100, 400], "{server}: {rows:?}");
        for row in rows {
            let what = format!("{server} at {} chats/s", row.offered_per_sec);
            let swarm = row
                .clean()
                .unwrap_or_else(|| panic!("{what} failed: {}", row.failure_reason()));
            assert!(swarm.chats_sent > 0, "{what}");
            // Every chat reaches its room's 20 members, the sender included; so does each
            // bot's closing chat, which has no fan-out sample.
            assert_eq!(swarm.fanout_latency.count, swarm.chats_sent * 20, "{what}");
            assert_eq!(
                swarm.notifies_received,
                (swarm.chats_sent + 40) * 20,
                "{what}"
            );
            assert!(swarm.fanout_latency.p99_us >= swarm.fanout_latency.p50_us);
            assert!(swarm.fanout_latency.p999_us >= swarm.fanout_latency.p99_us);
            assert!(swarm.bots_cpu_secs > 0.0, "{what}");
            let cpu = row.server_cpu_secs.expect("server CPU sampled");
            assert!(cpu > 0.0, "{what}: server CPU {cpu}");
            let per_cpu = row
                .notifies_per_server_cpu_sec()
                .expect("notifies per CPU-s");
            assert!((per_cpu - swarm.notifies_received as f64 / cpu).abs() < 1e-6);
            let busy = row.bots_busy().expect("bots busy");
            assert!(busy > 0.0 && busy <= 1.05, "{what}: bots busy {busy}");
            // Offered 100 or 400 over 1 s: what the bots sent is near it.
            let achieved = row.achieved_per_sec().unwrap();
            let offered = row.offered_per_sec as f64;
            assert!(
                achieved > offered * 0.5 && achieved < offered * 1.5,
                "{what}: achieved {achieved}"
            );

            // The table's line for this run shows these numbers.
            let start = md
                .find("## Chat fan-out")
                .expect("chat section in compare.md");
            let prefix = format!("| {} | {server} |", row.offered_per_sec);
            let line = md[start..]
                .lines()
                .find(|line| line.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no chat line {prefix} in\n{md}"));
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 13, "{line}");
            assert_eq!(cells[4], format!("{cpu:.2}"), "{line}");
            for (index, cell) in cells.iter().enumerate().skip(2).take(9) {
                assert!(
                    cell.starts_with(|c: char| c.is_ascii_digit()),
                    "{line}: cell {index} is not a number"
                );
            }
            assert_eq!(cells[12], "yes", "{line}");
        }
    }
    for chart in ["chat_fanout_p99.svg", "chat_notifies_per_cpu.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).expect(chart);
        assert!(svg.starts_with("<svg"), "{chart} is not SVG");
        for server in [ours, "tokio-chat"] {
            assert!(
                svg.contains(&format!("\n{server}\n")),
                "{chart} has no line for {server}"
            );
        }
        assert!(md.contains(&format!("]({chart})")), "{chart} not linked");
    }
}
