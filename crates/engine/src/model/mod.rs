//! The drivers, one file (or folder) per I/O model: each holds exactly what makes its model
//! different. The readiness models (polling, select, poll, signal, epoll) are
//! [`reactor::Selector`]s run by the shared event loop in [`reactor`]; blocking and
//! io_uring have loops of their own because their shape differs: threads that block, and
//! completions instead of readiness. [`crate::server`] picks one per [`crate::Model`].
//!
//! blocking, polling and the reactor are the same code on both platforms. The other Linux
//! drivers sit at this level; the Windows ones in [`windows`]: their readiness models
//! (select, WSAPoll, WSAAsyncSelect, WSAEventSelect) are more selectors, and their
//! completion models (overlapped I/O with events or routines, IOCP) share a loop there.

pub(crate) mod blocking;
pub(crate) mod polling;
pub(crate) mod reactor;

#[cfg(target_os = "linux")]
pub(crate) mod epoll;
#[cfg(target_os = "linux")]
pub(crate) mod poll;
#[cfg(target_os = "linux")]
pub(crate) mod select;
#[cfg(target_os = "linux")]
pub(crate) mod signal;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

#[cfg(windows)]
pub(crate) mod windows;
