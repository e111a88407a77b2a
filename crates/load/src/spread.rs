//! One benchmark over several client processes, merged into one report: for more
//! connections than one process can hold ([`crate::connection_ceiling`]).
//!
//! The parent ([`run`]) starts `count` client processes with a command its caller builds
//! (the `iomodels` binary runs itself with a hidden flag); client `k` gets its share of the
//! connections ([`part`]), source addresses of its own (`127.0.0.(k + 1)` while a share fits
//! on one), a share of the connect rate and of an open-loop rate, and runs [`run_client`].
//!
//! ## The protocol: one JSON object a line
//! - client → parent, on its stdout: `{"connected":{..}}` once its share is connected (or
//!   failed), `{"progress":{..}}` about every 250 ms, `{"done":{..}}` (a [`Partial`], the
//!   latency histogram in HdrHistogram's V2 encoding) at the end, then it exits 0.
//! - parent → client, on its stdin: `{"start_unix_ns":T}` once every client has
//!   connected: the start barrier. Every client, and the parent, starts its schedule at
//!   the same wall-clock instant T (a little ahead, so the line reaches each in time), so
//!   the warm-ups, windows and idle holds line up across processes; the parent samples the
//!   server at their edges. An input that ends before the start aborts the client.
//!
//! ## Failures
//! A client that exits early, writes garbage, exits non-zero or misses a deadline fails the
//! run with [`Error::Client`], naming it (index, pid, source addresses) with the last line
//! of its stderr. Every client still running is then killed and reaped, and so are they
//! all when the parent's caller drops the run half-way (a panic); on Linux a client is
//! also killed by the kernel if the thread that spawned it dies
//! ([`iomodels_sys::process::die_with_parent`]), so none outlives a parent killed by a
//! signal.

use crate::config::{BenchConfig, CONNECTIONS_PER_SOURCE, MAX_SOURCE_HOST};
use crate::error::{ClientFailure, Error};
use crate::report::{ClientReport, ErrorCounts, Partial, Phase, Progress};
use crate::{assemble, connection_ceiling, watch, watch_with, Connected, Times, TICK};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far ahead of now the parent sets the start, so every client has read it in time.
const START_AHEAD: Duration = Duration::from_millis(150);
/// Slack on every deadline of a client beyond what its schedule needs.
const SLACK: Duration = Duration::from_secs(30);
/// How long a client may take to exit after its result, or after its output closed.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// A line a client process writes to its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// Every connection of its share was tried: how many are open.
    Connected {
        /// Connections open.
        open: usize,
        /// Connection errors so far.
        errors: ErrorCounts,
    },
    /// Where it is.
    Progress {
        /// Connections open.
        open: usize,
        /// Messages echoed since traffic began.
        messages: u64,
        /// Errors so far.
        errors: ErrorCounts,
    },
    /// Its measurements; the last line.
    Done(Partial),
}

/// What the parent writes to every client: the start barrier.
#[derive(Debug, Serialize, Deserialize)]
struct Start {
    /// When traffic starts, in nanoseconds since the Unix epoch.
    start_unix_ns: u64,
}

/// How many client processes `config` needs: one per [`connection_ceiling`] connections.
pub fn clients_needed(config: &BenchConfig) -> usize {
    let ceiling = connection_ceiling(config.threads).max(1);
    (config.connections as u64).div_ceil(ceiling).max(1) as usize
}

/// Source addresses each client process binds to.
fn sources_per_client(config: &BenchConfig, count: usize) -> usize {
    if config.sources > 0 {
        (config.sources / count).max(1)
    } else {
        config
            .connections
            .div_ceil(count)
            .div_ceil(CONNECTIONS_PER_SOURCE)
            .max(1)
    }
}

/// The `[first, end)` connection numbers of client `index` of `count`.
fn share(connections: usize, index: usize, count: usize) -> (usize, usize) {
    (
        connections * index / count,
        connections * (index + 1) / count,
    )
}

