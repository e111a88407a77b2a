//! The event loop every readiness model shares.
//!
//! polling, select, poll, signal-driven I/O and epoll all answer one question, "which
//! sockets can I read or write without blocking?", in different ways. Each answers it in a
//! [`Selector`]; everything else (accepting, reading into one scratch buffer, calling the
//! handler, writing the outbox, back-pressure, idle timeouts, shutdown) is written once here.
//!
//! The loop keeps two hints per connection, `readable` and `writable`, set by events and
//! cleared only when a call returns EAGAIN. That makes it correct for edge-triggered
//! selectors (epoll with EPOLLET, real-time signals), which report a change once, and for
//! level-triggered ones (select, poll), which keep reporting it.

mod drive;
mod lifecycle;
pub(crate) mod watched;
mod worker;

use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::{Core, Wake};
use crate::sys;
use crate::sys::RawSock;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use worker::Worker;
/// What a connection wants to hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    /// Tell when reading would not block.
    pub(crate) read: bool,
    /// Tell when writing would not block.
    pub(crate) write: bool,
}

impl Interest {
    /// Readable only.
    pub(crate) const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable and writable.
    pub(crate) const BOTH: Interest = Interest {
        read: true,
        write: true,
    };
    /// Nothing (a paused listener).
    pub(crate) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// One readiness report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// The token the descriptor was registered with.
    pub(crate) token: usize,
    /// Reading would not block (data, end of stream, an error, or a pending connection).
    pub(crate) readable: bool,
    /// Writing would not block (or would fail at once).
    pub(crate) writable: bool,
    /// The peer hung up or the socket failed (EPOLLRDHUP, HUP, ERR): read to the end.
    pub(crate) hangup: bool,
}

/// The token of a worker's listening socket.
pub(crate) const LISTENER: usize = usize::MAX;

/// Tokens with this bit name a lingering close (a socket whose session has ended, reading
/// until the peer's FIN), not a connection.
pub(super) const LINGERING: usize = 1 << (usize::BITS - 2);

/// How one readiness model waits. A selector belongs to one worker thread and is created
/// on it.
pub(crate) trait Selector: Sized + 'static {
    /// The model, for errors and logs.
    const MODEL: Model;

    /// `true` if readiness is reported once per change (the loop then registers read and
    /// write interest once and never changes it), `false` if it is reported for as long as
    /// it lasts (the loop then keeps interest exact, or the wait would return at once).
    const EDGE_TRIGGERED: bool;

    /// `true` if, after a read that returned less than asked, the loop may wait for the
    /// next event instead of reading until EAGAIN: the selector reports the socket again if
    /// anything is left, or sets [`Event::hangup`] when a FIN may sit behind the data. That
    /// saves a `recv` returning EAGAIN per message. `false` (the safe default) for a
    /// selector that cannot promise it (signals: a FIN merged into a data signal).
    const SHORT_READ_DRAINS: bool = false;

    /// Create the selector on the worker thread that will use it.
    fn new() -> io::Result<Self>;

    /// A handle other threads use to interrupt [`Selector::select`].
    fn waker(&self) -> Arc<dyn Wake>;

    /// Start watching `fd`. An error refuses the connection (select's FD_SETSIZE).
    fn register(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()>;

    /// Change what `fd` is watched for.
    fn reregister(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()>;

    /// Stop watching `fd` (called before it is closed).
    fn deregister(&mut self, fd: RawSock, token: usize) -> io::Result<()>;

    /// Wait until something is ready, the waker fires, or `timeout` passes; append what is
    /// ready to `events`. EINTR may be returned; the loop just goes round again.
    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;

    /// Told after each round whether it moved any byte or connection (the polling model
    /// sleeps after a round that did not).
    fn round_done(&mut self, progressed: bool) {
        let _ = progressed;
    }
}

/// Start the loop for selector `S`: one thread per worker, each with its own selector and
/// listener.
pub(crate) fn start<S: Selector, H: Handler>(
    core: &Arc<Core<H>>,
) -> Result<crate::runtime::Started, Error> {
    let (listeners, local_addr) = sys::listeners(
        core.config.addr,
        core.config.worker_count(),
        core.config.backlog,
        true,
    )?;
    let threads = crate::runtime::spawn_workers(core, S::MODEL, listeners, |core, listener| {
        let mut worker = Worker::<S, H>::new(core, listener)?;
        Ok(Box::new(move || worker.run()))
    })?;
    Ok((threads, local_addr))
}
