//! The report: raw rows (compare.json) and the book's table measured (compare.md).

use crate::bench::BenchResult;
use crate::machine::Machine;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Ours or a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One of our models.
    Model,
    /// tokio or monoio.
    Peer,
}

/// Which part of the run a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The bench matrix: connection counts × payloads × pipeline depths.
    Matrix,
    /// The capacity ramp.
    Capacity,
}

/// One bench run against a freshly started server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Model or peer name.
    pub target: String,
    /// Ours or a peer.
    pub kind: Kind,
    /// Matrix or capacity ramp.
    pub phase: Phase,
    /// Connections asked for.
    pub connections: u64,
    /// Bytes per message.
    pub payload: u64,
    /// Messages in flight per connection (1: ping-pong).
    pub pipeline: u64,
    /// The exact server command.
    pub server_command: String,
    /// The exact bench command, if the server started.
    pub bench_command: Option<String>,
    /// The server's resident set right after it started listening, KiB.
    pub baseline_rss_kib: Option<u64>,
    /// What bench measured, if it produced a result.
    pub bench: Option<BenchResult>,
    /// Why there is no result (server failed to start, bench failed).
    pub error: Option<String>,
    /// The server did not stop cleanly (crashed during the run, ignored SIGTERM).
    pub server_note: Option<String>,
    /// Which round of `--rounds` it came from (0 for the first).
    #[serde(default)]
    pub round: usize,
}

impl Row {
    /// The result, when every requested connection was held with no error.
    pub fn clean(&self) -> Option<&BenchResult> {
        self.bench.as_ref().filter(|bench| bench.is_clean())
    }

    /// Server memory per held connection: (RSS after the window − RSS at start) / held.
    pub fn memory_per_connection_bytes(&self) -> Option<f64> {
        let bench = self.bench.as_ref()?;
        let server = bench.server.as_ref()?;
        let baseline = self.baseline_rss_kib?;
        (bench.connections_held > 0).then(|| {
            server.rss_kib.saturating_sub(baseline) as f64 * 1024.0 / bench.connections_held as f64
        })
    }

    /// "ping-pong" or "pipelined K".
    pub fn mode(&self) -> String {
        mode_name(self.pipeline)
    }
}

/// "ping-pong" for 1, "pipelined K" otherwise.
pub fn mode_name(pipeline: u64) -> String {
    if pipeline <= 1 {
        "ping-pong".to_string()
    } else {
        format!("pipelined {pipeline}")
    }
}

/// A model or peer, as the report describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its name.
    pub name: String,
    /// Ours or a peer.
    pub kind: Kind,
    /// One line on what it is.
    pub description: String,
    /// Code lines of the driver (models only).
    pub driver_lines: Option<usize>,
    /// Whether it also runs on the shared readiness loop.
    pub uses_shared_loop: bool,
}

/// What was asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Connection counts of the matrix.
    pub connections: Vec<u64>,
    /// Payload sizes of the matrix.
    pub payloads: Vec<u64>,
    /// Pipeline depths of the matrix (1: ping-pong).
    pub pipelines: Vec<u64>,
    /// Warm-up per bench run, seconds.
    pub warmup_secs: f64,
    /// Measured window per bench run, seconds.
    pub duration_secs: f64,
    /// Connection counts of the capacity ramp.
    pub capacity_steps: Vec<u64>,
    /// Seconds each capacity step held its connections idle after the window (0: none).
    #[serde(default)]
    pub capacity_idle_secs: f64,
    /// CPUs the servers were pinned to.
    pub server_cpus: Option<String>,
    /// CPUs the load generator was pinned to.
    pub client_cpus: Option<String>,
    /// Workers given to our models (None: each model's default).
    pub model_workers: Option<usize>,
    /// Workers given to tokio-multi and monoio.
    pub peer_workers: usize,
    /// Load generator threads (None: its default).
    pub bench_threads: Option<usize>,
    /// `--quick`.
    pub quick: bool,
    /// Rounds of the matrix (`--rounds`); the tables show each cell's median round.
    #[serde(default = "one")]
    pub rounds: usize,
    /// The chat matrix, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<crate::chat::ChatSettings>,
}

fn one() -> usize {
    1
}

