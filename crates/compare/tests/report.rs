//! The report writer on synthetic rows: the table, capacity, failures, JSON and charts.

use iomodels_compare::bench::{BenchResult, Errors, IdleSample, Latency, ServerSample};
use iomodels_compare::chat::{BotsResult, ChatRow, ChatServer, ChatSettings, FanoutLatency};
use iomodels_compare::machine::Machine;
use iomodels_compare::report::{Kind, Phase, Row, Settings, TargetInfo};
use iomodels_compare::{charts, Report};

fn bench(
    connections: u64,
    held: u64,
    rate: f64,
    p99: f64,
    cpu_us: f64,
    rss_kib: u64,
) -> BenchResult {
    let duration = 2.0;
    let messages = (rate * duration) as u64;
    BenchResult {
        addr: "127.0.0.1:7000".into(),
        connections_requested: connections,
        connections_held: held,
        payload: 64,
        pipeline: 1,
        rate: None,
        warmup_secs: 1.0,
        duration_secs: duration,
        messages,
        messages_per_sec: rate,
        mb_per_sec_out: rate * 64.0 / 1e6,
        mb_per_sec_in: rate * 64.0 / 1e6,
        latency_us: Latency {
            p50: p99 / 3.0,
            p90: p99 / 2.0,
            p99,
            p999: p99 * 2.0,
            max: p99 * 4.0,
        },
        errors: Errors::default(),
        client_cpu_secs: 1.0,
        client_cpu_us_per_msg: 2.5,
        server: Some(ServerSample {
            pid: 42,
            cpu_secs: messages as f64 * cpu_us / 1e6,
            cpu_us_per_msg: cpu_us,
            rss_kib,
            hwm_kib: rss_kib,
        }),
        limit: "server".into(),
        idle: None,
        clients: Vec::new(),
    }
}

fn row(
    target: &str,
    kind: Kind,
    phase: Phase,
    connections: u64,
    bench: Option<BenchResult>,
) -> Row {
    Row {
        target: target.into(),
        kind,
        phase,
        connections,
        payload: 64,
        pipeline: 1,
        server_command: format!("iomodels serve --model {target} --addr 127.0.0.1:7000"),
        bench_command: bench
            .as_ref()
            .map(|_| "iomodels bench --addr 127.0.0.1:7000 --json".into()),
        baseline_rss_kib: Some(1000),
        bench,
        error: None,
        server_note: None,
        round: 0,
    }
}

fn target(name: &str, kind: Kind, lines: Option<usize>, shared: bool) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        kind,
        description: format!("{name} description"),
        driver_lines: lines,
        uses_shared_loop: shared,
    }
}

