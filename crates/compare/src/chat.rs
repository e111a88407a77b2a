//! The chat matrix: chat fan-out under a swept offered rate, the same bot swarm against
//! every chat server (issue 12, "Broadcast under load").
//!
//! For each server (`iomodels chat-server --model M --mode io`, or `iomodels-peers
//! --server tokio-chat`) and each offered rate, a fresh server is started (pinned like the
//! echo servers) and `iomodels chat-bots --scenario room-chat --json` runs against it
//! (pinned to the load generator's CPUs): `bots` bots in rooms of [`ROOM_SIZE`], each
//! chatting at `offered / bots` per second. The server's CPU time is read from the process
//! (`/proc/PID/stat`; `GetProcessTimes` on Windows) when the swarm starts and when it ends,
//! so it covers the logins and the drain as well as the chats. A server's sweep stops after
//! its first run that is not clean: past saturation every higher rate fails too.

use crate::process::{self, command_line, Binaries, ServerProcess};
use crate::report::{format_rate, format_us, Kind, Report};
use crate::{charts, Error, Plan};
use iomodels_engine::Model;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Members per room: the swarm of issue 12 is 1,000 bots in 50 rooms of 20.
pub const ROOM_SIZE: usize = 20;

/// The share of their cores the bots must keep busy (CPU time over wall time × cores) to
/// count as the limit of a run rather than the server.
pub const BOTS_LIMIT: f64 = 0.8;

/// A chat server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatServer {
    /// `iomodels chat-server --model M --mode io`: the game state under one mutex on the
    /// I/O threads, as the tokio peer keeps its world (a task per connection, one mutex).
    Model(Model),
    /// `iomodels-peers --server tokio-chat`.
    TokioChat,
}

impl ChatServer {
    /// The name shown in the report: the model's, or `tokio-chat`.
    pub fn name(self) -> &'static str {
        match self {
            ChatServer::Model(model) => model.name(),
            ChatServer::TokioChat => "tokio-chat",
        }
    }

    /// Ours or a peer.
    pub fn kind(self) -> Kind {
        match self {
            ChatServer::Model(_) => Kind::Model,
            ChatServer::TokioChat => Kind::Peer,
        }
    }
}

impl fmt::Display for ChatServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse `--chat-servers`: `all` (the scalable models, then tokio-chat), `none`, or a
/// comma-separated list of model names and `tokio-chat`.
pub fn parse_chat_servers(list: &str) -> Result<Vec<ChatServer>, Error> {
    match list.trim() {
        "all" => Ok(Model::SCALABLE
            .iter()
            .map(|&model| ChatServer::Model(model))
            .chain([ChatServer::TokioChat])
            .collect()),
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(str::trim)
            .map(|name| {
                if name == ChatServer::TokioChat.name() {
                    return Ok(ChatServer::TokioChat);
                }
                Model::ALL
                    .iter()
                    .find(|model| model.name() == name)
                    .map(|&model| ChatServer::Model(model))
                    .ok_or_else(|| Error::UnknownChatServer(name.to_string()))
            })
            .collect(),
    }
}

/// What the chat matrix was asked to do, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatSettings {
    /// The chat servers, in run order.
    pub servers: Vec<String>,
    /// Bots in the swarm.
    pub bots: usize,
    /// Rooms they fill ([`ROOM_SIZE`] members each, the last one maybe fewer).
    pub rooms: usize,
    /// Members per room.
    pub room_size: usize,
    /// Offered chats per second of the whole swarm, one run each.
    pub rates: Vec<u64>,
    /// How long the bots chat per run, seconds (their logins and drain come on top).
    pub duration_secs: f64,
    /// CPUs the bots could use (their pinning, else every CPU).
    pub bots_cores: usize,
}

/// Fan-out latency percentiles of a swarm, in microseconds (chat-bots' `fanout_latency`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FanoutLatency {
    /// Samples: notifies timed.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// One line of `iomodels chat-bots --json`: the contract with the swarm. Our own type, as
