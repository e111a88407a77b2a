//! Sampling the server process from /proc (read by [`iomodels_sys::proc`]): CPU time,
//! threads, memory.

use iomodels_sys::proc::{self, Stat, Status};

/// utime, stime and the thread count from /proc/PID/stat. None if the process is gone or
/// the file cannot be parsed.
pub(crate) fn sample(pid: u32) -> Option<Stat> {
    proc::stat(pid).ok()
}

/// VmRSS and VmHWM from /proc/PID/status.
pub(crate) fn memory(pid: u32) -> Option<Status> {
    proc::status(pid).ok()
}

/// How many cores the server can keep busy at most: its allowed CPUs, or its thread
/// count if that is smaller.
pub(crate) fn cores(pid: u32, threads: u64) -> f64 {
    let allowed = iomodels_sys::cpu::allowed_cpus(pid).unwrap_or(1).max(1) as u64;
    allowed.min(threads.max(1)) as f64
}
