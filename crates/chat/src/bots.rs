//! The bot swarm: threads of bots that log in, enter rooms and chat, each checking that
//! every notify it should receive arrives, in order, exactly once.
//!
//! Two ways to run the bots, one check:
//! - `room-chat` on Linux: a few threads ([`SwarmConfig::threads`], by default the CPUs the
//!   process may use), each running many bots over non-blocking sockets and epoll, each bot
//!   a small state machine (`bots/epoll.rs`). At 1,000 bots and 200,000 notifies a second
//!   the bots must cost well under one core, or the fan-out latency they report measures
//!   them, not the server.
//! - Every other scenario, `room-chat` on Windows, and `room-chat` with
//!   [`SwarmConfig::thread_per_bot`]: a thread per bot, each with a blocking socket and a
//!   read timeout that wakes it for its next request: simple, and at a few hundred bots
//!   cheaper than it sounds (the threads sleep in `recv`).
//!
//! Both run `room-chat`'s check through the same code (`bots/room_chat.rs`: one
//! `ChatCheck` per bot) and fill the same `Outcome`s (one per bot thread), which make the
//! same report.
//!
//! How `room-chat` checks delivery: bot `i` is in room `i mod R`, so every bot knows its
//! room's members. All bots join, wait for each other, then chat. A chat's message carries
//! its sender, a per-sender sequence number and the send time. Each receiver expects, from
//! every member, the sequence numbers 0, 1, 2, ... with no gap (lost), no repeat
//! (duplicated), and a sender's final "fin" message says how many it sent, so nothing lost
//! at the end goes unseen. Every member must also see the room's chats in one and the same
//! order (the order the server accepted them): each receiver hashes the sequence it saw and
//! the hashes of a room must agree.
//!
//! How `room-inout` checks membership: each bot logs, per stay in its room, the 209 list
//! and the 208s and 217s that followed, and leaves the room before it stops, so every
//! stay ends with the server's 216. After the run, [`crate::membership`] rebuilds each
//! room's history of enters and leaves from all the views and fails the room unless one
//! history explains every view.
//!
//! The report carries the bots' own CPU time, each bot thread's user + system time at its
//! end, summed (a thread per bot, or the few event-driven threads): what the swarm cost
//! the machine, apart from the server's.

#[cfg(target_os = "linux")]
mod epoll;
mod room_chat;

use crate::client::{ClientError, Connection};
use crate::config::MAX_ROOMS;
use crate::error::Error;
use crate::membership::{Change, Stay};
use hdrhistogram::Histogram;
use iomodels_proto::{Request, Response, ResultCode};
use iomodels_sys::cpu::thread_cpu_time;
use room_chat::{ChatCheck, ChatMessage};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What the bots do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Connect once and stay connected, silent (under the idle timeout).
    Connect,
    /// Connect and disconnect, again and again.
    Reconnect,
    /// Connect, log in with a fresh user id, disconnect, again and again.
    Login,
    /// Log in once, then enter and leave a room again and again, checking the room's
    /// membership notifies.
    RoomInout,
    /// Log in, enter a room, chat, checking every chat notify.
    RoomChat,
}

