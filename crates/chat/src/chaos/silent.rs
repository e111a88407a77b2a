//! anonymous and stall: many connections that never log in (silent, or stalled after 3
//! bytes of a 5-byte header), opened one after another and watched for the server's close
//! (see [`super::watch`]); meanwhile two real users log in, enter a room and chat, each
//! step timed.
//!
//! Each silent connection's fate, from the moment it connected:
//!
//! | closed | counts as | verdict |
//! |---|---|---|
//! | connect refused, or closed within `min(1 s, login_timeout / 2)` | refused at once (a cap on anonymous connections) | accepted |
//! | before `login_timeout - 1 s` | closed early | fails |
//! | by `login_timeout + slack` | closed by the deadline | passes |
//! | after that | closed late | fails |
//! | never, while watched | still open | fails |

use super::{
    enter, login, spawn, ChaosConfig, ChaosDetails, ChaosScenario, Outcome, Spread, StepError,
};
use crate::client::{ClientError, Connection};
use crate::error::Error;
use iomodels_proto::{Request, Response};
use std::fmt;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::sample::Sampler;
use super::watch::Watch;

/// What a stalled connection sends: the first 3 bytes of a login's 5-byte header (length
/// 71, id 201, little-endian).
const STALL: [u8; 3] = [71, 0, 201];

/// One step of a real user.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RealUserStep {
    /// The user ("a" or "b").
    pub user: String,
    /// The step: connect, log in, enter, chat (the sender's 222), hear (the other's 223).
    pub step: String,
    /// Seconds from the request to its answer (for hear: from the other's chat).
    pub round_trip_secs: Option<f64>,
    /// Why the step failed.
    pub error: Option<String>,
}

/// What anonymous or stall found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SilentReport {
    /// Silent connections asked for.
    pub connections: usize,
    /// Seconds it took to open them.
    pub opening_secs: f64,
    /// The login deadline the server was expected to enforce, seconds.
    pub login_timeout_secs: f64,
    /// How late a close still counted, seconds.
    pub slack_secs: f64,
    /// Refused at connect, or closed at once: a cap turning extras away.
    pub refused_at_once: usize,
    /// Closed after that but before `login_timeout - 1 s`.
    pub closed_early: usize,
    /// Closed between `login_timeout - 1 s` and `login_timeout + slack`.
    pub closed_by_deadline: usize,
    /// Closed after `login_timeout + slack`.
    pub closed_late: usize,
    /// Never closed while watched (until the last one's `login_timeout + slack`).
    pub still_open: usize,
    /// Seconds from connect to close of those closed by the deadline.
    pub deadline: Option<Spread>,
    /// The real users' steps, in order; a failed step ends their run.
    pub real_users: Vec<RealUserStep>,
}

impl fmt::Display for SilentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "silent:       {} connections opened in {:.2} s; login timeout {:.1} s, slack {:.1} s",
            self.connections, self.opening_secs, self.login_timeout_secs, self.slack_secs
        )?;
        writeln!(
            f,
            "closed:       {} by the deadline, {} refused at once, {} early, {} late, {} still open",
            self.closed_by_deadline,
            self.refused_at_once,
            self.closed_early,
            self.closed_late,
            self.still_open
        )?;
        if let Some(deadline) = &self.deadline {
            writeln!(f, "deadline:     {deadline} after connecting")?;
        }
        let steps: Vec<String> = self
            .real_users
            .iter()
            .map(|s| match (&s.error, s.round_trip_secs) {
                (Some(error), _) => format!("{} {} FAILED ({error})", s.user, s.step),
                (None, Some(secs)) => format!("{} {} {:.1} ms", s.user, s.step, secs * 1e3),
                (None, None) => format!("{} {}", s.user, s.step),
            })
            .collect();
        writeln!(f, "real users:   {}", steps.join(", "))
    }
}

