//! The chaos suite: hostile clients against any server that speaks the protocol (ours on
//! any model, or someone else's), each scenario ending in a verdict (pass, or fail with
//! its reasons) and the numbers behind it.
//!
//! What each scenario proves when it passes:
//!
//! - **flood**: a member that chats as fast as it can and never reads cannot hurt the
//!   others in its room. `readers` members chat among themselves at a modest rate and read
//!   everything while the flooder writes chats back to back. Every reader must stay
//!   connected, get every reader's chat once, in one order shared by all readers, and see
//!   the flooder's chats as one gap-free prefix 0..k with the same k at every reader (the
//!   chats the server accepted before it cut or slowed the flooder: a server may refuse a
//!   flood, but not show it differently to different members). With the server's pid, its
//!   resident memory must not grow past a bound while the flood lasts (the flooder's
//!   backlog must not pile up in the server). The flooder's fate (cut after how long and
//!   how many bytes, or slowed) is reported, not judged: either is a defence.
//! - **anonymous**: connections that never log in cannot hold the server. Many are opened
//!   and left silent; meanwhile two real users log in, enter a room and chat, each step
//!   answered within `max_round_trip`. Every silent connection must be closed by the server
//!   between `login_timeout - 1 s` and `login_timeout + slack` after it connected; one
//!   closed at once (a server with a cap on anonymous connections turns the extras away)
//!   is counted apart and accepted.
//! - **stall**: the same with connections that send the first 3 bytes of a 5-byte header
//!   and then nothing: a server waiting for the rest of a packet must still enforce its
//!   login deadline.
//! - **spray**: garbage on some connections does not disturb the others. Connections send
//!   random bytes from a seeded generator (random lengths; valid headers with garbage
//!   bodies; huge declared lengths; unknown ids; partial headers), each reconnecting when
//!   the server closes it, while two members chat with each other at a steady rate: both
//!   must stay connected and get every chat of the other, in order.
//! - **churn**: sessions come and go without leaking. Rounds of connections each connect,
//!   log in with a fresh user id, enter a room, leave and close (the server must close its
//!   side after ours); every step must be answered correctly, and with the server's pid
//!   its resident memory after each round must stay flat.
//!
//! The scenarios use plain blocking sockets through [`Connection`](crate::Connection), a
//! thread per well-behaved member; the many silent connections of `anonymous` and `stall`
//! are watched for their close with epoll (Linux) or `WSAPoll` (Windows), so that each
//! close is timed when it happens.

mod churn;
mod flood;
mod member;
mod sample;
mod silent;
mod spray;
mod watch;

pub use churn::{ChurnReport, ChurnRound};
pub use flood::{FloodReport, FlooderFate};
pub use member::MemberReport;
pub use sample::ServerUsage;
pub use silent::{RealUserStep, SilentReport};
pub use spray::SprayReport;

use crate::client::{ClientError, Connection};
use crate::error::Error;
use iomodels_proto::{Request, Response, ResultCode, RoomUser};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A chaos scenario: what the hostile clients do, and what a pass proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosScenario {
    /// One member floods its room with chats and never reads, beside readers that chat at
    /// a modest rate and read everything. A pass: every reader stayed connected, got every
    /// reader's chat once, in one order shared by all, and the flooder's chats as one
    /// gap-free prefix 0..k with the same k everywhere; with the server's pid, its memory
    /// grew less than the bound. The flooder's fate (cut, or slowed) is reported.
    Flood,
    /// Many connections that never send anything, while two real users log in, enter a
    /// room and chat. A pass: every silent connection was closed by the server between
    /// `login_timeout - 1 s` and `login_timeout + slack` after it connected (or refused at
    /// once, by a cap), and every step of the real users took under `max_round_trip`.
    Anonymous,
    /// As [`ChaosScenario::Anonymous`], with connections that send 3 bytes of a 5-byte
    /// header and then nothing: a server waiting for a packet's end must still enforce its
    /// login deadline.
    Stall,
    /// Connections that send seeded random bytes (garbage, valid headers with garbage
    /// bodies, huge declared lengths, partial headers), reconnecting when closed, while two
    /// members chat. A pass: both stayed connected and got every chat of the other, in
    /// order. How many spray connections the server closed, and how fast, is reported.
    Spray,
    /// Rounds of connections that each log in with a fresh user id, enter a room, leave
    /// and close. A pass: every step of every connection was answered correctly (the
    /// server closing its side after ours included), and with the server's pid its memory
    /// after the last round is within the bound of the first's.
    Churn,
}

