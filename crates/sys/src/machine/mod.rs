//! The machine, as a report describes it: the CPU model, the memory, the kernel, the
//! open-file limit (and, on Windows, whether this is Wine).
//!
//! Linux reads them from /proc; Windows asks the registry (`ProcessorNameString`),
//! `GlobalMemoryStatusEx` and `RtlGetVersion` (which, unlike `GetVersionEx`, does not
//! answer an unmanifested program with Windows 8's number).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{cpu_model, kernel, memory_kib, open_files_limit};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{cpu_model, kernel, memory_kib, open_files_limit, wine_version};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let kernel = kernel();
        let expected = if cfg!(windows) { "Windows " } else { "Linux " };
        assert!(kernel.starts_with(expected), "{kernel}");
        assert!(memory_kib().unwrap_or(0) > 0);
        if let Some(model) = cpu_model() {
            assert!(!model.is_empty() && model == model.trim(), "{model:?}");
        }
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().unwrap_or(0) > 0);
        } else {
            assert_eq!(open_files_limit(), None);
        }
    }
}