/// The configuration client process `index` of `count` runs: its share of the connections
/// (the shares differ by at most one), its own source addresses, its share of the connect
/// rate and of an open-loop rate; the same threads per process, payload, pipeline and
/// phases. It samples no server: the parent does.
pub fn part(config: &BenchConfig, index: usize, count: usize) -> Result<BenchConfig, Error> {
    if count == 0 || index >= count {
        return Err(Error::InvalidConfig("client index out of range"));
    }
    if count > config.connections {
        return Err(Error::InvalidConfig(
            "more client processes than connections",
        ));
    }
    let (first, end) = share(config.connections, index, count);
    let per = sources_per_client(config, count);
    if count * per > MAX_SOURCE_HOST {
        return Err(Error::InvalidConfig(
            "too many client processes: each needs source addresses of its own within \
             127.0.0.1 to 127.0.0.254",
        ));
    }
    let rate = match config.rate {
        Some(rate) => {
            let at = |n: usize| (rate as u128 * n as u128 / config.connections as u128) as u64;
            match at(end) - at(first) {
                0 => {
                    return Err(Error::InvalidConfig(
                        "the rate is below one message per second per client process",
                    ))
                }
                share => Some(share),
            }
        }
        None => None,
    };
    let mut part = config.clone();
    part.connections = end - first;
    part.first_connection = config.first_connection + first as u64;
    part.first_source = (1 + index * per) as u8;
    part.sources = per;
    part.rate = rate;
    part.connect_rate = (config.connect_rate / count as u64).max(1);
    part.server_pid = None;
    Ok(part)
}

/// The source addresses `part` binds to, as the report shows them; empty when the target
/// is not IPv4 loopback (no address is bound then).
fn sources_text(part: &BenchConfig) -> String {
    match part.addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let first = part.first_source as usize;
            let last = first + part.source_count().min(part.connections) - 1;
            if last == first {
                format!("127.0.0.{first}")
            } else {
                format!("127.0.0.{first}-127.0.0.{last}")
            }
        }
        _ => String::new(),
    }
}

/// Writes protocol lines to the parent.
struct Lines<W: Write>(W);

impl<W: Write> Lines<W> {
    fn send(&mut self, line: &Line) -> Result<(), Error> {
        serde_json::to_writer(&mut self.0, line)?;
        self.0
            .write_all(b"\n")
            .and_then(|()| self.0.flush())
            .map_err(|e| Error::io("writing to the parent process", e))
    }

    fn progress(&mut self, p: &Progress) {
        // A parent that went away is found out at the start (or by the kernel's signal).
        let _ = self.send(&Line::Progress {
            open: p.connections_open,
            messages: p.messages,
            errors: p.errors,
        });
    }
}

/// Run as one client process of a spread run, `config` being its [`part`]: connect, say so
/// on `output`, wait for the start on `input`, run the schedule, write the [`Partial`].
pub fn run_client(
    config: &BenchConfig,
    mut input: impl BufRead,
    output: impl Write,
) -> Result<(), Error> {
    config.validate()?;
    let mut lines = Lines(output);
    let mut connected = Connected::start(config, &mut |p: &Progress| lines.progress(p))?;
    lines.send(&Line::Connected {
        open: connected.open(),
        errors: connected.errors(),
    })?;
    let mut text = String::new();
    let read = input
        .read_line(&mut text)
        .map_err(|e| Error::io("reading the start", e))?;
    if read == 0 {
        return Err(Error::NoStart("its input ended".into()));
    }
    let start: Start =
        serde_json::from_str(text.trim()).map_err(|e| Error::NoStart(e.to_string()))?;
    let times = Times::new(config, local_instant(start.start_unix_ns), connected.open());
    connected.go(times);
    watch(config, &times, |phase, elapsed, length| {
        let p = connected.snapshot(phase, elapsed, length);
        lines.progress(&p);
    })?;
    let partial = connected.join(&mut |_: &Progress| {})?;
    lines.send(&Line::Done(partial))
}

/// The instant on this process's monotonic clock of a wall-clock time.
fn local_instant(unix_ns: u64) -> Instant {
    let (wall, now) = (SystemTime::now(), Instant::now());
    match (UNIX_EPOCH + Duration::from_nanos(unix_ns)).duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}