impl ChaosScenario {
    /// Every chaos scenario.
    pub const ALL: [ChaosScenario; 5] = [
        ChaosScenario::Flood,
        ChaosScenario::Anonymous,
        ChaosScenario::Stall,
        ChaosScenario::Spray,
        ChaosScenario::Churn,
    ];

    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            ChaosScenario::Flood => "flood",
            ChaosScenario::Anonymous => "anonymous",
            ChaosScenario::Stall => "stall",
            ChaosScenario::Spray => "spray",
            ChaosScenario::Churn => "churn",
        }
    }

    /// One line on what the scenario does.
    pub fn description(self) -> &'static str {
        match self {
            ChaosScenario::Flood => {
                "chaos: one member floods its room and never reads; the readers must not suffer"
            }
            ChaosScenario::Anonymous => {
                "chaos: silent connections must be closed by the login timeout; real users served"
            }
            ChaosScenario::Stall => {
                "chaos: connections stalled inside a header must be closed by the login timeout"
            }
            ChaosScenario::Spray => {
                "chaos: connections spraying random bytes must not disturb two members chatting"
            }
            ChaosScenario::Churn => {
                "chaos: rounds of log in, enter, leave, close; answers right, memory flat"
            }
        }
    }
}

impl fmt::Display for ChaosScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A chaos scenario's settings. [`ChaosConfig::new`] fills in the scenario's defaults;
/// each field says which scenarios read it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChaosConfig {
    /// The chat server.
    pub addr: SocketAddr,
    /// What to run.
    pub scenario: ChaosScenario,
    /// flood, spray: how long the attack lasts (10 s).
    pub duration: Duration,
    /// flood: members that read and chat beside the flooder (4).
    pub readers: usize,
    /// flood, spray: chats per second of each well-behaved member (5).
    pub rate: f64,
    /// anonymous, stall, spray: hostile connections (2000, 500, 50).
    pub connections: usize,
    /// churn: rounds (5).
    pub rounds: usize,
    /// churn: connections per round (300).
    pub per_round: usize,
    /// anonymous, stall: the login deadline the server is expected to enforce (the chat
    /// server's default, 10 s).
    pub login_timeout: Duration,
    /// anonymous, stall: how late after the deadline a close still counts (5 s).
    pub slack: Duration,
    /// anonymous, stall: the longest a real user's step may take (1 s).
    pub max_round_trip: Duration,
    /// The room the well-behaved users meet in (0).
    pub room: i32,
    /// The server's process, to sample its resident memory and CPU time (judged by flood
    /// and churn, reported by the others). `None`: not sampled.
    pub server_pid: Option<u32>,
    /// flood: the most the server's resident memory may grow during the flood (64 MiB);
    /// churn: the most it may differ between the first round and the last (8 MiB). Bytes.
    pub rss_bound: u64,
    /// churn: how long to let the server settle before sampling its memory after a round
    /// (500 ms). No event says that a server has given memory back; this is a pause
    /// before a measurement, not a wait for an answer.
    pub settle: Duration,
    /// spray: the seed of the random bytes (1); one seed, one spray.
    pub seed: u64,
    /// How long any one answer may take before it counts as lost (10 s).
    pub response_timeout: Duration,
    /// flood, spray: how long members wait after the attack for what is still on its way
    /// (10 s).
    pub drain_timeout: Duration,
    /// User ids start with this (at most 12 bytes), then a tag of the run, so that runs
    /// against one server do not collide ("chaos").
    pub user_prefix: String,
}

/// A mebibyte, in bytes.
const MIB: u64 = 1024 * 1024;

