//! What a connection's two threads share, and the session's [`Owner`]: the link between
//! them and every other thread that sends to the session.
//!
//! Their state ([`Threads`]) lives in the session's outbox, under its lock. Every change
//! below is made with that lock held, and whoever makes a change another thread must see
//! wakes that thread ([`Link::nudge`]) before it lets go of the lock.
//!
//! The writer (starts [`WriterPhase::Running`]):
//! - `Running -> Sending -> Running`: it took the queued bytes and wrote them, the lock
//!   released meanwhile ([`Link::write_pending`]). Only while the reader is not sending.
//! - `Running -> Deferred -> Running`: the reader is writing inline; the reader wakes it
//!   when its write ends.
//! - `Running -> Waiting -> Running`: nothing to write and no reason to end; woken by new
//!   output from another thread ([`Owner::schedule_locked`]), a close request, the end of
//!   the reader, or a shutdown.
//! - `Running -> Lingering -> Running`: everything was written for a graceful close and the
//!   FIN sent; it wakes every [`crate::runtime::timers::LINGER_QUIET`] to apply the linger rule, and
//!   early for the reader's end or an abort.
//! - `Running -> Done`: an abort, or the session's end in order (after the linger, if it
//!   lingered). It then wakes the reader (`SHUT_RD` if it may be in `recv`).
//!
//! The reader (starts [`ReaderPhase::Reading`]):
//! - `Reading -> Sending -> Reading`: the handler queued output and nobody else is
//!   writing: it writes it inline, then wakes a `Deferred` writer.
//! - `Reading -> Paused -> Reading`: its output stands above the high-water mark; woken by
//!   the writer's progress, a close request, or the writer's end.
//! - `Reading -> Done`: end of stream, an error, an abort, the writer's end, or a panic in
//!   the handler.
//!
//! And `heard`: set by the reader when it discards input of a closing session; cleared by
//! the lingering writer when it looks.
//!
//! An abort asked for while either thread is `Sending` shuts the socket down on the spot
//! ([`Link::abort_if_sending`]): the sending thread may otherwise wait in `send` for as
//! long as the peer does not read.

use crate::chunks::{Chunks, MAX_SLICES};
use crate::close::CloseReason;
use crate::runtime::timers::AckWatch;
use crate::session::{CloseRequest, Outbox, Owner, ReaderPhase, Session, Threads, WriterPhase};
use crate::stats::Counters;
use crate::sys;
use crate::sys::RawSock;
use std::io::{self, IoSlice};
use std::sync::{Arc, Condvar, MutexGuard};
use std::time::Duration;

impl Threads {
    /// Whether either thread is inside `send`.
    pub(super) fn sending(&self) -> bool {
        self.writer == WriterPhase::Sending || self.reader == ReaderPhase::Sending
    }
}

/// Which of a connection's two threads writes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Hand {
    Reader,
    Writer,
}

/// What a connection's reader, writer and outside senders share. It is the session's
/// [`Owner`]; the condition variables wait with the session's outbox mutex.
pub(super) struct Link {
    /// The socket. Owned by the reader, which closes it only after its writer ended and the
    /// connection left the registry: it is open while either thread is inside `send`.
    pub(super) fd: RawSock,
    /// The writer waits here for output, a close request, the reader's inline write to end,
    /// or (lingering) the reader's end.
    to_writer: Condvar,
    /// The reader waits here for its output to drain below the low-water mark.
    to_reader: Condvar,
    pub(super) counters: Arc<Counters>,
}

impl Link {
    pub(super) fn new(fd: RawSock, counters: Arc<Counters>) -> Link {
        Link {
            fd,
            to_writer: Condvar::new(),
            to_reader: Condvar::new(),
            counters,
        }
    }

    /// Wake whichever of the two threads sleeps on a condition variable, after a change
    /// they should look at (under the lock, so the wake-up cannot be lost).
    pub(super) fn nudge(&self, outbox: &Outbox) {
        let threads = outbox.threads;
        if matches!(
            threads.writer,
            WriterPhase::Waiting | WriterPhase::Deferred | WriterPhase::Lingering
        ) {
            self.to_writer.notify_one();
        }
        if threads.reader == ReaderPhase::Paused {
            self.to_reader.notify_one();
        }
    }

    /// If an abort was asked for and a thread is inside `send`, shut the socket down: that
    /// thread may be stuck there for as long as the peer does not read.
    pub(super) fn abort_if_sending(&self, outbox: &Outbox) {
        if matches!(outbox.close_request(), Some(CloseRequest::Abort(_)))
            && outbox.threads.sending()
        {
            abort_socket(self.fd);
        }
    }

