//! `iomodels compare`: every model of ours and every peer under the same load, written up
//! as the book's table measured.
//!
//! For each server it starts a fresh process per run (`iomodels serve --model M` or
//! `iomodels-peers --server P`) on port 0, optionally pinned, waits until it announces the
//! port it was given and accepts there, runs
//! `iomodels bench --json` against it with `--server-pid` so the load generator samples
//! the server's CPU time and memory, then stops it (SIGTERM, or on Windows a stop request;
//! killed after a deadline).
//! After the bench matrix it ramps the connection count to find how many connections each
//! server holds, then runs the chat matrix ([`chat`]): the same bot swarm against each chat
//! server at a sweep of offered rates. A server that fails to start, or a bench that fails,
//! is a row with its error, never the end of the comparison.
//!
//! The output: `report/compare.md` (the table, the machine, the commands),
//! `report/compare.json` (every row, raw) and SVG charts.
#![forbid(unsafe_code)]

pub mod bench;
pub mod charts;
pub mod chat;
mod error;
pub mod loc;
pub mod machine;
pub mod process;
pub mod progress;
pub mod report;
pub mod target;

pub use bench::BenchResult;
pub use error::Error;
pub use report::Report;

use chat::ChatServer;
use process::{command_line, Binaries, ServerProcess};
pub use progress::Progress;
use report::{Kind, Phase, Row, Settings, TargetInfo};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use target::{Peer, Target};

/// What `iomodels compare` is asked to do: the flags, as plain values. `None` takes the
/// default (or the `--quick` default) given in each field's doc.
#[derive(Debug, Clone, Default)]
pub struct CompareConfig {
    /// Models to measure: `all`, `none`, or a list like `epoll,uring`.
    pub models: String,
    /// Peers to measure: `all`, `none`, or a list of tokio-current, tokio-multi, monoio.
    pub peers: String,
    /// Connection counts of the bench matrix [default: 1,100,1000,10000; --quick: 1,100].
    pub connections: Option<Vec<u64>>,
    /// Payload sizes in bytes [default: 64].
    pub payloads: Option<Vec<u64>>,
    /// Pipeline depths; 1 is ping-pong [default: 1,16].
    pub pipelines: Option<Vec<u64>>,
    /// Warm-up seconds per run [default: 1; --quick: 0.5].
    pub warmup: Option<f64>,
    /// Measured seconds per run [default: 5; --quick: 1].
    pub duration: Option<f64>,
    /// Highest connection count of the capacity ramp [default: 150000; --quick: 1000].
    pub capacity_cap: Option<u64>,
    /// Steps of the capacity ramp [default: [`CAPACITY_STEPS`] below the cap, then the cap].
    pub capacity_steps: Option<Vec<u64>>,
    /// Seconds each capacity step holds its connections open and silent after the window,
    /// sampling the server's idle CPU [default: 2; --quick: 1; 0: no idle hold].
    pub capacity_idle: Option<f64>,
    /// Pin every server to these CPUs, like `0` or `0-1`.
    pub server_cpus: Option<String>,
    /// Pin the load generator to these CPUs (passed to bench as --cpus).
    pub client_cpus: Option<String>,
    /// Workers for our models and the multi-threaded peers [default: the number of server
    /// CPUs when pinned, else each model's default and all CPUs for the peers].
    pub workers: Option<usize>,
    /// Load generator threads (passed to bench as --threads).
    pub threads: Option<usize>,
    /// Run the matrix this many times, every server once per round in turn, and report
    /// each cell's median round (the machine's noise shows in the spread; see compare.json).
    pub rounds: usize,
    /// A short run (about a minute for two servers): counts 1,100, 1 s windows, one
    /// capacity step of 1000, a chat swarm of 100 bots at 500 and 1000 chats/s.
    pub quick: bool,
    /// Folder the report is written to.
    pub out: PathBuf,
    /// Folder holding the `iomodels` and `iomodels-peers` binaries [default: the folder
    /// of the running executable].
    pub bin_dir: Option<PathBuf>,
    /// Measure nothing: rewrite compare.md and the charts in `--out` from this compare.json.
    pub from_json: Option<PathBuf>,
    /// Root of the iomodels source tree, to count the drivers' lines [default: found from
    /// the current directory].
    pub source: Option<PathBuf>,
    /// Chat servers of the chat matrix: `all` (the scalable models and tokio-chat), `none`,
    /// or a list like `epoll,tokio-chat`.
    pub chat_servers: String,
    /// Bots of the chat swarm, in rooms of [`chat::ROOM_SIZE`] [default: 1000; --quick: 100].
    pub chat_bots: Option<usize>,
    /// Offered chats per second of the whole swarm, one run each [default:
    /// 1000,2000,5000,10000; --quick: 500,1000].
    pub chat_rates: Option<Vec<u64>>,
}