impl Scenario {
    /// Every scenario, from the simplest.
    pub const ALL: [Scenario; 5] = [
        Scenario::Connect,
        Scenario::Reconnect,
        Scenario::Login,
        Scenario::RoomInout,
        Scenario::RoomChat,
    ];

    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Reconnect => "reconnect",
            Scenario::Login => "login",
            Scenario::RoomInout => "room-inout",
            Scenario::RoomChat => "room-chat",
        }
    }

    /// One line on what the bots do.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::Connect => "connect once and stay connected, silent",
            Scenario::Reconnect => "connect and disconnect, again and again",
            Scenario::Login => "connect, log in with a fresh user id, disconnect, again and again",
            Scenario::RoomInout => {
                "log in, then enter and leave a room again and again, checking membership"
            }
            Scenario::RoomChat => "log in, enter a room and chat, checking every chat notify",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A swarm's settings.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// The chat server.
    pub addr: SocketAddr,
    /// More instances of the same cluster (`chat-server --redis`): bot `i` connects to
    /// `[addr, also[0], also[1], ...][i mod n]`, so a room's members are spread over the
    /// instances and every check spans them. Empty: `addr` only.
    pub also: Vec<SocketAddr>,
    /// Number of bots.
    pub bots: usize,
    /// Rooms the bots spread over: bot `i` uses room `first_room + i mod rooms`.
    pub rooms: usize,
    /// The first room the bots use (swarms side by side against one server keep to rooms
    /// of their own: a bot checks every notify of its room).
    pub first_room: usize,
    /// What the bots do.
    pub scenario: Scenario,
    /// Operations per second per bot.
    pub rate: f64,
    /// How long the bots work (after they have all joined, for `room-chat`).
    pub duration: Duration,
    /// How long a bot waits, after it stops, for the notifies still on their way.
    pub drain_timeout: Duration,
    /// How long a bot waits for any one response before calling it lost.
    pub response_timeout: Duration,
    /// User ids are this prefix and the bot's number.
    pub user_prefix: String,
    /// `room-chat` on Linux: how many threads run the bots, each many of them over
    /// non-blocking sockets and epoll (`None`: [`std::thread::available_parallelism`], which
    /// honours `taskset`; never more than the bots). The other scenarios, and Windows, run a
    /// thread per bot and ignore it.
    pub threads: Option<NonZeroUsize>,
    /// Run `room-chat` a thread per bot, with blocking sockets, as the other scenarios and
    /// Windows do (to compare the two, or to test that path on Linux).
    pub thread_per_bot: bool,
}

impl Default for SwarmConfig {
    fn default() -> SwarmConfig {
        SwarmConfig {
            addr: ([127, 0, 0, 1], 7001).into(),
            also: Vec::new(),
            bots: 100,
            rooms: 10,
            first_room: 0,
            scenario: Scenario::RoomChat,
            rate: 10.0,
            duration: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            user_prefix: "bot".into(),
            threads: None,
            thread_per_bot: false,
        }
    }
}

/// A latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("no samples");
        }
        write!(
            f,
            "p50 {} us, p99 {} us, p99.9 {} us, max {} us ({} samples)",
            self.p50_us, self.p99_us, self.p999_us, self.max_us, self.count
        )
    }
}

/// What a swarm saw.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BotsReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The chat server.
    pub addr: String,
    /// Bots started.
    pub bots: usize,
    /// Rooms used.
    pub rooms: usize,
    /// Bots that connected (at least once).
    pub connected: usize,
    /// Seconds the bots worked.
    pub duration_secs: f64,
    /// Requests answered (connects for `connect` and `reconnect`).
    pub requests: u64,
    /// Requests answered per second.
    pub requests_per_sec: f64,
    /// Chats sent.
    pub chats_sent: u64,
    /// Chat notifies received.
    pub notifies_received: u64,
    /// Chat fan-out latency: a chat sent to its notify received, at every receiver.
    pub fanout_latency: Latency,
    /// Request to response (connect time for `connect` and `reconnect`).
    pub request_latency: Latency,
    /// Packets that break the protocol or do not belong where they came.
    pub protocol_errors: u64,
    /// Requests answered with a result other than 0, or not answered in time.
    pub failed_requests: u64,
    /// Connections that failed or were closed by the server.
    pub disconnects: u64,
    /// Notifies that should have arrived and did not.
    pub lost_notifies: u64,
    /// Notifies that arrived twice.
    pub duplicated_notifies: u64,
    /// Bots that saw their room's chats in another order than the room's other members;
    /// for `room-inout`, rooms whose members' views agree on no one order of the enters
    /// and leaves.
    pub order_mismatches: u64,
    /// `room-inout`: stays in a room (enter to leave) whose membership view was checked.
    pub membership_views: u64,
    /// The bots' own CPU time, user + system, in seconds: every bot thread's from its start
    /// to its end (`RUSAGE_THREAD`; `GetThreadTimes` on Windows), so a server in the same
    /// process is not counted. Against the run's length and the cores the bots had, it says
    /// whether the bots, not the server, were the limit. Windows counts a thread's time in
    /// clock ticks (15.6 ms; 10 ms under Wine), so there a short run of light bots reads
    /// low, down to 0.
    pub bots_cpu_secs: f64,
}

impl BotsReport {
    /// No lost, duplicated or reordered notify, no protocol error, no failed request, no
    /// disconnect, and every bot connected.
    pub fn is_clean(&self) -> bool {
        self.connected == self.bots
            && self.protocol_errors == 0
            && self.failed_requests == 0
            && self.disconnects == 0
            && self.lost_notifies == 0
            && self.duplicated_notifies == 0
            && self.order_mismatches == 0
    }
}

