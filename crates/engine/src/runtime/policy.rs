//! The connection policy, written once for every driver: what happens after a read or a
//! write (abort wins over everything, close when the queue has drained, the peer's FIN,
//! read back-pressure, the close reason and manner), and what a failed accept leads to.
//!
//! Drivers differ in how they learn that a socket can be read or written and in who does
//! the reading and writing; what they do next is decided here, so every model keeps the
//! same contract ([`crate::Handler`]'s "The contract every model keeps").

use crate::close::CloseReason;
use crate::config::{Config, Model};
use crate::session::{CloseRequest, Outbox, Session};
use crate::stats::Counters;

/// How to end a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Everything queued was sent: a FIN after it, then a lingering close.
    Orderly,
    /// Drop what is queued: `SO_LINGER 0`, a reset.
    Abortive,
}

/// What a driver does with a connection after it read and wrote what it could.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep it: read when `read` (discarding the input if the session is closing), and
    /// wait for the socket to take more output when `write`.
    Keep {
        /// Reading is wanted.
        read: bool,
        /// Output is waiting for room in the socket.
        write: bool,
    },
    /// End the session now, for this reason, in this manner.
    Close(CloseReason, Closing),
}

/// What the policy keeps per connection, beside the session's outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flow {
    /// The peer sent its FIN: nothing more will arrive.
    pub(crate) read_closed: bool,
    /// Output passed the high-water mark: the connection is not read until it drains to
    /// the low-water mark, so a peer that does not read its replies stops being read.
    pub(crate) paused: bool,
    /// A close was asked for: what arrives is read and discarded, not delivered.
    pub(crate) closing: bool,
    /// The application paused the session's input ([`Session::pause_input`]): it is not
    /// read until resumed.
    pub(crate) held: bool,
    /// The application resumed the session's input: hand it what it left unconsumed
    /// ([`crate::runtime::conn::Conn::redeliver`]) before reading again. The driver clears
    /// it when it does.
    pub(crate) redeliver: bool,
}

impl Flow {
    /// Decide, with `session`'s outbox locked, after the driver wrote what it could.
    ///
    /// An abort request ends the session at once. With nothing queued or in flight, a
    /// graceful close request ends it in order, and so does the peer's FIN: that end is
    /// recorded in the outbox under its lock ([`Outbox::drained_end`]), so a send racing
    /// with it fails instead of being accepted and dropped. Otherwise back-pressure is
    /// applied and the connection kept; a closing connection is read (to discard what
    /// still arrives: a close with unread input would reset the connection), whatever its
    /// back-pressure. Input paused by the application is not read either (unless the
    /// session is closing); resumed input is marked for redelivery ([`Flow::redeliver`]).
    pub(crate) fn settle(
        &mut self,
        session: &Session,
        outbox: &mut Outbox,
        config: &Config,
    ) -> Next {
        if let Some(CloseRequest::Abort(reason)) = outbox.close_request() {
            return Next::Close(reason, Closing::Abortive);
        }
        let queued = outbox.len();
        if let Some(reason) = outbox.drained_end(self.read_closed) {
            return Next::Close(reason, Closing::Orderly);
        }
        self.closing = outbox.close_request().is_some();
        self.paused = back_pressure(self.paused, queued, config);
        if session.take_resumed() {
            self.redeliver = true;
        }
        self.held = session.input_paused();
        Next::Keep {
            read: self.wants_read(),
            write: queued > 0,
        }
    }

    /// Whether reading is wanted now (the last [`Flow::settle`] said so, or nothing was
    /// decided yet).
    pub(crate) fn wants_read(&self) -> bool {
        !self.read_closed && (self.closing || !(self.paused || self.held))
    }
}

/// Read back-pressure: whether a connection with `queued` bytes of output is paused, given
/// whether it `was` paused. It pauses above [`Config::high_water`] and resumes at or below
/// [`Config::low_water`].
pub(crate) fn back_pressure(was: bool, queued: usize, config: &Config) -> bool {
    if was {
        queued > config.low_water()
    } else {
        queued > config.high_water()
    }
}