/// The capacity ramp's steps up to the cap (default 150,000, the goal of issue 12). Past
/// about 19,900 connections bench spreads itself over client processes; each server is
/// ramped until a step fails, which for most is near 20,000, their own descriptor limit.
pub const CAPACITY_STEPS: [u64; 8] = [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 150_000];

/// The capacity ramp's cap in a full run.
pub const CAPACITY_CAP: u64 = 150_000;

/// What a run will do, resolved from the flags.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Servers, ours first.
    pub targets: Vec<Target>,
    /// The resolved settings (as the report shows them).
    pub settings: Settings,
    /// CPUs servers are pinned to.
    pub server_cpus: Option<Vec<usize>>,
    /// CPUs the load (bench's `--cpus`, the chat swarm's pinning) is pinned to.
    pub client_cpus: Option<Vec<usize>>,
    /// Chat servers of the chat matrix, in run order (empty: no chat matrix).
    pub chat_servers: Vec<ChatServer>,
}

impl Plan {
    /// Resolve defaults and `--quick`, and check the flags.
    pub fn from_args(args: &CompareConfig) -> Result<Self, Error> {
        let quick = args.quick;
        let mut targets: Vec<Target> = target::parse_models(&args.models)?
            .into_iter()
            .map(Target::Model)
            .collect();
        targets.extend(
            target::parse_peers(&args.peers)?
                .into_iter()
                .map(Target::Peer),
        );
        let chat_servers = chat::parse_chat_servers(&args.chat_servers)?;
        if targets.is_empty() && chat_servers.is_empty() {
            return Err(Error::InvalidArgs(
                "no model, no peer and no chat server to measure".into(),
            ));
        }
        let list = |given: &Option<Vec<u64>>, full: &[u64], short: &[u64], name: &str| {
            let mut values =
                given
                    .clone()
                    .unwrap_or_else(|| if quick { short.to_vec() } else { full.to_vec() });
            values.sort_unstable();
            values.dedup();
            if values.is_empty() || values.contains(&0) {
                return Err(Error::InvalidArgs(format!(
                    "--{name} needs numbers above 0"
                )));
            }
            Ok(values)
        };
        let connections = list(
            &args.connections,
            &[1, 100, 1000, 10_000],
            &[1, 100],
            "connections",
        )?;
        let payloads = list(&args.payloads, &[64], &[64], "payloads")?;
        let pipelines = list(&args.pipelines, &[1, 16], &[1, 16], "pipelines")?;
        let warmup_secs = args.warmup.unwrap_or(if quick { 0.5 } else { 1.0 });
        let duration_secs = args.duration.unwrap_or(if quick { 1.0 } else { 5.0 });
        let day = 86_400.0;
        if !((0.0..=day).contains(&warmup_secs) && duration_secs > 0.0 && duration_secs <= day) {
            return Err(Error::InvalidArgs(
                "--warmup must be 0 to 86400 seconds and --duration above 0, at most 86400".into(),
            ));
        }
        let cap = args
            .capacity_cap
            .unwrap_or(if quick { 1000 } else { CAPACITY_CAP });
        let capacity_steps = match &args.capacity_steps {
            Some(steps) => list(&Some(steps.clone()), &[], &[], "capacity-steps")?,
            None if quick => vec![cap],
            None => {
                let mut steps: Vec<u64> = CAPACITY_STEPS.into_iter().filter(|&s| s < cap).collect();
                steps.push(cap);
                steps
            }
        };
        if cap == 0 {
            return Err(Error::InvalidArgs("--capacity-cap must be above 0".into()));
        }
        let capacity_idle_secs = args.capacity_idle.unwrap_or(if quick { 1.0 } else { 2.0 });
        if !(0.0..=day).contains(&capacity_idle_secs) {
            return Err(Error::InvalidArgs(
                "--capacity-idle must be 0 to 86400 seconds".into(),
            ));
        }
        let server_cpus = args
            .server_cpus
            .as_deref()
            .map(process::parse_cpu_list)
            .transpose()
            .map_err(Error::InvalidArgs)?;
        let client_cpus = args
            .client_cpus
            .as_deref()
            .map(process::parse_cpu_list)
            .transpose()
            .map_err(Error::InvalidArgs)?;
        let model_workers = args.workers.or(server_cpus.as_ref().map(Vec::len));
        if model_workers == Some(0) {
            return Err(Error::InvalidArgs("--workers must be above 0".into()));
        }
        let all_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let peer_workers = model_workers.unwrap_or(all_cpus);
        let chat = if chat_servers.is_empty() {
            None
        } else {
            let bots = args.chat_bots.unwrap_or(if quick { 100 } else { 1000 });
            if !(1..=100_000).contains(&bots) {
                return Err(Error::InvalidArgs("--chat-bots must be 1 to 100000".into()));
            }
            let rates = list(
                &args.chat_rates,
                &[1000, 2000, 5000, 10_000],
                &[500, 1000],
                "chat-rates",
            )?;
            Some(chat::ChatSettings {
                servers: chat_servers.iter().map(|s| s.name().to_string()).collect(),
                bots,
                rooms: bots.div_ceil(chat::ROOM_SIZE),
                room_size: chat::ROOM_SIZE,
                rates,
                duration_secs,
                bots_cores: client_cpus.as_ref().map_or(all_cpus, Vec::len),
            })
        };
        Ok(Plan {
            targets,
            settings: Settings {
                connections,
                payloads,
                pipelines,
                warmup_secs,
                duration_secs,
                capacity_steps,
                capacity_idle_secs,
                server_cpus: args.server_cpus.clone(),
                client_cpus: args.client_cpus.clone(),
                model_workers,
                peer_workers,
                bench_threads: args.threads,
                quick,
                rounds: args.rounds.max(1),
                chat,
            },
            server_cpus,
            client_cpus,
            chat_servers,
        })
    }

