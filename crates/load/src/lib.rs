//! # iomodels-load
//!
//! A load generator for TCP echo servers, exact and cheap per message.
//!
//! - **Modes**: closed-loop ping-pong (one message in flight per connection), pipelined
//!   (`pipeline` in flight), and open loop at a fixed total rate, where latency is taken
//!   from each message's *scheduled* send time, so a server that falls behind is charged
//!   for the queueing it causes (no coordinated omission).
//! - **Verification**: every echoed byte is compared with the byte sent at that stream
//!   position; the pattern differs per connection and per message ([`pattern`]), so a
//!   dropped, reordered, corrupted or misrouted byte is an error, never throughput.
//! - **Phases**: a rate-limited connect phase with a per-attempt timeout, a warm-up that is
//!   not measured, then the measured window. Failures are counted by kind
//!   ([`ErrorCounts`]).
//! - **Cost**: `threads` load threads, each with its own edge-triggered epoll (WSAPoll on
//!   Windows) over its share of the connections; no allocation per message; a read and a
//!   write per batch of messages; TCP_NODELAY.
//! - **Both sides' CPU**: the load threads' CPU time (RUSAGE_THREAD; GetThreadTimes on
//!   Windows) over the window, and with a server pid its user+system time and memory (from
//!   /proc; GetProcessTimes and GetProcessMemoryInfo on Windows), per message; the report
//!   says which side was the limit.
//!
//! ## Ceiling
//! One process can hold as many connections as its open-file limit allows, less a few
//! descriptors of its own ([`connection_ceiling`]): about 19,900 under the limit of 20,000
//! on the reference machine. Asking for more is [`Error::TooManyConnections`]; to go beyond,
//! run several bench processes and add their results. Ports are not the limit: toward a
//! loopback server, connections are spread over source addresses 127.0.0.x. Windows has no
//! open-file limit; there the ceiling is the handle table's (2^24), so memory is the limit.
//!
//! ```no_run
//! use iomodels_load::{run, BenchConfig};
//!
//! let mut config = BenchConfig::new("127.0.0.1:7000".parse().unwrap());
//! config.connections = 1000;
//! let report = run(&config, |p| eprintln!("{:?}", p.phase)).unwrap();
//! println!("{}", serde_json::to_string(&report).unwrap());
//! ```
#![forbid(unsafe_code)]

mod config;
mod error;
pub mod pattern;
mod poller;
mod report;
mod server;
mod worker;

pub use config::{connection_ceiling, BenchConfig, RESERVED_DESCRIPTORS};
pub use error::Error;
pub use report::{BenchReport, ErrorCounts, Latency, Limit, Phase, Progress, ServerReport};

use hdrhistogram::Histogram;
use iomodels_sys::process::{Memory, Usage};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use worker::{Published, Schedule, StartGate, ThreadResult, Worker};

/// How often the progress callback is called.
const TICK: Duration = Duration::from_millis(250);

/// A side whose CPU time over the window is below this share of its cores was not the
/// limit.
const BUSY: f64 = 0.5;

