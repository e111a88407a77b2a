//! The machine from /proc (Linux).

/// A /proc file's text; empty if it cannot be read.
fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The CPU model name, if /proc/cpuinfo gives one.
pub fn cpu_model() -> Option<String> {
    read("/proc/cpuinfo")
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
}

/// MemTotal, KiB.
pub fn memory_kib() -> Option<u64> {
    read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Kernel name, release and version, as `uname -srv` prints them.
pub fn kernel() -> String {
    ["ostype", "osrelease", "version"]
        .iter()
        .map(|name| read(&format!("/proc/sys/kernel/{name}")).trim().to_string())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> Option<u64> {
    read("/proc/self/limits")
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}