    /// Runs per server: the matrix, then the capacity ramp.
    pub fn runs_per_target(&self) -> usize {
        let s = &self.settings;
        s.connections.len() * s.payloads.len() * s.pipelines.len() + s.capacity_steps.len()
    }

    /// Runs of the chat matrix in one round: every chat server at every rate.
    pub fn chat_runs(&self) -> usize {
        self.settings
            .chat
            .as_ref()
            .map_or(0, |chat| chat.servers.len() * chat.rates.len())
    }
}

/// Run the comparison and write the report, telling `progress` about each run.
pub fn run(args: CompareConfig, progress: &mut dyn Progress) -> Result<(), Error> {
    if let Some(json) = &args.from_json {
        return rewrite(json, &args.out);
    }
    let plan = Plan::from_args(&args)?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(Error::CurrentExe)?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let need_peers = plan.targets.iter().any(|t| !t.is_model())
        || plan.chat_servers.contains(&ChatServer::TokioChat);
    let binaries = Binaries::locate(&bin_dir, need_peers)?;
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Write {
        path: args.out.clone(),
        source,
    })?;

    let engine_src = loc::engine_source(args.source.as_deref());
    let targets = plan
        .targets
        .iter()
        .map(|&target| target_info(target, engine_src.as_deref()))
        .collect();
    let started = Instant::now();
    let mut report = Report {
        command: invocation(),
        started_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        elapsed_secs: 0.0,
        machine: machine::Machine::detect(),
        settings: plan.settings.clone(),
        targets,
        shared_loop_lines: engine_src.as_deref().and_then(loc::shared_loop_lines),
        rows: Vec::new(),
        all_rows: Vec::new(),
        chat_rows: Vec::new(),
    };

    let rounds = plan.settings.rounds;
    let per_target = plan.runs_per_target();
    let matrix_runs = per_target - plan.settings.capacity_steps.len();
    let total = per_target + (rounds - 1) * matrix_runs;
    progress.begin((total * plan.targets.len() + rounds * plan.chat_runs()) as u64);
    let mut failed: Vec<Target> = Vec::new();
    let mut chat_failed: Vec<ChatServer> = Vec::new();
    for round in 0..rounds {
        for &target in &plan.targets {
            // Later rounds repeat the matrix only; the capacity ramp runs once.
            let per_target = if round == 0 { per_target } else { matrix_runs };
            if failed.contains(&target) {
                progress.skip(per_target as u64);
                continue;
            }
            let mut remaining = per_target as u64;
            let mut runs = Vec::new();
            for &pipeline in &plan.settings.pipelines {
                for &payload in &plan.settings.payloads {
                    for &connections in &plan.settings.connections {
                        runs.push((Phase::Matrix, connections, payload, pipeline));
                    }
                }
            }
            let first_payload = plan.settings.payloads[0];
            if round == 0 {
                runs.extend(
                    plan.settings
                        .capacity_steps
                        .iter()
                        .map(|&step| (Phase::Capacity, step, first_payload, 1)),
                );
            }
            for (phase, connections, payload, pipeline) in runs {
                progress.start(&format!(
                    "{target} {} C={connections}{}",
                    report::mode_name(pipeline),
                    if rounds > 1 {
                        format!(" (round {}/{rounds})", round + 1)
                    } else {
                        String::new()
                    }
                ));
                let mut row = measure(
                    &binaries,
                    &plan,
                    target,
                    phase,
                    connections,
                    payload,
                    pipeline,
                );
                row.round = round;
                remaining -= 1;
                progress.finish(&summary_line(&row));
                let start_failed = row.bench_command.is_none();
                let ramp_over = phase == Phase::Capacity
                    && (row.clean().is_none() || row.server_note.is_some());
                report.rows.push(row);
                if start_failed {
                    // A server that does not start will not start for the next run either.
                    failed.push(target);
                    progress.skip(remaining);
                    break;
                }
                if ramp_over {
                    progress.skip(remaining);
                    break;
                }
            }
            report.elapsed_secs = started.elapsed().as_secs_f64();
            report.write_json(&args.out)?;
        }
        if let Some(chat) = &plan.settings.chat {
            for &server in &plan.chat_servers {
                run_chat_sweep(
                    &binaries,
                    &plan,
                    chat,
                    server,
                    round,
                    &mut chat_failed,
                    &mut report,
                    progress,
                );
                report.elapsed_secs = started.elapsed().as_secs_f64();
                report.write_json(&args.out)?;
            }
        }
    }
    progress.close();
    if rounds > 1 {
        report.all_rows = report.rows.clone();
        report.rows = report::median_rows(&report.all_rows);
    }

    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.write_json(&args.out)?;
    let charts = charts::draw_all(&report, &args.out)?;
    report.write_markdown(&args.out, &charts)?;
    eprintln!(
        "compare: report written to {} ({} runs in {:.0} s)",
        args.out.join("compare.md").display(),
        report.rows.len().max(report.all_rows.len()) + report.chat_rows.len(),
        report.elapsed_secs
    );
    Ok(())
}