impl BotsReport {
    /// What went wrong, one phrase each, worst first; empty when [`BotsReport::is_clean`].
    /// A swarm of which no bot connected says so, rather than counting its failed
    /// connects as anything else.
    pub fn problems(&self) -> Vec<String> {
        if self.connected == 0 {
            return vec!["no bot could connect (is a chat server listening there?)".into()];
        }
        let mut problems = Vec::new();
        if self.connected < self.bots {
            problems.push(format!(
                "{} of {} bots never connected",
                self.bots - self.connected,
                self.bots
            ));
        }
        let counts = [
            (self.protocol_errors, "protocol errors"),
            (self.failed_requests, "failed or unanswered requests"),
            (
                self.disconnects,
                "connections failed or closed by the server",
            ),
            (self.lost_notifies, "notifies lost"),
            (self.duplicated_notifies, "notifies duplicated"),
            (
                self.order_mismatches,
                if self.scenario == Scenario::RoomInout {
                    "rooms whose membership views disagree"
                } else {
                    "bots that saw their room's chats out of order"
                },
            ),
        ];
        problems.extend(
            counts
                .into_iter()
                .filter(|&(count, _)| count > 0)
                .map(|(count, what)| format!("{count} {what}")),
        );
        problems
    }
}

impl fmt::Display for BotsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} bots ({} connected), {} rooms, scenario {}, {:.1} s against {}",
            self.bots,
            self.connected,
            self.rooms,
            self.scenario.name(),
            self.duration_secs,
            self.addr
        )?;
        writeln!(
            f,
            "requests:       {} ({:.0}/s)",
            self.requests, self.requests_per_sec
        )?;
        writeln!(f, "request rtt:    {}", self.request_latency)?;
        if self.scenario == Scenario::RoomInout {
            writeln!(f, "membership:     {} stays checked", self.membership_views)?;
        }
        if self.scenario == Scenario::RoomChat {
            writeln!(
                f,
                "chats:          {} sent, {} notifies received",
                self.chats_sent, self.notifies_received
            )?;
            writeln!(f, "fan-out:        {}", self.fanout_latency)?;
        }
        writeln!(
            f,
            "errors:         {} protocol, {} failed requests, {} disconnects",
            self.protocol_errors, self.failed_requests, self.disconnects
        )?;
        writeln!(
            f,
            "notifies:       {} lost, {} duplicated, {} bots out of order",
            self.lost_notifies, self.duplicated_notifies, self.order_mismatches
        )?;
        writeln!(
            f,
            "bots CPU:       {:.2} s (user + system, the bot threads)",
            self.bots_cpu_secs
        )?;
        writeln!(
            f,
            "verdict:        {}",
            if self.is_clean() { "clean" } else { "PROBLEMS" }
        )
    }
}

/// What every bot shares.
struct Swarm {
    config: SwarmConfig,
    epoch: Instant,
    /// Everyone has joined (room-chat) or is ready to start: one party per bot thread.
    ready: Barrier,
    /// Chats sent, per bot.
    sent: Vec<AtomicU64>,
    requests: AtomicU64,
    finished: AtomicUsize,
}

impl Swarm {
    /// `at` in nanoseconds since the swarm's epoch: what a chat carries as its send time.
    fn nanos_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn user_id(&self, bot: usize) -> Vec<u8> {
        format!("{}{bot}", self.config.user_prefix).into_bytes()
    }

    /// The instance bot `bot` connects to.
    fn addr_of(&self, bot: usize) -> SocketAddr {
        let config = &self.config;
        match bot % (1 + config.also.len()) {
            0 => config.addr,
            i => config.also[i - 1],
        }
    }

    fn room_of(&self, bot: usize) -> usize {
        self.config.first_room + bot % self.config.rooms
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.config.rate.max(0.001))
    }

    /// When bot `bot` does its first operation: spread evenly over one period.
    fn first_op(&self, start: Instant, bot: usize) -> Instant {
        start
            + self
                .period()
                .mul_f64(bot as f64 / self.config.bots.max(1) as f64)
    }
}

