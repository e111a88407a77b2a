//! Readers for `/proc/PID/stat` and `/proc/PID/status`, with typed results.
//!
//! Each file is read whole in one `read` (the kernel builds it at once, so the fields are
//! from one moment), then parsed by a pure function that tests can feed.

use crate::syscall;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The CPU time and thread count of a process, from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Time spent in user mode (`utime`).
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf (`stime`).
    pub system: Duration,
    /// Threads in the process (`num_threads`).
    pub threads: u64,
}

impl Stat {
    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    /// Parse the text of a `/proc/PID/stat` file; times are in clock ticks of
    /// `ticks_per_second` (see [`clock_ticks_per_second`]).
    pub fn parse(text: &str, ticks_per_second: u64) -> Result<Stat, ParseError> {
        // The command name (field 2) may hold spaces and parentheses: split after the
        // last ')'.
        let rest = &text[text.rfind(')').ok_or(ParseError("comm"))? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): utime is field 14, stime 15, num_threads 20.
        let field = |n: usize, name: &'static str| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse::<u64>().ok())
                .ok_or(ParseError(name))
        };
        let ticks = |n: u64| {
            Duration::from_nanos(n.saturating_mul(1_000_000_000) / ticks_per_second.max(1))
        };
        Ok(Stat {
            user: ticks(field(14, "utime")?),
            system: ticks(field(15, "stime")?),
            threads: field(20, "num_threads")?,
        })
    }
}

/// The memory of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Resident set now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

impl Status {
    /// Parse the text of a `/proc/PID/status` file.
    pub fn parse(text: &str) -> Result<Status, ParseError> {
        let kib = |key: &'static str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or(ParseError(key))
        };
        Ok(Status {
            rss_kib: kib("VmRSS")?,
            hwm_kib: kib("VmHWM")?,
        })
    }
}

/// A /proc file lacks a field, or the field is not what it should be; the field's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no valid `{0}` field")]
pub struct ParseError(pub &'static str);

/// Reading a /proc file failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read: most often, the process is gone.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file did not parse.
    #[error("cannot parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is missing.
        #[source]
        source: ParseError,
    },
}

/// Read and parse `/proc/PID/<name>`.
fn read<T>(
    pid: u32,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, ProcError> {
    let path = PathBuf::from(format!("/proc/{pid}/{name}"));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|source| ProcError::Parse { path, source }),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// CPU time and threads of process `pid`, from `/proc/PID/stat`.
pub fn stat(pid: u32) -> Result<Stat, ProcError> {
    let ticks = clock_ticks_per_second();
    read(pid, "stat", |text| Stat::parse(text, ticks))
}

/// Memory of process `pid`, from `/proc/PID/status`.
pub fn status(pid: u32) -> Result<Status, ProcError> {
    read(pid, "status", Status::parse)
}

/// Clock ticks per second, the unit of utime and stime in /proc/PID/stat (100 if the
/// system does not say).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes no pointers.
    match syscall!(sysconf(libc::_SC_CLK_TCK)) {
        Ok(ticks) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_past_a_command_with_spaces_and_parentheses() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 1000000 300 18446744073709551615";
        let stat = Stat::parse(line, 100).unwrap();
        assert_eq!(stat.user, Duration::from_millis(2500));
        assert_eq!(stat.system, Duration::from_millis(500));
        assert_eq!(stat.cpu(), Duration::from_secs(3));
        assert_eq!(stat.threads, 7);
        assert_eq!(Stat::parse("4242 (x) S 1 2", 100), Err(ParseError("utime")));
        assert_eq!(Stat::parse("no parenthesis", 100), Err(ParseError("comm")));
    }

    #[test]
    fn status_parses_rss_and_hwm() {
        let text = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nVmRSSX:\t1 kB\n";
        assert_eq!(
            Status::parse(text),
            Ok(Status {
                rss_kib: 1024,
                hwm_kib: 2048
            })
        );
        // A kernel thread has no memory lines.
        assert_eq!(Status::parse("Name:\tkthreadd\n"), Err(ParseError("VmRSS")));
    }

    // Moved from load's server.rs (`samples_this_process`).
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let stat = stat(pid).expect("own /proc/PID/stat parses");
        assert!(stat.threads >= 1);
        let status = status(pid).expect("own /proc/PID/status parses");
        assert!(status.rss_kib > 0 && status.hwm_kib >= status.rss_kib);
    }

    #[test]
    fn a_missing_process_is_a_read_error() {
        // Above the largest pid Linux hands out (2^22).
        let err = stat(u32::MAX).unwrap_err();
        assert!(matches!(err, ProcError::Read { .. }), "{err}");
        assert!(matches!(status(u32::MAX), Err(ProcError::Read { .. })));
    }

    #[test]
    fn clock_ticks_are_positive() {
        assert!(clock_ticks_per_second() > 0);
    }
}