/// One round of the chat matrix for `server`: every rate, up to the first run that is not
/// clean. A server that does not start is not tried again in later rounds.
#[allow(clippy::too_many_arguments)]
fn run_chat_sweep(
    binaries: &Binaries,
    plan: &Plan,
    chat: &chat::ChatSettings,
    server: ChatServer,
    round: usize,
    failed: &mut Vec<ChatServer>,
    report: &mut Report,
    progress: &mut dyn Progress,
) {
    let rounds = plan.settings.rounds;
    let mut remaining = chat.rates.len() as u64;
    if failed.contains(&server) {
        progress.skip(remaining);
        return;
    }
    for &offered in &chat.rates {
        progress.start(&format!(
            "{server} chat {offered} chats/s{}",
            if rounds > 1 {
                format!(" (round {}/{rounds})", round + 1)
            } else {
                String::new()
            }
        ));
        let mut row = chat::measure(binaries, plan, chat, server, offered);
        row.round = round;
        remaining -= 1;
        progress.finish(&chat::summary_line(&row));
        let start_failed = row.bots_command.is_none();
        let saturated = row.clean().is_none();
        report.chat_rows.push(row);
        if start_failed {
            failed.push(server);
        }
        if start_failed || saturated {
            progress.skip(remaining);
            return;
        }
    }
}

