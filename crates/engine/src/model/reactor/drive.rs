//! One connection of the readiness loop: what the worker keeps per connection, and the
//! read-deliver-write step that runs when an event (or the mailbox) says it may progress.

use super::Interest;
use crate::chunks::MAX_SLICES;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::policy::{Closing, Flow, Next};
use crate::runtime::timers::{Activity, Linger, Stamp};
use crate::runtime::Core;
use crate::session::CloseRequest;
use crate::stats::Counters;
use crate::sys;
use crate::sys::{AsRaw, Sock};
use std::io::{self, IoSlice};

/// One connection as the loop sees it.
pub(super) struct Entry<St> {
    pub(super) fd: Sock,
    pub(super) conn: Conn<St>,
    /// The last event said readable and no read has returned EAGAIN since.
    pub(super) readable: bool,
    /// Likewise for writing.
    pub(super) writable: bool,
    /// What the connection policy keeps: FIN seen, back-pressure, closing.
    pub(super) flow: Flow,
    /// An event said the peer hung up: a short read no longer proves the socket empty.
    pub(super) hangup: bool,
    /// Interest registered with a level-triggered selector.
    pub(super) interest: Interest,
    /// For the idle timeout.
    pub(super) activity: Activity,
}

/// A socket whose session ended with a FIN: read and discard until the peer's FIN.
pub(super) struct Lingerer {
    pub(super) fd: Sock,
    pub(super) linger: Linger,
}

/// Reads per service call before other connections get a turn.
pub(super) const READ_BUDGET: usize = 16;

/// What one service of a connection needs besides the connection.
pub(super) struct Turn<'a, H: Handler> {
    pub(super) core: &'a Core<H>,
    /// The worker's read buffer.
    pub(super) scratch: &'a mut [u8],
    pub(super) counters: &'a Counters,
    pub(super) now: Stamp,
    /// Set when a byte or a connection moved.
    pub(super) progressed: &'a mut bool,
    /// Connections to service again without waiting for an event.
    pub(super) ready: &'a mut Vec<usize>,
    pub(super) token: usize,
    /// [`Selector::SHORT_READ_DRAINS`].
    pub(super) short_read_drains: bool,
}

/// The readiness side of a connection: read what the socket has (within a budget), let
/// the handler consume it, write what it queued, and let the policy decide what follows.
pub(super) fn drive<H: Handler>(entry: &mut Entry<H::State>, turn: &mut Turn<'_, H>) -> Next {
    let fd = entry.fd.raw();
    let mut reads = 0;
    loop {
        // Read once, if reading may succeed and the policy wants it: while the session is
        // open and not paused by back-pressure, or while it closes (input is discarded).
        let mut more = false;
        if std::mem::take(&mut entry.flow.redeliver) && !entry.flow.closing {
            // The application resumed its input: first what it left unconsumed.
            if let Err(reason) = entry.conn.redeliver(turn.core) {
                return Next::Close(reason, Closing::Abortive);
            }
            // It may have paused again: then read nothing more until it resumes.
            entry.flow.held = entry.conn.session().input_paused();
        }
        if entry.readable && entry.flow.wants_read() && !entry.conn.stalled() {
            if reads == READ_BUDGET {
                // Let the others have a turn; come back without waiting for an event.
                turn.ready.push(turn.token);
            } else {
                reads += 1;
                match sys::recv(fd, turn.scratch) {
                    Ok(0) => {
                        entry.flow.read_closed = true;
                        *turn.progressed = true;
                    }
                    Ok(n) => {
                        *turn.progressed = true;
                        turn.counters.received(n);
                        entry.activity.input(turn.now);
                        // A short read emptied the queue, unless a FIN may sit behind
                        // the data (an edge-triggered selector would not report it
                        // again): then, or if the selector cannot tell, read to EAGAIN.
                        let drained =
                            turn.short_read_drains && !entry.hangup && n < turn.scratch.len();
                        entry.readable = !drained;
                        more = !drained;
                        if !entry.flow.closing {
                            if let Err(reason) = entry.conn.deliver(turn.core, &turn.scratch[..n]) {
                                return Next::Close(reason, Closing::Abortive);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => entry.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => more = true,
                    Err(e) => return Next::Close(sys::close_reason(&e), Closing::Abortive),
                }
            }
        }

        // Write what is queued, as far as the socket takes it (not for an aborted session).
        let session = entry.conn.session();
        let mut outbox = session.outbox();
        outbox.unschedule();
        let aborted = matches!(outbox.close_request(), Some(CloseRequest::Abort(_)));
        while !aborted && entry.writable && outbox.has_pending() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let pieces = outbox.pending_slices(&mut slices);
            match sys::send_vectored(fd, &slices[..pieces]) {
                Ok(n) => {
                    *turn.progressed = true;
                    turn.counters.sent(n);
                    entry.activity.output(turn.now);
                    outbox.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => entry.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Next::Close(sys::close_reason(&e), Closing::Abortive),
            }
        }
        let was_stopped = !entry.flow.wants_read();
        let next = entry.flow.settle(session, &mut outbox, &turn.core.config);
        drop(outbox);
        if was_stopped && entry.flow.wants_read() {
            // Back-pressure lifted, or the input resumed: what waits in the socket can be
            // read now.
            more = entry.readable;
        }
        if entry.flow.redeliver {
            more = true;
        }
        if !more || matches!(next, Next::Close(..)) {
            return next;
        }
    }
}