impl ChaosConfig {
    /// The defaults of `scenario` against `addr`.
    pub fn new(scenario: ChaosScenario, addr: SocketAddr) -> ChaosConfig {
        ChaosConfig {
            addr,
            scenario,
            duration: Duration::from_secs(10),
            readers: 4,
            rate: 5.0,
            connections: match scenario {
                ChaosScenario::Anonymous => 2000,
                ChaosScenario::Stall => 500,
                ChaosScenario::Spray => 50,
                ChaosScenario::Flood | ChaosScenario::Churn => 0,
            },
            rounds: 5,
            per_round: 300,
            login_timeout: crate::config::DEFAULT_LOGIN_TIMEOUT,
            slack: Duration::from_secs(5),
            max_round_trip: Duration::from_secs(1),
            room: 0,
            server_pid: None,
            rss_bound: match scenario {
                ChaosScenario::Churn => 8 * MIB,
                _ => 64 * MIB,
            },
            settle: Duration::from_millis(500),
            seed: 1,
            response_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            user_prefix: "chaos".into(),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let needs = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::Config {
                    what: format!("{}: {what}", self.scenario),
                })
            }
        };
        needs(
            self.rate.is_finite() && self.rate > 0.0,
            "--rate must be a number above 0",
        )?;
        needs(
            self.user_prefix.len() <= 12,
            "the user prefix must be at most 12 bytes (user ids are at most 32)",
        )?;
        needs(
            !self.response_timeout.is_zero(),
            "the response timeout must be above 0",
        )?;
        match self.scenario {
            ChaosScenario::Flood => needs(
                (1..=126).contains(&self.readers),
                "--readers must be 1 to 126 (a room holds at most 127 users)",
            ),
            ChaosScenario::Anonymous | ChaosScenario::Stall => {
                needs(self.connections >= 1, "--connections must be at least 1")?;
                needs(
                    !self.login_timeout.is_zero(),
                    "--login-timeout must be above 0",
                )
            }
            ChaosScenario::Spray => needs(self.connections >= 1, "--connections must be at least 1"),
            ChaosScenario::Churn => needs(
                self.rounds >= 2 && self.per_round >= 1,
                "--rounds must be at least 2 (memory is compared between rounds) and --per-round at least 1",
            ),
        }
    }
}

/// What a scenario found, beyond the verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosDetails {
    /// flood.
    Flood(FloodReport),
    /// anonymous.
    Anonymous(SilentReport),
    /// stall.
    Stall(SilentReport),
    /// spray.
    Spray(SprayReport),
    /// churn.
    Churn(ChurnReport),
}

/// What a chaos scenario found: the verdict, its reasons and the numbers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChaosReport {
    /// The scenario.
    pub scenario: ChaosScenario,
    /// The server attacked.
    pub addr: String,
    /// The verdict: true when `problems` is empty.
    pub passed: bool,
    /// Why the verdict failed, one phrase each.
    pub problems: Vec<String>,
    /// Seconds the whole scenario took, setup and drain included.
    pub elapsed_secs: f64,
    /// The server's memory and CPU time, with [`ChaosConfig::server_pid`].
    pub server: Option<ServerUsage>,
    /// The scenario's own numbers.
    pub details: ChaosDetails,
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos {} against {}, {:.1} s",
            self.scenario, self.addr, self.elapsed_secs
        )?;
        match &self.details {
            ChaosDetails::Flood(report) => write!(f, "{report}")?,
            ChaosDetails::Anonymous(report) | ChaosDetails::Stall(report) => write!(f, "{report}")?,
            ChaosDetails::Spray(report) => write!(f, "{report}")?,
            ChaosDetails::Churn(report) => write!(f, "{report}")?,
        }
        if let Some(server) = &self.server {
            writeln!(f, "server:       {server}")?;
        }
        if self.passed {
            writeln!(f, "verdict:      pass")
        } else {
            writeln!(f, "verdict:      FAIL")?;
            for problem in &self.problems {
                writeln!(f, "  - {problem}")?;
            }
            Ok(())
        }
    }
}