fn synthetic() -> Report {
    let m = Phase::Matrix;
    let c = Phase::Capacity;
    let mut select_fail = bench(2000, 2000, 50_000.0, 900.0, 4.0, 3000);
    select_fail.connections_held = 1019;
    select_fail.errors.connect_failed = 981;
    let mut uring_failed = row("uring", Kind::Model, m, 1, None);
    uring_failed.error =
        Some("server exited before listening (exit status: 1): io_uring is not permitted".into());
    let rows = vec![
        row(
            "epoll",
            Kind::Model,
            m,
            1,
            Some(bench(1, 1, 12_400.0, 79.0, 9.0, 1100)),
        ),
        row(
            "epoll",
            Kind::Model,
            m,
            100,
            Some(bench(100, 100, 230_000.0, 600.0, 3.25, 1200)),
        ),
        row(
            "epoll",
            Kind::Model,
            c,
            1000,
            Some(bench(1000, 1000, 220_000.0, 5000.0, 3.3, 2000)),
        ),
        // 10,000 connections: 1000 KiB baseline, 3000 KiB after: 2000 KiB / 10000 = 204.8 B.
        row(
            "epoll",
            Kind::Model,
            c,
            10_000,
            Some(bench(10_000, 10_000, 160_000.0, 80_000.0, 3.9, 3000)),
        ),
        row(
            "select",
            Kind::Model,
            m,
            1,
            Some(bench(1, 1, 12_000.0, 80.0, 9.5, 1100)),
        ),
        row(
            "select",
            Kind::Model,
            m,
            100,
            Some(bench(100, 100, 120_000.0, 900.0, 6.0, 1200)),
        ),
        row(
            "select",
            Kind::Model,
            c,
            1000,
            Some(bench(1000, 1000, 60_000.0, 9000.0, 15.0, 1500)),
        ),
        row("select", Kind::Model, c, 2000, Some(select_fail)),
        uring_failed,
        row(
            "tokio-current",
            Kind::Peer,
            m,
            1,
            Some(bench(1, 1, 12_300.0, 81.0, 10.0, 2000)),
        ),
        row(
            "tokio-current",
            Kind::Peer,
            m,
            100,
            Some(bench(100, 100, 250_000.0, 500.0, 3.5, 2500)),
        ),
        row(
            "tokio-current",
            Kind::Peer,
            c,
            1000,
            Some(bench(1000, 1000, 227_000.0, 6000.0, 4.0, 6000)),
        ),
    ];
    Report {
        command: "iomodels compare --models epoll,select,uring --peers tokio-current".into(),
        started_unix: 1_700_000_000,
        elapsed_secs: 42.0,
        machine: Machine {
            cpus: 2,
            cpu_model: Some("Test CPU".into()),
            memory_kib: Some(4 * 1024 * 1024),
            kernel: "Linux 6.18.0 #1 SMP".into(),
            open_files_limit: Some(20_000),
            platform: None,
            wine: None,
        },
        settings: Settings {
            connections: vec![1, 100],
            payloads: vec![64],
            pipelines: vec![1],
            warmup_secs: 1.0,
            duration_secs: 2.0,
            capacity_steps: vec![1000, 2000, 10_000],
            capacity_idle_secs: 2.0,
            server_cpus: Some("0".into()),
            client_cpus: Some("1".into()),
            model_workers: Some(1),
            peer_workers: 1,
            bench_threads: None,
            quick: false,
            rounds: 1,
            chat: None,
        },
        targets: vec![
            target("epoll", Kind::Model, Some(120), true),
            target("select", Kind::Model, Some(95), true),
            target("uring", Kind::Model, Some(700), false),
            target("tokio-current", Kind::Peer, None, false),
        ],
        shared_loop_lines: Some(500),
        rows,
        all_rows: Vec::new(),
        chat_rows: Vec::new(),
    }
}

/// The summary-table line of one server.
fn summary_line<'a>(markdown: &'a str, name: &str) -> &'a str {
    let start = markdown
        .find("## The book's table, measured")
        .expect("summary section");
    markdown[start..]
        .lines()
        .find(|line| line.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no summary line for {name}"))
}

