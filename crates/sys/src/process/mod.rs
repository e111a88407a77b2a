//! Other processes: what one has used (CPU time, threads, memory), starting a child pinned to
//! CPUs, and asking a child to stop gracefully.
//!
//! The same functions and types on every platform:
//!
//! | | Linux | Windows |
//! |---|---|---|
//! | [`usage`] | `/proc/PID/stat` (utime, stime, num_threads) | `GetProcessTimes`, a Toolhelp process snapshot (threads) |
//! | [`memory`] | `/proc/PID/status` (VmRSS, VmHWM) | `GetProcessMemoryInfo` (working set, its peak) |
//! | [`spawn`] with CPUs | affinity set between fork and exec | started suspended, affinity set, then resumed |
//! | [`request_stop`] | SIGTERM | the stop request [`crate::signals::Termination`] waits for |
//!
//! The resident set on Linux and the working set on Windows are the same idea (the pages of
//! the process in memory now), counted by each kernel its own way.

use std::process::{Child, Command};
use std::time::Duration;
use std::{error, io};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

/// The CPU time and threads of a process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Time spent in user mode.
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf.
    pub system: Duration,
    /// Threads in the process.
    pub threads: u64,
}

impl Usage {
    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// The memory of a process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Resident set (Linux `VmRSS`) or working set (Windows) now, KiB.
    pub resident_kib: u64,
    /// The largest it has been (Linux `VmHWM`, Windows peak working set), KiB.
    pub peak_resident_kib: u64,
}

/// A process's usage or memory could not be read: most often, the process is gone.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the {what} of process {pid}")]
pub struct Error {
    pid: u32,
    what: &'static str,
    #[source]
    source: Box<dyn error::Error + Send + Sync>,
}

impl Error {
    fn new(
        pid: u32,
        what: &'static str,
        source: impl Into<Box<dyn error::Error + Send + Sync>>,
    ) -> Error {
        Error {
            pid,
            what,
            source: source.into(),
        }
    }

    /// The process.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// CPU time and threads of process `pid`.
pub fn usage(pid: u32) -> Result<Usage, Error> {
    imp::usage(pid).map_err(|source| Error::new(pid, "CPU time", source))
}

/// Memory of process `pid`.
pub fn memory(pid: u32) -> Result<Memory, Error> {
    imp::memory(pid).map_err(|source| Error::new(pid, "memory", source))
}

/// Spawn `command`, running on `cpus` only from its first instruction when they are given,
/// in a way [`request_stop`] can stop. A CPU at or beyond [`crate::cpu::CPU_SETSIZE`] is
/// `InvalidInput`, returned before anything is spawned; a CPU the system lacks makes the
/// spawn fail.
///
/// On Windows the child is created suspended, given its affinity, then resumed; `spawn`
/// sets the creation flags itself, replacing any set on `command`.
pub fn spawn(command: &mut Command, cpus: Option<&[usize]>) -> io::Result<Child> {
    imp::spawn(command, cpus)
}

/// Have the process `command` spawns die with its parent: on Linux the kernel sends it
/// SIGKILL when the thread that spawned it ends (`PR_SET_PDEATHSIG`; a thread, not the
/// process: spawn from a thread that lives as long as the child should), and a child
/// whose parent is already gone when it starts fails to spawn. On Windows nothing is set
/// (a job object would do it); the parent must kill its children itself.
pub fn die_with_parent(command: &mut Command) {
    imp::die_with_parent(command)
}

/// Ask `child` to stop gracefully, as a user would: SIGTERM on Linux; on Windows the stop
/// request [`crate::signals::Termination::wait`] returns for, set by name (there is no
/// SIGTERM, and console events reach only processes sharing a console).
///
/// On Windows a child that never called [`crate::signals::Termination::block`] cannot be
/// asked: that is an error of kind `NotFound`, and the caller may kill it instead.
///
/// A child that has already exited is left alone: `Ok(())`.
pub fn request_stop(child: &mut Child) -> io::Result<()> {
    // Reaped children are skipped here, so the pid a platform call is given is still this
    // child's: a pid is not reused before its process is waited for.
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    imp::request_stop(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let usage = usage(pid).expect("own usage");
        assert!(usage.threads >= 1);
        let memory = memory(pid).expect("own memory");
        assert!(memory.resident_kib > 0 && memory.peak_resident_kib >= memory.resident_kib);
    }

    #[test]
    fn a_missing_process_is_an_error_naming_it() {
        // Above the largest pid Linux hands out (2^22), and not a multiple of 4 as every
        // Windows pid is.
        let err = usage(u32::MAX).unwrap_err();
        assert_eq!(err.pid(), u32::MAX);
        assert!(
            err.to_string().contains("CPU time of process 4294967295"),
            "{err}"
        );
        assert!(memory(u32::MAX).is_err());
    }

    #[test]
    fn a_cpu_beyond_the_set_size_is_refused_before_spawning() {
        let mut command = Command::new("no-such-program-iomodels");
        let cpus = [0, crate::cpu::CPU_SETSIZE];
        let err = spawn(&mut command, Some(&cpus)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