/// What one bot saw, or (event-driven `room-chat`) all the bots of one thread.
struct Outcome {
    /// Bots that connected (at least once).
    connected: usize,
    fanout: Histogram<u64>,
    request: Histogram<u64>,
    notifies: u64,
    protocol_errors: u64,
    failed: u64,
    disconnects: u64,
    lost: u64,
    duplicated: u64,
    /// (room, hash of the chat order seen) of every room-chat bot that ran to its end.
    orders: Vec<(usize, u64)>,
    /// What a room-inout bot was told.
    inout: Option<InoutLog>,
    /// The CPU time its thread used (or threads: bots of one thread share it).
    cpu: Duration,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub(crate) fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            connected: 0,
            fanout: histogram(),
            request: histogram(),
            notifies: 0,
            protocol_errors: 0,
            failed: 0,
            disconnects: 0,
            lost: 0,
            duplicated: 0,
            orders: Vec::new(),
            inout: None,
            cpu: Duration::ZERO,
        }
    }

    fn error(&mut self, error: ClientError) {
        match error {
            ClientError::Protocol(_) => self.protocol_errors += 1,
            ClientError::Timeout(_) => self.failed += 1,
            ClientError::Closed | ClientError::Io { .. } => self.disconnects += 1,
        }
    }

    /// A request sent at `sent` was answered at `now`.
    fn request_done(&mut self, swarm: &Swarm, sent: Instant, now: Instant) {
        self.request
            .saturating_record(micros(now.saturating_duration_since(sent)));
        swarm.requests.fetch_add(1, Relaxed);
    }
}

/// Where a swarm is, handed to the callback of [`run_swarm_with_progress`].
#[derive(Clone, Copy, Debug)]
pub struct SwarmProgress {
    /// Time since the bots started.
    pub elapsed: Duration,
    /// How long the bots work ([`SwarmConfig::duration`]).
    pub duration: Duration,
    /// Requests answered so far.
    pub requests: u64,
    /// Chats sent so far.
    pub chats_sent: u64,
    /// Bots that have finished.
    pub finished: usize,
    /// Bots started.
    pub bots: usize,
}

/// How often [`run_swarm_with_progress`] calls its callback.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// Run a swarm against a running server and gather what the bots saw.
pub fn run_swarm(config: &SwarmConfig) -> Result<BotsReport, Error> {
    run_swarm_with_progress(config, |_| {})
}