/// Why an accept failed, as the system layer classifies its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptFailure {
    /// Only the connection it would have returned is affected (gone before it was
    /// accepted, or a network error passed on from it): accept again.
    Transient,
    /// Out of descriptors (or memory for them).
    Exhausted,
    /// Anything else: it may well fail again at once.
    Other,
}

/// What a driver does after a failed accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptStep {
    /// Accept the next connection.
    Retry,
    /// Stop accepting for [`crate::runtime::timers::ACCEPT_BACKOFF`] (or until a
    /// connection closes), instead of spinning on an error that will come back.
    Pause,
}

/// Decide, log and count what a failed accept leads to, for every driver. `shed` gives up
/// the reserve descriptor to accept and drop one pending connection, and says whether it
/// did (see `sys::Reserve`): a connection shed is refused, not left to fill the backlog.
pub(crate) fn after_accept_error(
    model: Model,
    error: &std::io::Error,
    failure: AcceptFailure,
    counters: &Counters,
    shed: impl FnOnce() -> bool,
) -> AcceptStep {
    match failure {
        AcceptFailure::Transient => {
            tracing::debug!(%model, "accept: {error}");
            AcceptStep::Retry
        }
        AcceptFailure::Exhausted if shed() => {
            counters.refused();
            tracing::warn!(%model, "out of descriptors ({error}); refused a connection");
            AcceptStep::Retry
        }
        AcceptFailure::Exhausted => {
            tracing::warn!(%model, "out of descriptors ({error}); pausing accept");
            AcceptStep::Pause
        }
        AcceptFailure::Other => {
            tracing::warn!(%model, "accept: {error}; pausing accept");
            AcceptStep::Pause
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::DetachedSession;

    fn config() -> Config {
        let mut config = Config::new(Model::Polling, "127.0.0.1:0".parse().unwrap());
        config.send_queue_limit = 1600;
        config
    }

    #[test]
    fn an_abort_wins_over_queued_output() {
        let detached = DetachedSession::new("127.0.0.1:9".parse().unwrap(), 1600);
        detached.session().send(b"queued").unwrap();
        detached.session().abort();
        let mut flow = Flow::default();
        let next = flow.settle(
            detached.session(),
            &mut detached.session().outbox(),
            &config(),
        );
        assert_eq!(next, Next::Close(CloseReason::Local, Closing::Abortive));
    }

    #[test]
    fn the_peers_fin_ends_a_drained_session_and_refuses_later_sends() {
        let detached = DetachedSession::new("127.0.0.1:9".parse().unwrap(), 1600);
        let mut flow = Flow {
            read_closed: true,
            ..Flow::default()
        };
        detached.session().send(b"reply").unwrap();
        let next = flow.settle(
            detached.session(),
            &mut detached.session().outbox(),
            &config(),
        );
        assert_eq!(
            next,
            Next::Keep {
                read: false,
                write: true
            }
        );
        let mut wire = Vec::new();
        detached.drain_into(&mut wire);
        let next = flow.settle(
            detached.session(),
            &mut detached.session().outbox(),
            &config(),
        );
        assert_eq!(next, Next::Close(CloseReason::PeerClosed, Closing::Orderly));
        assert_eq!(
            detached.session().send(b"late"),
            Err(crate::SendError::Closed)
        );
    }

    #[test]
    fn back_pressure_pauses_above_high_water_and_resumes_at_low_water() {
        let config = config();
        assert!(!back_pressure(false, config.high_water(), &config));
        assert!(back_pressure(false, config.high_water() + 1, &config));
        assert!(back_pressure(true, config.low_water() + 1, &config));
        assert!(!back_pressure(true, config.low_water(), &config));
    }

    #[test]
    fn a_closing_session_is_read_even_when_paused() {
        let detached = DetachedSession::new("127.0.0.1:9".parse().unwrap(), 1600);
        detached.session().send(&[0; 1000]).unwrap();
        detached.session().close();
        let mut flow = Flow::default();
        let next = flow.settle(
            detached.session(),
            &mut detached.session().outbox(),
            &config(),
        );
        assert_eq!(
            next,
            Next::Keep {
                read: true,
                write: true
            }
        );
        assert!(flow.paused && flow.closing);
    }
}
