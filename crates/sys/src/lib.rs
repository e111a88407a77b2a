//! # iomodels-sys
//!
//! The one system layer of iomodels outside the I/O models' own drivers: every crate that
//! needs a system call the standard library and socket2 do not wrap takes it from here.
//! Linux and Windows: each module offers the same functions on both, implemented in a
//! `linux.rs` and a `windows.rs` beside its `mod.rs` and picked there with one `cfg`; what
//! only one platform has is marked so below.
//!
//! - `syscall!` (Linux): the one convention for a raw call, -1 and `errno` turned into
//!   [`std::io::Result`].
//! - `EventFd` (Linux): a counter other threads bump to wake a waiting thread.
//! - `Epoll` (Linux): an edge-triggered epoll instance waited on with `epoll_wait(2)`.
//! - `wsapoll` (Windows): `WSAPoll`, poll(2)'s Winsock twin.
//! - [`timeout_ms`]: a wait timeout in whole milliseconds, rounded up.
//! - [`cpu`]: CPU lists (`0,2-3`), pinning a thread, the CPUs a process may use, a
//!   thread's CPU time.
//! - [`process`]: a process's CPU time and memory by pid, starting a child pinned, asking
//!   a child to stop.
//! - [`machine`]: the CPU model, memory and kernel of this machine, for reports.
//! - [`limits`]: raising the open-file limit (Windows has none for sockets).
//! - `proc` (Linux): typed readers for `/proc/PID/stat` and `/proc/PID/status`.
//! - [`socket`]: the socket option socket2 lacks (`IP_BIND_ADDRESS_NO_PORT`, Linux), and
//!   what a non-blocking connect in progress looks like.
//! - [`signals`]: waiting for SIGINT or SIGTERM without a handler (Linux), or for Ctrl-C,
//!   Ctrl-Break, the console closing or a stop request (Windows), for the binaries.
//! - `wine_version` (Windows): the Wine release this runs under, if it does.
//!
//! ## libc, not rustix
//! On Linux the calls here go through `libc`, not rustix (in Cargo.lock only through tempfile, a
//! test dependency of compare). Every crate of the workspace already depends on `libc` and
//! speaks its types (`libc::epoll_event`, `libc::cpu_set_t`), and the engine's drivers call
//! it through the same `syscall!` shape; the calls wrapped here are a dozen, each a line.
//! Taking rustix for them would add a second vocabulary of types and errors beside the one
//! the engine keeps, for no call we lack.
//!
//! ## glibc
//! Only symbols every supported glibc has (2.31, Debian 11, and later) are linked: epoll is
//! waited on with `epoll_wait`, not the `epoll_pwait2` of glibc 2.35.
//!
//! ## Windows
//! The calls go through `windows-sys` (0.59, as in Cargo.lock already), each inside a safe
//! function of the module that needs it; handles are owned by `std`'s `OwnedHandle`, so
//! none is leaked or closed twice.
//!
//! ## Safety
//! Every unsafe block of the crate carries a `// SAFETY:` comment; the crate denies
//! `clippy::undocumented_unsafe_blocks`.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cpu;
#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
mod eventfd;
pub mod limits;
pub mod machine;
#[cfg(target_os = "linux")]
pub mod proc;
pub mod process;
pub mod signals;
pub mod socket;
mod timeout;
#[cfg(windows)]
mod win;
#[cfg(windows)]
pub mod wsapoll;

pub use cpu::{parse_cpu_list, pin_current_thread, CpuList, CpuListError};
#[cfg(target_os = "linux")]
pub use epoll::{Epoll, HANGUP, READABLE, WRITABLE};
#[cfg(target_os = "linux")]
pub use eventfd::EventFd;
pub use limits::raise_open_file_limit;
#[cfg(windows)]
pub use machine::wine_version;
pub use timeout::timeout_ms;

#[cfg(target_os = "linux")]
#[doc(hidden)]
pub use libc as __libc;

/// Call a libc function that returns -1 on error and sets `errno`, as an
/// [`std::io::Result`] of its return value.
///
/// The call is made in an `unsafe` block inside the macro: the caller upholds the
/// function's contract and says how in a `// SAFETY:` comment above the use.
///
/// ```
/// use iomodels_sys::syscall;
///
/// // SAFETY: getpid takes no arguments and cannot fail.
/// let pid = syscall!(getpid()).unwrap();
/// assert_eq!(pid as u32, std::process::id());
/// ```
// The arguments are expanded inside the macro's unsafe block on purpose: a raw call's
// arguments (pointers, sizes) are what its contract is about, and the `// SAFETY:` comment
// at the use covers them, as in the engine's `syscall!`.
#[cfg(target_os = "linux")]
#[macro_export]
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe, clippy::macro_metavars_in_unsafe)]
        // SAFETY: the caller of the macro upholds the libc function's contract; the macro
        // only reads its return value and errno.
        let res = unsafe { $crate::__libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
