//! The reader thread: owns the socket and the handler's state, runs the handler, writes
//! its replies inline when it can, and ends the session once its writer is done.

use super::link::{Hand, Link};
use super::{writer, Shared, NAME};
use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::conn::Conn;
use crate::runtime::policy;
use crate::runtime::timers::AckWatch;
use crate::runtime::Core;
use crate::session::{CloseRequest, Outbox, ReaderPhase, Session, WriterPhase};
use crate::sys;
use crate::sys::{AsRaw, Sock};
use socket2::SockRef;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Each reader's receive buffer (on the heap; the stacks stay small).
const READ_BUFFER: usize = 16 * 1024;

/// One connection's reader, and what it owns.
pub(super) struct Reader<H: Handler> {
    pub(super) core: Arc<Core<H>>,
    pub(super) shared: Arc<Shared>,
    pub(super) session: Session,
    pub(super) link: Arc<Link>,
    /// The socket, closed when the reader leaves.
    pub(super) fd: Sock,
}

impl<H: Handler> Reader<H> {
    /// The reader's whole life: start the writer, serve, end the session, leave.
    pub(super) fn run(self) {
        let writer = match self.spawn_writer() {
            Ok(writer) => writer,
            Err(e) => {
                tracing::warn!(model = %NAME, peer = %self.session.peer(), "refused: cannot start a writer thread: {e}");
                self.session.outbox().mark_closed();
                self.core.release();
                self.link.counters.refused();
                self.leave();
                return;
            }
        };
        self.link.counters.accepted();
        // A panicking handler ends its own session, not the server: the panic is caught
        // here, the session is aborted and counted closed with `Error`.
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut conn = Conn::open(&self.core, self.session.clone());
            self.read_loop(&mut conn);
            conn
        }));
        if served.is_err() {
            let mut outbox = self.session.outbox();
            outbox.request_close(CloseRequest::Abort(CloseReason::Error));
            self.stop_reading(&mut outbox);
        }
        if writer.join().is_err() {
            self.session
                .outbox()
                .request_close(CloseRequest::Abort(CloseReason::Error));
        }
        let reason = self.finish_socket();
        let closed = match served {
            Ok(conn) => {
                panic::catch_unwind(AssertUnwindSafe(|| conn.close(&self.core, reason))).is_ok()
            }
            Err(_) => false,
        };
        if !closed {
            // The handler panicked (in a callback, or in `closed` itself): do what
            // `Conn::close` did not get to.
            tracing::error!(model = %NAME, session = %self.session.id(), "the handler panicked; session closed");
            self.session.outbox().mark_closed();
            self.link.counters.closed(reason);
            self.core.release();
        }
        self.leave();
    }

    fn spawn_writer(&self) -> io::Result<JoinHandle<()>> {
        let (session, link) = (self.session.clone(), self.link.clone());
        let linger_timeout = self.core.config.linger_timeout;
        thread::Builder::new()
            .name(format!("{NAME}-w{}", self.session.id().get()))
            .stack_size(self.core.config.thread_stack)
            .spawn(move || writer::run(&session, &link, linger_timeout))
    }

    /// After the writer ended: how the session ends, as the writer (or the reader, or
    /// someone else) recorded it, with the socket made ready for its close.
    fn finish_socket(&self) -> CloseReason {
        match self.session.outbox().close_request() {
            Some(CloseRequest::Graceful(reason)) => {
                // Everything queued was written: FIN after it.
                sys::shutdown_write(self.fd.raw());
                reason
            }
            Some(CloseRequest::Abort(reason)) => {
                let _ = SockRef::from(&self.fd).set_linger(Some(Duration::ZERO));
                reason
            }
            None => CloseReason::Error,
        }
    }

    /// Reading is over: tell the writer, and if an abort was asked for while it is inside
    /// `send`, shut the socket down under it.
    fn stop_reading(&self, outbox: &mut Outbox) {
        outbox.threads.reader = ReaderPhase::Done;
        self.link.abort_if_sending(outbox);
        self.link.nudge(outbox);
    }

    /// Read and deliver until something ends the reading; then tell the writer. While the
    /// session closes in order, what arrives is read and discarded.
    fn read_loop(&self, conn: &mut Conn<H::State>) {
        let fd = self.fd.raw();
        let counters = &self.link.counters;
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut acks = AckWatch::default();
        while let Some(closing) = self.may_read() {
            if !closing && (self.session.take_resumed() || conn.stalled()) {
                // The application resumed its input: first what it left unconsumed (and
                // nothing new read while a backlog waits).
                if let Err(reason) = conn.redeliver(&self.core) {
                    self.session
                        .outbox()
                        .request_close(CloseRequest::Abort(reason));
                    break;
                }
                continue;
            }
            match sys::recv(fd, &mut buffer) {
                // End of stream, or shutdown(SHUT_RD) from the writer.
                Ok(0) => break,
                Ok(n) => {
                    counters.received(n);
                    if closing {
                        // The lingering writer watches whether the peer still sends.
                        self.session.outbox().threads.heard = true;
                    } else if let Err(reason) = conn.deliver(&self.core, &buffer[..n]) {
                        self.session
                            .outbox()
                            .request_close(CloseRequest::Abort(reason));
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_RCVTIMEO: nothing arrived for the idle timeout. A closing session is
                // ended by its writer's linger; a peer still taking output is not idle.
                Err(e) if sys::timed_out(&e) && (closing || acks.moved(sys::send_progress(fd))) => {
                }
                Err(e) if sys::timed_out(&e) && self.core.config.idle_timeout.is_some() => {
                    let mut outbox = self.session.outbox();
                    outbox.request_close(CloseRequest::Abort(CloseReason::IdleTimeout));
                    break;
                }
                Err(e) => {
                    self.session
                        .outbox()
                        .request_close(CloseRequest::Abort(sys::close_reason(&e)));
                    break;
                }
            }
        }
        self.stop_reading(&mut self.session.outbox());
    }

    /// Whether to read again, and if so whether the session is closing (what is read is
    /// then discarded): not when the session is aborted or its writer ended, and not while
    /// its output is above the high-water mark (wait until it drains to the low one), and
    /// not while the application holds its input.
    ///
    /// Output queued by the handler's last call is written here, inline, when no one else
    /// is writing: the reply leaves on the thread that computed it, as in the book's
    /// blocking echo server, without waking the writer (one context switch saved per
    /// message, and no second thread between request and reply). The writer thread covers
    /// what this cannot: sends from other threads while the reader sleeps in `recv`, and
    /// the final flush.
    fn may_read(&self) -> Option<bool> {
        let mut outbox = self.session.outbox();
        let mut paused = false;
        loop {
            let closing = match outbox.close_request() {
                Some(CloseRequest::Abort(_)) => return None,
                Some(CloseRequest::Graceful(_)) => true,
                None => false,
            };
            if outbox.threads.writer == WriterPhase::Done {
                return None;
            }
            if outbox.has_pending() && !outbox.threads.sending() {
                let written;
                (outbox, written) = self.link.write_pending(&self.session, outbox, Hand::Reader);
                if !written {
                    return None;
                }
                continue;
            }
            if closing {
                // The writer ends the session; it may not know of a close asked for inside
                // a callback of this thread (no wake-up is sent then).
                self.link.nudge(&outbox);
                // Discarding adds no output: no back-pressure.
                return Some(true);
            }
            // Someone else is writing: back-pressure applies; and the application may
            // have paused its input (`Session::resume_input` wakes this thread).
            paused = policy::back_pressure(paused, outbox.len(), &self.core.config);
            if !paused && !self.session.input_paused() {
                return Some(false);
            }
            outbox = self.link.reader_sleep(outbox);
        }
    }

    /// Leave the registry, close the socket, and join the reader that left before this
    /// one (see `Shared::leave`); this thread is joined by the next one, or at shutdown.
    fn leave(self) {
        let previous = self.shared.leave(self.session.id());
        drop(self.fd);
        if let Some(previous) = previous {
            // A reader never panics out of its epilogue; if the handler panicked, its
            // session was already counted closed or never opened.
            let _ = previous.join();
        }
    }
}
