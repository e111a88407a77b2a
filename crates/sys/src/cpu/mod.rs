//! CPUs: lists such as `0,2-3`, pinning, and the CPU time a thread has used.
//!
//! The lists are parsed here, the same on every platform; pinning and CPU time are the
//! platform's (`sched_setaffinity` and `RUSAGE_THREAD` on Linux, affinity masks and
//! `GetThreadTimes` on Windows), with the same functions and meanings on both:
//!
//! - [`CPU_SETSIZE`]: the CPUs an affinity set can name (1024 on Linux; 64, one processor
//!   group, on Windows).
//! - [`pin_current_thread`], [`allowed_cpus`], [`thread_cpu_time`].
//! - Starting a child pinned: `pin_before_exec` on Linux; on both platforms
//!   [`crate::process::spawn`], which Windows implements by starting the child suspended.

use std::fmt;
use std::str::FromStr;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{allowed_cpus, pin_before_exec, pin_current_thread, thread_cpu_time, CPU_SETSIZE};
#[cfg(windows)]
mod windows;
#[cfg(all(windows, test))]
pub(crate) use windows::allowed_mask;
#[cfg(windows)]
pub(crate) use windows::Mask;
#[cfg(windows)]
pub use windows::{allowed_cpus, pin_current_thread, thread_cpu_time, CPU_SETSIZE};

/// A CPU list such as `1`, `0,2` or `0-3,6`, parsed by [`parse_cpu_list`]: sorted, without
/// repeats, every CPU below [`CPU_SETSIZE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<CpuList, CpuListError> {
        parse_cpu_list(s).map(CpuList)
    }
}

/// A CPU list that does not parse: the list, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a CPU list (expected e.g. `1`, `0,2` or `0-3`): {list:?}: {kind}")]
pub struct CpuListError {
    list: String,
    kind: CpuListErrorKind,
}

impl CpuListError {
    /// What is wrong with the list.
    pub fn kind(&self) -> &CpuListErrorKind {
        &self.kind
    }
}

/// What is wrong with a CPU list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuListErrorKind {
    /// The list names no CPU at all.
    Empty,
    /// A part (between commas, or one end of a range) is not a decimal CPU number.
    NotANumber(String),
    /// A range whose first CPU is above its last.
    Backwards(String),
    /// A CPU at or beyond [`CPU_SETSIZE`].
    BeyondSetSize(usize),
}

impl fmt::Display for CpuListErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuListErrorKind::Empty => write!(f, "it names no CPU"),
            CpuListErrorKind::NotANumber(part) => write!(f, "{part:?} is not a CPU number"),
            CpuListErrorKind::Backwards(range) => write!(f, "range {range:?} runs backwards"),
            CpuListErrorKind::BeyondSetSize(cpu) => {
                write!(f, "CPU {cpu} is beyond CPU_SETSIZE ({CPU_SETSIZE})")
            }
        }
    }
}

/// Parse a CPU list like `0`, `0-1` or `0,2-3` into its CPUs, sorted and without repeats.
///
/// Strict: parts are separated by single commas (spaces around a part or a range's ends
/// are allowed), each a decimal number or an ascending range `FIRST-LAST`; an empty list,
/// an empty part, a sign, a backwards range, or a CPU at or beyond [`CPU_SETSIZE`] is an
/// error.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, CpuListError> {
    let error = |kind| CpuListError {
        list: list.to_string(),
        kind,
    };
    if list.trim().is_empty() {
        return Err(error(CpuListErrorKind::Empty));
    }
    let cpu = |text: &str| {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error(CpuListErrorKind::NotANumber(text.to_string())));
        }
        match text.parse::<usize>() {
            Ok(cpu) if cpu < CPU_SETSIZE => Ok(cpu),
            Ok(cpu) => Err(error(CpuListErrorKind::BeyondSetSize(cpu))),
            // Only digits, so only too large to parse.
            Err(_) => Err(error(CpuListErrorKind::BeyondSetSize(usize::MAX))),
        }
    };
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (cpu(first)?, cpu(last)?);
                if first > last {
                    return Err(error(CpuListErrorKind::Backwards(part.trim().to_string())));
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(cpu(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        // Moved from compare's process.rs.
        assert_eq!(parse_cpu_list("0").unwrap(), [0]);
        assert_eq!(parse_cpu_list("0,2-3,2").unwrap(), [0, 2, 3]);
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
        // As in load's cli.rs (`cpu_lists`).
        assert_eq!("1".parse::<CpuList>().unwrap().0, vec![1]);
        assert_eq!("0,2-4".parse::<CpuList>().unwrap().0, vec![0, 2, 3, 4]);
        assert!("3-1".parse::<CpuList>().is_err());
        assert!("a".parse::<CpuList>().is_err());
        // More.
        assert_eq!(parse_cpu_list("0,2-3").unwrap(), [0, 2, 3]);
        assert_eq!(parse_cpu_list(" 3 , 1 - 2 ").unwrap(), [1, 2, 3]);
        assert_eq!(parse_cpu_list("5-5").unwrap(), [5]);
        let last = CPU_SETSIZE - 1;
        assert_eq!(parse_cpu_list(&last.to_string()).unwrap(), [last]);
    }

    #[test]
    fn cpu_lists_are_strict() {
        let kind = |list: &str| parse_cpu_list(list).unwrap_err().kind().clone();
        assert_eq!(kind(""), CpuListErrorKind::Empty);
        assert_eq!(kind("  "), CpuListErrorKind::Empty);
        for garbage in [
            "x", "0,", ",0", "0,,1", "+1", "-1", "1-", "1-2-3", "0x1", "1.5",
        ] {
            assert!(
                matches!(kind(garbage), CpuListErrorKind::NotANumber(_)),
                "{garbage:?} parsed"
            );
        }
        assert_eq!(kind("3-1"), CpuListErrorKind::Backwards("3-1".into()));
        let size = CPU_SETSIZE.to_string();
        assert_eq!(kind(&size), CpuListErrorKind::BeyondSetSize(CPU_SETSIZE));
        assert_eq!(
            kind(&format!("0-{size}")),
            CpuListErrorKind::BeyondSetSize(CPU_SETSIZE)
        );
        assert_eq!(
            kind("99999999999999999999999"),
            CpuListErrorKind::BeyondSetSize(usize::MAX)
        );
        let message = parse_cpu_list("3-1").unwrap_err().to_string();
        assert!(message.contains("\"3-1\""), "{message}");
    }
}
