//! The drivers, one file (or folder) per I/O model: each holds exactly what makes its model
//! different. The readiness models (polling, select, poll, signal, epoll) are
//! [`reactor::Selector`]s run by the shared event loop in [`reactor`]; blocking and
//! io_uring have loops of their own because their shape differs: threads that block, and
//! completions instead of readiness. [`crate::server`] picks one per [`crate::Model`].

pub(crate) mod blocking;
pub(crate) mod epoll;
pub(crate) mod poll;
pub(crate) mod polling;
pub(crate) mod reactor;
pub(crate) mod select;
pub(crate) mod signal;
pub(crate) mod uring;