/// Rewrite the markdown and the charts of a report from its JSON.
fn rewrite(json: &Path, out: &Path) -> Result<(), Error> {
    let read_error = |source| Error::Read {
        path: json.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(json).map_err(read_error)?;
    let report: Report = serde_json::from_str(&text)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let charts = charts::draw_all(&report, out)?;
    report.write_markdown(out, &charts)?;
    eprintln!(
        "compare: report rewritten in {}",
        out.join("compare.md").display()
    );
    Ok(())
}

/// The command line this process was started with, as the report quotes it.
fn invocation() -> String {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_else(|| "iomodels".into());
    let program = Path::new(&program)
        .file_name()
        .map_or(program.clone(), |name| name.to_string_lossy().into_owned());
    command_line(Path::new(&program), &args.collect::<Vec<_>>())
}

fn target_info(target: Target, engine_src: Option<&Path>) -> TargetInfo {
    match target {
        Target::Model(model) => TargetInfo {
            name: model.name().to_string(),
            kind: Kind::Model,
            description: model.description().to_string(),
            driver_lines: engine_src.and_then(|src| loc::driver_lines(src, model.name())),
            uses_shared_loop: uses_shared_loop(model),
        },
        Target::Peer(peer) => TargetInfo {
            name: peer.name().to_string(),
            kind: Kind::Peer,
            description: match peer {
                Peer::TokioCurrent => {
                    "tokio current_thread runtime, a task per connection, 4 KiB buffer"
                }
                Peer::TokioMulti => {
                    "tokio multi_thread runtime, a task per connection, 4 KiB buffer"
                }
                Peer::Monoio => {
                    "monoio thread-per-core (io_uring when available), owned 4 KiB buffers"
                }
            }
            .to_string(),
            driver_lines: None,
            uses_shared_loop: false,
        },
    }
}

/// Whether `model` runs on the engine's shared readiness loop (`model/reactor`) rather than
/// a loop of its own.
#[cfg(target_os = "linux")]
fn uses_shared_loop(model: iomodels_engine::Model) -> bool {
    use iomodels_engine::Model;
    !matches!(model, Model::Blocking | Model::Uring)
}

/// Whether `model` runs on the engine's shared readiness loop (`model/reactor`) rather than
/// a loop of its own: the completion models and the blocking one do not.
#[cfg(windows)]
fn uses_shared_loop(model: iomodels_engine::Model) -> bool {
    use iomodels_engine::Model;
    !matches!(
        model,
        Model::Blocking | Model::OverlappedEvent | Model::OverlappedRoutine | Model::Iocp
    )
}

/// The server command for `target` listening on `addr`.
fn server_command(
    binaries: &Binaries,
    plan: &Plan,
    target: Target,
    addr: &str,
) -> (PathBuf, Vec<String>) {
    let s = &plan.settings;
    match target {
        Target::Model(model) => {
            let mut args = vec!["serve", "--model", model.name(), "--addr", addr]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            if let (Some(workers), true) = (s.model_workers, model.has_workers()) {
                args.extend(["--workers".to_string(), workers.to_string()]);
            }
            // The ramp may go past the engine's default limit: a model whose only ceiling
            // would be that setting (uring, with direct descriptors) is let up to the top
            // step, so the ramp finds where the model itself stops.
            let top = s.capacity_steps.iter().copied().max().unwrap_or(0);
            if top > iomodels_engine::DEFAULT_MAX_CONNECTIONS as u64 {
                args.extend(["--max-connections".to_string(), top.to_string()]);
            }
            (binaries.iomodels.clone(), args)
        }
        Target::Peer(peer) => {
            let mut args = vec!["--server", peer.name(), "--addr", addr]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            if peer.has_workers() {
                args.extend(["--workers".to_string(), s.peer_workers.to_string()]);
            }
            let program = binaries
                .peers
                .clone()
                .unwrap_or_else(|| "iomodels-peers".into());
            (program, args)
        }
    }
}

/// The bench command against `addr`, sampling `server_pid`; a capacity step (`phase`) also
/// holds its connections idle for [`Settings::capacity_idle_secs`].
pub fn bench_args(
    settings: &Settings,
    phase: Phase,
    addr: &str,
    connections: u64,
    payload: u64,
    pipeline: u64,
    server_pid: u32,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "bench".into(),
        "--addr".into(),
        addr.into(),
        "--connections".into(),
        connections.to_string(),
        "--payload".into(),
        payload.to_string(),
        "--pipeline".into(),
        pipeline.to_string(),
        "--warmup".into(),
        settings.warmup_secs.to_string(),
        "--duration".into(),
        settings.duration_secs.to_string(),
        "--server-pid".into(),
        server_pid.to_string(),
    ];
    if let Some(cpus) = &settings.client_cpus {
        args.extend(["--cpus".into(), cpus.clone()]);
    }
    if let Some(threads) = settings.bench_threads {
        args.extend(["--threads".into(), threads.to_string()]);
    }
    if phase == Phase::Capacity && settings.capacity_idle_secs > 0.0 {
        args.extend(["--idle".into(), settings.capacity_idle_secs.to_string()]);
    }
    args.push("--json".into());
    args
}

