//! Resource limits.
//!
//! Linux limits the descriptors a process may hold (`RLIMIT_NOFILE`, a soft limit that may
//! be raised up to a hard one); Windows has no such limit on sockets or other handles short
//! of the per-process handle table.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::raise_open_file_limit;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{raise_open_file_limit, HANDLE_TABLE};