/// Run one benchmark: connect, warm up, measure, close. `progress` is called from the
/// calling thread a few times a second.
///
/// Failures of single connections are counted in the report; an `Err` means the run as a
/// whole could not happen (bad configuration, too many connections for one process, a
/// failing system call of the generator itself).
pub fn run(
    config: &BenchConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<BenchReport, Error> {
    config.validate()?;
    let config = Arc::new(config.clone());
    let threads = config.thread_count();
    let published: Vec<Arc<Published>> = (0..threads).map(|_| Arc::default()).collect();
    let gate = Arc::new(StartGate::default());
    let (connected, reports) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (index, published) in published.iter().enumerate() {
        let (config, published, thread_gate, connected) = (
            config.clone(),
            published.clone(),
            gate.clone(),
            connected.clone(),
        );
        let spawned = thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || {
                if let Some(cpus) = &config.cpus {
                    if let Err(e) = iomodels_sys::pin_current_thread(cpus[index % cpus.len()]) {
                        let _ = connected.send(Err(Error::io("pinning a load thread", e)));
                        return None;
                    }
                }
                match Worker::new(config, index, threads, published) {
                    Ok(worker) => worker.run(&connected, &thread_gate),
                    Err(e) => {
                        let _ = connected.send(Err(e));
                        None
                    }
                }
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                gate.open(Schedule::Abort);
                join(handles);
                return Err(Error::io("spawning a load thread", e));
            }
        }
    }
    drop(connected);

    // Connect phase: wait for every thread to report, showing progress.
    let snapshot = |phase, elapsed, phase_length, rate| {
        let mut errors = ErrorCounts::default();
        let (mut open, mut messages) = (0, 0);
        for p in &published {
            errors.add(&p.errors());
            open += p.open.load(std::sync::atomic::Ordering::Relaxed) as usize;
            messages += p.messages.load(std::sync::atomic::Ordering::Relaxed);
        }
        Progress {
            phase,
            elapsed,
            phase_length,
            connections_open: open,
            connections_requested: config.connections,
            messages,
            messages_per_sec: rate,
            errors,
        }
    };
    let began = Instant::now();
    let connect_length =
        Duration::from_secs_f64(config.connections as f64 / config.connect_rate as f64);
    let mut ready = 0;
    let mut failure = None;
    while ready < threads {
        match reports.recv_timeout(TICK) {
            Ok(Ok(())) => ready += 1,
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                ready += 1;
            }
            Err(RecvTimeoutError::Timeout) => progress(&snapshot(
                Phase::Connecting,
                began.elapsed(),
                connect_length,
                0.0,
            )),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if ready < threads || failure.is_some() {
        gate.open(Schedule::Abort);
        join(handles);
        return Err(failure.unwrap_or(Error::ThreadPanicked));
    }
    progress(&snapshot(
        Phase::Connecting,
        began.elapsed(),
        connect_length,
        0.0,
    ));

    // Warm-up and window: the threads keep time themselves; here only progress and the
    // server samples at the window's edges.
    // With no connection held there is nothing to measure: close the window at once.
    let held = snapshot(Phase::Connecting, Duration::ZERO, Duration::ZERO, 0.0).connections_open;
    let start = Instant::now();
    let (measure, end) = if held == 0 {
        (start, start)
    } else {
        (
            start + config.warmup,
            start + config.warmup + config.duration,
        )
    };
    gate.open(Schedule::Run {
        start,
        measure,
        end,
    });
    let pid = config.server_pid;
    let mut server_before = None;
    let mut sampled = false;
    let (mut last_time, mut last_messages) = (start, 0);
    loop {
        let now = Instant::now();
        if !sampled && now >= measure {
            server_before = pid.and_then(server::sample);
            sampled = true;
        }
        if now >= end {
            break;
        }
        let (phase, elapsed, length) = if now < measure {
            (Phase::Warmup, now - start, config.warmup)
        } else {
            (Phase::Measuring, now - measure, config.duration)
        };
        let mut p = snapshot(phase, elapsed, length, 0.0);
        let seconds = (now - last_time).as_secs_f64();
        if seconds > 0.0 {
            p.messages_per_sec = (p.messages - last_messages) as f64 / seconds;
        }
        (last_time, last_messages) = (now, p.messages);
        progress(&p);
        let mut wake = now + TICK;
        if !sampled {
            wake = wake.min(measure);
        }
        thread::sleep(wake.min(end).saturating_duration_since(Instant::now()));
    }
    let server_after = pid.and_then(server::sample);
    let memory = pid.and_then(server::memory);
    let results = join(handles).ok_or(Error::ThreadPanicked)?;
    let window_messages: u64 = results.iter().map(|r| r.messages).sum();
    progress(&snapshot(
        Phase::Done,
        config.duration,
        config.duration,
        window_messages as f64 / config.duration.as_secs_f64(),
    ));

    let server = match (pid, server_before, server_after) {
        (Some(pid), Some(before), Some(after)) => Some((pid, before, after)),
        _ => None,
    };
    Ok(assemble(&config, threads, &results, server, memory))
}

/// Join the load threads; None if any panicked or was aborted.
fn join(handles: Vec<thread::JoinHandle<Option<ThreadResult>>>) -> Option<Vec<ThreadResult>> {
    let mut results = Vec::with_capacity(handles.len());
    let mut complete = true;
    for handle in handles {
        match handle.join() {
            Ok(Some(result)) => results.push(result),
            _ => complete = false,
        }
    }
    complete.then_some(results)
}

/// Which side limited the run, from the share of its cores each side kept busy over the
/// window: the busier one, if it used at least half of its cores.
fn limit(client_busy: f64, server_busy: Option<f64>) -> Limit {
    match server_busy {
        Some(s) if s.max(client_busy) < BUSY => Limit::Unknown,
        Some(s) if s >= client_busy => Limit::Server,
        Some(_) => Limit::Client,
        None => Limit::Unknown,
    }
}

/// Merge the threads' measurements and the server samples into the report.
fn assemble(
    config: &BenchConfig,
    threads: usize,
    results: &[ThreadResult],
    server: Option<(u32, Usage, Usage)>,
    memory: Option<Memory>,
) -> BenchReport {
    let seconds = config.duration.as_secs_f64();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .expect("constant histogram bounds are valid");
    let mut errors = ErrorCounts::default();
    let (mut messages, mut bytes_out, mut bytes_in, mut held) = (0, 0, 0, 0);
    let mut client_cpu = Duration::ZERO;
    for r in results {
        // Same bounds on both sides: adding cannot fail.
        let _ = histogram.add(&r.histogram);
        errors.add(&r.errors);
        messages += r.messages;
        bytes_out += r.bytes_out;
        bytes_in += r.bytes_in;
        held += r.held;
        client_cpu += r.cpu;
    }
    let us = |v: u64| v as f64 / 1000.0;
    let latency_us = if histogram.is_empty() {
        Latency::default()
    } else {
        Latency {
            p50: us(histogram.value_at_quantile(0.50)),
            p90: us(histogram.value_at_quantile(0.90)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
        }
    };
    let per_message = |cpu: f64| {
        if messages == 0 {
            0.0
        } else {
            cpu * 1e6 / messages as f64
        }
    };
    let client_cpu_secs = client_cpu.as_secs_f64();
    let client_cores = match &config.cpus {
        Some(cpus) => {
            let mut distinct = cpus.clone();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len().min(threads)
        }
        None => iomodels_sys::cpu::allowed_cpus(0).unwrap_or(1).min(threads),
    }
    .max(1) as f64;
    let client_busy = client_cpu_secs / (seconds * client_cores);

    let mut server_busy = None;
    let server = server.map(|(pid, before, after)| {
        let cpu_secs = after.cpu().saturating_sub(before.cpu()).as_secs_f64();
        server_busy = Some(cpu_secs / (seconds * server::cores(pid, after.threads)));
        let (rss_kib, hwm_kib) = memory.map_or((0, 0), |m| (m.resident_kib, m.peak_resident_kib));
        ServerReport {
            pid,
            cpu_secs,
            cpu_us_per_msg: per_message(cpu_secs),
            rss_kib,
            hwm_kib,
        }
    });
    let limit = limit(client_busy, server_busy);
    BenchReport {
        addr: config.addr,
        connections_requested: config.connections,
        connections_held: held,
        payload: config.payload,
        pipeline: config.pipeline,
        rate: config.rate,
        warmup_secs: config.warmup.as_secs_f64(),
        duration_secs: seconds,
        messages,
        messages_per_sec: messages as f64 / seconds,
        mb_per_sec_out: bytes_out as f64 / 1e6 / seconds,
        mb_per_sec_in: bytes_in as f64 / 1e6 / seconds,
        latency_us,
        errors,
        client_cpu_secs,
        client_cpu_us_per_msg: per_message(client_cpu_secs),
        server,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busier_side_is_the_limit() {
        assert_eq!(limit(0.95, Some(0.60)), Limit::Client);
        assert_eq!(limit(0.70, Some(0.99)), Limit::Server);
        assert_eq!(limit(0.20, Some(0.30)), Limit::Unknown);
        assert_eq!(limit(0.99, None), Limit::Unknown);
    }
}