/// What a client's pipes say to the parent.
enum Event {
    /// A protocol line.
    Line(Line),
    /// A line that is not one.
    Garbled { reason: String, line: String },
    /// Its stdout closed.
    Closed,
}

/// One client process, seen from the parent.
struct Client {
    /// How errors name it.
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The last non-empty line of its stderr.
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
    sources: String,
    requested: usize,
    threads: usize,
    connected: bool,
    open: usize,
    messages: u64,
    errors: ErrorCounts,
    partial: Option<Partial>,
}

impl Client {
    /// The last line it wrote on stderr, once its stderr has closed (or a moment passed).
    fn last_words(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let line = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if line.is_empty() {
            "no error output".into()
        } else {
            line
        }
    }

    fn fail(&self, failure: ClientFailure) -> Error {
        Error::Client {
            client: self.name.clone(),
            failure,
        }
    }

    /// Wait up to `deadline` for it to exit; kill it past that. None if it had to be killed.
    fn wait_exit(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The failure of a client whose output closed before its result.
    fn ended_early(&mut self) -> Error {
        let status = match self.wait_exit(Instant::now() + EXIT_DEADLINE) {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running after its output closed; killed".into(),
            Err(e) => format!("not known: {e}"),
        };
        let stderr = self.last_words();
        self.fail(ClientFailure::Ended { status, stderr })
    }
}

/// The client processes of a run; every one still running is killed and reaped on drop.
struct Clients {
    list: Vec<Client>,
    events: Receiver<(usize, Event)>,
}

impl Drop for Clients {
    fn drop(&mut self) {
        for client in &mut self.list {
            if matches!(client.child.try_wait(), Ok(None)) {
                let _ = client.child.kill();
            }
            let _ = client.child.wait();
        }
    }
}

impl Clients {
    /// Spawn every part with `command`, its pipes read on threads of their own.
    fn spawn(parts: &[BenchConfig], command: &dyn Fn(usize) -> Command) -> Result<Clients, Error> {
        let count = parts.len();
        let (sender, events) = mpsc::channel();
        let mut clients = Clients {
            list: Vec::with_capacity(count),
            events,
        };
        for (index, part) in parts.iter().enumerate() {
            let sources = sources_text(part);
            let from = if sources.is_empty() {
                String::new()
            } else {
                format!(", from {sources}")
            };
            let mut command = command(index);
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            iomodels_sys::process::die_with_parent(&mut command);
            let mut child = command.spawn().map_err(|e| Error::Client {
                client: format!("client process {}/{count}{from}", index + 1),
                failure: ClientFailure::Spawn(e),
            })?;
            let name = format!(
                "client process {}/{count} (pid {}{from})",
                index + 1,
                child.id()
            );
            let stdout = child.stdout.take().expect("stdout is piped");
            let stderr_pipe = child.stderr.take().expect("stderr is piped");
            let stderr = Arc::new(Mutex::new(String::new()));
            let stderr_reader = spawn_stderr_reader(stderr_pipe, stderr.clone());
            spawn_stdout_reader(index, stdout, sender.clone());
            clients.list.push(Client {
                name,
                stdin: child.stdin.take(),
                child,
                stderr,
                stderr_reader: Some(stderr_reader),
                sources,
                requested: part.connections,
                threads: part.thread_count(),
                connected: false,
                open: 0,
                messages: 0,
                errors: ErrorCounts::default(),
                partial: None,
            });
        }
        Ok(clients)
    }

