//! The machine a report was measured on, read from /proc.

use serde::{Deserialize, Serialize};

/// What the report says about the machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The CPU model name, if /proc/cpuinfo gives one.
    pub cpu_model: Option<String>,
    /// MemTotal, KiB.
    pub memory_kib: Option<u64>,
    /// Kernel name, release and version, as `uname -srv` prints them.
    pub kernel: String,
    /// The soft limit on open files of this process.
    pub open_files_limit: Option<u64>,
}

impl Machine {
    /// Read it from the running system.
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let kernel = ["ostype", "osrelease", "version"]
            .iter()
            .map(|name| read(&format!("/proc/sys/kernel/{name}")).trim().to_string())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.trim().to_string()),
            memory_kib: read("/proc/meminfo")
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok()),
            kernel,
            open_files_limit: read("/proc/self/limits")
                .lines()
                .find_map(|line| line.strip_prefix("Max open files"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|soft| soft.parse().ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_linux_machine() {
        let machine = Machine::detect();
        assert!(machine.cpus >= 1);
        assert!(machine.kernel.starts_with("Linux "), "{}", machine.kernel);
        assert!(machine.memory_kib.unwrap_or(0) > 0);
        assert!(machine.open_files_limit.unwrap_or(0) > 0);
    }
}
