//! What the uring worker does with one connection: flush its queue through owned sends,
//! keep its receive armed exactly when the policy wants input, close it (lingering after an
//! orderly close), cancel what is in flight on it and free its slot once nothing is; and
//! the worker's own ops (accept, wake-up) and its final drain.

use super::ring::{Look, Op, Ops, PeerAddr, SendBuf, Sock, Target};
use super::worker::{Connection, Recv, Socket, Worker, EXIT_DRAIN, SPARE_BUFS};
use super::MODEL;
use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::policy::{Closing, Next};
use crate::runtime::timers::Linger;
use crate::session::CloseRequest;
use crate::sys;
use std::cell::UnsafeCell;
use std::io;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

impl<H: Handler> Worker<H> {
    /// Send what is queued (one send at a time), close when asked and drained, apply
    /// back-pressure, and keep the receive armed exactly when reading is wanted.
    pub(super) fn flush(&mut self, slot: u32) {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let Some(conn) = entry.conn.as_mut() else {
            return;
        };
        if std::mem::take(&mut entry.flow.redeliver) && !entry.flow.closing {
            // The application resumed its input: first what it left unconsumed.
            if let Err(reason) = conn.redeliver(&self.core) {
                return self.close(slot, reason, Closing::Abortive);
            }
        }
        let session = conn.session();
        let mut outbox = session.outbox();
        outbox.unschedule();
        let aborted = matches!(outbox.close_request(), Some(CloseRequest::Abort(_)));
        let mut send = None;
        if !aborted && entry.send.is_none() && outbox.has_pending() {
            let mut buf = self.spare.pop().unwrap_or_default();
            // The queue is left with no buffer: an idle session holds none, and the next
            // send allocates one (the box around it is what the spare pool saves).
            buf.fill(outbox.take());
            send = Some(buf);
        }
        let next = entry.flow.settle(session, &mut outbox, &self.core.config);
        drop(outbox);

        let redeliver = entry.flow.redeliver;
        let conn_stalled = entry.conn.as_ref().is_some_and(|c| c.stalled());
        if let Some(buf) = send {
            let sock = entry.socket.sock();
            self.submit_send(slot, sock, buf);
        }
        if redeliver {
            // Resumed: hand the handler what it left first, and decide about the receive
            // after (it may pause again: a receive armed meanwhile would only fill the
            // input buffer).
            return self.flush(slot);
        }
        let want = match next {
            Next::Close(reason, how) => return self.close(slot, reason, how),
            // A handler that left a backlog when it paused reads nothing new until it
            // has been handed the backlog again.
            Next::Keep { read, .. } => read && !conn_stalled,
        };
        // A failed send submission closed it.
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if entry.conn.is_none() {
            return;
        }
        match (want, entry.recv) {
            (true, Recv::Idle) => {
                if let Err(e) = self.arm_recv(slot) {
                    tracing::warn!(model = %MODEL, "arming a receive: {e}");
                    self.close(slot, CloseReason::Error, Closing::Abortive);
                }
            }
            (false, Recv::Armed) => {
                entry.recv = Recv::Cancelling;
                self.cancel(Some(slot), Target::Op(Ops::recv_data(slot)));
            }
            _ => {}
        }
    }

    pub(super) fn submit_send(&mut self, slot: u32, sock: Sock, buf: Box<SendBuf>) {
        let unsent = buf.len();
        match self.ring.submit(Op::Send { slot, sock, buf }) {
            Ok(op) => {
                if let Some(entry) = self.conns.get_mut(slot as usize) {
                    entry.send = NonZeroU64::new(op);
                }
            }
            Err(e) => {
                tracing::warn!(model = %MODEL, "submitting a send: {e}");
                if let Some(Connection {
                    conn: Some(conn), ..
                }) = self.conns.get(slot as usize)
                {
                    conn.session().outbox().finish(unsent);
                }
                self.close(slot, CloseReason::Error, Closing::Abortive);
            }
        }
    }

    /// Submit a cancel; it counts as an op of `slot`'s socket until it completes. One
    /// that cannot be submitted is tried again next turn: until it lands, the socket and
    /// slot of a closed connection would wait for an event that may never come.
    pub(super) fn cancel(&mut self, slot: Option<u32>, target: Target) {
        if let Err(e) = self.ring.submit(Op::Cancel { slot, target }) {
            tracing::warn!(model = %MODEL, "submitting a cancel: {e}; trying again");
            self.cancels.push((slot, target));
        }
    }