    /// Take in what the clients say until `until`; a client that fails is an error.
    fn pump(&mut self, until: Instant) -> Result<(), Error> {
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            let (index, event) = match self.events.recv_timeout(wait) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                // Every reader gone: every client's output closed, each seen as Closed.
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(wait);
                    return Ok(());
                }
            };
            let client = &mut self.list[index];
            match event {
                Event::Line(Line::Connected { open, errors }) => {
                    client.connected = true;
                    client.open = open;
                    client.errors = errors;
                }
                Event::Line(Line::Progress {
                    open,
                    messages,
                    errors,
                }) => {
                    client.open = open;
                    client.messages = messages;
                    client.errors = errors;
                }
                Event::Line(Line::Done(partial)) => {
                    client.open = partial.connections_held;
                    client.errors = partial.errors;
                    client.partial = Some(partial);
                }
                Event::Garbled { reason, line } => {
                    return Err(client.fail(ClientFailure::Garbled { reason, line }))
                }
                Event::Closed if client.partial.is_none() => return Err(client.ended_early()),
                Event::Closed => {}
            }
        }
    }

    /// Pump until `done` holds for every client, failing any that has not by `deadline`.
    fn pump_until(
        &mut self,
        done: fn(&Client) -> bool,
        step: &'static str,
        deadline: Instant,
        tick: &mut dyn FnMut(&Clients),
    ) -> Result<(), Error> {
        let since = Instant::now();
        while !self.list.iter().all(done) {
            let now = Instant::now();
            if now >= deadline {
                let secs = since.elapsed().as_secs();
                let late = self
                    .list
                    .iter_mut()
                    .find(|c| !done(c))
                    .expect("one is not done");
                let _ = late.child.kill();
                return Err(late.fail(ClientFailure::TimedOut { step, secs }));
            }
            self.pump(deadline.min(now + TICK))?;
            tick(self);
        }
        Ok(())
    }

    /// Progress over every client.
    fn snapshot(
        &self,
        config: &BenchConfig,
        phase: Phase,
        elapsed: Duration,
        phase_length: Duration,
    ) -> Progress {
        let mut errors = ErrorCounts::default();
        for c in &self.list {
            errors.add(&c.errors);
        }
        Progress {
            phase,
            elapsed,
            phase_length,
            connections_open: self.list.iter().map(|c| c.open).sum(),
            connections_requested: config.connections,
            messages: self.list.iter().map(|c| c.messages).sum(),
            messages_per_sec: 0.0,
            errors,
        }
    }
}

fn spawn_stdout_reader(
    index: usize,
    stdout: impl Read + Send + 'static,
    events: Sender<(usize, Event)>,
) {
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let event = match serde_json::from_str::<Line>(&line) {
                Ok(parsed) => Event::Line(parsed),
                Err(e) => Event::Garbled {
                    reason: e.to_string(),
                    line: line.chars().take(120).collect(),
                },
            };
            if events.send((index, event)).is_err() {
                return;
            }
        }
        let _ = events.send((index, Event::Closed));
    });
}

fn spawn_stderr_reader(
    stderr: impl Read + Send + 'static,
    last: Arc<Mutex<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if !line.is_empty() {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = line.to_string();
            }
        }
    })
}

