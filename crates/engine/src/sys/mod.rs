//! Thin wrappers over the system calls every driver shares, one module per platform with
//! the same names: [`Sock`] (an owned socket), [`RawSock`] (its handle as the calls take
//! it), `recv`, `send`, `accept`, `listeners`, `shutdown_write`, `abort`, the accept
//! reserve, `send_progress` and the error classifiers the connection policy reads.
//! Model-specific calls (select, poll, epoll, signals, io_uring, the Winsock models) live
//! in their drivers; what is here is what more than one of them needs.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// A socket's raw handle, on either platform.
pub(crate) trait AsRaw {
    /// The handle, borrowed for a call.
    fn raw(&self) -> RawSock;
}
