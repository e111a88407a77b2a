//! The server's resident memory and CPU time, sampled by pid while a scenario runs
//! (`/proc/PID/status` and `/proc/PID/stat` on Linux, the working set and process times
//! on Windows, through [`iomodels_sys::process`]).

use super::{mib, ChaosScenario};
use crate::error::Error;
use iomodels_sys::process;
use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the memory is sampled while a scenario runs.
const EVERY: Duration = Duration::from_millis(100);

/// The server's memory and CPU time over a scenario.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServerUsage {
    /// The server's process.
    pub pid: u32,
    /// Resident memory when the attack began (after the scenario's setup), KiB.
    pub rss_before_kib: u64,
    /// The largest resident memory during the attack, KiB: the kernel's high-water mark
    /// if it rose during the attack (then it is exact), else the largest of the samples
    /// taken every 100 ms.
    pub rss_peak_kib: u64,
    /// Resident memory at the end, KiB.
    pub rss_after_kib: u64,
    /// CPU time (user and system) the server spent during the scenario, seconds.
    pub cpu_secs: f64,
    /// The server's threads at the end.
    pub threads: u64,
    /// Why sampling stopped early (most often: the server exited).
    pub error: Option<String>,
}

impl ServerUsage {
    /// How much the resident memory grew from the start to its peak, bytes.
    pub fn peak_growth(&self) -> u64 {
        self.rss_peak_kib.saturating_sub(self.rss_before_kib) * 1024
    }
}

impl fmt::Display for ServerUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {}: RSS {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after; {:.2} s CPU, {} threads",
            self.pid,
            mib(self.rss_before_kib as f64 * 1024.0),
            mib(self.rss_peak_kib as f64 * 1024.0),
            mib(self.rss_after_kib as f64 * 1024.0),
            self.cpu_secs,
            self.threads
        )?;
        if let Some(error) = &self.error {
            write!(f, " (sampling stopped: {error})")?;
        }
        Ok(())
    }
}

/// A thread sampling a process's resident memory until [`Sampler::finish`].
pub(super) struct Sampler {
    pid: u32,
    before_kib: u64,
    /// The kernel's high-water mark of the resident memory at the start.
    high_water_kib: u64,
    cpu_before: Duration,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<(u64, Option<String>)>,
}

/// A process error in one line with its cause.
fn one_line(error: &process::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

impl Sampler {
    /// Take the first sample of `pid` and start sampling; a process that cannot be read
    /// (a wrong pid) is an error of `scenario`.
    pub(super) fn start(pid: u32, scenario: ChaosScenario) -> Result<Sampler, Error> {
        let unreadable = |error: process::Error| Error::Chaos {
            scenario,
            what: format!("cannot sample the server process {pid}"),
            source: Some(Box::new(error)),
        };
        let before = process::memory(pid).map_err(unreadable)?;
        let usage = process::usage(pid).map_err(unreadable)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("chaos-sampler".into())
            .spawn(move || {
                let mut peak = before.resident_kib;
                // Samples until told to stop (or the sender is gone).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    match process::memory(pid) {
                        Ok(memory) => peak = peak.max(memory.resident_kib),
                        Err(error) => return (peak, Some(one_line(&error))),
                    }
                }
                (peak, None)
            })
            .map_err(|source| Error::Io {
                context: "spawning the memory sampler",
                source,
            })?;
        Ok(Sampler {
            pid,
            before_kib: before.resident_kib,
            high_water_kib: before.peak_resident_kib,
            cpu_before: usage.cpu(),
            stop,
            thread,
        })
    }

    /// The resident memory now, KiB.
    pub(super) fn resident_kib(&self) -> Result<u64, String> {
        process::memory(self.pid)
            .map(|m| m.resident_kib)
            .map_err(|e| one_line(&e))
    }

    /// Stop sampling and take the last sample.
    pub(super) fn finish(self) -> ServerUsage {
        let _ = self.stop.send(());
        let (mut peak, mut error) = self
            .thread
            .join()
            .unwrap_or((self.before_kib, Some("the sampler panicked".into())));
        let mut usage = ServerUsage {
            pid: self.pid,
            rss_before_kib: self.before_kib,
            rss_peak_kib: peak,
            rss_after_kib: 0,
            cpu_secs: 0.0,
            threads: 0,
            error: None,
        };
        match (process::memory(self.pid), process::usage(self.pid)) {
            (Ok(memory), Ok(now)) => {
                peak = peak.max(memory.resident_kib);
                if memory.peak_resident_kib > self.high_water_kib {
                    // A new high-water mark was set during the attack: that is its peak.
                    peak = peak.max(memory.peak_resident_kib);
                }
                usage.rss_after_kib = memory.resident_kib;
                usage.rss_peak_kib = peak;
                usage.cpu_secs = now.cpu().saturating_sub(self.cpu_before).as_secs_f64();
                usage.threads = now.threads;
            }
            (Err(e), _) | (_, Err(e)) => {
                error.get_or_insert(one_line(&e));
            }
        }
        usage.error = error;
        usage
    }
}
