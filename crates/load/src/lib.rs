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
//! on the reference machine. Asking [`run`] for more is [`Error::TooManyConnections`]; to go
//! beyond, [`spread`] runs one benchmark over several client processes, each on source
//! addresses of its own, and merges them into one report. Ports are not the limit: toward a
//! loopback server, connections are spread over source addresses 127.0.0.x. Windows has no
//! open-file limit; there the ceiling is the handle table's (2^24), so memory is the limit.
//!
//! ## Idle cost
//! With [`BenchConfig::idle`] set and a server pid, every connection stays open and silent
//! for that long after the window while the server's CPU time is sampled
//! ([`IdleReport`]): what holding the connections costs the server when nothing happens.
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
pub mod spread;
mod worker;

pub use config::{connection_ceiling, BenchConfig, RESERVED_DESCRIPTORS};
pub use error::{ClientFailure, Error};
pub use report::{
    BenchReport, ClientReport, ErrorCounts, IdleReport, Latency, Limit, Partial, Phase, Progress,
    ServerReport,
};

use iomodels_sys::process::{Memory, Usage};
use std::sync::atomic::Ordering;
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

/// Between the window's end and the idle hold's sampling: time for the echoes still in
/// flight to land, so the hold measures a silent server.
const SETTLE: Duration = Duration::from_millis(500);