/// [`crate::BenchResult`] is, so `compare` depends on the JSON only; unknown fields are
/// ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BotsResult {
    /// The scenario (`room-chat`).
    pub scenario: String,
    /// The chat server.
    pub addr: String,
    /// Bots started.
    pub bots: usize,
    /// Rooms used.
    pub rooms: usize,
    /// Bots that connected.
    pub connected: usize,
    /// Seconds the bots chatted.
    pub duration_secs: f64,
    /// Chats sent.
    pub chats_sent: u64,
    /// Chat notifies received: the chats' and, after them, each bot's closing chat (which
    /// says how many it sent) at every member of its room.
    pub notifies_received: u64,
    /// A chat sent to its notify received, at every receiver (the closing chats not
    /// counted).
    pub fanout_latency: FanoutLatency,
    /// Packets that broke the protocol.
    pub protocol_errors: u64,
    /// Requests refused or not answered in time.
    pub failed_requests: u64,
    /// Connections that failed or were closed by the server.
    pub disconnects: u64,
    /// Notifies that should have arrived and did not.
    pub lost_notifies: u64,
    /// Notifies that arrived twice.
    pub duplicated_notifies: u64,
    /// Bots that saw their room's chats in another order than the others.
    pub order_mismatches: u64,
    /// The bots' own CPU time (user + system), seconds.
    pub bots_cpu_secs: f64,
}

impl BotsResult {
    /// Parse chat-bots' stdout: the last line that holds a JSON object.
    pub fn from_stdout(stdout: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(process::last_json_line(stdout))
    }

    /// Every bot connected, at least one notify, and nothing lost, duplicated, reordered,
    /// refused or cut off.
    pub fn is_clean(&self) -> bool {
        self.connected == self.bots
            && self.notifies_received > 0
            && self.protocol_errors == 0
            && self.failed_requests == 0
            && self.disconnects == 0
            && self.lost_notifies == 0
            && self.duplicated_notifies == 0
            && self.order_mismatches == 0
    }

    /// What went wrong, one phrase each; empty when clean.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connected < self.bots {
            problems.push(format!(
                "{} of {} bots connected",
                self.connected, self.bots
            ));
        }
        if self.notifies_received == 0 {
            problems.push("no notify received".to_string());
        }
        for (count, what) in [
            (self.protocol_errors, "protocol errors"),
            (self.failed_requests, "failed requests"),
            (self.disconnects, "disconnects"),
            (self.lost_notifies, "notifies lost"),
            (self.duplicated_notifies, "notifies duplicated"),
            (self.order_mismatches, "bots saw chats out of order"),
        ] {
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        }
        problems
    }
}

/// One swarm against a freshly started chat server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRow {
    /// Model or peer name.
    pub target: String,
    /// Ours or a peer.
    pub kind: Kind,
    /// Chats per second offered by the whole swarm.
    pub offered_per_sec: u64,
    /// Bots in the swarm.
    pub bots: usize,
    /// Chats per second per bot (`chat-bots --rate`).
    pub rate_per_bot: f64,
    /// The exact server command.
    pub server_command: String,
    /// The exact chat-bots command, if the server started.
    pub bots_command: Option<String>,
    /// What the swarm reported, if it reported.
    pub swarm: Option<BotsResult>,
    /// The server's CPU time (user + system) from the swarm's start to its end, seconds.
    pub server_cpu_secs: Option<f64>,
    /// The swarm's wall time, from its spawn to its exit, seconds.
    pub wall_secs: Option<f64>,
    /// CPUs the bots could use.
    pub bots_cores: usize,
    /// Why there is no result (server failed to start, swarm failed to report).
    pub error: Option<String>,
    /// The server did not stop cleanly.
    pub server_note: Option<String>,
    /// Which round of `--rounds` it came from (0 for the first).
    #[serde(default)]
    pub round: usize,
}