fn cells(line: &str) -> Vec<&str> {
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn summary_table_has_the_books_columns_measured() {
    let report = synthetic();
    let md = report.markdown(&[]);
    assert!(md.contains(
        "| server | connections held | msgs/s C=1 | msgs/s C=100 | p99 at most C | server CPU us/msg | msgs per server-CPU-s | memory per connection | lines of code |"
    ));
    let epoll = cells(summary_line(&md, "epoll"));
    assert_eq!(epoll[0], "epoll");
    assert_eq!(epoll[1], "10000 (cap)");
    assert_eq!(epoll[2], "12.4k");
    assert_eq!(epoll[3], "230.0k");
    assert_eq!(epoll[4], "600 us (C=100)");
    assert_eq!(epoll[5], "3.25");
    // 1e6 / 3.25 us per message.
    assert_eq!(epoll[6], "307.7k");
    assert_eq!(epoll[7], "205 B (RSS 2.9 MiB at 10000)");
    assert_eq!(epoll[8], "120 + 500 shared");

    let uring = cells(summary_line(&md, "uring"));
    assert_eq!(uring[1], "—");
    assert_eq!(uring[2], "failed");
    assert_eq!(uring[3], "—");
    assert_eq!(uring[8], "700");

    let tokio = cells(summary_line(&md, "tokio-current"));
    assert_eq!(tokio[1], "1000");
    assert_eq!(tokio[8], "— (peer)");
}

#[test]
fn capacity_stops_at_the_first_failed_step_and_names_fd_setsize() {
    let report = synthetic();
    let select = report.capacity("select");
    assert_eq!(select.held, Some(1000));
    assert!(!select.reached_cap);
    let (requested, held, reason) = select.failed.expect("select failed at 2000");
    assert_eq!((requested, held), (2000, Some(1019)));
    assert!(reason.contains("held 1019 of 2000"), "{reason}");
    assert!(reason.contains("981 connect failed"), "{reason}");

    let md = report.markdown(&[]);
    let select_line = cells(summary_line(&md, "select"));
    assert_eq!(select_line[1], "1000; 1019 of 2000; FD_SETSIZE");
    assert!(md.contains("- **select**: held 1000 connections; at 2000 it held 1019"));
    assert!(md.contains("FD_SETSIZE (1024)"));
    assert!(md.contains("- **epoll**: held 10000 connections, the cap of the ramp"));
}

#[test]
fn failures_are_listed_with_their_errors() {
    let md = synthetic().markdown(&[]);
    let failures = &md[md.find("## Failures and errors").expect("failures section")..];
    assert!(failures.contains("- uring ping-pong C=1 payload 64: server exited before listening"));
    assert!(failures.contains("io_uring is not permitted"));
    assert!(
        failures.contains("- select ping-pong C=2000 payload 64: held 1019 of 2000 connections")
    );
    assert!(!failures.contains("- epoll"), "clean rows are not failures");
}

#[test]
fn machine_settings_commands_and_charts_are_in_the_markdown() {
    let md = synthetic().markdown(&["msgs_per_sec.svg".to_string()]);
    assert!(md.contains("- CPUs: 2 (Test CPU)"));
    assert!(md.contains("- memory: 4.0 GiB"));
    assert!(md.contains("- kernel: Linux 6.18.0 #1 SMP"));
    assert!(md.contains("- open-file limit: 20000 per process"));
    assert!(md.contains("server on CPUs 0, load generator on CPUs 1"));
    assert!(md.contains("- workers: our models 1, tokio-multi and monoio 1, tokio-current 1"));
    assert!(md.contains(
        "```sh\niomodels compare --models epoll,select,uring --peers tokio-current\n```"
    ));
    assert!(md.contains("iomodels serve --model epoll --addr 127.0.0.1:7000\niomodels bench"));
    assert!(md.contains("![msgs_per_sec.svg](msgs_per_sec.svg)"));
    // Every run appears in the full table, the failed one marked.
    let all = &md[md.find("## Every run").unwrap()..md.find("## Failures").unwrap()];
    assert_eq!(all.lines().filter(|l| l.starts_with("| ")).count(), 1 + 12);
    assert!(all.contains("| uring | matrix | ping-pong | 1 | 64 | — |"));
}

#[test]
fn json_round_trips_every_row() {
    let report = synthetic();
    let dir = tempfile::tempdir().unwrap();
    report.write_json(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("compare.json")).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["rows"].as_array().unwrap().len(), 12);
    assert_eq!(value["rows"][0]["phase"], "matrix");
    assert_eq!(value["rows"][0]["kind"], "model");
    assert_eq!(value["rows"][0]["bench"]["latency_us"]["p99"], 79.0);
}

#[test]
fn a_linux_report_names_no_platform() {
    let report = synthetic();
    let md = report.markdown(&[]);
    assert!(!md.contains("- platform:"), "{md}");
    assert!(!md.contains("Wine"), "{md}");
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["machine"].get("platform").is_none(), "{json}");
    assert!(json["machine"].get("wine").is_none(), "{json}");
}

