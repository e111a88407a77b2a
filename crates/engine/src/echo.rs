//! The echo handler the book's examples implement, and the CLI serves.

use crate::handler::Handler;
use crate::session::Session;

/// Sends every byte back to whoever sent it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn opened(&self, _session: &Session) {}

    fn data(&self, _state: &mut (), session: &Session, data: &[u8]) -> usize {
        // A full queue closes the session; nothing else to do here.
        let _ = session.send(data);
        data.len()
    }
}
