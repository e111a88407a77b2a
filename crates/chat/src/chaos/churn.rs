//! churn: rounds of connections that each connect, log in with a fresh user id, enter the
//! room, leave, send their FIN and wait for the server to close its side; eight at a time,
//! so that the room (20 seats by default) holds them all. After each round, and a short
//! settle, the server's resident memory is sampled: it must be as flat from the first
//! round to the last as the bound says.

use super::sample::Sampler;
use super::{enter, leave, login, mib, spawn, ChaosConfig, ChaosDetails, Outcome, StepError};
use crate::bots::{histogram, micros, Latency};
use crate::client::Connection;
use crate::error::Error;
use hdrhistogram::Histogram;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Connections under way at once.
const AT_ONCE: usize = 8;

/// Errors quoted per round.
const QUOTED: usize = 3;

/// One round of churn.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChurnRound {
    /// Its number, from 0.
    pub round: usize,
    /// Seconds it took.
    pub duration_secs: f64,
    /// Connections that failed a step.
    pub errors: u64,
    /// The first few failures.
    pub first_errors: Vec<String>,
    /// The server's resident memory after the round and the settle, KiB.
    pub rss_kib: Option<u64>,
}

/// What churn found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChurnReport {
    /// Connections per round.
    pub per_round: usize,
    /// The rounds.
    pub rounds: Vec<ChurnRound>,
    /// Request round trips (log in, enter, leave) and the server's close after our FIN.
    pub step_latency: Latency,
    /// The last round's resident memory minus the first's, KiB.
    pub rss_growth_kib: Option<i64>,
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "churn:        {} rounds of {} connections, steps {}",
            self.rounds.len(),
            self.per_round,
            self.step_latency
        )?;
        for round in &self.rounds {
            write!(
                f,
                "round {:<6} {:.2} s, {} errors",
                round.round, round.duration_secs, round.errors
            )?;
            if let Some(rss) = round.rss_kib {
                write!(f, ", server RSS {:.1} MiB", mib(rss as f64 * 1024.0))?;
            }
            if let Some(first) = round.first_errors.first() {
                write!(f, " (first: {first})")?;
            }
            writeln!(f)?;
        }
        if let Some(growth) = self.rss_growth_kib {
            writeln!(
                f,
                "growth:       {:+.1} MiB from the first round to the last",
                growth as f64 / 1024.0
            )?;
        }
        Ok(())
    }
}

pub(super) fn run(config: &ChaosConfig, tag: &str) -> Result<Outcome, Error> {
    // Is anyone there?
    drop(Connection::connect(config.addr).map_err(|e| Error::Chaos {
        scenario: config.scenario,
        what: format!("cannot connect to {}", config.addr),
        source: Some(Box::new(e)),
    })?);
    let sampler = config
        .server_pid
        .map(|pid| Sampler::start(pid, config.scenario))
        .transpose()?;
    let mut rounds = Vec::with_capacity(config.rounds);
    let mut latency = histogram();
    let mut problems = Vec::new();
    for round in 0..config.rounds {
        let started = Instant::now();
        let next = AtomicUsize::new(0);
        let workers = std::thread::scope(|scope| -> Result<_, Error> {
            let mut threads = Vec::with_capacity(AT_ONCE);
            for worker in 0..AT_ONCE.min(config.per_round) {
                let next = &next;
                threads.push(spawn(scope, format!("chaos-churn-{worker}"), move || {
                    let mut done = Worker {
                        errors: 0,
                        quoted: Vec::new(),
                        latency: histogram(),
                    };
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        if i >= config.per_round {
                            return done;
                        }
                        let user = format!("{}{tag}c{round}-{i}", config.user_prefix);
                        if let Err((step, error)) =
                            churn_one(config, user.as_bytes(), &mut done.latency)
                        {
                            done.errors += 1;
                            if done.quoted.len() < QUOTED {
                                done.quoted.push(format!("connection {i}: {step}: {error}"));
                            }
                        }
                    }
                })?);
            }
            threads
                .into_iter()
                .map(|t| {
                    t.join().map_err(|_| Error::Chaos {
                        scenario: config.scenario,
                        what: "a churn thread panicked".into(),
                        source: None,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let duration_secs = started.elapsed().as_secs_f64();
        let mut report = ChurnRound {
            round,
            duration_secs,
            errors: 0,
            first_errors: Vec::new(),
            rss_kib: None,
        };
        for worker in workers {
            report.errors += worker.errors;
            report.first_errors.extend(worker.quoted);
            let _ = latency.add(&worker.latency);
        }
        report.first_errors.truncate(QUOTED);
        if let Some(sampler) = &sampler {
            // A pause before a measurement: no event says the server gave memory back.
            std::thread::sleep(config.settle);
            match sampler.resident_kib() {
                Ok(rss) => report.rss_kib = Some(rss),
                Err(error) => problems.push(format!(
                    "the server could not be sampled after round {round}: {error}"
                )),
            }
        }
        if report.errors > 0 {
            problems.push(format!(
                "round {round}: {} of {} connections failed a step (first: {})",
                report.errors,
                config.per_round,
                report.first_errors.first().map_or("?", String::as_str)
            ));
        }
        rounds.push(report);
    }
    let server = sampler.map(Sampler::finish);
    if let Some(error) = server.as_ref().and_then(|s| s.error.as_ref()) {
        problems.push(format!(
            "the server could not be sampled to the end: {error}"
        ));
    }
    let rss_growth_kib = match (rounds.first(), rounds.last()) {
        (Some(first), Some(last)) => first
            .rss_kib
            .zip(last.rss_kib)
            .map(|(first, last)| last as i64 - first as i64),
        _ => None,
    };
    if let Some(growth) = rss_growth_kib {
        if growth.unsigned_abs() * 1024 > config.rss_bound {
            problems.push(format!(
                "the server's resident memory moved by {:+.1} MiB from the first round to the last (bound {:.1} MiB)",
                growth as f64 / 1024.0,
                mib(config.rss_bound as f64)
            ));
        }
    }
    Ok(Outcome {
        details: ChaosDetails::Churn(ChurnReport {
            per_round: config.per_round,
            rounds,
            step_latency: Latency::of(&latency),
            rss_growth_kib,
        }),
        problems,
        server,
    })
}

/// What one churn thread did in a round.
struct Worker {
    errors: u64,
    quoted: Vec<String>,
    latency: Histogram<u64>,
}

/// One connection's life: connect, log in as `user`, enter, leave, FIN, the server's
/// close. A failure names its step.
fn churn_one(
    config: &ChaosConfig,
    user: &[u8],
    latency: &mut Histogram<u64>,
) -> Result<(), (&'static str, StepError)> {
    let timeout = config.response_timeout;
    let mut timed = |step: &'static str, work: &mut dyn FnMut() -> Result<(), StepError>| {
        let started = Instant::now();
        work().map_err(|e| (step, e))?;
        latency.saturating_record(micros(started.elapsed()));
        Ok(())
    };
    let mut connection =
        Connection::connect(config.addr).map_err(|e| ("connect", StepError::from(e)))?;
    timed("log in", &mut || login(&mut connection, user, timeout))?;
    timed("enter", &mut || {
        enter(&mut connection, config.room, timeout).map(drop)
    })?;
    timed("leave", &mut || leave(&mut connection, timeout))?;
    timed("close", &mut || {
        connection.shutdown_write()?;
        connection.wait_closed(timeout)?;
        Ok(())
    })
}