/// [`run_swarm`], calling `progress` from the calling thread about ten times a second
/// until every bot is done.
pub fn run_swarm_with_progress(
    config: &SwarmConfig,
    mut progress: impl FnMut(&SwarmProgress),
) -> Result<BotsReport, Error> {
    if config.bots == 0 || config.rooms == 0 || config.first_room + config.rooms > MAX_ROOMS {
        return Err(Error::Config {
            what: format!(
                "the swarm needs at least one bot and 1 to {MAX_ROOMS} rooms, the last below {MAX_ROOMS}"
            ),
        });
    }
    if !config.rate.is_finite() || config.rate <= 0.0 {
        return Err(Error::Config {
            what: "--rate must be a number above 0".into(),
        });
    }
    let event_threads = event_driven_threads(config);
    let swarm = Arc::new(Swarm {
        config: config.clone(),
        epoch: Instant::now(),
        ready: Barrier::new(event_threads.unwrap_or(config.bots)),
        sent: (0..config.bots).map(|_| AtomicU64::new(0)).collect(),
        requests: AtomicU64::new(0),
        finished: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let threads = spawn_bots(&swarm, event_threads)?;
    while swarm.finished.load(Relaxed) < config.bots {
        progress(&SwarmProgress {
            elapsed: started.elapsed(),
            duration: config.duration,
            requests: swarm.requests.load(Relaxed),
            chats_sent: swarm.sent.iter().map(|s| s.load(Relaxed)).sum(),
            finished: swarm.finished.load(Relaxed),
            bots: config.bots,
        });
        // Only paces the callback; results come from joining the bots.
        std::thread::sleep(PROGRESS_TICK);
    }
    let mut outcomes = Vec::with_capacity(threads.len());
    for thread in threads {
        match thread.join() {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => {
                let mut outcome = Outcome::new();
                outcome.protocol_errors += 1;
                outcomes.push(outcome);
            }
        }
    }
    let elapsed = started.elapsed();
    let mut fanout = histogram();
    let mut request = histogram();
    let mut report = BotsReport {
        scenario: config.scenario,
        addr: std::iter::once(&config.addr)
            .chain(&config.also)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(","),
        bots: config.bots,
        rooms: config.rooms,
        connected: 0,
        duration_secs: config.duration.as_secs_f64(),
        requests: swarm.requests.load(Relaxed),
        requests_per_sec: 0.0,
        chats_sent: swarm.sent.iter().map(|s| s.load(Relaxed)).sum(),
        notifies_received: 0,
        fanout_latency: Latency::default(),
        request_latency: Latency::default(),
        protocol_errors: 0,
        failed_requests: 0,
        disconnects: 0,
        lost_notifies: 0,
        duplicated_notifies: 0,
        order_mismatches: 0,
        membership_views: 0,
        bots_cpu_secs: 0.0,
    };
    let mut orders: HashMap<usize, Vec<u64>> = HashMap::new();
    for o in &outcomes {
        report.connected += o.connected;
        let _ = fanout.add(&o.fanout);
        let _ = request.add(&o.request);
        report.notifies_received += o.notifies;
        report.protocol_errors += o.protocol_errors;
        report.failed_requests += o.failed;
        report.disconnects += o.disconnects;
        report.lost_notifies += o.lost;
        report.duplicated_notifies += o.duplicated;
        report.bots_cpu_secs += o.cpu.as_secs_f64();
        for &(room, hash) in &o.orders {
            orders.entry(room).or_default().push(hash);
        }
    }
    for hashes in orders.values() {
        // Bots that disagree with their room's most common order.
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for &h in hashes {
            *counts.entry(h).or_default() += 1;
        }
        let agreeing = counts.values().copied().max().unwrap_or(0);
        report.order_mismatches += hashes.len() as u64 - agreeing;
    }
    if config.scenario == Scenario::RoomInout {
        check_membership(&swarm, &outcomes, &mut report);
    }
    let working = config
        .duration
        .as_secs_f64()
        .min(elapsed.as_secs_f64())
        .max(1e-9);
    report.requests_per_sec = report.requests as f64 / working;
    report.fanout_latency = Latency::of(&fanout);
    report.request_latency = Latency::of(&request);
    Ok(report)
}

/// How many threads run the bots event-driven, or `None` for a thread per bot: `room-chat`
/// on Linux unless [`SwarmConfig::thread_per_bot`].
fn event_driven_threads(config: &SwarmConfig) -> Option<usize> {
    if !cfg!(target_os = "linux") || config.scenario != Scenario::RoomChat || config.thread_per_bot
    {
        return None;
    }
    let threads = config
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    Some(threads.min(config.bots))
}

/// Start the bots: `event_threads` threads of many bots each, or a thread per bot.
fn spawn_bots(
    swarm: &Arc<Swarm>,
    event_threads: Option<usize>,
) -> Result<Vec<std::thread::JoinHandle<Outcome>>, Error> {
    #[cfg(target_os = "linux")]
    if let Some(threads) = event_threads {
        return epoll::spawn(swarm, threads);
    }
    debug_assert!(event_threads.is_none(), "event-driven bots are Linux only");
    let mut threads = Vec::with_capacity(swarm.config.bots);
    for bot in 0..swarm.config.bots {
        let swarm = swarm.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bot-{bot}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut outcome = match swarm.config.scenario {
                    Scenario::Connect => connect_bot(&swarm, bot),
                    Scenario::Reconnect => reconnect_bot(&swarm, bot),
                    Scenario::Login => login_bot(&swarm, bot),
                    Scenario::RoomInout => room_inout_bot(&swarm, bot),
                    Scenario::RoomChat => room_chat_bot(&swarm, bot),
                };
                // A new thread starts at zero: this is all the bot used.
                outcome.cpu = thread_cpu_time();
                swarm.finished.fetch_add(1, Relaxed);
                outcome
            });
        match thread {
            Ok(thread) => threads.push(thread),
            Err(source) => {
                // The barrier counts on every bot: without them all, the others would wait
                // for ever. Nothing to do but report it.
                return Err(Error::Io {
                    context: "spawning a bot thread",
                    source,
                });
            }
        }
    }
    Ok(threads)
}

