//! The book's own models, on Winsock.
//!
//! The readiness models (select, WSAPoll, WSAAsyncSelect, WSAEventSelect) are more
//! [`reactor::Selector`]s, run by the same loop as the Linux ones; blocking and polling are
//! the shared drivers themselves. The completion models (overlapped I/O completed through
//! events or completion routines, and IOCP) post owned buffers to the kernel and are told
//! when it is done with them.

use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::model::reactor;
use crate::runtime::{Core, Started};
use std::sync::Arc;

mod asyncselect;
mod eventselect;
mod iocp;
mod overlapped;
mod overlapped_event;
mod overlapped_routine;
mod select;
#[cfg(test)]
mod selector_tests;
mod wsapoll;

/// Start one of the Windows-only models.
pub(crate) fn start<H: Handler>(model: Model, core: &Arc<Core<H>>) -> Result<Started, Error> {
    match model {
        Model::Blocking | Model::Polling => unreachable!("the shared drivers start these"),
        Model::Select => reactor::start::<select::Select, H>(core),
        Model::WsaPoll => reactor::start::<wsapoll::WsaPoll, H>(core),
        Model::AsyncSelect => reactor::start::<asyncselect::AsyncSelect, H>(core),
        Model::EventSelect => reactor::start::<eventselect::EventSelect, H>(core),
        Model::OverlappedEvent => overlapped_event::start(core),
        Model::OverlappedRoutine => overlapped_routine::start(core),
        Model::Iocp => iocp::start(core),
    }
}

/// The `FD_*` network events `WSAAsyncSelect` and `WSAEventSelect` are asked for, for a
/// registration's interest: FD_ACCEPT on the listener; FD_READ and FD_CLOSE for reading
/// (a FIN must be heard even when no data follows it); FD_WRITE for writing.
fn network_events(token: usize, interest: reactor::Interest) -> u32 {
    use windows_sys::Win32::Networking::WinSock::{FD_ACCEPT, FD_CLOSE, FD_READ, FD_WRITE};
    let mut events = 0;
    if interest.read {
        events |= if token == reactor::LISTENER {
            FD_ACCEPT
        } else {
            FD_READ | FD_CLOSE
        };
    }
    if interest.write {
        events |= FD_WRITE;
    }
    events
}