/// One run: start the server, bench it, stop it.
fn measure(
    binaries: &Binaries,
    plan: &Plan,
    target: Target,
    phase: Phase,
    connections: u64,
    payload: u64,
    pipeline: u64,
) -> Row {
    let kind = if target.is_model() {
        Kind::Model
    } else {
        Kind::Peer
    };
    let mut row = Row {
        target: target.name().to_string(),
        kind,
        phase,
        connections,
        payload,
        pipeline,
        server_command: String::new(),
        bench_command: None,
        baseline_rss_kib: None,
        bench: None,
        error: None,
        server_note: None,
        round: 0,
    };
    // Port 0: the server takes whatever port the kernel gives it and says which, so no
    // port picked here can be taken by someone else before the server binds it.
    let (program, args) = server_command(binaries, plan, target, "127.0.0.1:0");
    row.server_command = command_line(&program, &args);
    let server = match ServerProcess::start(&program, &args, plan.server_cpus.as_deref()) {
        Ok(server) => server,
        Err(error) => {
            row.error = Some(error.to_string());
            return row;
        }
    };
    let addr_text = server.addr.to_string();
    row.baseline_rss_kib = server.baseline_rss_kib;
    let args = bench_args(
        &plan.settings,
        phase,
        &addr_text,
        connections,
        payload,
        pipeline,
        server.pid(),
    );
    row.bench_command = Some(command_line(&binaries.iomodels, &args));
    let s = &plan.settings;
    let timeout = Duration::from_secs_f64(
        s.warmup_secs + s.duration_secs + s.capacity_idle_secs + 60.0 + connections as f64 / 200.0,
    );
    match process::run_bench(&binaries.iomodels, &args, timeout) {
        Ok(bench) => row.bench = Some(bench),
        Err(error) => row.error = Some(error.to_string()),
    }
    row.server_note = server.stop();
    row
}

