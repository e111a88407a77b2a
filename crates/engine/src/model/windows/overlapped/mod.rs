//! The completion loop the three overlapped models share: IOCP, overlapped I/O with
//! completion routines, overlapped I/O with events.
//!
//! A worker thread owns a slab of connections, each with at most one `WSARecv` and one
//! `WSASend` in flight, and possibly the listener with its pre-posted `AcceptEx` ops. Every
//! op is a heap object owned by the op table ([`op`]) while Winsock has it. What a
//! completion (op, bytes, error) leads to is the same in the three models and is written
//! once, in [`worker`], the way the io_uring driver applies its completions: bytes go to
//! the handler, the outbox is flushed by one send at a time, back-pressure is not
//! re-posting the receive, a graceful close is `shutdown(SD_SEND)` after the last send and
//! a linger that keeps a receive posted until the peer's FIN, an abortive close is
//! `SO_LINGER 0` and `closesocket`, and a closed socket's ops are cancelled (`CancelIoEx`)
//! and waited for before the socket is closed and their buffers freed. Shutdown, timers and
//! the idle sweep come from the shared [`EventLoop`](crate::runtime::lifecycle::EventLoop).
//!
//! What differs between the models is only where completions come from: a [`Source`]
//! says how an op learns of its completion (nothing to add for a port; a completion
//! routine; an event) and how the worker waits for the next ones.

mod lifecycle;
pub(crate) mod op;
mod worker;

pub(crate) use worker::Worker;

use crate::config::Model;
use crate::runtime::Wake;
use crate::sys::{RawSock, Sock};
use op::Op;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Networking::WinSock::LPWSAOVERLAPPED_COMPLETION_ROUTINE;
use windows_sys::Win32::System::IO::OVERLAPPED;

/// What a wait brought.
pub(crate) enum Event {
    /// An op completed: its address, and what is known of its outcome.
    Done(*mut OVERLAPPED, Outcome),
    /// Another thread woke the worker (output queued, shutdown asked).
    Wake,
    /// A connection accepted on another worker's listener, handed to this one.
    Adopt(Sock),
}

/// The outcome of a completed op, as its source reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    /// Bytes transferred and the Winsock error code (0: success).
    Known(u32, i32),
    /// Ask the op (`WSAGetOverlappedResult`).
    Ask,
}

/// Where a worker's completions come from: the one thing the three models do differently.
pub(crate) trait Source {
    /// The model, for logs and errors.
    const MODEL: Model;

    /// The completion routine `WSARecv` and `WSASend` are given.
    fn routine(&self) -> LPWSAOVERLAPPED_COMPLETION_ROUTINE {
        None
    }

    /// Make `op` ready to be posted (give it an event, if the model completes through
    /// events).
    fn prepare(&mut self, _op: &mut Op) -> io::Result<()> {
        Ok(())
    }

    /// `op` was posted; the source watches it if it has to (its event).
    fn posted(&mut self, _op: *mut OVERLAPPED, _event: Option<HANDLE>) {}

    /// An op came back for good: take back what `prepare` gave it.
    fn reclaim(&mut self, _op: &mut Op) {}

    /// Make the listener's completions reach this source.
    fn attach_listener(&mut self, _listener: RawSock) -> io::Result<()> {
        Ok(())
    }

    /// A connection was accepted here: hand it to the worker that will serve it, or
    /// return it to be served here.
    fn dispatch(&mut self, socket: Sock) -> Option<Sock> {
        Some(socket)
    }

    /// Wait for completions (at most `timeout`, `None` for no limit) and append what
    /// arrived to `events`.
    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()>;

    /// The waker other threads interrupt `wait` with.
    fn waker(&self) -> Arc<dyn Wake>;

    /// The worker is exiting with no op in flight (or some abandoned): stop taking
    /// connections from other workers and release what is still queued for this one.
    fn close(&mut self) {}
}
