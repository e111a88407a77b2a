//! The writer thread: sleep until there is output or a close request, write the output
//! outside the lock, and decide how the session ends once it has nothing left to do.

use super::link::{abort_socket, Hand, Link};
use crate::runtime::timers::{linger_over, LINGER_QUIET};
use crate::session::{CloseRequest, Outbox, ReaderPhase, Session, WriterPhase};
use crate::sys;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// The writer's whole life. It ends [`WriterPhase::Done`], with the session's end
/// recorded in the outbox (its close request), and the reader woken.
pub(super) fn run(session: &Session, link: &Link, linger_timeout: Duration) {
    let mut outbox = session.outbox();
    loop {
        if let Some(CloseRequest::Abort(_)) = outbox.close_request() {
            // The reader may be writing inline, and stuck in send.
            link.abort_if_sending(&outbox);
            break;
        }
        if outbox.threads.reader == ReaderPhase::Sending {
            // The reader is writing inline; it wakes this thread when it is done.
            outbox = link.writer_sleep(outbox, WriterPhase::Deferred, None);
            continue;
        }
        if outbox.has_pending() {
            let written;
            (outbox, written) = link.write_pending(session, outbox, Hand::Writer);
            if !written {
                break;
            }
            continue;
        }
        // Everything is written: a graceful close ends the session now, and so does a
        // peer that half-closed and has its whole echo (recorded under the lock, so that
        // later sends fail instead of vanishing).
        let peer_closed = outbox.threads.reader == ReaderPhase::Done;
        if outbox.drained_end(peer_closed).is_some() {
            break;
        }
        outbox = link.writer_sleep(outbox, WriterPhase::Waiting, None);
    }
    if matches!(outbox.close_request(), Some(CloseRequest::Graceful(_)))
        && outbox.threads.reader != ReaderPhase::Done
    {
        outbox = linger(outbox, link, linger_timeout);
    }
    outbox.threads.writer = WriterPhase::Done;
    let reading = outbox.threads.reader != ReaderPhase::Done;
    link.nudge(&outbox);
    drop(outbox);
    if reading {
        // The reader may be blocked in recv. The socket is open: the reader closes it only
        // after joining this thread.
        sys::shutdown_read(link.fd);
    }
}

/// Everything queued is written and the session closes in order: send the FIN, then wait
/// (with the outbox unlocked) while the reader discards input, until the reader saw the
/// peer's FIN, the linger rule of `timers::Linger` says the socket may close, or an abort
/// is asked for. Returns with the outbox locked again.
fn linger<'a>(
    mut outbox: MutexGuard<'a, Outbox>,
    link: &Link,
    limit: Duration,
) -> MutexGuard<'a, Outbox> {
    sys::shutdown_write(link.fd);
    let start = Instant::now();
    let mut heard = start;
    // Input discarded before the FIN does not count.
    outbox.threads.heard = false;
    loop {
        outbox = link.writer_sleep(outbox, WriterPhase::Lingering, Some(LINGER_QUIET));
        if outbox.threads.reader == ReaderPhase::Done {
            return outbox;
        }
        if let Some(CloseRequest::Abort(_)) = outbox.close_request() {
            // The socket is open: the reader closes it only after joining this thread.
            abort_socket(link.fd);
            return outbox;
        }
        let now = Instant::now();
        if std::mem::take(&mut outbox.threads.heard) {
            heard = now;
        }
        if linger_over(now - start, now - heard, limit, || {
            sys::send_progress(link.fd)
        }) {
            return outbox;
        }
    }
}