/// Connect bot `bot` to its instance.
fn connect(swarm: &Swarm, bot: usize, outcome: &mut Outcome) -> Option<Connection> {
    let sent = Instant::now();
    match Connection::connect(swarm.addr_of(bot)) {
        Ok(c) => {
            outcome.connected = 1;
            outcome.request_done(swarm, sent, Instant::now());
            Some(c)
        }
        Err(e) => {
            outcome.error(e);
            None
        }
    }
}

/// Log in as `user_id` and wait for the answer; `true` if it was 0.
fn login(
    swarm: &Swarm,
    outcome: &mut Outcome,
    connection: &mut Connection,
    user_id: Vec<u8>,
) -> bool {
    let sent = Instant::now();
    let request = Request::Login {
        user_id,
        password: b"bot".to_vec(),
    };
    if let Err(e) = connection.send(&request) {
        outcome.error(e);
        return false;
    }
    match connection.recv(swarm.config.response_timeout) {
        Ok(Response::Login { result: 0 }) => {
            outcome.request_done(swarm, sent, Instant::now());
            true
        }
        Ok(Response::Login { .. }) => {
            outcome.failed += 1;
            false
        }
        Ok(_) => {
            outcome.protocol_errors += 1;
            false
        }
        Err(e) => {
            outcome.error(e);
            false
        }
    }
}

fn connect_bot(swarm: &Swarm, bot: usize) -> Outcome {
    let mut outcome = Outcome::new();
    let connection = connect(swarm, bot, &mut outcome);
    swarm.ready.wait();
    let Some(mut connection) = connection else {
        return outcome;
    };
    let deadline = Instant::now() + swarm.config.duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return outcome;
        }
        match connection.poll(Some(left)) {
            Ok(None) => {}
            Ok(Some(_)) => outcome.protocol_errors += 1,
            Err(e) => {
                outcome.error(e);
                return outcome;
            }
        }
    }
}

