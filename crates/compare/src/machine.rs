//! The machine a report was measured on, read through [`iomodels_sys::machine`] (/proc on
//! Linux; the registry, `GlobalMemoryStatusEx` and `RtlGetVersion` on Windows).

use serde::{Deserialize, Serialize};

/// What the report says about the machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The CPU model name, if the system gives one.
    pub cpu_model: Option<String>,
    /// MemTotal (Windows: physical memory), KiB.
    pub memory_kib: Option<u64>,
    /// Kernel name, release and version, as `uname -srv` prints them; on Windows
    /// `Windows MAJOR.MINOR.BUILD`.
    pub kernel: String,
    /// The soft limit on open files of this process (Windows has none).
    pub open_files_limit: Option<u64>,
    /// The platform, when it is not Linux: `Windows`, or `Windows under Wine 8.0 (emulated:
    /// not a Windows measurement)`. Absent on Linux, and in reports from before Windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The Wine release the run was made under, if it was: then every number is Wine's on
    /// its host, not Windows'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wine: Option<String>,
}

impl Machine {
    /// Read it from the running system.
    pub fn detect() -> Self {
        use iomodels_sys::machine;
        let (platform, wine) = platform();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: machine::cpu_model(),
            memory_kib: machine::memory_kib(),
            kernel: machine::kernel(),
            open_files_limit: machine::open_files_limit(),
            platform,
            wine,
        }
    }
}

/// What [`Machine::platform`] and [`Machine::wine`] say here: nothing on Linux.
#[cfg(target_os = "linux")]
fn platform() -> (Option<String>, Option<String>) {
    (None, None)
}

/// What [`Machine::platform`] and [`Machine::wine`] say here.
#[cfg(windows)]
fn platform() -> (Option<String>, Option<String>) {
    let wine = iomodels_sys::wine_version();
    (Some(platform_name(wine.as_deref())), wine)
}

/// `Windows`, or under Wine a name that says the numbers are Wine's.
#[cfg_attr(not(windows), allow(dead_code))]
fn platform_name(wine: Option<&str>) -> String {
    match wine {
        None => "Windows".to_string(),
        Some(version) => {
            format!("Windows under Wine {version} (emulated: not a Windows measurement)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn detects_this_linux_machine() {
        let machine = Machine::detect();
        assert!(machine.cpus >= 1);
        assert!(machine.kernel.starts_with("Linux "), "{}", machine.kernel);
        assert!(machine.memory_kib.unwrap_or(0) > 0);
        assert!(machine.open_files_limit.unwrap_or(0) > 0);
        assert_eq!((machine.platform, machine.wine), (None, None));
    }

    #[test]
    #[cfg(windows)]
    fn detects_this_windows_machine() {
        let machine = Machine::detect();
        assert!(machine.cpus >= 1);
        assert!(machine.kernel.starts_with("Windows "), "{}", machine.kernel);
        assert!(machine.memory_kib.unwrap_or(0) > 0);
        assert_eq!(machine.open_files_limit, None);
        let platform = machine.platform.expect("a platform on Windows");
        assert_eq!(
            platform.contains("Wine"),
            machine.wine.is_some(),
            "{platform}"
        );
    }

    #[test]
    fn wine_is_named_as_not_windows() {
        assert_eq!(platform_name(None), "Windows");
        assert_eq!(
            platform_name(Some("8.0")),
            "Windows under Wine 8.0 (emulated: not a Windows measurement)"
        );
    }
}