/// Run one benchmark: connect, warm up, measure, (hold idle,) close. `progress` is called
/// from the calling thread a few times a second.
///
/// Failures of single connections are counted in the report; an `Err` means the run as a
/// whole could not happen (bad configuration, too many connections for one process, a
/// failing system call of the generator itself).
pub fn run(
    config: &BenchConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<BenchReport, Error> {
    config.validate()?;
    let mut connected = Connected::start(config, &mut progress)?;
    let times = Times::new(config, Instant::now(), connected.open());
    connected.go(times);
    let samples = watch(config, &times, |phase, elapsed, length| {
        progress(&connected.snapshot(phase, elapsed, length))
    })?;
    let partial = connected.join(&mut progress)?;
    let threads = partial.threads;
    Ok(assemble(config, threads, &partial, &samples, Vec::new()))
}

/// Load threads that have connected their shares and wait for the start.
pub(crate) struct Connected {
    config: Arc<BenchConfig>,
    gate: Arc<StartGate>,
    published: Vec<Arc<Published>>,
    handles: Vec<thread::JoinHandle<Option<ThreadResult>>>,
    /// The progress rate: messages and time at the last snapshot.
    last: (Instant, u64),
}

impl Connected {
    /// Spawn the load threads and wait until each has tried every connection of its share,
    /// showing progress.
    pub(crate) fn start(
        config: &BenchConfig,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<Connected, Error> {
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
        let mut this = Connected {
            config,
            gate,
            published,
            handles,
            last: (Instant::now(), 0),
        };

        let began = Instant::now();
        let connect_length = Duration::from_secs_f64(
            this.config.connections as f64 / this.config.connect_rate as f64,
        );
        let mut ready = 0;
        let mut failure = None;
        while ready < threads {
            match reports.recv_timeout(TICK) {
                Ok(Ok(())) => ready += 1,
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                    ready += 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    progress(&this.snapshot(Phase::Connecting, began.elapsed(), connect_length))
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if ready < threads || failure.is_some() {
            this.abort();
            return Err(failure.unwrap_or(Error::ThreadPanicked));
        }
        progress(&this.snapshot(Phase::Connecting, began.elapsed(), connect_length));
        Ok(this)
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.published
            .iter()
            .map(|p| p.open.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// Errors so far.
    pub(crate) fn errors(&self) -> ErrorCounts {
        let mut errors = ErrorCounts::default();
        for p in &self.published {
            errors.add(&p.errors());
        }
        errors
    }

    /// Start the traffic on `times`.
    pub(crate) fn go(&self, times: Times) {
        self.gate.open(Schedule::Run {
            start: times.start,
            measure: times.measure,
            end: times.end,
            release: times.release,
        });
    }

    /// Tell the threads to close everything and end, and wait for them.
    fn abort(&mut self) {
        self.gate.open(Schedule::Abort);
        join(std::mem::take(&mut self.handles));
    }

    /// A progress snapshot; the rate is over the time since the last snapshot.
    pub(crate) fn snapshot(
        &mut self,
        phase: Phase,
        elapsed: Duration,
        phase_length: Duration,
    ) -> Progress {
        let messages: u64 = self
            .published
            .iter()
            .map(|p| p.messages.load(Ordering::Relaxed))
            .sum();
        let now = Instant::now();
        let seconds = (now - self.last.0).as_secs_f64();
        let messages_per_sec = if phase == Phase::Connecting || seconds <= 0.0 {
            0.0
        } else {
            messages.saturating_sub(self.last.1) as f64 / seconds
        };
        self.last = (now, messages);
        Progress {
            phase,
            elapsed,
            phase_length,
            connections_open: self.open(),
            connections_requested: self.config.connections,
            messages,
            messages_per_sec,
            errors: self.errors(),
        }
    }

    /// Wait for the threads to finish the schedule and add up what they measured.
    pub(crate) fn join(mut self, progress: &mut impl FnMut(&Progress)) -> Result<Partial, Error> {
        let results = join(std::mem::take(&mut self.handles)).ok_or(Error::ThreadPanicked)?;
        let mut partial = Partial::empty();
        partial.connections_requested = self.config.connections;
        partial.threads = results.len();
        for r in &results {
            partial
                .histogram
                .add(&r.histogram)
                .map_err(|e| Error::Histogram(e.to_string()))?;
            partial.errors.add(&r.errors);
            partial.messages += r.messages;
            partial.bytes_out += r.bytes_out;
            partial.bytes_in += r.bytes_in;
            partial.connections_held += r.held;
            partial.cpu_secs += r.cpu.as_secs_f64();
        }
        let duration = self.config.duration;
        let mut done = self.snapshot(Phase::Done, duration, duration);
        done.messages_per_sec = partial.messages as f64 / duration.as_secs_f64();
        progress(&done);
        Ok(partial)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.abort();
        }
    }
}

/// When each part of a run begins, on this process's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times {
    /// Traffic begins.
    pub(crate) start: Instant,
    /// The measured window opens.
    pub(crate) measure: Instant,
    /// The window closes; traffic stops.
    pub(crate) end: Instant,
    /// The sampled idle hold begins.
    pub(crate) idle: Instant,
    /// The hold ends; the connections are closed.
    pub(crate) release: Instant,
}

impl Times {
    /// The schedule of a run starting at `start` with `held` connections open: with none
    /// there is nothing to measure, so every part is empty.
    pub(crate) fn new(config: &BenchConfig, start: Instant, held: usize) -> Times {
        if held == 0 {
            return Times {
                start,
                measure: start,
                end: start,
                idle: start,
                release: start,
            };
        }
        let measure = start + config.warmup;
        let end = measure + config.duration;
        let (idle, release) = if config.idle.is_zero() {
            (end, end)
        } else {
            (end + SETTLE, end + SETTLE + config.idle)
        };
        Times {
            start,
            measure,
            end,
            idle,
            release,
        }
    }
}

/// The server process sampled at the edges of the window and of the idle hold.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Samples {
    window: Option<(Usage, Usage)>,
    memory: Option<Memory>,
    idle: Option<(Usage, Usage)>,
}

/// How [`watch_with`] reports and waits.
pub(crate) trait Follow {
    /// Where the run is: called about every [`TICK`].
    fn tick(&mut self, phase: Phase, elapsed: Duration, length: Duration);
    /// Wait until `until` (doing whatever else is due meanwhile).
    fn pause(&mut self, until: Instant) -> Result<(), Error>;
}

/// Follow `times` to their end, sampling the server (when its pid is known) at the edges
/// of the window and of the idle hold, and calling `tick` with the phase about every
/// [`TICK`] in between.
pub(crate) fn watch(
    config: &BenchConfig,
    times: &Times,
    tick: impl FnMut(Phase, Duration, Duration),
) -> Result<Samples, Error> {
    struct Sleep<F>(F);
    impl<F: FnMut(Phase, Duration, Duration)> Follow for Sleep<F> {
        fn tick(&mut self, phase: Phase, elapsed: Duration, length: Duration) {
            (self.0)(phase, elapsed, length)
        }
        fn pause(&mut self, until: Instant) -> Result<(), Error> {
            thread::sleep(until.saturating_duration_since(Instant::now()));
            Ok(())
        }
    }
    watch_with(config, times, &mut Sleep(tick))
}

/// [`watch`], reporting and waiting through `follow`.
pub(crate) fn watch_with(
    config: &BenchConfig,
    times: &Times,
    follow: &mut dyn Follow,
) -> Result<Samples, Error> {
    let pid = config.server_pid;
    let sample = || pid.and_then(server::sample);
    let holding = times.release > times.idle;
    let (mut before, mut after, mut idle_before) = (None, None, None);
    let mut samples = Samples::default();
    let mut edges = 0;
    loop {
        let now = Instant::now();
        if edges == 0 && now >= times.measure {
            before = sample();
            edges = 1;
        }
        if edges == 1 && now >= times.end {
            after = sample();
            samples.memory = pid.and_then(server::memory);
            edges = 2;
        }
        if edges == 2 && now >= times.idle {
            idle_before = if holding { sample() } else { None };
            edges = 3;
        }
        if edges == 3 && now >= times.release {
            if let (Some(b), Some(a)) = (idle_before, holding.then(sample).flatten()) {
                samples.idle = Some((b, a));
            }
            break;
        }
        let (phase, elapsed, length, next) = if now < times.measure {
            (
                Phase::Warmup,
                now - times.start,
                config.warmup,
                times.measure,
            )
        } else if now < times.end {
            (
                Phase::Measuring,
                now - times.measure,
                config.duration,
                times.end,
            )
        } else if now < times.idle {
            (Phase::Holding, Duration::ZERO, config.idle, times.idle)
        } else {
            (Phase::Holding, now - times.idle, config.idle, times.release)
        };
        follow.tick(phase, elapsed, length);
        follow.pause(next.min(now + TICK))?;
    }
    if let (Some(b), Some(a)) = (before, after) {
        samples.window = Some((b, a));
    }
    Ok(samples)
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

/// The report of a run from its (merged) measurements, the server samples and, for a
/// spread run, its client processes. `threads` is the load threads of every process.
pub(crate) fn assemble(
    config: &BenchConfig,
    threads: usize,
    partial: &Partial,
    samples: &Samples,
    clients: Vec<ClientReport>,
) -> BenchReport {
    let seconds = config.duration.as_secs_f64();
    let histogram = &partial.histogram;
    let messages = partial.messages;
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
    let client_cpu_secs = partial.cpu_secs;
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
    let server = match (config.server_pid, samples.window) {
        (Some(pid), Some((before, after))) => {
            let cpu_secs = after.cpu().saturating_sub(before.cpu()).as_secs_f64();
            server_busy = Some(cpu_secs / (seconds * server::cores(pid, after.threads)));
            let (rss_kib, hwm_kib) = samples
                .memory
                .map_or((0, 0), |m| (m.resident_kib, m.peak_resident_kib));
            Some(ServerReport {
                pid,
                cpu_secs,
                cpu_us_per_msg: per_message(cpu_secs),
                rss_kib,
                hwm_kib,
            })
        }
        _ => None,
    };
    let idle = samples.idle.map(|(before, after)| {
        let secs = config.idle.as_secs_f64();
        let server_cpu_secs = after.cpu().saturating_sub(before.cpu()).as_secs_f64();
        IdleReport {
            secs,
            connections: partial.connections_held,
            server_cpu_secs,
            server_cpu_per_sec: server_cpu_secs / secs,
        }
    });
    let limit = limit(client_busy, server_busy);
    BenchReport {
        addr: config.addr,
        connections_requested: config.connections,
        connections_held: partial.connections_held,
        payload: config.payload,
        pipeline: config.pipeline,
        rate: config.rate,
        warmup_secs: config.warmup.as_secs_f64(),
        duration_secs: seconds,
        messages,
        messages_per_sec: messages as f64 / seconds,
        mb_per_sec_out: partial.bytes_out as f64 / 1e6 / seconds,
        mb_per_sec_in: partial.bytes_in as f64 / 1e6 / seconds,
        latency_us,
        errors: partial.errors,
        client_cpu_secs,
        client_cpu_us_per_msg: per_message(client_cpu_secs),
        server,
        limit,
        idle,
        clients,
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