/// Wait until `at` (workload pacing, not synchronisation).
fn pace(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

fn reconnect_bot(swarm: &Swarm, bot: usize) -> Outcome {
    let mut outcome = Outcome::new();
    swarm.ready.wait();
    let start = Instant::now();
    let deadline = start + swarm.config.duration;
    let mut next = swarm.first_op(start, bot);
    while next < deadline {
        pace(next);
        drop(connect(swarm, bot, &mut outcome));
        next += swarm.period();
    }
    outcome
}

fn login_bot(swarm: &Swarm, bot: usize) -> Outcome {
    let mut outcome = Outcome::new();
    swarm.ready.wait();
    let start = Instant::now();
    let deadline = start + swarm.config.duration;
    let mut next = swarm.first_op(start, bot);
    let mut round = 0u64;
    while next < deadline {
        pace(next);
        if let Some(mut connection) = connect(swarm, bot, &mut outcome) {
            let user_id = format!("{}{bot}-{round}", swarm.config.user_prefix).into_bytes();
            login(swarm, &mut outcome, &mut connection, user_id);
        }
        round += 1;
        next += swarm.period();
    }
    outcome
}

/// What a `room-inout` bot was told about its room, for the membership check.
struct InoutLog {
    bot: usize,
    room: usize,
    /// Every stay, each ended by the server's 216.
    stays: Vec<Stay>,
    /// Every (unique id, user id) a 208 or 209 named.
    names: Vec<(i64, Vec<u8>)>,
    /// The bot ran to the end: every stay it began, it ended with a 216.
    complete: bool,
}

fn room_inout_bot(swarm: &Swarm, bot: usize) -> Outcome {
    let mut outcome = Outcome::new();
    let mut connection = connect(swarm, bot, &mut outcome);
    if let Some(c) = connection.as_mut() {
        if !login(swarm, &mut outcome, c, swarm.user_id(bot)) {
            connection = None;
        }
    }
    swarm.ready.wait();
    let Some(mut connection) = connection else {
        return outcome;
    };
    let room = swarm.room_of(bot);
    let mut log = InoutLog {
        bot,
        room,
        stays: Vec::new(),
        names: Vec::new(),
        complete: false,
    };
    inout_loop(swarm, bot, &mut connection, &mut outcome, &mut log);
    outcome.inout = Some(log);
    outcome
}

/// Enter and leave the bot's room until the deadline, then leave it if in it, so that
/// every stay ends with the server's 216 and every view is whole. Records what the server
/// said in `log`; sets `log.complete` if it got to the end.
fn inout_loop(
    swarm: &Swarm,
    bot: usize,
    connection: &mut Connection,
    outcome: &mut Outcome,
    log: &mut InoutLog,
) {
    let room = log.room as i32;
    let start = Instant::now();
    let deadline = start + swarm.config.duration;
    let mut next = swarm.first_op(start, bot);
    // The stay under way, and whether its 209 came.
    let mut stay: Option<Stay> = None;
    let mut listed = false;
    let mut waiting: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if waiting.is_none() {
            let leave_at_end = now >= deadline && stay.is_some();
            if now >= deadline && !leave_at_end {
                log.complete = true;
                return;
            }
            if now >= next || leave_at_end {
                let request = if stay.is_some() {
                    Request::RoomLeave
                } else {
                    Request::RoomEnter { room }
                };
                if let Err(e) = connection.send(&request) {
                    outcome.error(e);
                    return;
                }
                waiting = Some(now);
                next += swarm.period();
                continue;
            }
        }
        let wake = match waiting {
            Some(sent) => sent + swarm.config.response_timeout,
            None => next.min(deadline),
        };
        let response = match connection.poll(Some(wake.saturating_duration_since(now))) {
            Ok(Some(r)) => r,
            Ok(None) => {
                if waiting.is_some() {
                    outcome.failed += 1;
                    return;
                }
                continue;
            }
            Err(e) => {
                outcome.error(e);
                return;
            }
        };
        match (response, stay.as_mut()) {
            (Response::RoomEnter { result }, None) if waiting.is_some() => {
                outcome.request_done(swarm, waiting.take().unwrap_or(now), Instant::now());
                if result == 0 {
                    stay = Some(Stay::default());
                    listed = false;
                } else {
                    outcome.failed += 1;
                }
            }
            (Response::RoomUserList(users), Some(stay)) if !listed => {
                listed = true;
                for user in users {
                    stay.list.push(user.unique_id);
                    log.names.push((user.unique_id, user.user_id));
                }
            }
            (Response::RoomNewUser(user), Some(stay)) if listed => {
                stay.changes.push(Change::Entered(user.unique_id));
                log.names.push((user.unique_id, user.user_id));
            }
            (Response::RoomLeaveUser { unique_id }, Some(stay)) if listed => {
                stay.changes.push(Change::Left(unique_id));
            }
            (Response::RoomLeave { result }, Some(_)) if waiting.is_some() && listed => {
                outcome.request_done(swarm, waiting.take().unwrap_or(now), Instant::now());
                if result != 0 {
                    // The bot and the server disagree on where it is: stop here.
                    outcome.failed += 1;
                    return;
                }
                log.stays.extend(stay.take());
            }
            // Anything else is out of place: a notify outside the room, an answer to
            // nothing asked.
            _ => outcome.protocol_errors += 1,
        }
    }
}

/// The membership check of `room-inout` (see [`crate::membership`]) over every bot's
/// log; rooms where a bot did not run to the end (that failure is counted already) are
/// left out, their views being partial.
fn check_membership(swarm: &Swarm, outcomes: &[Outcome], report: &mut BotsReport) {
    let bot_of_user: HashMap<Vec<u8>, usize> = (0..swarm.config.bots)
        .map(|b| (swarm.user_id(b), b))
        .collect();
    // Unique id -> bot, from every name any bot was told.
    let mut bot_of_id: HashMap<i64, usize> = HashMap::new();
    for (id, user) in outcomes
        .iter()
        .filter_map(|o| o.inout.as_ref())
        .flat_map(|log| &log.names)
    {
        match bot_of_user.get(user) {
            Some(&b) => {
                if *bot_of_id.entry(*id).or_insert(b) != b {
                    // One unique id for two users.
                    report.protocol_errors += 1;
                }
            }
            // A user that is none of the bots.
            None => report.protocol_errors += 1,
        }
    }
    let mut rooms: HashMap<usize, Vec<(usize, &InoutLog)>> = HashMap::new();
    for log in outcomes.iter().filter_map(|o| o.inout.as_ref()) {
        rooms.entry(log.room).or_default().push((log.bot, log));
    }
    for logs in rooms.values() {
        if logs.len() != logs.iter().filter(|(_, l)| l.complete).count()
            || logs.len()
                != (0..swarm.config.bots)
                    .filter(|&b| swarm.room_of(b) == logs[0].1.room)
                    .count()
        {
            continue;
        }
        // Bots named by their position in this room.
        let position: HashMap<usize, usize> =
            logs.iter().enumerate().map(|(i, &(b, _))| (b, i)).collect();
        let bot_of: HashMap<i64, usize> = bot_of_id
            .iter()
            .filter_map(|(&id, b)| position.get(b).map(|&p| (id, p)))
            .collect();
        let stays: Vec<Vec<Stay>> = logs.iter().map(|(_, l)| l.stays.clone()).collect();
        let verdict = crate::membership::check_room(&stays, &bot_of);
        report.membership_views += verdict.stays;
        report.lost_notifies += verdict.lost;
        report.duplicated_notifies += verdict.duplicated;
        report.order_mismatches += verdict.order;
    }
}