impl ChatRow {
    /// A row for `server` at `offered` chats/s, measured by nothing yet.
    pub fn new(server: ChatServer, offered: u64, bots: usize, bots_cores: usize) -> Self {
        ChatRow {
            target: server.name().to_string(),
            kind: server.kind(),
            offered_per_sec: offered,
            bots,
            rate_per_bot: offered as f64 / bots.max(1) as f64,
            server_command: String::new(),
            bots_command: None,
            swarm: None,
            server_cpu_secs: None,
            wall_secs: None,
            bots_cores,
            error: None,
            server_note: None,
            round: 0,
        }
    }

    /// The swarm's report when it is clean and the server stopped cleanly.
    pub fn clean(&self) -> Option<&BotsResult> {
        self.swarm
            .as_ref()
            .filter(|swarm| swarm.is_clean() && self.server_note.is_none() && self.error.is_none())
    }

    /// Chats sent per second of the chatting window.
    pub fn achieved_per_sec(&self) -> Option<f64> {
        let swarm = self.swarm.as_ref()?;
        (swarm.duration_secs > 0.0).then(|| swarm.chats_sent as f64 / swarm.duration_secs)
    }

    /// Chat notifies received per second of the chatting window: the fan-out samples, one
    /// per chat sent in the window and member who received it.
    pub fn notifies_per_sec(&self) -> Option<f64> {
        let swarm = self.swarm.as_ref()?;
        (swarm.duration_secs > 0.0).then(|| swarm.fanout_latency.count as f64 / swarm.duration_secs)
    }

    /// Notifies received per second of server CPU time: every notify of the swarm (the
    /// chats' and each bot's closing one) against the server's CPU over the whole swarm.
    pub fn notifies_per_server_cpu_sec(&self) -> Option<f64> {
        let swarm = self.swarm.as_ref()?;
        let cpu = self.server_cpu_secs.filter(|&cpu| cpu > 0.0)?;
        Some(swarm.notifies_received as f64 / cpu)
    }

    /// The share of their cores the bots kept busy: CPU time / (wall time × cores).
    pub fn bots_busy(&self) -> Option<f64> {
        let swarm = self.swarm.as_ref()?;
        let capacity = self.wall_secs? * self.bots_cores.max(1) as f64;
        (capacity > 0.0).then(|| swarm.bots_cpu_secs / capacity)
    }

    /// Whether the bots, not the server, were the limit: busy at [`BOTS_LIMIT`] or more.
    pub fn bots_limited(&self) -> Option<bool> {
        self.bots_busy().map(|busy| busy >= BOTS_LIMIT)
    }

    /// Why the row is not clean, in one line.
    pub fn failure_reason(&self) -> String {
        let mut reasons = Vec::new();
        if let Some(error) = &self.error {
            reasons.push(process::one_line(error));
        }
        if let Some(swarm) = &self.swarm {
            reasons.extend(swarm.problems());
        }
        if let Some(note) = &self.server_note {
            reasons.push(process::one_line(note));
        }
        if reasons.is_empty() {
            reasons.push("no result".to_string());
        }
        let text = reasons.join("; ");
        if text.chars().count() > 400 {
            text.chars().take(400).chain("…".chars()).collect()
        } else {
            text
        }
    }
}