/// Run a chaos scenario against a running server. `Err` when the scenario could not run
/// (a bad setting, no server there, a setup the server refused); a server that fails the
/// scenario gives `Ok` with a failed verdict.
pub fn run_chaos(config: &ChaosConfig) -> Result<ChaosReport, Error> {
    config.validate()?;
    let started = Instant::now();
    let tag = run_tag();
    let outcome = match config.scenario {
        ChaosScenario::Flood => flood::run(config, &tag)?,
        ChaosScenario::Anonymous | ChaosScenario::Stall => silent::run(config, &tag)?,
        ChaosScenario::Spray => spray::run(config, &tag)?,
        ChaosScenario::Churn => churn::run(config, &tag)?,
    };
    Ok(ChaosReport {
        scenario: config.scenario,
        addr: config.addr.to_string(),
        passed: outcome.problems.is_empty(),
        problems: outcome.problems,
        elapsed_secs: started.elapsed().as_secs_f64(),
        server: outcome.server,
        details: outcome.details,
    })
}

/// What one scenario hands back to [`run_chaos`].
struct Outcome {
    details: ChaosDetails,
    problems: Vec<String>,
    server: Option<ServerUsage>,
}

/// A short tag of this run (5 hex digits of the clock and the pid), so that user ids of two
/// runs against one server differ.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(0);
    format!(
        "{:05x}",
        (nanos ^ std::process::id().rotate_left(7)) & 0xf_ffff
    )
}

/// How a server ended a connection, or why a read or write on it failed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Closure {
    /// Seconds after the scenario's attack began.
    pub after_secs: f64,
    /// How: "closed by the server" (EOF or reset), or the error.
    pub how: String,
}

/// A distribution of times, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Samples.
    pub count: usize,
    /// Smallest.
    pub min_secs: f64,
    /// Median.
    pub p50_secs: f64,
    /// Largest.
    pub max_secs: f64,
}

impl Spread {
    /// The spread of `samples`; `None` when there are none.
    fn of(mut samples: Vec<f64>) -> Option<Spread> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Spread {
            count: samples.len(),
            min_secs: samples[0],
            p50_secs: samples[samples.len() / 2],
            max_secs: samples[samples.len() - 1],
        })
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Milliseconds when everything is under a second.
        let (scale, unit) = if self.max_secs < 1.0 {
            (1e3, "ms")
        } else {
            (1.0, "s")
        };
        write!(
            f,
            "min {:.2} {unit}, p50 {:.2} {unit}, max {:.2} {unit} ({} samples)",
            self.min_secs * scale,
            self.p50_secs * scale,
            self.max_secs * scale,
            self.count
        )
    }
}

/// Why a step of a well-behaved client failed.
#[derive(Debug)]
enum StepError {
    /// The server answered with this result code.
    Refused(i64),
    /// The connection failed, closed or stayed silent.
    Client(ClientError),
    /// A packet that is not the answer.
    Unexpected(u16),
}

impl From<ClientError> for StepError {
    fn from(error: ClientError) -> StepError {
        StepError::Client(error)
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Refused(code) => {
                match u16::try_from(*code).ok().and_then(ResultCode::from_code) {
                    Some(code) => write!(f, "refused with {code}"),
                    None => write!(f, "refused with unknown code {code}"),
                }
            }
            StepError::Client(error) => f.write_str(&describe(error)),
            StepError::Unexpected(id) => write!(
                f,
                "answered with packet {id} ({})",
                iomodels_proto::packet::name(*id).unwrap_or("unknown")
            ),
        }
    }
}

impl StepError {
    /// A setup failure of `scenario` as an [`Error`], saying who failed at what.
    fn setup(self, scenario: ChaosScenario, what: String) -> Error {
        let what = format!("{what}: {self}");
        let source = match self {
            StepError::Client(error) => Some(Box::new(error) as _),
            _ => None,
        };
        Error::Chaos {
            scenario,
            what,
            source,
        }
    }
}

/// A connection's error in a few words.
fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Closed => "closed by the server".into(),
        ClientError::Timeout(after) => format!("no answer within {:.1} s", after.as_secs_f64()),
        ClientError::Io { context, source } => format!("{context}: {source}"),
        ClientError::Protocol(error) => format!("the server broke the protocol: {error}"),
    }
}

/// The next packet that is not a room notify (208, 217, 223: what other users cause
/// at any time), waiting until `deadline`.
fn reply(connection: &mut Connection, deadline: Instant) -> Result<Response, StepError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.poll(Some(left))? {
            None => return Err(ClientError::Timeout(left).into()),
            Some(
                Response::RoomNewUser(_)
                | Response::RoomLeaveUser { .. }
                | Response::RoomChatNotify { .. },
            ) => {}
            Some(response) => return Ok(response),
        }
    }
}

