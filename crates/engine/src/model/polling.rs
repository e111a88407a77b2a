//! Non-blocking polling: no readiness call at all; just try every socket, every sweep.
//!
//! Syscalls: none to wait. Every descriptor is made non-blocking at accept, and `select`
//! here answers "everything is ready" for every registered descriptor, so the loop tries
//! `accept` on the listener and `recv` on every connection (and `send` where output is
//! pending) until each says EAGAIN. Edge-like: the loop clears a hint on EAGAIN and this
//! sweep sets it again, so EDGE_TRIGGERED is true and interest never changes.
//! Cost per sweep: O(connections) system calls, ready or not: one `recv` returning EAGAIN
//! for each idle connection, every sweep. That is this model's price.
//! Never a busy spin: after a sweep that moved no byte and no connection, the next one
//! waits 1 ms first (the book's `Sleep(1)`), or less if the loop has a timer due sooner.
//! So an idle server makes about a thousand sweeps a second, and a reply may wait up to
//! 1 ms. The waker unparks the thread, which cuts that nap short when another thread
//! queues output or asks for shutdown; without it the next sweep would see them anyway.
//! Limit: CPU, linear in connections; no limit on descriptor numbers.
//! Windows original: the ioctlsocket(FIONBIO) loop, which retries on WSAEWOULDBLOCK (and,
//! in the book, spins on it when sending: ours keeps output per connection instead).

use crate::config::Model;
use crate::model::reactor::watched::Watched;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::RawSock;
use std::io;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// The wait after a sweep that made no progress.
const NAP: Duration = Duration::from_millis(1);

/// One worker's list of descriptors to sweep.
pub(crate) struct Polling {
    /// What every registered token is watched for.
    watched: Watched<Interest>,
    /// The last sweep made no progress: nap before the next.
    idle: bool,
    waker: Arc<Unpark>,
}

/// Wakes the sweeping thread from its nap.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(&self) {
        self.0.unpark();
    }
}

impl Selector for Polling {
    const MODEL: Model = Model::Polling;
    const EDGE_TRIGGERED: bool = true;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<Polling> {
        Ok(Polling {
            watched: Watched::new(),
            idle: false,
            waker: Arc::new(Unpark(std::thread::current())),
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, _fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        self.watched.insert(token, interest);
        Ok(())
    }

    fn reregister(&mut self, _fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        *self.watched.get_mut(token)? = interest;
        Ok(())
    }

    fn deregister(&mut self, _fd: RawSock, token: usize) -> io::Result<()> {
        self.watched.remove(token).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        if std::mem::take(&mut self.idle) {
            let nap = timeout.map_or(NAP, |t| t.min(NAP));
            if !nap.is_zero() {
                // Returns early on a wake (or spuriously): the sweep is harmless either way.
                std::thread::park_timeout(nap);
            }
        }
        let watched = self.watched.items().iter().zip(self.watched.tokens());
        events.extend(
            watched
                .filter(|(interest, _)| interest.read || interest.write)
                .map(|(&interest, &token)| Event {
                    token,
                    readable: interest.read,
                    writable: interest.write,
                    hangup: false,
                }),
        );
        Ok(())
    }

    fn round_done(&mut self, progressed: bool) {
        self.idle = !progressed;
    }
}