/// The chat server command for `server` listening on `addr`.
fn server_command(
    binaries: &Binaries,
    plan: &Plan,
    chat: &ChatSettings,
    server: ChatServer,
    addr: &str,
) -> (PathBuf, Vec<String>) {
    // What every chat server is told alike: where to listen, and the world's size.
    let rooms = chat.rooms.to_string();
    let room_size = chat.room_size.to_string();
    let users = chat.bots.to_string();
    let world = [
        "--addr",
        addr,
        "--rooms",
        &rooms,
        "--room-capacity",
        &room_size,
        "--max-users",
        &users,
    ];
    let strings = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    match server {
        ChatServer::Model(model) => {
            let mut args = strings(&["chat-server", "--model", model.name(), "--mode", "io"]);
            args.extend(strings(&world));
            args.extend(strings(&["--max-anonymous", &users, "--chat-limit", "off"]));
            if let (Some(workers), true) = (plan.settings.model_workers, model.has_workers()) {
                args.extend(["--workers".to_string(), workers.to_string()]);
            }
            (binaries.iomodels.clone(), args)
        }
        ChatServer::TokioChat => {
            let mut args = strings(&["--server", "tokio-chat"]);
            args.extend(strings(&world));
            args.extend([
                "--workers".to_string(),
                plan.settings.peer_workers.to_string(),
            ]);
            let program = binaries
                .peers
                .clone()
                .unwrap_or_else(|| "iomodels-peers".into());
            (program, args)
        }
    }
}

/// The chat-bots command against `addr` at `offered` chats/s for the whole swarm.
pub fn bots_args(chat: &ChatSettings, addr: &str, offered: u64) -> Vec<String> {
    let per_bot = offered as f64 / chat.bots.max(1) as f64;
    [
        "chat-bots".to_string(),
        "--addr".into(),
        addr.into(),
        "--bots".into(),
        chat.bots.to_string(),
        "--rooms".into(),
        chat.rooms.to_string(),
        "--scenario".into(),
        "room-chat".into(),
        "--rate".into(),
        per_bot.to_string(),
        "--duration".into(),
        chat.duration_secs.to_string(),
        "--json".into(),
    ]
    .into()
}

/// One run: start the chat server, run the swarm against it, stop it.
pub(crate) fn measure(
    binaries: &Binaries,
    plan: &Plan,
    chat: &ChatSettings,
    server: ChatServer,
    offered: u64,
) -> ChatRow {
    let mut row = ChatRow::new(server, offered, chat.bots, chat.bots_cores);
    let (program, args) = server_command(binaries, plan, chat, server, "127.0.0.1:0");
    row.server_command = command_line(&program, &args);
    let process = match ServerProcess::start(&program, &args, plan.server_cpus.as_deref()) {
        Ok(process) => process,
        Err(error) => {
            row.error = Some(error.to_string());
            return row;
        }
    };
    let args = bots_args(chat, &process.addr.to_string(), offered);
    row.bots_command = Some(command_line(&binaries.iomodels, &args));
    let timeout = Duration::from_secs_f64(chat.duration_secs + 60.0 + chat.bots as f64 / 100.0);
    let cpu = || {
        iomodels_sys::process::usage(process.pid())
            .ok()
            .map(|usage| usage.cpu().as_secs_f64())
    };
    let before = cpu();
    let swarm = process::run_bots(
        &binaries.iomodels,
        &args,
        timeout,
        plan.client_cpus.as_deref(),
    );
    let after = cpu();
    match swarm {
        Ok((swarm, wall)) => {
            row.swarm = Some(swarm);
            row.wall_secs = Some(wall.as_secs_f64());
        }
        Err(error) => row.error = Some(error.to_string()),
    }
    if let (Some(before), Some(after)) = (before, after) {
        row.server_cpu_secs = Some(after - before);
    }
    row.server_note = process.stop();
    row
}

/// One line on a finished run, for the progress output.
pub(crate) fn summary_line(row: &ChatRow) -> String {
    let head = format!("{} chat {} chats/s", row.target, row.offered_per_sec);
    match (row.clean(), row.swarm.as_ref()) {
        (Some(swarm), _) => format!(
            "{head}: {} notifies/s, fan-out p99 {}, {} notifies per server-CPU-s",
            row.notifies_per_sec().map_or("—".into(), format_rate),
            format_us(swarm.fanout_latency.p99_us as f64),
            row.notifies_per_server_cpu_sec()
                .map_or("—".into(), format_rate),
        ),
        _ => format!("{head}: {}", row.failure_reason()),
    }
}