    /// The writer sleeps as `phase` (at most `timeout`, if given) and comes back
    /// [`WriterPhase::Running`], with the outbox locked again.
    pub(super) fn writer_sleep<'a>(
        &self,
        mut outbox: MutexGuard<'a, Outbox>,
        phase: WriterPhase,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Outbox> {
        outbox.threads.writer = phase;
        let mut outbox = match timeout {
            None => self
                .to_writer
                .wait(outbox)
                .unwrap_or_else(|p| p.into_inner()),
            Some(timeout) => match self.to_writer.wait_timeout(outbox, timeout) {
                Ok((outbox, _)) => outbox,
                Err(poisoned) => poisoned.into_inner().0,
            },
        };
        outbox.threads.writer = WriterPhase::Running;
        outbox
    }

    /// The reader sleeps [`ReaderPhase::Paused`] and comes back reading, with the outbox
    /// locked again.
    pub(super) fn reader_sleep<'a>(
        &self,
        mut outbox: MutexGuard<'a, Outbox>,
    ) -> MutexGuard<'a, Outbox> {
        outbox.threads.reader = ReaderPhase::Paused;
        let mut outbox = self
            .to_reader
            .wait(outbox)
            .unwrap_or_else(|p| p.into_inner());
        outbox.threads.reader = ReaderPhase::Reading;
        outbox
    }

    /// `hand` writes every pending byte, outside the lock: the bytes are taken out (they
    /// still count against the limit), `hand` is marked sending, and the lock is let go
    /// during `send`, so other threads keep queueing. The caller checked that nobody else
    /// is sending. Returns the outbox locked again, and whether the write succeeded (if
    /// not, an abort was asked for).
    pub(super) fn write_pending<'a>(
        &self,
        session: &'a Session,
        mut outbox: MutexGuard<'a, Outbox>,
        hand: Hand,
    ) -> (MutexGuard<'a, Outbox>, bool) {
        debug_assert!(!outbox.threads.sending());
        let mut batch = outbox.take();
        let taken = batch.len();
        match hand {
            Hand::Reader => outbox.threads.reader = ReaderPhase::Sending,
            Hand::Writer => outbox.threads.writer = WriterPhase::Sending,
        }
        drop(outbox);
        let written = send_all(self.fd, &mut batch, &self.counters);
        let mut outbox = session.outbox();
        outbox.finish(taken);
        match hand {
            Hand::Reader => {
                outbox.threads.reader = ReaderPhase::Reading;
                if outbox.threads.writer == WriterPhase::Deferred {
                    self.to_writer.notify_one();
                }
            }
            Hand::Writer => {
                outbox.threads.writer = WriterPhase::Running;
                // A paused reader may read again.
                if outbox.threads.reader == ReaderPhase::Paused {
                    self.to_reader.notify_one();
                }
            }
        }
        match written {
            Ok(()) => (outbox, true),
            Err(reason) => {
                outbox.request_close(CloseRequest::Abort(reason));
                (outbox, false)
            }
        }
    }
}

impl Owner for Link {
    /// Another thread queued output or asked for a close, and holds the outbox locked.
    fn schedule(&self, _session: &Session, outbox: &mut Outbox) -> bool {
        self.abort_if_sending(outbox);
        self.nudge(outbox);
        // Never "queued": the writer looks at the outbox every time it wakes.
        false
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Close now, whoever is blocked on the socket (see `sys::abort`). The caller guarantees
/// that the socket is still open.
pub(super) fn abort_socket(fd: RawSock) {
    sys::abort(fd);
}

/// Write all of `batch` (gathered, up to [`MAX_SLICES`] pieces a call), retrying after
/// signals.
fn send_all(fd: RawSock, batch: &mut Chunks, counters: &Counters) -> Result<(), CloseReason> {
    let mut acks = AckWatch::default();
    while !batch.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let pieces = batch.slices(&mut slices);
        match sys::send_vectored(fd, &slices[..pieces]) {
            Ok(0) => return Err(CloseReason::Error),
            Ok(n) => {
                counters.sent(n);
                batch.advance(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The socket blocks: only SO_SNDTIMEO, set with the idle timeout, ends a send
            // so (`sys::timed_out`), when no room was made for that long. A peer that still
            // acknowledges output (reading slowly, while the kernel waits to have a third of
            // the buffer free) is not idle.
            Err(e) if sys::timed_out(&e) => {
                if !acks.moved(sys::send_progress(fd)) {
                    return Err(CloseReason::IdleTimeout);
                }
            }
            Err(e) => return Err(sys::close_reason(&e)),
        }
    }
    Ok(())
}
