//! Sampling the server process ([`iomodels_sys::process`]: /proc on Linux,
//! `GetProcessTimes` and `GetProcessMemoryInfo` on Windows): CPU time, threads, memory.

use iomodels_sys::process::{self, Memory, Usage};

/// User and system time and the thread count. None if the process is gone or cannot be
/// read.
pub(crate) fn sample(pid: u32) -> Option<Usage> {
    process::usage(pid).ok()
}

/// The resident set (Windows: working set) now and at its peak.
pub(crate) fn memory(pid: u32) -> Option<Memory> {
    process::memory(pid).ok()
}

/// How many cores the server can keep busy at most: its allowed CPUs, or its thread
/// count if that is smaller.
pub(crate) fn cores(pid: u32, threads: u64) -> f64 {
    let allowed = iomodels_sys::cpu::allowed_cpus(pid).unwrap_or(1).max(1) as u64;
    allowed.min(threads.max(1)) as f64
}