/// Per (server, offered rate): of the rounds that ran clean, the one with the median
/// notifies per server-CPU-second, else the first round's. Run order is kept.
pub fn median_rows(all: &[ChatRow]) -> Vec<&ChatRow> {
    let mut cells: Vec<Vec<&ChatRow>> = Vec::new();
    for row in all {
        match cells.iter_mut().find(|cell| {
            cell[0].target == row.target && cell[0].offered_per_sec == row.offered_per_sec
        }) {
            Some(cell) => cell.push(row),
            None => cells.push(vec![row]),
        }
    }
    cells
        .into_iter()
        .map(|rows| {
            let mut clean: Vec<(&ChatRow, f64)> = rows
                .iter()
                .filter(|row| row.clean().is_some())
                .filter_map(|row| Some((*row, row.notifies_per_server_cpu_sec()?)))
                .collect();
            if clean.is_empty() {
                return rows[0];
            }
            clean.sort_by(|a, b| a.1.total_cmp(&b.1));
            clean[(clean.len() - 1) / 2].0
        })
        .collect()
}

/// The chat section of compare.md; nothing when the chat matrix did not run.
pub(crate) fn write_markdown(report: &Report, out: &mut String) {
    let Some(chat) = &report.settings.chat else {
        return;
    };
    let _ = writeln!(out, "## Chat fan-out\n");
    let bots_cpus = match report.settings.client_cpus.as_deref() {
        Some(cpus) => format!("pinned to CPUs {cpus}"),
        None => format!("on any of the {} CPUs", chat.bots_cores),
    };
    let _ = writeln!(
        out,
        "The same swarm against every chat server: {} bots in {} rooms of {}, `chat-bots \
         --scenario room-chat`, chatting {} s per run, each run against a fresh server \
         (ours: `chat-server --mode io --chat-limit off`, the game state under one mutex on the I/O threads as the peer keeps it), the bots {bots_cpus}. \
         Offered chats/s is bots × each bot's rate; achieved is chats sent / the chatting \
         window; notifies/s is the chats' notifies received / the window; server CPU is the \
         server process's user + system time from the swarm's start to its end (logins, \
         each bot's closing chat and the drain included), and notifies per server-CPU-s \
         counts every notify of that time (the closing chats' too); fan-out is a chat sent to its notify received, at every receiver; bots \
         CPU is the swarm's own, and its share of wall time × its CPUs: at {:.0}% or more \
         the bots, not the server, were the limit. A server's sweep stops after its first \
         run that is not clean.{}\n",
        chat.bots,
        chat.rooms,
        chat.room_size,
        chat.duration_secs,
        BOTS_LIMIT * 100.0,
        if report.settings.rounds > 1 {
            " Each cell is the round with the median notifies per server-CPU-s (every round \
             is in compare.json, `chat_rows`)."
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| offered chats/s | server | achieved chats/s | notifies/s | server CPU s | notifies per server-CPU-s | fan-out p50 | p99 | p99.9 | max | bots CPU s (busy) | bots the limit | clean |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    let mut rows = median_rows(&report.chat_rows);
    let order = |name: &str| chat.servers.iter().position(|s| s == name);
    rows.sort_by_key(|row| (row.offered_per_sec, order(&row.target)));
    let dash = || "—".to_string();
    for row in &rows {
        let _ = write!(
            out,
            "| {} | {} |",
            format_rate(row.offered_per_sec as f64),
            row.target
        );
        match &row.swarm {
            Some(swarm) => {
                let latency = &swarm.fanout_latency;
                let _ = writeln!(
                    out,
                    " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.achieved_per_sec().map_or_else(dash, format_rate),
                    row.notifies_per_sec().map_or_else(dash, format_rate),
                    row.server_cpu_secs
                        .map_or_else(dash, |cpu| format!("{cpu:.2}")),
                    row.notifies_per_server_cpu_sec()
                        .map_or_else(dash, format_rate),
                    format_us(latency.p50_us as f64),
                    format_us(latency.p99_us as f64),
                    format_us(latency.p999_us as f64),
                    format_us(latency.max_us as f64),
                    row.bots_busy().map_or_else(
                        || format!("{:.2}", swarm.bots_cpu_secs),
                        |busy| format!("{:.2} ({:.0}%)", swarm.bots_cpu_secs, busy * 100.0)
                    ),
                    match row.bots_limited() {
                        Some(true) => "**yes**",
                        Some(false) => "no",
                        None => "—",
                    },
                    if row.clean().is_some() {
                        "yes"
                    } else {
                        "no: see below"
                    },
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    " — | — | — | — | — | — | — | — | — | — | failed: see below |"
                );
            }
        }
    }
    out.push('\n');
    let failures: Vec<&&ChatRow> = rows.iter().filter(|row| row.clean().is_none()).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "Chat runs that were not clean:\n");
        for row in failures {
            let _ = writeln!(
                out,
                "- {} at {} chats/s: {}",
                row.target,
                row.offered_per_sec,
                row.failure_reason()
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "The first run of each chat server:\n\n```sh");
    for name in &chat.servers {
        if let Some(row) = report.chat_rows.iter().find(|row| &row.target == name) {
            let _ = writeln!(out, "{}", row.server_command);
            if let Some(bots) = &row.bots_command {
                let _ = writeln!(out, "{bots}");
            }
        }
    }
    let _ = writeln!(out, "```\n");
}

/// Per chat server: (offered chats/s, `value`) of its rows with a swarm report.
pub fn chat_series(
    report: &Report,
    value: impl Fn(&ChatRow) -> Option<f64>,
) -> Vec<charts::Series> {
    let Some(chat) = &report.settings.chat else {
        return Vec::new();
    };
    let rows = median_rows(&report.chat_rows);
    chat.servers
        .iter()
        .map(|name| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|row| &row.target == name && row.swarm.is_some())
                .filter_map(|row| Some((row.offered_per_sec as f64, value(row)?)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name.clone(), points)
        })
        .collect()
}

/// Draw the chat charts into `dir` (none when the chat matrix did not run); returns the
/// file names written.
pub(crate) fn draw_charts(report: &Report, dir: &Path) -> Result<Vec<String>, Error> {
    if report.settings.chat.is_none() {
        return Ok(Vec::new());
    }
    let x_label = "offered chats per second";
    let p99 = chat_series(report, |row| {
        let swarm = row.swarm.as_ref()?;
        (swarm.fanout_latency.count > 0).then(|| swarm.fanout_latency.p99_us as f64 / 1000.0)
    });
    charts::line_chart_over(
        &dir.join("chat_fanout_p99.svg"),
        "chat fan-out p99 by offered rate (room-chat)",
        x_label,
        "fan-out p99, ms",
        &p99,
        charts::Axis::Plain,
    )?;
    let per_cpu = chat_series(report, ChatRow::notifies_per_server_cpu_sec);
    charts::line_chart_over(
        &dir.join("chat_notifies_per_cpu.svg"),
        "chat notifies per server-CPU-second by offered rate (room-chat)",
        x_label,
        "notifies per server-CPU-s",
        &per_cpu,
        charts::Axis::Rate,
    )?;
    Ok(vec![
        "chat_fanout_p99.svg".to_string(),
        "chat_notifies_per_cpu.svg".to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line as `iomodels chat-bots --json` prints it (crates/chat's `BotsReport`).
    const REPORT: &str = r#"{"scenario":"room-chat","addr":"127.0.0.1:7001","bots":1000,"rooms":50,"connected":1000,"duration_secs":5.0,"requests":27000,"requests_per_sec":5400.0,"chats_sent":25000,"notifies_received":520000,"fanout_latency":{"count":500000,"p50_us":1400,"p99_us":6200,"p999_us":11000,"max_us":20000,"mean_us":1800.5},"request_latency":{"count":27000,"p50_us":300,"p99_us":900,"p999_us":2000,"max_us":3000,"mean_us":350.0},"protocol_errors":0,"failed_requests":0,"disconnects":0,"lost_notifies":0,"duplicated_notifies":0,"order_mismatches":0,"membership_views":0,"bots_cpu_secs":3.5}"#;

    fn row(swarm: BotsResult) -> ChatRow {
        let mut row = ChatRow::new(ChatServer::TokioChat, 5000, 1000, 1);
        row.swarm = Some(swarm);
        row.server_cpu_secs = Some(4.0);
        row.wall_secs = Some(7.0);
        row
    }

    #[test]
    fn chat_bots_json_becomes_a_row() {
        let stdout = format!("progress\n{REPORT}\n");
        let swarm = BotsResult::from_stdout(&stdout).expect("the report parses");
        assert_eq!(swarm.scenario, "room-chat");
        assert_eq!((swarm.bots, swarm.rooms, swarm.connected), (1000, 50, 1000));
        assert_eq!(swarm.fanout_latency.p50_us, 1400);
        assert_eq!(swarm.fanout_latency.p99_us, 6200);
        assert_eq!(swarm.fanout_latency.p999_us, 11_000);
        assert!(swarm.is_clean());
        let row = row(swarm);
        assert_eq!(row.rate_per_bot, 5.0);
        assert_eq!(row.achieved_per_sec(), Some(5000.0));
        assert_eq!(row.notifies_per_sec(), Some(100_000.0));
        assert_eq!(row.notifies_per_server_cpu_sec(), Some(130_000.0));
        assert_eq!(row.bots_busy(), Some(0.5));
        assert_eq!(row.bots_limited(), Some(false));
        assert!(row.clean().is_some());
    }

    #[test]
    fn a_swarm_with_losses_or_busy_bots_says_so() {
        let lossy = REPORT.replace(r#""lost_notifies":0"#, r#""lost_notifies":7"#);
        let swarm = BotsResult::from_stdout(&lossy).unwrap();
        assert!(!swarm.is_clean());
        let mut row = row(swarm);
        assert!(row.clean().is_none());
        assert!(
            row.failure_reason().contains("7 notifies lost"),
            "{}",
            row.failure_reason()
        );
        row.wall_secs = Some(3.5);
        assert_eq!(row.bots_limited(), Some(true));
        assert!(BotsResult::from_stdout("error: no bot could connect\n").is_err());
        assert!(BotsResult::from_stdout(r#"{"scenario":"room-chat"}"#).is_err());
    }

    #[test]
    fn chat_server_lists_parse() {
        let all = parse_chat_servers("all").unwrap();
        assert_eq!(all.last(), Some(&ChatServer::TokioChat));
        assert_eq!(all.len(), Model::SCALABLE.len() + 1);
        assert_eq!(parse_chat_servers("none").unwrap(), []);
        let first = Model::SCALABLE[0];
        assert_eq!(
            parse_chat_servers(&format!("{}, tokio-chat", first.name())).unwrap(),
            [ChatServer::Model(first), ChatServer::TokioChat]
        );
        assert!(matches!(
            parse_chat_servers("tokio-current"),
            Err(Error::UnknownChatServer(name)) if name == "tokio-current"
        ));
    }

    #[test]
    fn the_swarm_command_spreads_the_offered_rate_over_the_bots() {
        let chat = ChatSettings {
            servers: vec!["epoll".into()],
            bots: 40,
            rooms: 2,
            room_size: ROOM_SIZE,
            rates: vec![100],
            duration_secs: 1.0,
            bots_cores: 1,
        };
        assert_eq!(
            bots_args(&chat, "127.0.0.1:9", 100).join(" "),
            "chat-bots --addr 127.0.0.1:9 --bots 40 --rooms 2 --scenario room-chat \
             --rate 2.5 --duration 1 --json"
        );
    }
}