/// One line on a finished run, for the progress output.
fn summary_line(row: &Row) -> String {
    let head = format!(
        "{} {} C={} {}B",
        row.target,
        row.mode(),
        row.connections,
        row.payload
    );
    match (&row.bench, row.clean()) {
        (Some(bench), Some(_)) if row.server_note.is_none() => format!(
            "{head}: {} msgs/s, p99 {}, server {}",
            report::format_rate(bench.messages_per_sec),
            report::format_us(bench.latency_us.p99),
            bench
                .server
                .as_ref()
                .map_or("not sampled".to_string(), |s| format!(
                    "{:.2} us/msg",
                    s.cpu_us_per_msg
                )),
        ),
        _ => format!("{head}: {}", report::failure_reason(row)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CompareConfig {
        CompareConfig {
            models: "all".into(),
            peers: "all".into(),
            out: "report".into(),
            ..CompareConfig::default()
        }
    }

    #[test]
    fn full_plan_has_the_books_counts_and_a_capped_ramp() {
        let plan = Plan::from_args(&args()).unwrap();
        let (models, peers) = (iomodels_engine::Model::ALL, Peer::ALL);
        assert_eq!(plan.targets.len(), models.len() + peers.len());
        assert_eq!(plan.targets[0], Target::Model(models[0]));
        assert_eq!(
            plan.targets.last(),
            peers.last().map(|&peer| Target::Peer(peer)).as_ref()
        );
        #[cfg(target_os = "linux")]
        {
            assert_eq!(plan.targets.len(), 10);
            assert_eq!(
                plan.targets[0],
                Target::Model(iomodels_engine::Model::Blocking)
            );
            assert_eq!(plan.targets[9], Target::Peer(Peer::Monoio));
        }
        let s = &plan.settings;
        assert_eq!(s.connections, [1, 100, 1000, 10_000]);
        assert_eq!(s.pipelines, [1, 16]);
        assert_eq!(
            s.capacity_steps,
            [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 150_000]
        );
        assert_eq!(s.capacity_idle_secs, 2.0);
        assert_eq!(plan.runs_per_target(), 8 + 8);

        let capped = Plan::from_args(&CompareConfig {
            capacity_cap: Some(19_000),
            capacity_idle: Some(0.0),
            ..args()
        })
        .unwrap();
        assert_eq!(
            capped.settings.capacity_steps,
            [1000, 2000, 5000, 10_000, 19_000]
        );
        let step = bench_args(
            &capped.settings,
            Phase::Capacity,
            "127.0.0.1:9",
            1000,
            64,
            1,
            7,
        );
        assert!(!step.contains(&"--idle".to_string()), "{step:?}");
        let between = Plan::from_args(&CompareConfig {
            capacity_cap: Some(60_000),
            ..args()
        })
        .unwrap();
        assert_eq!(
            between.settings.capacity_steps,
            [1000, 2000, 5000, 10_000, 20_000, 50_000, 60_000]
        );

        // Past the engine's default limit, our servers are let up to the top step.
        #[cfg(target_os = "linux")]
        {
            let binaries = Binaries {
                iomodels: "iomodels".into(),
                peers: Some("iomodels-peers".into()),
            };
            let uring = Target::Model(iomodels_engine::Model::Uring);
            let (_, full_args) = server_command(&binaries, &plan, uring, "127.0.0.1:9");
            let limit = full_args.iter().position(|a| a == "--max-connections");
            assert_eq!(
                limit.map(|i| full_args[i + 1].as_str()),
                Some("150000"),
                "{full_args:?}"
            );
            let (_, capped_args) = server_command(&binaries, &capped, uring, "127.0.0.1:9");
            assert!(
                !capped_args.contains(&"--max-connections".to_string()),
                "{capped_args:?}"
            );
        }
    }

    #[test]
    fn quick_plan_is_short_and_pinning_sets_the_workers() {
        let plan = Plan::from_args(&CompareConfig {
            quick: true,
            models: "select".into(),
            peers: "tokio-current".into(),
            server_cpus: Some("0".into()),
            client_cpus: Some("1".into()),
            ..args()
        })
        .unwrap();
        let s = &plan.settings;
        assert_eq!(s.connections, [1, 100]);
        assert_eq!(s.capacity_steps, [1000]);
        assert_eq!((s.warmup_secs, s.duration_secs), (0.5, 1.0));
        assert_eq!(s.model_workers, Some(1));
        assert_eq!(s.peer_workers, 1);
        assert_eq!(plan.server_cpus, Some(vec![0]));

        let bench = bench_args(s, Phase::Matrix, "127.0.0.1:9", 100, 64, 16, 77);
        assert_eq!(
            bench.join(" "),
            "bench --addr 127.0.0.1:9 --connections 100 --payload 64 --pipeline 16 \
             --warmup 0.5 --duration 1 --server-pid 77 --cpus 1 --json"
        );
        // A capacity step holds its connections idle after the window.
        let step = bench_args(s, Phase::Capacity, "127.0.0.1:9", 1000, 64, 1, 77);
        assert_eq!(
            step.join(" "),
            "bench --addr 127.0.0.1:9 --connections 1000 --payload 64 --pipeline 1 \
             --warmup 0.5 --duration 1 --server-pid 77 --cpus 1 --idle 1 --json"
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        let bad = |args: CompareConfig| Plan::from_args(&args).unwrap_err().to_string();
        assert!(bad(CompareConfig {
            models: "none".into(),
            peers: "none".into(),
            ..args()
        })
        .contains("no model, no peer and no chat server"));
        assert!(bad(CompareConfig {
            connections: Some(vec![0]),
            ..args()
        })
        .contains("--connections"));
        assert!(bad(CompareConfig {
            server_cpus: Some("3-1".into()),
            ..args()
        })
        .contains("backwards"));
        assert!(bad(CompareConfig {
            duration: Some(0.0),
            ..args()
        })
        .contains("--duration"));
    }

    #[test]
    fn the_chat_matrix_plan_fills_rooms_of_twenty_and_may_run_alone() {
        let full = Plan::from_args(&CompareConfig {
            chat_servers: "all".into(),
            ..args()
        })
        .unwrap();
        let chat = full.settings.chat.as_ref().expect("chat matrix planned");
        assert_eq!((chat.bots, chat.rooms, chat.room_size), (1000, 50, 20));
        assert_eq!(chat.rates, [1000, 2000, 5000, 10_000]);
        assert_eq!(chat.servers.last().map(String::as_str), Some("tokio-chat"));
        assert_eq!(full.chat_runs(), chat.servers.len() * 4);

        let alone = Plan::from_args(&CompareConfig {
            models: "none".into(),
            peers: "none".into(),
            chat_servers: "tokio-chat".into(),
            chat_bots: Some(41),
            chat_rates: Some(vec![400, 100, 400]),
            client_cpus: Some("1".into()),
            quick: true,
            ..args()
        })
        .unwrap();
        assert!(alone.targets.is_empty());
        let chat = alone.settings.chat.as_ref().unwrap();
        assert_eq!((chat.bots, chat.rooms, chat.bots_cores), (41, 3, 1));
        assert_eq!(chat.rates, [100, 400]);
        assert_eq!(chat.duration_secs, 1.0);
        assert_eq!(alone.client_cpus, Some(vec![1]));

        let quick = Plan::from_args(&CompareConfig {
            chat_servers: "tokio-chat".into(),
            quick: true,
            ..args()
        })
        .unwrap();
        let chat = quick.settings.chat.as_ref().unwrap();
        assert_eq!((chat.bots, chat.rooms), (100, 5));
        assert_eq!(chat.rates, [500, 1000]);

        let bad = |args: CompareConfig| Plan::from_args(&args).unwrap_err().to_string();
        let chat = || CompareConfig {
            chat_servers: "all".into(),
            ..args()
        };
        assert!(bad(CompareConfig {
            chat_rates: Some(vec![0]),
            ..chat()
        })
        .contains("--chat-rates"));
        assert!(bad(CompareConfig {
            chat_bots: Some(0),
            ..chat()
        })
        .contains("--chat-bots"));
        assert!(bad(CompareConfig {
            chat_servers: "tokio-multi".into(),
            ..args()
        })
        .contains("unknown chat server 'tokio-multi'"));
        assert!(Plan::from_args(&args()).unwrap().settings.chat.is_none());
    }

    #[test]
    fn missing_binaries_name_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let error = Binaries::locate(dir.path(), true).unwrap_err().to_string();
        assert!(error.contains("iomodels not found"), "{error}");
        assert!(error.contains("cargo build --release -p iomodels -p iomodels-peers"));
        let iomodels = format!("iomodels{}", std::env::consts::EXE_SUFFIX);
        std::fs::write(dir.path().join(iomodels), "").unwrap();
        let error = Binaries::locate(dir.path(), true).unwrap_err().to_string();
        assert!(error.contains("iomodels-peers not found"), "{error}");
        assert!(Binaries::locate(dir.path(), false).is_ok());
    }
}