pub(super) fn run(config: &ChaosConfig, tag: &str) -> Result<Outcome, Error> {
    let stall = config.scenario == ChaosScenario::Stall;
    let scenario = config.scenario;
    let mut watch = Watch::new().map_err(Error::io("creating the connection watcher"))?;
    let sampler = config
        .server_pid
        .map(|pid| Sampler::start(pid, scenario))
        .transpose()?;
    let opening = Instant::now();
    for i in 0..config.connections {
        let at = Instant::now();
        match TcpStream::connect_timeout(&config.addr, config.response_timeout) {
            Ok(mut stream) => {
                if stall {
                    // A failure means the server closed it already: the watch will see.
                    let _ = stream.write_all(&STALL);
                }
                watch
                    .add(stream, at)
                    .map_err(Error::io("watching a connection"))?;
            }
            Err(e) if i == 0 => {
                return Err(Error::Chaos {
                    scenario,
                    what: format!("cannot connect to {}", config.addr),
                    source: Some(Box::new(e)),
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::TimedOut
                ) =>
            {
                watch.add_refused(at);
            }
            // Out of descriptors or ports: our limit, not the server's doing.
            Err(e) => {
                return Err(Error::Chaos {
                    scenario,
                    what: format!("opening connection {} of {}", i + 1, config.connections),
                    source: Some(Box::new(e)),
                })
            }
        }
        if i % 16 == 15 {
            // Time the closes that come while the others open.
            watch
                .wait(Instant::now())
                .map_err(Error::io("watching the connections"))?;
        }
    }
    let opening_secs = opening.elapsed().as_secs_f64();
    let last_opened = Instant::now();
    let window = config.login_timeout + config.slack;
    let real_users = std::thread::scope(|scope| -> Result<_, Error> {
        let users = spawn(scope, "chaos-real-users".into(), || real_users(config, tag))?;
        watch
            .wait(last_opened + window)
            .map_err(Error::io("watching the connections"))?;
        users.join().map_err(|_| Error::Chaos {
            scenario,
            what: "the real users' thread panicked".into(),
            source: None,
        })
    })?;

    let server = sampler.map(Sampler::finish);
    let at_once = Duration::from_secs(1).min(config.login_timeout / 2);
    let early = config.login_timeout.saturating_sub(Duration::from_secs(1));
    let mut report = SilentReport {
        connections: config.connections,
        opening_secs,
        login_timeout_secs: config.login_timeout.as_secs_f64(),
        slack_secs: config.slack.as_secs_f64(),
        refused_at_once: 0,
        closed_early: 0,
        closed_by_deadline: 0,
        closed_late: 0,
        still_open: 0,
        deadline: None,
        real_users,
    };
    let mut deadline = Vec::new();
    for entry in watch.entries() {
        let Some(closed) = entry.closed else {
            report.still_open += 1;
            continue;
        };
        let after = closed.saturating_duration_since(entry.opened);
        if after < at_once {
            report.refused_at_once += 1;
        } else if after < early {
            report.closed_early += 1;
        } else if after <= window {
            report.closed_by_deadline += 1;
            deadline.push(after.as_secs_f64());
        } else {
            report.closed_late += 1;
        }
    }
    report.deadline = Spread::of(deadline);

    let mut problems = Vec::new();
    let what = if stall {
        "stalled connections"
    } else {
        "silent connections"
    };
    let total = config.connections;
    if report.still_open > 0 {
        problems.push(format!(
            "{} of {total} {what} still open {:.1} s after connecting (login timeout {:.1} s)",
            report.still_open,
            window.as_secs_f64(),
            config.login_timeout.as_secs_f64()
        ));
    }
    if report.closed_late > 0 {
        problems.push(format!(
            "{} of {total} {what} closed later than {:.1} s after connecting",
            report.closed_late,
            window.as_secs_f64()
        ));
    }
    if report.closed_early > 0 {
        problems.push(format!(
            "{} of {total} {what} closed before {:.1} s, neither at once nor by the login timeout",
            report.closed_early,
            early.as_secs_f64()
        ));
    }
    for step in &report.real_users {
        match (&step.error, step.round_trip_secs) {
            (Some(error), _) => problems.push(format!(
                "real user {}: {} failed: {error}",
                step.user, step.step
            )),
            (None, Some(secs)) if secs > config.max_round_trip.as_secs_f64() => {
                problems.push(format!(
                    "real user {}: {} took {secs:.2} s (limit {:.2} s)",
                    step.user,
                    step.step,
                    config.max_round_trip.as_secs_f64()
                ))
            }
            _ => {}
        }
    }
    let details = if stall {
        ChaosDetails::Stall(report)
    } else {
        ChaosDetails::Anonymous(report)
    };
    Ok(Outcome {
        details,
        problems,
        server,
    })
}

/// The real users' steps.
struct Steps<'a> {
    config: &'a ChaosConfig,
    done: Vec<RealUserStep>,
}

impl Steps<'_> {
    /// Run one step of `user`, timing it from `from` (its start when `None`); `None` if
    /// it failed.
    fn run<T>(
        &mut self,
        user: &str,
        step: &str,
        from: Option<Instant>,
        work: impl FnOnce() -> Result<T, StepError>,
    ) -> Option<T> {
        let origin = from.unwrap_or_else(Instant::now);
        let result = work();
        let secs = origin.elapsed().as_secs_f64();
        let (value, record) = match result {
            Ok(value) => (Some(value), (Some(secs), None)),
            Err(error) => (None, (None, Some(error.to_string()))),
        };
        self.done.push(RealUserStep {
            user: user.into(),
            step: step.into(),
            round_trip_secs: record.0,
            error: record.1,
        });
        value
    }

    /// Connect, log in as `name`, enter the room.
    fn arrive(&mut self, user: &str, name: &[u8]) -> Option<Connection> {
        let timeout = self.config.response_timeout;
        let addr = self.config.addr;
        let mut connection = self.run(user, "connect", None, || {
            Connection::connect(addr).map_err(StepError::from)
        })?;
        self.run(user, "log in", None, || {
            login(&mut connection, name, timeout)
        })?;
        let room = self.config.room;
        self.run(user, "enter", None, || {
            enter(&mut connection, room, timeout)
        })?;
        Some(connection)
    }

    /// `speaker` says something; `listener` must hear it.
    fn talk(
        &mut self,
        (speaker, from): (&str, &mut Connection),
        (listener, to): (&str, &mut Connection),
        speaker_name: &[u8],
    ) -> Option<()> {
        let timeout = self.config.response_timeout;
        let message = format!("hello from {speaker}").into_bytes();
        let sent = Instant::now();
        self.run(speaker, "chat", None, || {
            from.send(&Request::RoomChat {
                message: message.clone(),
            })?;
            match super::reply(from, sent + timeout)? {
                Response::RoomChat { result: 0 } => Ok(()),
                Response::RoomChat { result } => Err(StepError::Refused(result.into())),
                other => Err(StepError::Unexpected(other.id())),
            }
        })?;
        self.run(listener, "hear", Some(sent), || {
            hear(to, speaker_name, &message, sent + timeout)
        })
    }
}

