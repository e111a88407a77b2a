//! The part of a connection every driver shares: the handler's state, unconsumed input, and
//! the calls into the handler. Drivers own the socket and decide when to read and write;
//! everything between the bytes and the application happens here, once.

use crate::close::CloseReason;
use crate::handler::Handler;
use crate::runtime::Core;
use crate::session::{CallbackScope, Session};

/// One session's application-facing half.
pub(crate) struct Conn<S> {
    session: Session,
    state: Option<S>,
    /// Bytes received and not consumed by the handler yet.
    input: Vec<u8>,
    /// The handler paused its input during its last call and left input unconsumed: the
    /// socket is not read until a call consumes without pausing (a redelivery after
    /// [`Session::resume_input`]), so that a handler taking requests a few at a time is
    /// not handed a new read between every few (which grew the buffer to its limit).
    stalled: bool,
}

/// Unconsumed input beyond this capacity is given back once consumed.
const KEEP_INPUT: usize = 16 * 1024;

impl<S: Send + 'static> Conn<S> {
    /// Tell the handler about a new session.
    pub(crate) fn open<H: Handler<State = S>>(core: &Core<H>, session: Session) -> Conn<S> {
        let state = {
            let _scope = CallbackScope::enter(&session);
            core.handler.opened(&session)
        };
        Conn {
            session,
            state: Some(state),
            input: Vec::new(),
            stalled: false,
        }
    }

    /// The session.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the handler left a backlog when it paused (see `stalled`): read nothing
    /// from the socket until it is redelivered.
    pub(crate) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Hand freshly received bytes to the handler, after whatever it left unconsumed; or,
    /// while the application holds its input ([`Session::pause_input`]), keep them for
    /// later. Fails when the unconsumed input passes the configured limit.
    pub(crate) fn deliver<H: Handler<State = S>>(
        &mut self,
        core: &Core<H>,
        data: &[u8],
    ) -> Result<(), CloseReason> {
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        if self.session.input_paused() {
            // A receive that was on its way when the input was paused.
            self.input.extend_from_slice(data);
            if self.input.len() > core.config.input_limit {
                return Err(CloseReason::InputOverflow);
            }
            return Ok(());
        }
        self.session.take_pause_noted();
        if self.input.is_empty() {
            let _scope = CallbackScope::enter(&self.session);
            // The common case: no copy, the handler reads the driver's buffer.
            let used = core
                .handler
                .data(state, &self.session, data)
                .min(data.len());
            if used < data.len() {
                self.input.extend_from_slice(&data[used..]);
            }
        } else {
            let _scope = CallbackScope::enter(&self.session);
            self.input.extend_from_slice(data);
            let used = core
                .handler
                .data(state, &self.session, &self.input)
                .min(self.input.len());
            self.input.drain(..used);
            if self.input.is_empty() && self.input.capacity() > KEEP_INPUT {
                self.input = Vec::new();
            }
        }
        self.stalled = self.session.take_pause_noted() && !self.input.is_empty();
        if self.input.len() > core.config.input_limit {
            return Err(CloseReason::InputOverflow);
        }
        Ok(())
    }

    /// The application resumed its input: hand the handler what it left unconsumed, if
    /// anything, without waiting for more to arrive.
    pub(crate) fn redeliver<H: Handler<State = S>>(
        &mut self,
        core: &Core<H>,
    ) -> Result<(), CloseReason> {
        if self.input.is_empty() {
            return Ok(());
        }
        self.deliver(core, &[])
    }

    /// End the session: refuse further sends, tell the handler, release the slot.
    pub(crate) fn close<H: Handler<State = S>>(mut self, core: &Core<H>, reason: CloseReason) {
        self.session.outbox().mark_closed();
        if let Some(state) = self.state.take() {
            let _scope = CallbackScope::enter(&self.session);
            core.handler.closed(state, &self.session, reason);
        }
        self.session.counters().closed(reason);
        tracing::debug!(session = %self.session.id(), peer = %self.session.peer(), %reason, "closed");
        core.release();
    }
}
