//! The one application interface: every driver calls these three methods and nothing else.

use crate::close::CloseReason;
use crate::session::Session;

/// Application logic, written once and run unchanged on every I/O model.
///
/// One `Handler` value is shared by every worker thread of a server, so it is `Sync`; what
/// belongs to one connection lives in [`Handler::State`], which the driver keeps beside the
/// socket and hands back by `&mut` on every call, so per-session state needs no lock.
///
/// Callbacks run on the driver's I/O threads: they must not block. To talk to another
/// session, keep its [`Session`] handle (it is `Clone + Send + Sync`) and call
/// [`Session::send`] from anywhere.
///
/// # The contract every model keeps
///
/// - **Sending**: a [`Session::send`] that returned `Ok` reaches the peer, in order,
///   unless the peer resets the connection or the session is aborted (see
///   [`Session::send`] for the list); a session that is ending in order refuses sends with
///   [`crate::SendError::Closed`] rather than accept bytes it would drop.
/// - **Closing**: [`Session::close`] and a graceful shutdown deliver everything queued,
///   then end of stream, even to a peer that keeps sending (its input is discarded from
///   then on, and the socket lingers after the FIN: see [`crate::Config::linger_timeout`]).
/// - **Idle**: a session is idle when nothing arrives from the peer, nothing is written to
///   it, and it acknowledges none of the output already written (see
///   [`crate::Config::idle_timeout`]); a slow but steady reader is not idle, even while
///   back-pressure stops the server from reading it.
pub trait Handler: Send + Sync + 'static {
    /// What the application keeps per session.
    type State: Send + 'static;

    /// A connection was accepted and became `session`.
    fn opened(&self, session: &Session) -> Self::State;

    /// Bytes arrived. `data` holds everything received and not yet consumed, oldest first.
    ///
    /// Return how many bytes were consumed from the front; the rest stays buffered and is
    /// passed again, with whatever arrives next, on the following call. A framing layer can
    /// therefore decode in place and leave a partial packet where it is, with no copy.
    fn data(&self, state: &mut Self::State, session: &Session, data: &[u8]) -> usize;

    /// The session ended for `reason`. Sends to it fail from now on.
    fn closed(&self, state: Self::State, session: &Session, reason: CloseReason) {
        let _ = (state, session, reason);
    }
}