/// Everything `compare` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The command that produced it.
    pub command: String,
    /// Seconds since the Unix epoch when it started.
    pub started_unix: u64,
    /// How long it took, seconds.
    pub elapsed_secs: f64,
    /// Where it ran.
    pub machine: Machine,
    /// What was asked for.
    pub settings: Settings,
    /// The models and peers, in run order.
    pub targets: Vec<TargetInfo>,
    /// Code lines of the readiness loop shared by polling, select, poll, signal and epoll.
    pub shared_loop_lines: Option<usize>,
    /// The runs the tables are made of: with several rounds, each matrix cell's median.
    pub rows: Vec<Row>,
    /// Every run of every round, when there was more than one round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_rows: Vec<Row>,
    /// Every run of the chat matrix, of every round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_rows: Vec<crate::chat::ChatRow>,
}

/// How many connections a target held, from its capacity rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Capacity {
    /// The highest step held with every connection and no error.
    pub held: Option<u64>,
    /// The first step that was not held: (requested, held there, why).
    pub failed: Option<(u64, Option<u64>, String)>,
    /// Whether the ramp reached its last step.
    pub reached_cap: bool,
    /// The most connections held at any step, clean or not: where the server stops.
    pub ceiling: Option<u64>,
    /// The idle hold of the highest clean step that had one: (connections, server CPU-s
    /// per second).
    pub idle: Option<(u64, f64)>,
}

impl Report {
    /// Rows of one target in one phase.
    pub fn rows_of<'a>(&'a self, target: &'a str, phase: Phase) -> impl Iterator<Item = &'a Row> {
        self.rows
            .iter()
            .filter(move |row| row.target == target && row.phase == phase)
    }

    /// The matrix row for (target, connections, payload, pipeline).
    pub fn matrix_row(
        &self,
        target: &str,
        connections: u64,
        payload: u64,
        pipeline: u64,
    ) -> Option<&Row> {
        self.rows.iter().find(|row| {
            row.target == target
                && row.phase == Phase::Matrix
                && row.connections == connections
                && row.payload == payload
                && row.pipeline == pipeline
        })
    }

    /// The capacity of one target.
    pub fn capacity(&self, target: &str) -> Capacity {
        let mut rows: Vec<&Row> = self.rows_of(target, Phase::Capacity).collect();
        rows.sort_by_key(|row| row.connections);
        let mut capacity = Capacity {
            held: None,
            failed: None,
            reached_cap: false,
            ceiling: None,
            idle: None,
        };
        for row in rows {
            if let Some(bench) = &row.bench {
                capacity.ceiling = capacity.ceiling.max(Some(bench.connections_held));
            }
            if let Some(bench) = row.clean().filter(|_| row.server_note.is_none()) {
                capacity.held = Some(row.connections);
                capacity.reached_cap =
                    self.settings.capacity_steps.iter().max() == Some(&row.connections);
                if let Some(idle) = &bench.idle {
                    capacity.idle = Some((idle.connections, idle.server_cpu_per_sec));
                }
            } else {
                capacity.failed = Some((
                    row.connections,
                    row.bench.as_ref().map(|bench| bench.connections_held),
                    failure_reason(row),
                ));
                break;
            }
        }
        capacity
    }