/// One bot of `room-chat`, on a thread of its own.
fn room_chat_bot(swarm: &Swarm, bot: usize) -> Outcome {
    let mut outcome = Outcome::new();
    let joined = join_room(swarm, bot, &mut outcome);
    swarm.ready.wait();
    let Some(mut connection) = joined else {
        return outcome;
    };
    let mut check = ChatCheck::new(swarm, bot);
    let start = Instant::now();
    let deadline = start + swarm.config.duration;
    let mut next = swarm.first_op(start, bot);
    let mut seq = 0u64;

    // Chat until the deadline.
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next {
            let message = ChatMessage::chat(bot, seq, swarm.nanos_at(now));
            if let Err(e) = connection.send(&Request::RoomChat { message }) {
                outcome.error(e);
                return outcome;
            }
            check.sent(now);
            seq += 1;
            swarm.sent[bot].store(seq, Relaxed);
            next += swarm.period();
            continue;
        }
        match connection.poll(Some(next.min(deadline) - now)) {
            Ok(Some(response)) => check.response(swarm, &mut outcome, response, Instant::now()),
            Ok(None) => {}
            Err(e) => {
                outcome.error(e);
                return outcome;
            }
        }
    }

    // Say how many were sent, then wait for everyone's fin: after it, nothing is due.
    let fin = ChatMessage::fin(bot, seq);
    if let Err(e) = connection.send(&Request::RoomChat { message: fin }) {
        outcome.error(e);
        return outcome;
    }
    check.sent(Instant::now());
    let drain = Instant::now() + swarm.config.drain_timeout;
    while !check.is_done() {
        let left = drain.saturating_duration_since(Instant::now());
        match connection.poll(Some(left)) {
            Ok(Some(response)) => check.response(swarm, &mut outcome, response, Instant::now()),
            Ok(None) => {
                // Whatever did not come in time is lost.
                check.give_up(swarm, &mut outcome);
                break;
            }
            Err(e) => {
                outcome.error(e);
                return outcome;
            }
        }
    }
    check.finish(&mut outcome);
    outcome
}

/// Connect, log in and enter the bot's room.
fn join_room(swarm: &Swarm, bot: usize, outcome: &mut Outcome) -> Option<Connection> {
    let mut connection = connect(swarm, bot, outcome)?;
    if !login(swarm, outcome, &mut connection, swarm.user_id(bot)) {
        return None;
    }
    let sent = Instant::now();
    let room = swarm.room_of(bot) as i32;
    if let Err(e) = connection.send(&Request::RoomEnter { room }) {
        outcome.error(e);
        return None;
    }
    let timeout = swarm.config.response_timeout;
    match connection.recv(timeout) {
        Ok(Response::RoomEnter { result: 0 }) => outcome.request_done(swarm, sent, Instant::now()),
        Ok(Response::RoomEnter { result }) => {
            tracing::warn!(bot, result = ?ResultCode::from_code_i16(result), "room enter refused");
            outcome.failed += 1;
            return None;
        }
        Ok(_) => {
            outcome.protocol_errors += 1;
            return None;
        }
        Err(e) => {
            outcome.error(e);
            return None;
        }
    }
    match connection.recv(timeout) {
        Ok(Response::RoomUserList(_)) => Some(connection),
        Ok(_) => {
            outcome.protocol_errors += 1;
            None
        }
        Err(e) => {
            outcome.error(e);
            None
        }
    }
}