/// Run `config` over `count` client processes and merge them into one report.
/// `command(k)` must run client `k` of `count`: a process that calls [`run_client`] with
/// `part(config, k, count)`, its stdin and its stdout. The parent samples the server (with
/// `config.server_pid`) over the common window and idle hold; `progress` sees the sums.
pub fn run(
    config: &BenchConfig,
    count: usize,
    command: impl Fn(usize) -> Command,
    mut progress: impl FnMut(&Progress),
) -> Result<crate::BenchReport, Error> {
    config.validate_shape()?;
    let parts = (0..count)
        .map(|k| part(config, k, count))
        .collect::<Result<Vec<_>, _>>()?;
    for part in &parts {
        part.validate()?;
    }
    let mut clients = Clients::spawn(&parts, &command)?;

    // Connect: every client connects its share, at its share of the rate.
    let began = Instant::now();
    let connect_length =
        Duration::from_secs_f64(config.connections as f64 / config.connect_rate as f64);
    clients.pump_until(
        |c| c.connected,
        "connect",
        began + connect_length + config.connect_timeout + SLACK,
        &mut |clients| {
            progress(&clients.snapshot(config, Phase::Connecting, began.elapsed(), connect_length))
        },
    )?;

    // The start barrier: one wall-clock instant for every client and this process.
    let start_wall = SystemTime::now() + START_AHEAD;
    let start_unix_ns = start_wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let open = clients.list.iter().map(|c| c.open).sum();
    let times = Times::new(config, local_instant(start_unix_ns), open);
    let line = serde_json::to_string(&Start { start_unix_ns })? + "\n";
    for client in &mut clients.list {
        let sent = match client.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        };
        if let Err(e) = sent {
            return Err(client.fail(ClientFailure::Start(e)));
        }
    }

    let mut follow = Following {
        clients: &mut clients,
        config,
        progress: &mut progress,
        last: (Instant::now(), 0),
    };
    let samples = watch_with(config, &times, &mut follow)?;

    // The results: every client's last line, then its exit.
    clients.pump_until(
        |c| c.partial.is_some(),
        "finish",
        times.release + SLACK,
        &mut |_| {},
    )?;
    let deadline = Instant::now() + EXIT_DEADLINE;
    let mut merged = Partial::empty();
    let mut reports = Vec::with_capacity(count);
    for (index, client) in clients.list.iter_mut().enumerate() {
        let status = client
            .wait_exit(deadline)
            .map_err(|e| Error::io("waiting for a client process", e))?;
        match status {
            Some(status) if status.success() => {}
            Some(status) => {
                let stderr = client.last_words();
                return Err(client.fail(ClientFailure::FailedAfter {
                    status: status.to_string(),
                    stderr,
                }));
            }
            None => {
                return Err(client.fail(ClientFailure::TimedOut {
                    step: "exit",
                    secs: EXIT_DEADLINE.as_secs(),
                }))
            }
        }
        let partial = client.partial.take().expect("every client is done");
        merged.merge(&partial)?;
        reports.push(ClientReport {
            index,
            pid: client.child.id(),
            sources: client.sources.clone(),
            connections_requested: client.requested,
            connections_held: partial.connections_held,
            messages: partial.messages,
            errors: partial.errors,
            cpu_secs: partial.cpu_secs,
        });
    }
    let threads = clients
        .list
        .iter()
        .map(|c| c.threads)
        .sum::<usize>()
        .max(merged.threads);
    let mut done = clients.snapshot(config, Phase::Done, config.duration, config.duration);
    done.messages = merged.messages;
    done.messages_per_sec = merged.messages as f64 / config.duration.as_secs_f64();
    progress(&done);
    Ok(assemble(config, threads, &merged, &samples, reports))
}

/// The parent following the schedule: pumping the clients' lines while it waits, showing
/// their sums.
struct Following<'a, P> {
    clients: &'a mut Clients,
    config: &'a BenchConfig,
    progress: &'a mut P,
    last: (Instant, u64),
}