    /// The row (any phase) holding the most connections with a memory reading, at least 100.
    pub fn memory_row(&self, target: &str) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|row| row.target == target && row.memory_per_connection_bytes().is_some())
            .filter(|row| {
                row.bench
                    .as_ref()
                    .is_some_and(|b| b.connections_held >= 100)
            })
            .max_by_key(|row| row.bench.as_ref().map_or(0, |b| b.connections_held))
    }

    /// Write compare.json.
    pub fn write_json(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self)?;
        write_file(&dir.join("compare.json"), &text)
    }

    /// Write compare.md.
    pub fn write_markdown(&self, dir: &Path, charts: &[String]) -> Result<(), Error> {
        write_file(&dir.join("compare.md"), &self.markdown(charts))
    }

    /// The markdown report; `charts` are SVG file names to link.
    pub fn markdown(&self, charts: &[String]) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(out, "# iomodels compare\n");
        let _ = writeln!(
            out,
            "Produced by `{}` in {:.0} s{}.\n",
            self.command,
            self.elapsed_secs,
            if s.quick {
                " (--quick: short runs, read the numbers as a smoke test)"
            } else {
                ""
            }
        );
        if let Some(wine) = &self.machine.wine {
            let _ = writeln!(
                out,
                "**Measured under Wine {wine}, not on Windows: every number below is Wine's, \
                 translating each Windows call to Linux on its host (emulated: not a Windows \
                 measurement).**\n"
            );
        }
        self.write_machine(&mut out);
        if !self.targets.is_empty() {
            self.write_summary(&mut out);
            self.write_capacity(&mut out);
        }
        crate::chat::write_markdown(self, &mut out);
        if !self.targets.is_empty() {
            self.write_all_runs(&mut out);
        }
        self.write_failures(&mut out);
        if !charts.is_empty() {
            let _ = writeln!(out, "## Charts\n");
            for chart in charts {
                let _ = writeln!(out, "![{chart}]({chart})\n");
            }
        }
        self.write_commands(&mut out);
        out
    }

    fn write_machine(&self, out: &mut String) {
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(out, "## Machine\n");
        if let Some(platform) = &m.platform {
            let _ = writeln!(out, "- platform: {platform}");
        }
        let _ = writeln!(
            out,
            "- CPUs: {}{}",
            m.cpus,
            m.cpu_model
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
        if let Some(kib) = m.memory_kib {
            let _ = writeln!(out, "- memory: {}", format_bytes(kib as f64 * 1024.0));
        }
        let _ = writeln!(out, "- kernel: {}", m.kernel);
        if let Some(limit) = m.open_files_limit {
            let _ = writeln!(out, "- open-file limit: {limit} per process");
        }
        let _ = writeln!(
            out,
            "- pinning: server on CPUs {}, load generator on CPUs {}",
            s.server_cpus.as_deref().unwrap_or("any"),
            s.client_cpus.as_deref().unwrap_or("any")
        );
        // monoio runs on Linux only.
        let multi_peers = if m.platform.is_none() {
            "tokio-multi and monoio"
        } else {
            "tokio-multi"
        };
        let _ = writeln!(
            out,
            "- workers: our models {}, {multi_peers} {}, tokio-current 1",
            s.model_workers.map_or(
                "each at its default (see `iomodels models`)".to_string(),
                |w| w.to_string()
            ),
            s.peer_workers
        );
        let _ = writeln!(
            out,
            "- each run: a fresh server, {} s warm-up, {} s measured; payloads {} B; modes {}",
            s.warmup_secs,
            s.duration_secs,
            join(&s.payloads),
            s.pipelines
                .iter()
                .map(|&k| mode_name(k))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = if s.rounds > 1 {
            writeln!(
                out,
                "- {} rounds of the matrix, every server once per round in turn; each cell shows the round with the median server CPU per message (every round is in compare.json, `all_rows`)\n",
                s.rounds
            )
        } else {
            writeln!(out, "- one round: each cell is a single run\n")
        };
    }

    fn write_summary(&self, out: &mut String) {
        let s = &self.settings;
        let payload = s.payloads.first().copied().unwrap_or(64);
        let mut counts = s.connections.clone();
        counts.sort_unstable();
        let _ = writeln!(out, "## The book's table, measured\n");
        let _ = writeln!(
            out,
            "Ping-pong, {payload}-byte payload. msgs/s is echoed and verified messages per second; \
             \"at most C\" columns are read at the largest connection count with a clean result (else the largest that echoed); \
             memory per connection is (server RSS after the window − RSS when it started listening) \
             / connections held, at the largest count held; lines of code count non-blank, \
             non-comment lines of the driver, before its unit tests.\n"
        );
        let mut header = String::from("| server | connections held |");
        let mut rule = String::from("|---|---:|");
        for count in &counts {
            let _ = write!(header, " msgs/s C={count} |");
            rule.push_str("---:|");
        }
        header.push_str(
            " p99 at most C | server CPU us/msg | msgs per server-CPU-s | memory per connection | lines of code |",
        );
        rule.push_str("---:|---:|---:|---:|---:|");
        let _ = writeln!(out, "{header}\n{rule}");
        for target in &self.targets {
            let mut line = format!("| {} | {} |", target.name, self.capacity_cell(&target.name));
            for &count in &counts {
                let cell = match self.matrix_row(&target.name, count, payload, 1) {
                    None => "—".to_string(),
                    Some(row) => rate_cell(row),
                };
                let _ = write!(line, " {cell} |");
            }
            // The largest count with a clean result, else the largest that echoed at all.
            let rows: Vec<&Row> = counts
                .iter()
                .rev()
                .filter_map(|&c| self.matrix_row(&target.name, c, payload, 1))
                .collect();
            let largest = rows
                .iter()
                .find_map(|row| row.clean().map(|bench| (row.connections, bench)))
                .or_else(|| {
                    rows.iter().find_map(|row| {
                        let bench = row.bench.as_ref().filter(|b| b.messages > 0)?;
                        Some((row.connections, bench))
                    })
                });
            match largest {
                Some((count, bench)) => {
                    let _ = write!(
                        line,
                        " {} (C={count}) | {} | {} |",
                        format_us(bench.latency_us.p99),
                        bench
                            .server
                            .as_ref()
                            .map_or("—".to_string(), |sv| format!("{:.2}", sv.cpu_us_per_msg)),
                        bench
                            .messages_per_server_cpu_sec()
                            .map_or("—".to_string(), format_rate)
                    );
                }
                None => line.push_str(" — | — | — |"),
            }
            match self.memory_row(&target.name) {
                Some(row) => {
                    let bench = row.bench.as_ref().expect("memory_row has a bench result");
                    let _ = write!(
                        line,
                        " {} (RSS {} at {}) |",
                        format_bytes(row.memory_per_connection_bytes().unwrap_or(0.0)),
                        format_bytes(
                            bench.server.as_ref().map_or(0, |sv| sv.rss_kib) as f64 * 1024.0
                        ),
                        bench.connections_held
                    );
                }
                None => line.push_str(" — |"),
            }
            let loc = match (
                target.driver_lines,
                target.uses_shared_loop,
                self.shared_loop_lines,
            ) {
                (Some(lines), true, Some(shared)) => format!("{lines} + {shared} shared"),
                (Some(lines), _, _) => lines.to_string(),
                (None, _, _) if target.kind == Kind::Peer => "— (peer)".to_string(),
                (None, _, _) => "n/a".to_string(),
            };
            let _ = writeln!(line, " {loc} |");
            out.push_str(&line);
        }
        match (self.shared_loop_lines, &self.machine.platform) {
            (Some(shared), None) => {
                let _ = writeln!(
                    out,
                    "\n\"+ {shared} shared\": polling, select, poll, signal and epoll differ only in how \
                     they wait; the read/write state machine they all run is one loop of {shared} lines \
                     (crates/engine/src/model/reactor). blocking and uring have loops of their own, counted \
                     in their own lines."
                );
            }
            // Not Linux: name the models this report measured.
            (Some(shared), Some(_)) => {
                let models = |shares: bool| {
                    let names: Vec<&str> = self
                        .targets
                        .iter()
                        .filter(|t| t.kind == Kind::Model && t.uses_shared_loop == shares)
                        .map(|t| t.name.as_str())
                        .collect();
                    names.join(", ")
                };
                let _ = writeln!(
                    out,
                    "\n\"+ {shared} shared\": {} differ only in how they wait; the read/write state \
                     machine they all run is one loop of {shared} lines (crates/engine/src/model/reactor). \
                     {} have loops of their own, counted in their own lines.",
                    models(true),
                    models(false)
                );
            }
            (None, _) => {}
        }
        let _ = writeln!(out);
    }

    fn capacity_cell(&self, target: &str) -> String {
        let capacity = self.capacity(target);
        let mut cell = match capacity.held {
            Some(held) if capacity.reached_cap => format!("{held} (cap)"),
            Some(held) => held.to_string(),
            None if capacity.failed.is_some() => "0".to_string(),
            None => "—".to_string(),
        };
        if let Some((requested, held, _)) = &capacity.failed {
            let _ = write!(
                cell,
                "; {} of {requested}",
                held.map_or("none".to_string(), |h| h.to_string())
            );
        }
        // FD_SETSIZE is Linux's select(2) limit; Winsock's select has its own.
        if target == "select" && capacity.failed.is_some() && self.machine.platform.is_none() {
            cell.push_str("; FD_SETSIZE");
        }
        cell
    }

    /// Why a target's ramp stopped, in a few words, from its first failed step: the
    /// server's descriptor limit when it held all but a few descriptors of it, else what
    /// bench or the server said.
    pub fn stop_reason(&self, target: &str) -> Option<String> {
        let row = self
            .rows_of(target, Phase::Capacity)
            .filter(|row| row.clean().is_none() || row.server_note.is_some())
            .min_by_key(|row| row.connections)?;
        let limit = self.machine.open_files_limit;
        let held = row.bench.as_ref().map(|bench| bench.connections_held);
        let why = match (held, limit) {
            _ if target == "select" && self.machine.platform.is_none() => {
                "FD_SETSIZE (1024)".to_string()
            }
            (Some(held), Some(limit))
                if held < row.connections && held + DESCRIPTOR_SLACK >= limit && held <= limit =>
            {
                format!("the server's descriptor limit ({limit})")
            }
            _ if row.error.is_some() => "bench or the server failed".to_string(),
            _ if row.server_note.is_some() => "the server did not survive the step".to_string(),
            _ => match &row.bench {
                Some(bench) if bench.errors.connect_failed > 0 => "connections refused".into(),
                Some(bench) if bench.errors.connect_timeout > 0 => "connects timed out".into(),
                Some(bench) if bench.errors.disconnected > 0 => "connections reset".into(),
                Some(bench) if bench.errors.verify_failed > 0 => "wrong echoes".into(),
                _ => "errors".into(),
            },
        };
        Some(format!("{why}: {}", failure_reason(row)))
    }

    fn write_capacity(&self, out: &mut String) {
        let _ = writeln!(out, "## Capacity\n");
        let idle = self.settings.capacity_idle_secs;
        let _ = writeln!(
            out,
            "Each step starts a fresh server and holds that many ping-pong connections through a \
             measured window{}; a step counts only when every connection was held with no connect \
             failure, disconnect or wrong echo. The ramp ({}) stops at the first step that fails; \
             past about 19,900 connections the load is spread over client processes, each from \
             source addresses of its own. \"ceiling\" is the most connections a server held at any \
             step{}.\n",
            if idle > 0.0 {
                format!(
                    ", then keeps them open and silent for {idle} s while the server's CPU time is \
                     read (idle CPU-s/s: cores the idle server kept busy; /proc counts 10 ms ticks)"
                )
            } else {
                String::new()
            },
            join(&self.settings.capacity_steps),
            match self.machine.open_files_limit {
                Some(limit) => format!(
                    "; the open-file limit here is {limit} per process, so a server that keeps \
                     one descriptor per connection stops just below it"
                ),
                None => String::new(),
            }
        );
        let _ = writeln!(
            out,
            "| server | ceiling | last clean step | stopped at | why | idle server CPU-s/s | memory per connection |\n\
             |---|---:|---:|---:|---|---:|---:|"
        );
        for target in &self.targets {
            let capacity = self.capacity(&target.name);
            let ceiling = capacity.ceiling.map_or("—".to_string(), |c| c.to_string());
            let clean = match capacity.held {
                Some(held) if capacity.reached_cap => format!("{held} (cap)"),
                Some(held) => held.to_string(),
                None => "none".to_string(),
            };
            let stopped = capacity
                .failed
                .as_ref()
                .map_or("—".to_string(), |(requested, _, _)| requested.to_string());
            let why = match self.stop_reason(&target.name) {
                Some(why) => truncate(&why, 160).replace('|', "/"),
                None if capacity.reached_cap => "reached the cap".to_string(),
                None => "—".to_string(),
            };
            let idle = capacity.idle.map_or("—".to_string(), |(connections, cpu)| {
                format!("{cpu:.4} (at {connections})")
            });
            let memory = self
                .rows_of(&target.name, Phase::Capacity)
                .filter(|row| row.memory_per_connection_bytes().is_some())
                .max_by_key(|row| row.bench.as_ref().map_or(0, |b| b.connections_held))
                .map_or("—".to_string(), |row| {
                    format!(
                        "{} (at {})",
                        format_bytes(row.memory_per_connection_bytes().unwrap_or(0.0)),
                        row.bench.as_ref().map_or(0, |b| b.connections_held)
                    )
                });
            let _ = writeln!(
                out,
                "| {} | {ceiling} | {clean} | {stopped} | {why} | {idle} | {memory} |",
                target.name
            );
        }
        out.push('\n');
        for target in &self.targets {
            let capacity = self.capacity(&target.name);
            let held = capacity
                .held
                .map_or("no step".to_string(), |h| format!("{h} connections"));
            let _ = write!(out, "- **{}**: held {held}", target.name);
            if capacity.reached_cap {
                out.push_str(", the cap of the ramp");
            }
            if let Some((requested, held_there, reason)) = &capacity.failed {
                let _ = write!(
                    out,
                    "; at {requested} it held {} ({reason})",
                    held_there.map_or("none".to_string(), |h| h.to_string())
                );
            }
            if target.name == "select" && self.machine.platform.is_none() {
                out.push_str(
                    ". select(2) watches descriptors below FD_SETSIZE (1024) only: the model \
                     refuses connections whose descriptor is at or above it",
                );
            }
            out.push('\n');
        }
        out.push('\n');
    }

    fn write_all_runs(&self, out: &mut String) {
        let _ = writeln!(out, "## Every run\n");
        let _ = writeln!(
            out,
            "| server | phase | mode | C | payload | held | msgs/s | MB/s in | p50 | p99 | p99.9 | max | server CPU us/msg | client CPU us/msg | msgs per server-CPU-s | server RSS | limit | errors |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
        );
        for row in &self.rows {
            let phase = match row.phase {
                Phase::Matrix => "matrix",
                Phase::Capacity => "capacity",
            };
            let _ = write!(
                out,
                "| {} | {phase} | {} | {} | {} |",
                row.target,
                row.mode(),
                row.connections,
                row.payload
            );
            match &row.bench {
                Some(b) => {
                    let server = b.server.as_ref();
                    let _ =
                        writeln!(
                        out,
                        " {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} |",
                        b.connections_held,
                        format_rate(b.messages_per_sec),
                        b.mb_per_sec_in,
                        format_us(b.latency_us.p50),
                        format_us(b.latency_us.p99),
                        format_us(b.latency_us.p999),
                        format_us(b.latency_us.max),
                        server.map_or("—".to_string(), |s| format!("{:.2}", s.cpu_us_per_msg)),
                        b.client_cpu_us_per_msg,
                        b.messages_per_server_cpu_sec().map_or("—".to_string(), format_rate),
                        server.map_or("—".to_string(), |s| format_bytes(s.rss_kib as f64 * 1024.0)),
                        b.limit,
                        errors_cell(row)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        " — | — | — | — | — | — | — | — | — | — | — | — | failed: see below |"
                    );
                }
            }
        }
        out.push('\n');
    }

    fn write_failures(&self, out: &mut String) {
        let failures: Vec<&Row> = self
            .rows
            .iter()
            .filter(|row| row.error.is_some() || row.server_note.is_some() || row.clean().is_none())
            .collect();
        if failures.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Failures and errors\n");
        for row in failures {
            let _ = writeln!(
                out,
                "- {} {} C={} payload {}: {}",
                row.target,
                row.mode(),
                row.connections,
                row.payload,
                failure_reason(row)
            );
        }
        out.push('\n');
    }

    fn write_commands(&self, out: &mut String) {
        let _ = writeln!(out, "## Commands\n");
        let _ = writeln!(out, "The report:\n\n```sh\n{}\n```\n", self.command);
        if self.targets.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Each run starts its server and then the load generator; the first run of each \
             server was (every run's exact commands are in compare.json):\n"
        );
        let _ = writeln!(out, "```sh");
        for target in &self.targets {
            if let Some(row) = self.rows.iter().find(|row| row.target == target.name) {
                let _ = writeln!(out, "{}", row.server_command);
                if let Some(bench) = &row.bench_command {
                    let _ = writeln!(out, "{bench}");
                }
            }
        }
        let _ = writeln!(out, "```");
    }
}

/// Descriptors a server keeps besides its connections (listeners, its epoll or ring,
/// wakers, stdio, a reserve): a step that held within this many of the open-file limit
/// stopped at the limit.
const DESCRIPTOR_SLACK: u64 = 64;

/// Why a row is not a clean result, in one line.
pub fn failure_reason(row: &Row) -> String {
    let mut reasons = Vec::new();
    if let Some(error) = &row.error {
        reasons.push(truncate(error, 400));
    }
    if let Some(bench) = &row.bench {
        if bench.connections_held < bench.connections_requested {
            reasons.push(format!(
                "held {} of {} connections",
                bench.connections_held, bench.connections_requested
            ));
        }
        if bench.errors.total() > 0 {
            reasons.push(format!("errors: {}", errors_text(&bench.errors)));
        }
        if bench.messages == 0 {
            reasons.push("no message echoed".to_string());
        }
    }
    if let Some(note) = &row.server_note {
        reasons.push(truncate(note, 400));
    }
    if reasons.is_empty() {
        reasons.push("no result".to_string());
    }
    reasons.join("; ")
}

fn errors_text(errors: &crate::bench::Errors) -> String {
    let parts: Vec<String> = [
        ("connect failed", errors.connect_failed),
        ("connect timeout", errors.connect_timeout),
        ("disconnected", errors.disconnected),
        ("verify failed", errors.verify_failed),
    ]
    .into_iter()
    .filter(|&(_, n)| n > 0)
    .map(|(name, n)| format!("{n} {name}"))
    .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join(", ")
    }
}