#[test]
fn a_wine_report_says_its_numbers_are_wines() {
    let mut report = synthetic();
    report.machine.kernel = "Windows 10.0.19045".into();
    report.machine.open_files_limit = None;
    report.machine.platform =
        Some("Windows under Wine 8.0 (emulated: not a Windows measurement)".into());
    report.machine.wine = Some("8.0".into());
    let md = report.markdown(&[]);
    let header = &md[..md.find("## Machine").unwrap()];
    assert!(
        header.contains("**Measured under Wine 8.0, not on Windows: every number below is Wine's"),
        "{header}"
    );
    assert!(
        header.contains("(emulated: not a Windows measurement)"),
        "{header}"
    );
    assert!(
        md.contains("- platform: Windows under Wine 8.0 (emulated: not a Windows measurement)\n")
    );
    assert!(md.contains("- kernel: Windows 10.0.19045"));
    assert!(!md.contains("open-file limit"));
    assert!(md.contains("- workers: our models 1, tokio-multi 1, tokio-current 1"));
    // Linux's FD_SETSIZE is not Winsock's: no claim about it.
    assert!(!md.contains("FD_SETSIZE"), "{md}");
    // The shared-loop note names the models measured, not Linux's.
    assert!(md.contains("\"+ 500 shared\": epoll, select differ only in how they wait"));
    assert!(md.contains("uring have loops of their own"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["machine"]["wine"], "8.0");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn charts_are_svg_with_one_line_per_server() {
    let report = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let written = charts::draw_all(&report, dir.path()).unwrap();
    assert_eq!(
        written,
        [
            "msgs_per_sec.svg",
            "cpu_per_msg.svg",
            "memory_per_connection.svg",
            "capacity.svg"
        ]
    );
    let svg = std::fs::read_to_string(dir.path().join("msgs_per_sec.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    // Legend entries for the servers with data; uring has none.
    for name in ["epoll", "select", "tokio-current"] {
        assert!(
            svg.contains(&format!(">\n{name}\n<")),
            "{name} not in the legend"
        );
    }
    assert!(!svg.contains("\nuring\n"));
    let series = charts::matrix_series(&report, 64, 1, |b| Some(b.messages_per_sec));
    let epoll = &series.iter().find(|(n, _)| n == "epoll").unwrap().1;
    assert_eq!(epoll, &vec![(1.0, 12_400.0), (100.0, 230_000.0)]);
    let memory = charts::memory_series(&report);
    let epoll_memory = &memory.iter().find(|(n, _)| n == "epoll").unwrap().1;
    // (2000-1000) KiB / 1000 and (3000-1000) KiB / 10000, in KiB.
    assert_eq!(
        epoll_memory,
        &vec![(100.0, 2.0), (1000.0, 1.0), (10_000.0, 0.2)]
    );
}

#[test]
fn latency_and_cpu_columns_skip_a_count_that_failed() {
    let mut report = synthetic();
    report.settings.connections.push(1000);
    let mut dead = bench(1000, 0, 0.0, 0.0, 0.0, 1000);
    dead.messages = 0;
    dead.errors.disconnected = 1000;
    report
        .rows
        .push(row("epoll", Kind::Model, Phase::Matrix, 1000, Some(dead)));
    let md = report.markdown(&[]);
    let epoll = cells(summary_line(&md, "epoll"));
    assert_eq!(epoll[4], "0 (errors)");
    assert_eq!(epoll[5], "600 us (C=100)");
    assert_eq!(epoll[6], "3.25");
}

/// With several rounds, each cell keeps the round with the median server CPU per message,
/// a clean run beats a failed one, and cells keep their order.
#[test]
fn median_round_per_cell() {
    let round = |r: usize, connections: u64, cpu: f64, held: u64| {
        let mut row = row(
            "epoll",
            Kind::Model,
            Phase::Matrix,
            connections,
            Some(bench(connections, held, 100_000.0, 900.0, cpu, 4096)),
        );
        row.round = r;
        row
    };
    let all = vec![
        round(0, 100, 3.0, 100),
        round(0, 1000, 9.0, 1000),
        round(1, 100, 1.0, 100),
        round(1, 1000, 5.0, 999), // not clean: one connection missing
        round(2, 100, 2.0, 100),
        round(2, 1000, 7.0, 1000),
    ];
    let median = iomodels_compare::report::median_rows(&all);
    assert_eq!(median.len(), 2);
    assert_eq!((median[0].connections, median[0].round), (100, 2));
    // Of the clean rounds at 1000 (9.0 and 7.0), the lower middle: 7.0.
    assert_eq!((median[1].connections, median[1].round), (1000, 2));
}

/// A clean swarm of 1,000 bots at `offered` chats/s over 5 s, fan-out p99 `p99_us`.
fn swarm(offered: u64, p99_us: u64) -> BotsResult {
    BotsResult {
        scenario: "room-chat".into(),
        addr: "127.0.0.1:7001".into(),
        bots: 1000,
        rooms: 50,
        connected: 1000,
        duration_secs: 5.0,
        chats_sent: offered * 5,
        // The chats' notifies, then each bot's closing chat's.
        notifies_received: (offered * 5 + 1000) * 20,
        fanout_latency: FanoutLatency {
            count: offered * 5 * 20,
            p50_us: p99_us / 4,
            p99_us,
            p999_us: p99_us * 2,
            max_us: p99_us * 3,
        },
        protocol_errors: 0,
        failed_requests: 0,
        disconnects: 0,
        lost_notifies: 0,
        duplicated_notifies: 0,
        order_mismatches: 0,
        bots_cpu_secs: 2.0,
    }
}

fn chat_row(
    server: ChatServer,
    offered: u64,
    swarm: BotsResult,
    cpu: f64,
    round: usize,
) -> ChatRow {
    let mut row = ChatRow::new(server, offered, 1000, 1);
    row.server_command = format!("iomodels chat-server --model {server}");
    row.bots_command = Some("iomodels chat-bots --json".into());
    row.swarm = Some(swarm);
    row.server_cpu_secs = Some(cpu);
    row.wall_secs = Some(8.0);
    row.round = round;
    row
}

fn with_chat() -> Report {
    let mut report = synthetic();
    // epoll on Linux, iocp on Windows.
    let epoll = ChatServer::Model(iomodels_engine::Model::SCALABLE[0]);
    report.settings.rounds = 2;
    report.settings.chat = Some(ChatSettings {
        servers: vec![epoll.name().into(), "tokio-chat".into()],
        bots: 1000,
        rooms: 50,
        room_size: 20,
        rates: vec![1000, 5000],
        duration_secs: 5.0,
        bots_cores: 1,
    });
    let mut lossy = swarm(5000, 90_000);
    lossy.lost_notifies = 12;
    report.chat_rows = vec![
        chat_row(epoll, 1000, swarm(1000, 4000), 1.0, 0),
        chat_row(epoll, 5000, swarm(5000, 40_000), 5.0, 0),
        chat_row(ChatServer::TokioChat, 1000, swarm(1000, 6000), 2.0, 0),
        chat_row(ChatServer::TokioChat, 5000, lossy, 4.0, 0),
        // Round 2: epoll at 1000 less CPU, tokio-chat at 1000 more: the medians of two
        // are the lower ones.
        chat_row(epoll, 1000, swarm(1000, 3000), 0.8, 1),
        chat_row(ChatServer::TokioChat, 1000, swarm(1000, 7000), 2.5, 1),
    ];
    report
}

/// The chat-table line of `server` at `offered` chats/s (as the table writes the rate).
fn chat_line<'a>(markdown: &'a str, offered: &str, server: &str) -> Vec<&'a str> {
    let start = markdown.find("## Chat fan-out").expect("chat section");
    let line = markdown[start..]
        .lines()
        .find(|line| line.starts_with(&format!("| {offered} | {server} |")))
        .unwrap_or_else(|| panic!("no chat line for {server} at {offered} in\n{markdown}"));
    cells(line)
}

#[test]
fn the_chat_matrix_is_a_table_of_median_rounds_with_failures_named() {
    let report = with_chat();
    let epoll = report.settings.chat.as_ref().unwrap().servers[0].clone();
    let md = report.markdown(&["chat_fanout_p99.svg".into()]);
    assert!(md.contains("1000 bots in 50 rooms of 20"), "{md}");
    // epoll at 1,000/s: of 1.0 and 0.8 CPU-s (120k notifies, closing chats included), the
    // lower notifies per CPU-s, 120k / 1.0, is the median of two (the first of the pair).
    let line = chat_line(&md, "1.0k", &epoll);
    assert_eq!(line[2], "1.0k", "achieved: {line:?}");
    assert_eq!(line[3], "20.0k", "notifies/s: {line:?}");
    assert_eq!(line[4], "1.00", "server CPU: {line:?}");
    assert_eq!(line[5], "120.0k", "notifies per CPU-s: {line:?}");
    assert_eq!(line[6], "1.0 ms", "p50: {line:?}");
    assert_eq!(line[7], "4.0 ms", "p99: {line:?}");
    assert_eq!(line[8], "8.0 ms", "p99.9: {line:?}");
    assert_eq!(line[10], "2.00 (25%)", "bots CPU: {line:?}");
    assert_eq!(line[11], "no");
    assert_eq!(line[12], "yes");
    // tokio-chat at 1,000/s: 120k / 2.5 and 120k / 2.0; the lower is round 2's.
    assert_eq!(chat_line(&md, "1.0k", "tokio-chat")[5], "48.0k");
    let lossy = chat_line(&md, "5.0k", "tokio-chat");
    assert_eq!(lossy[12], "no: see below");
    assert!(
        md.contains("- tokio-chat at 5000 chats/s: 12 notifies lost"),
        "{md}"
    );
    // Rows sorted by rate, ours before the peer within a rate.
    let at = |needle: &str| md.find(needle).unwrap();
    assert!(at(&format!("| 1.0k | {epoll} |")) < at("| 1.0k | tokio-chat |"));
    assert!(at("| 1.0k | tokio-chat |") < at(&format!("| 5.0k | {epoll} |")));
    assert!(md.contains("iomodels chat-server --model tokio-chat"));

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["chat_rows"].as_array().unwrap().len(), 6);
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn a_report_without_chat_fields_still_reads_and_writes_no_chat_section() {
    let mut json = serde_json::to_value(synthetic()).unwrap();
    let object = json.as_object_mut().unwrap();
    assert!(!object.contains_key("chat_rows"));
    assert!(!object["settings"].as_object().unwrap().contains_key("chat"));
    let report: Report = serde_json::from_value(json).unwrap();
    assert!(!report.markdown(&[]).contains("## Chat fan-out"));
}

#[test]
fn chat_charts_have_a_line_per_chat_server() {
    let report = with_chat();
    let dir = tempfile::tempdir().unwrap();
    let written = charts::draw_all(&report, dir.path()).unwrap();
    assert!(written.ends_with(&[
        "chat_fanout_p99.svg".to_string(),
        "chat_notifies_per_cpu.svg".to_string()
    ]));
    let svg = std::fs::read_to_string(dir.path().join("chat_fanout_p99.svg")).unwrap();
    assert!(
        svg.contains(">\ntokio-chat\n<"),
        "no tokio-chat in the legend"
    );
    assert!(svg.contains("offered chats per second"));
    let series = iomodels_compare::chat::chat_series(&report, |row| {
        Some(row.swarm.as_ref()?.fanout_latency.p99_us as f64)
    });
    // The median rounds: 4 ms at 1,000 (round 1), 40 ms at 5,000.
    assert_eq!(series[0].1, vec![(1000.0, 4000.0), (5000.0, 40_000.0)]);
    assert_eq!(series[1].1, vec![(1000.0, 7000.0), (5000.0, 90_000.0)]);
}

/// tokio-current ramped past 1000: clean at 2000 with an idle hold, then stopped at 20,000
/// holding 19,990, ten short of the open-file limit of 20,000.
fn ramped() -> Report {
    let mut report = synthetic();
    let mut clean = bench(2000, 2000, 200_000.0, 7000.0, 4.0, 9000);
    clean.idle = Some(IdleSample {
        secs: 2.0,
        connections: 2000,
        server_cpu_secs: 0.02,
        server_cpu_per_sec: 0.01,
    });
    let mut stopped = bench(20_000, 19_990, 150_000.0, 90_000.0, 4.5, 90_000);
    stopped.errors.connect_failed = 10;
    report.rows.push(row(
        "tokio-current",
        Kind::Peer,
        Phase::Capacity,
        2000,
        Some(clean),
    ));
    report.rows.push(row(
        "tokio-current",
        Kind::Peer,
        Phase::Capacity,
        20_000,
        Some(stopped),
    ));
    report
}

/// The capacity table's line of one server.
fn capacity_line(markdown: &str, name: &str) -> Vec<String> {
    let start = markdown.find("## Capacity").expect("capacity section");
    let line = markdown[start..]
        .lines()
        .find(|line| line.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no capacity line for {name}"));
    cells(line).into_iter().map(String::from).collect()
}

#[test]
fn the_capacity_table_shows_each_ceiling_why_it_stopped_and_the_idle_cost() {
    let report = ramped();
    let tokio = report.capacity("tokio-current");
    assert_eq!(tokio.held, Some(2000));
    assert_eq!(tokio.ceiling, Some(19_990));
    assert_eq!(tokio.idle, Some((2000, 0.01)));
    let md = report.markdown(&[]);
    assert!(md.contains(
        "| server | ceiling | last clean step | stopped at | why | idle server CPU-s/s | memory per connection |"
    ));
    let line = capacity_line(&md, "tokio-current");
    assert_eq!(line[1], "19990");
    assert_eq!(line[2], "2000");
    assert_eq!(line[3], "20000");
    assert!(
        line[4].starts_with("the server's descriptor limit (20000): held 19990 of 20000"),
        "{line:?}"
    );
    assert!(line[4].contains("10 connect failed"), "{line:?}");
    assert_eq!(line[5], "0.0100 (at 2000)");
    // (90,000 − 1000) KiB over 19,990 connections.
    assert_eq!(line[6], "4.5 KiB (at 19990)");
    assert!(md.contains("keeps them open and silent for 2 s"));

    let select = capacity_line(&md, "select");
    assert_eq!(&select[1..4], ["1019", "1000", "2000"]);
    assert!(select[4].starts_with("FD_SETSIZE (1024): held 1019 of 2000"));
    assert_eq!(select[5], "—");

    let epoll = capacity_line(&md, "epoll");
    assert_eq!(
        &epoll[1..5],
        ["10000", "10000 (cap)", "—", "reached the cap"]
    );
    // No capacity row at all: nothing to say.
    let uring = capacity_line(&md, "uring");
    assert_eq!(&uring[1..5], ["—", "none", "—", "—"]);

    // A report from before the idle hold reads, with no idle column values.
    let mut json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    json["settings"]
        .as_object_mut()
        .unwrap()
        .remove("capacity_idle_secs");
    let old: Report = serde_json::from_value(json).unwrap();
    assert_eq!(old.settings.capacity_idle_secs, 0.0);
}

#[test]
fn capacity_and_idle_charts_have_a_line_per_server() {
    let report = ramped();
    let series = charts::capacity_series(&report);
    let tokio = &series
        .iter()
        .find(|(name, _)| name == "tokio-current")
        .unwrap()
        .1;
    assert_eq!(
        tokio,
        &[(1000.0, 1000.0), (2000.0, 2000.0), (20_000.0, 19_990.0)]
    );
    let idle = charts::idle_series(&report);
    let tokio = &idle
        .iter()
        .find(|(name, _)| name == "tokio-current")
        .unwrap()
        .1;
    assert_eq!(tokio, &[(2000.0, 0.01)]);

    let dir = tempfile::tempdir().unwrap();
    let written = charts::draw_all(&report, dir.path()).unwrap();
    for chart in ["capacity.svg", "idle_cpu.svg"] {
        assert!(written.contains(&chart.to_string()), "{written:?}");
        let svg = std::fs::read_to_string(dir.path().join(chart)).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
        assert!(svg.contains("\ntokio-current\n"), "{chart}");
    }
}
