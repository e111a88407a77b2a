//! Sampling the server process from /proc: CPU time, threads, memory.

use crate::sys;
use std::fs;
use std::time::Duration;

/// One look at the server process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerSample {
    /// utime + stime.
    pub(crate) cpu: Duration,
    /// Threads in the process.
    pub(crate) threads: u64,
}

/// Read utime, stime and the thread count from /proc/PID/stat. None if the process is
/// gone or the file cannot be parsed.
pub(crate) fn sample(pid: u32) -> Option<ServerSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, num_threads 20.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = field(14)? + field(15)?;
    let per_second = sys::clock_ticks_per_second();
    Some(ServerSample {
        cpu: Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second),
        threads: field(20)?,
    })
}

/// VmRSS and VmHWM from /proc/PID/status, in KiB.
pub(crate) fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// How many cores the server can keep busy at most: its allowed CPUs, or its thread
/// count if that is smaller.
pub(crate) fn cores(pid: u32, threads: u64) -> f64 {
    let allowed = sys::allowed_cpus(pid).unwrap_or(1).max(1) as u64;
    allowed.min(threads.max(1)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let pid = std::process::id();
        let s = sample(pid).expect("own /proc/PID/stat parses");
        assert!(s.threads >= 1);
        let (rss, hwm) = memory(pid).expect("own /proc/PID/status parses");
        assert!(rss > 0 && hwm >= rss);
    }
}