/// Wait for the chat notify of `user` saying `message`, skipping other notifies.
fn hear(
    connection: &mut Connection,
    user: &[u8],
    message: &[u8],
    deadline: Instant,
) -> Result<(), StepError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.poll(Some(left))? {
            None => return Err(ClientError::Timeout(left).into()),
            Some(Response::RoomChatNotify {
                user_id,
                message: said,
            }) if user_id == user && said == message => return Ok(()),
            Some(
                Response::RoomNewUser(_)
                | Response::RoomLeaveUser { .. }
                | Response::RoomChatNotify { .. },
            ) => {}
            Some(other) => return Err(StepError::Unexpected(other.id())),
        }
    }
}

/// Two real users: a arrives, b arrives, a speaks and b hears, b speaks and a hears.
fn real_users(config: &ChaosConfig, tag: &str) -> Vec<RealUserStep> {
    let mut steps = Steps {
        config,
        done: Vec::new(),
    };
    let a_name = format!("{}{tag}a", config.user_prefix).into_bytes();
    let b_name = format!("{}{tag}b", config.user_prefix).into_bytes();
    let _ = (|| {
        let mut a = steps.arrive("a", &a_name)?;
        let mut b = steps.arrive("b", &b_name)?;
        steps.talk(("a", &mut a), ("b", &mut b), &a_name)?;
        steps.talk(("b", &mut b), ("a", &mut a), &b_name)
    })();
    steps.done
}