impl<P: FnMut(&Progress)> crate::Follow for Following<'_, P> {
    fn tick(&mut self, phase: Phase, elapsed: Duration, length: Duration) {
        let mut p = self.clients.snapshot(self.config, phase, elapsed, length);
        let now = Instant::now();
        let seconds = (now - self.last.0).as_secs_f64();
        if seconds > 0.0 {
            p.messages_per_sec = p.messages.saturating_sub(self.last.1) as f64 / seconds;
        }
        self.last = (now, p.messages);
        (self.progress)(&p);
    }

    fn pause(&mut self, until: Instant) -> Result<(), Error> {
        self.clients.pump(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::latency_histogram;

    fn config(connections: usize) -> BenchConfig {
        let mut config = BenchConfig::new("127.0.0.1:7000".parse().unwrap());
        config.connections = connections;
        config
    }

    #[test]
    fn parts_share_the_connections_and_rates_and_take_sources_of_their_own() {
        let mut whole = config(1000);
        whole.rate = Some(10_001);
        whole.connect_rate = 30_000;
        whole.server_pid = Some(42);
        let parts: Vec<BenchConfig> = (0..3).map(|k| part(&whole, k, 3).unwrap()).collect();
        assert_eq!(
            parts.iter().map(|p| p.connections).collect::<Vec<_>>(),
            [333, 333, 334]
        );
        assert_eq!(
            parts.iter().map(|p| p.first_connection).collect::<Vec<_>>(),
            [0, 333, 666]
        );
        assert_eq!(parts.iter().filter_map(|p| p.rate).sum::<u64>(), 10_001);
        assert!(parts.iter().all(|p| p.connect_rate == 10_000));
        assert!(parts.iter().all(|p| p.server_pid.is_none()));
        assert_eq!(
            parts.iter().map(sources_text).collect::<Vec<_>>(),
            ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        );
        for p in &parts {
            p.validate().unwrap();
        }

        // Shares past what one address's ports take get two each, still disjoint.
        let big = config(40_000);
        let texts: Vec<String> = (0..2)
            .map(|k| sources_text(&part(&big, k, 2).unwrap()))
            .collect();
        assert_eq!(texts, ["127.0.0.1-127.0.0.2", "127.0.0.3-127.0.0.4"]);
    }

    #[test]
    fn impossible_parts_are_refused() {
        let message = |result: Result<BenchConfig, Error>| result.unwrap_err().to_string();
        assert!(message(part(&config(2), 0, 3)).contains("more client processes"));
        assert!(message(part(&config(300), 0, 255)).contains("source addresses"));
        let mut slow = config(300);
        slow.rate = Some(2);
        assert!(message(part(&slow, 0, 3)).contains("below one message"));
        assert!(message(part(&config(300), 3, 3)).contains("out of range"));
    }

    #[test]
    fn one_process_holds_up_to_the_ceiling() {
        let ceiling = connection_ceiling(1) as usize;
        assert_eq!(clients_needed(&config(ceiling)), 1);
        assert_eq!(clients_needed(&config(ceiling + 1)), 2);
        assert_eq!(
            clients_needed(&config(150_000)),
            150_000usize.div_ceil(ceiling)
        );
    }

    fn partial(latencies: &[u64], held: usize, errors: u64) -> Partial {
        let mut histogram = latency_histogram();
        for &ns in latencies {
            histogram.record(ns).unwrap();
        }
        Partial {
            connections_requested: 100,
            connections_held: held,
            threads: 1,
            messages: latencies.len() as u64,
            bytes_out: 64 * latencies.len() as u64,
            bytes_in: 64 * latencies.len() as u64,
            errors: ErrorCounts {
                disconnected: errors,
                ..ErrorCounts::default()
            },
            cpu_secs: 0.25,
            histogram,
        }
    }

    #[test]
    fn merged_partials_sum_and_keep_every_latency() {
        let fast: Vec<u64> = (1..=900).map(|i| 10_000 + i).collect();
        let slow: Vec<u64> = (1..=100).map(|i| 5_000_000 + i * 1000).collect();
        let (a, b) = (partial(&fast, 100, 0), partial(&slow, 98, 2));
        let mut merged = Partial::empty();
        for p in [&a, &b] {
            // Through the wire, as a parent gets them.
            let line = serde_json::to_string(&Line::Done(p.clone())).unwrap();
            let Line::Done(back) = serde_json::from_str(&line).unwrap() else {
                panic!("not a done line: {line}");
            };
            assert_eq!(&back, p);
            merged.merge(&back).unwrap();
        }
        assert_eq!(merged.messages, 1000);
        assert_eq!(
            (merged.connections_requested, merged.connections_held),
            (200, 198)
        );
        assert_eq!(merged.bytes_in, 64_000);
        assert_eq!(merged.errors.disconnected, 2);
        assert_eq!(merged.threads, 2);
        assert_eq!(merged.cpu_secs, 0.5);
        let mut all = latency_histogram();
        for &ns in fast.iter().chain(&slow) {
            all.record(ns).unwrap();
        }
        assert_eq!(merged.histogram, all);
        // The slow tenth is the p99 of the merge, not of either part.
        let p99 = merged.histogram.value_at_quantile(0.99);
        assert!(p99 > 5_000_000, "p99 {p99} ns");

        let report = assemble(
            &config(200),
            2,
            &merged,
            &crate::Samples::default(),
            Vec::new(),
        );
        assert_eq!(report.messages, 1000);
        assert_eq!(report.connections_held, 198);
        assert_eq!(report.latency_us.max, all.max() as f64 / 1000.0);
        assert!(report.latency_us.p99 > 5000.0);
        assert_eq!(report.problems().len(), 2, "{:?}", report.problems());
    }
}