/// Log in as `user` (any password) and wait for the answer.
fn login(connection: &mut Connection, user: &[u8], timeout: Duration) -> Result<(), StepError> {
    connection.send(&Request::Login {
        user_id: user.to_vec(),
        password: b"chaos".to_vec(),
    })?;
    match reply(connection, Instant::now() + timeout)? {
        Response::Login { result: 0 } => Ok(()),
        Response::Login { result } => Err(StepError::Refused(result.into())),
        other => Err(StepError::Unexpected(other.id())),
    }
}

/// Enter `room` and wait for the answer and the user list.
fn enter(
    connection: &mut Connection,
    room: i32,
    timeout: Duration,
) -> Result<Vec<RoomUser>, StepError> {
    connection.send(&Request::RoomEnter { room })?;
    let deadline = Instant::now() + timeout;
    match reply(connection, deadline)? {
        Response::RoomEnter { result: 0 } => {}
        Response::RoomEnter { result } => return Err(StepError::Refused(result.into())),
        other => return Err(StepError::Unexpected(other.id())),
    }
    match reply(connection, deadline)? {
        Response::RoomUserList(users) => Ok(users),
        other => Err(StepError::Unexpected(other.id())),
    }
}

/// Leave the room and wait for the answer.
fn leave(connection: &mut Connection, timeout: Duration) -> Result<(), StepError> {
    connection.send(&Request::RoomLeave)?;
    match reply(connection, Instant::now() + timeout)? {
        Response::RoomLeave { result: 0 } => Ok(()),
        Response::RoomLeave { result } => Err(StepError::Refused(result.into())),
        other => Err(StepError::Unexpected(other.id())),
    }
}

/// Connect as `user`, log in and enter `config.room`: the setup of a well-behaved member.
/// A failure is an [`Error::Chaos`] naming the user and the step.
fn join(config: &ChaosConfig, user: &[u8]) -> Result<member::Joined, Error> {
    let name = String::from_utf8_lossy(user).into_owned();
    let scenario = config.scenario;
    let mut connection = Connection::connect(config.addr).map_err(|e| Error::Chaos {
        scenario,
        what: format!("cannot connect to {}", config.addr),
        source: Some(Box::new(e)),
    })?;
    login(&mut connection, user, config.response_timeout)
        .map_err(|e| e.setup(scenario, format!("logging in as {name}")))?;
    let listed = enter(&mut connection, config.room, config.response_timeout)
        .map_err(|e| e.setup(scenario, format!("{name} entering room {}", config.room)))?;
    Ok(member::Joined { connection, listed })
}

/// A thread of a scenario, its failure to start an [`Error`].
fn spawn<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: String,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, Error> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn_scoped(scope, work)
        .map_err(|source| Error::Io {
            context: "spawning a chaos thread",
            source,
        })
}

/// Bytes as MiB, for reports.
fn mib(bytes: f64) -> f64 {
    bytes / MIB as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_sort_their_samples() {
        assert_eq!(Spread::of(Vec::new()), None);
        let spread = Spread::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (
                spread.count,
                spread.min_secs,
                spread.p50_secs,
                spread.max_secs
            ),
            (3, 1.0, 2.0, 3.0)
        );
    }

    #[test]
    fn defaults_follow_the_scenario() {
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert_eq!(
            ChaosConfig::new(ChaosScenario::Anonymous, addr).connections,
            2000
        );
        assert_eq!(
            ChaosConfig::new(ChaosScenario::Stall, addr).connections,
            500
        );
        assert_eq!(ChaosConfig::new(ChaosScenario::Spray, addr).connections, 50);
        assert_eq!(
            ChaosConfig::new(ChaosScenario::Churn, addr).rss_bound,
            8 * MIB
        );
        assert_eq!(
            ChaosConfig::new(ChaosScenario::Flood, addr).rss_bound,
            64 * MIB
        );
        let mut config = ChaosConfig::new(ChaosScenario::Flood, addr);
        config.readers = 0;
        assert!(config.validate().is_err());
        assert_eq!(run_tag().len(), 5);
    }
}
