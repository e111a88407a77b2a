//! Stop signals.
//!
//! Waiting for the user's or a supervisor's "stop" without a signal handler doing the work,
//! the one way every iomodels server binary stops (`iomodels serve`, `iomodels chat-server`,
//! `iomodels-peers`). The same [`Termination`] on both platforms: `block` before starting
//! threads, then `wait` (or `exit_on_signal`).
//!
//! - Linux: SIGINT and SIGTERM, blocked in every thread and taken with `sigwait`; `wait`
//!   returns the signal number.
//! - Windows: Ctrl-C, Ctrl-Break, the console closing, logoff and shutdown (through
//!   `SetConsoleCtrlHandler`), and stop requests from [`crate::process::request_stop`], the
//!   SIGTERM of a platform without one; `wait` returns the console control code or
//!   `STOP_REQUEST`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::Termination;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::request_stop;
#[cfg(windows)]
pub use windows::{Termination, STOP_REQUEST};