fn errors_cell(row: &Row) -> String {
    let text = row
        .bench
        .as_ref()
        .map_or("—".to_string(), |b| errors_text(&b.errors));
    match &row.server_note {
        Some(_) => format!("{text}; server: see below"),
        None => text,
    }
}

/// A summary-table cell: the rate, or why there is none.
fn rate_cell(row: &Row) -> String {
    match (&row.bench, &row.error) {
        (Some(bench), _) if bench.is_clean() && row.server_note.is_none() => {
            format_rate(bench.messages_per_sec)
        }
        (Some(bench), _) => format!("{} (errors)", format_rate(bench.messages_per_sec)),
        (None, Some(_)) => "failed".to_string(),
        (None, None) => "—".to_string(),
    }
}

/// One line of at most about `limit` characters: the start (what failed) and the end
/// (the last thing the process said), without colour codes.
fn truncate(text: &str, limit: usize) -> String {
    let text = crate::process::one_line(text);
    let count = text.chars().count();
    if count <= limit {
        return text;
    }
    let head: String = text.chars().take(limit * 2 / 5).collect();
    let tail: String = text.chars().skip(count - limit * 3 / 5).collect();
    format!("{head} … {tail}")
}

fn join(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// 950, 12.3k, 1.23M.
pub fn format_rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// 8.5 us, 120 us, 1.2 ms, 3.40 s.
pub fn format_us(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} s", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} ms", value / 1e3)
    } else if value >= 10.0 {
        format!("{value:.0} us")
    } else {
        format!("{value:.1} us")
    }
}