    /// Submit again the cancels that could not be submitted. An op's user data carries a
    /// generation, so a cancel of an op that completed meanwhile finds nothing.
    pub(super) fn retry_cancels(&mut self) {
        for (slot, target) in std::mem::take(&mut self.cancels) {
            self.cancel(slot, target);
        }
    }

    /// End the session now. An orderly close sends a FIN after the output and, unless the
    /// peer's FIN came already, lingers (see [`Linger`]); the socket is closed once the
    /// linger is over and every op on it has completed.
    pub(super) fn close(&mut self, slot: u32, reason: CloseReason, how: Closing) {
        let now = self.timers.stamp(self.now);
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let Some(conn) = entry.conn.take() else {
            return;
        };
        match (&entry.socket, how) {
            (Socket::Fd(fd), Closing::Orderly) => sys::shutdown_write(fd.as_raw_fd()),
            (Socket::Fd(fd), Closing::Abortive) => {
                let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
            }
            // A direct descriptor has no file descriptor for shutdown(2) or setsockopt(2):
            // the ring does both. The op counts against the slot, so the socket is closed
            // only after it completed.
            (Socket::Direct(_), how) => {
                let sock = entry.socket.sock();
                let op = match how {
                    Closing::Orderly => Op::Shutdown { slot, sock },
                    Closing::Abortive => Op::Linger {
                        slot,
                        sock,
                        value: Box::new(libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        }),
                    },
                };
                if let Err(e) = self.ring.submit(op) {
                    tracing::warn!(model = %MODEL, "submitting a shutdown or SO_LINGER: {e}");
                }
            }
        }
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        conn.close(&self.core, reason);
        if how == Closing::Orderly && !entry.flow.read_closed {
            entry.linger = Some(Linger::new(now));
            self.timers.linger(slot as usize, now, self.now);
            if entry.recv == Recv::Idle {
                self.arm_linger_recv(slot);
            }
            return;
        }
        self.finish(slot);
    }

    /// Arm the multishot receive of `slot`'s socket.
    fn arm_recv(&mut self, slot: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return Ok(());
        };
        let sock = entry.socket.sock();
        self.ring.submit(Op::Recv { slot, sock })?;
        entry.recv = Recv::Armed;
        Ok(())
    }

    /// Arm the receive of a lingering socket (its data is discarded); end the linger if
    /// that fails.
    pub(super) fn arm_linger_recv(&mut self, slot: u32) {
        if let Err(e) = self.arm_recv(slot) {
            tracing::debug!(model = %MODEL, "lingering: {e}");
            self.finish_linger(slot);
        }
    }

    /// The linger of a closed session is over: close its socket.
    pub(super) fn finish_linger(&mut self, slot: u32) {
        if let Some(entry) = self.conns.get_mut(slot as usize) {
            if entry.linger.take().is_some() {
                self.finish(slot);
            }
        }
    }

    /// A closed session's socket is done with: cancel what may wait on it for good, and
    /// free the slot (closing the socket) once nothing is in flight.
    ///
    /// Only a receive or a send waits for the peer; the other ops on a socket (shutdown,
    /// SO_LINGER, SIOCOUTQ, a cancel) complete by themselves, and the last completion frees
    /// the slot. Each is cancelled by its own op, which the kernel looks up in a hash. A
    /// cancel by socket would walk every armed request of the ring instead
    /// (`io_poll_file_find`): with 20,000 sessions ending together that was 20,000 walks
    /// over up to 20,000 receives each, and a server took 28 s to stop.
    pub(super) fn finish(&mut self, slot: u32) {
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let recv = (entry.recv == Recv::Armed).then(|| {
            entry.recv = Recv::Cancelling;
            Ops::recv_data(slot)
        });
        let send = entry.send.map(NonZeroU64::get);
        for op in [recv, send].into_iter().flatten() {
            self.cancel(Some(slot), Target::Op(op));
        }
        self.release_if_done(slot);
    }

    /// Free a closed connection's slot and socket once nothing of it is in flight and it
    /// no longer lingers.
    pub(super) fn release_if_done(&mut self, slot: u32) {
        let done = matches!(
            self.conns.get(slot as usize),
            Some(entry) if entry.conn.is_none() && entry.linger.is_none()
        ) && self.ring.ops.on_conn(slot) == 0;
        if done {
            // Dropping the entry closes a normal descriptor; a direct one is closed by the
            // ring.
            if let Some(entry) = self.conns.remove(slot as usize) {
                self.discard(entry.socket);
            }
        }
    }

    /// Close a socket nothing uses: drop a normal descriptor, submit the close of a direct
    /// one (its table slot stays counted until the close completes).
    pub(super) fn discard(&mut self, socket: Socket) {
        if let Socket::Direct(index) = socket {
            if let Err(e) = self.ring.submit(Op::Close { index }) {
                tracing::warn!(model = %MODEL, "submitting a close: {e}; trying again");
                self.closes.push(index);
            }
        }
    }

    /// Submit again the closes that could not be submitted.
    pub(super) fn retry_closes(&mut self) {
        for index in std::mem::take(&mut self.closes) {
            self.discard(Socket::Direct(index));
        }
    }

    /// Ask for a direct descriptor's unacknowledged output (see [`Op::Unsent`]); the
    /// answer comes with its completion.
    pub(super) fn look_unsent(&mut self, slot: u32, look: Look) {
        let Some(entry) = self.conns.get(slot as usize) else {
            return;
        };
        let sock = entry.socket.sock();
        if let Err(e) = self.ring.submit(Op::Unsent { slot, sock, look }) {
            tracing::debug!(model = %MODEL, "submitting SIOCOUTQ: {e}");
        }
    }

    pub(super) fn recycle_send(&mut self, mut buf: Box<SendBuf>) {
        if self.spare.len() < SPARE_BUFS {
            // The bytes go back to the allocator now (the next send takes the session's
            // own queue as its buffer); the box is what is reused.
            buf.clear();
            self.spare.push(buf);
        }
    }

    // ----- arming, mailbox, timers, shutdown ---------------------------------------------

    /// Arm accepting: the multishot accept, or with direct descriptors as many single-shot
    /// accepts as the table has free slots (at most a few).
    pub(super) fn arm_accept(&mut self) -> io::Result<()> {
        let Some(listener) = self.listener.as_ref().map(|l| l.as_raw_fd()) else {
            return Ok(());
        };
        match self.table.as_mut() {
            None => {
                if self.accept.is_none() {
                    self.accept = Some(self.ring.submit(Op::Accept { listener })?);
                }
            }
            Some(table) => {
                while table.room() {
                    let peer = PeerAddr::new();
                    let accept = self.ring.submit(Op::AcceptDirect { listener, peer })?;
                    table.accepts.push(accept);
                }
            }
        }
        Ok(())
    }

    pub(super) fn arm_wake(&mut self) -> io::Result<()> {
        let op = Op::Wake {
            fd: self.waker.as_raw_fd(),
            value: Box::new(UnsafeCell::new(0)),
        };
        self.ring.submit(op).map(drop)
    }

    pub(super) fn drain_mailbox(&mut self) {
        for session in self.mailbox.take() {
            let slot = session.slot() as u32;
            let owned = matches!(
                self.conns.get(slot as usize),
                Some(Connection { conn: Some(conn), .. }) if conn.session().same(&session)
            );
            if owned {
                self.flush(slot);
            }
        }
    }

    /// Cancel whatever is still in flight and wait for its completions, so that no op's
    /// memory or descriptor is released while the kernel may use it.
    pub(super) fn drain_ops(&mut self) {
        self.exiting = true;
        if self.ring.ops.live() > 0 {
            self.cancel(None, Target::Any);
        }
        let deadline = Instant::now() + EXIT_DRAIN;
        while self.ring.ops.live() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    model = %MODEL,
                    ops = self.ring.ops.live(),
                    "ops still in flight at exit; their memory is left allocated"
                );
                self.ring.abandon_in_flight();
                break;
            }
            if self.ring.wait(Some(left)).is_err() {
                break;
            }
            let mut batch = std::mem::take(&mut self.batch);
            self.ring.completions(&mut batch);
            for cqe in &batch {
                self.complete(cqe);
            }
            self.batch = batch;
        }
    }
}