/// 512 B, 4.2 KiB, 50.0 MiB, 1.9 GiB.
pub fn format_bytes(value: f64) -> String {
    const KIB: f64 = 1024.0;
    if value >= KIB * KIB * KIB {
        format!("{:.1} GiB", value / (KIB * KIB * KIB))
    } else if value >= KIB * KIB {
        format!("{:.1} MiB", value / (KIB * KIB))
    } else if value >= KIB {
        format!("{:.1} KiB", value / KIB)
    } else {
        format!("{value:.0} B")
    }
}

/// Write `text` to `path`, naming the path in the error.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// One row per cell (target, phase, connections, payload, pipeline): of the rounds that
/// measured it cleanly, the one with the median server CPU per message (a real run, not an
/// average), or the first round's when none was clean. The order of first appearance is kept.
pub fn median_rows(all: &[Row]) -> Vec<Row> {
    let key = |r: &Row| {
        (
            r.target.clone(),
            r.phase,
            r.connections,
            r.payload,
            r.pipeline,
        )
    };
    let mut cells: Vec<(_, Vec<&Row>)> = Vec::new();
    for row in all {
        let k = key(row);
        match cells.iter_mut().find(|(c, _)| *c == k) {
            Some((_, rows)) => rows.push(row),
            None => cells.push((k, vec![row])),
        }
    }
    cells
        .into_iter()
        .map(|(_, rows)| {
            let mut clean: Vec<(&Row, f64)> = rows
                .iter()
                .filter_map(|r| {
                    let cpu = r.clean()?.server.as_ref()?.cpu_us_per_msg;
                    Some((*r, cpu))
                })
                .collect();
            if clean.is_empty() {
                return rows[0].clone();
            }
            clean.sort_by(|a, b| a.1.total_cmp(&b.1));
            clean[(clean.len() - 1) / 2].0.clone()
        })
        .collect()
}
