//! poll(2): an array of `pollfd` in, the same array with `revents` filled in out.
//!
//! Syscalls: one `poll` per round over a `Vec<pollfd>` kept in step with the loop's
//! register/reregister/deregister calls (a token-to-position map; a deregistered entry is
//! replaced by the last one), so nothing is rebuilt per round. Cost per round: O(watched):
//! the kernel copies in and checks every entry and we scan every `revents`, however few
//! are ready. Level-triggered, like select: the loop asks for write interest only while
//! output is pending. A descriptor with no interest at all (a paused listener) is parked
//! as -1, which poll skips, so a hang-up on it cannot make every wait return at once.
//! Limit: none on descriptor numbers (unlike select); only the O(n) cost per round.
//! Windows original: WSAPoll.

use crate::config::Model;
use crate::model::reactor::watched::Watched;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::timeout_ms;
use crate::sys::{syscall, EventFd};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// The token of the wake-up eventfd, always at position 0.
const WAKER: usize = usize::MAX - 1;

/// One worker's poll array.
pub(crate) struct Poll {
    /// The array handed to poll(2), with each entry's token. Entry 0 is the waker.
    fds: Watched<libc::pollfd>,
    waker: Arc<EventFd>,
}

fn pollfd(fd: RawFd, interest: Interest) -> libc::pollfd {
    let mut events = 0;
    if interest.read {
        events |= libc::POLLIN;
    }
    if interest.write {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        fd: if events == 0 { -1 } else { fd },
        events,
        revents: 0,
    }
}

impl Selector for Poll {
    const MODEL: Model = Model::Poll;
    const EDGE_TRIGGERED: bool = false;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<Poll> {
        let waker = Arc::new(EventFd::new()?);
        let mut fds = Watched::new();
        fds.insert(WAKER, pollfd(waker.as_raw_fd(), Interest::READ));
        Ok(Poll { fds, waker })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.fds.insert(token, pollfd(fd, interest));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        *self.fds.get_mut(token)? = pollfd(fd, interest);
        Ok(())
    }

    fn deregister(&mut self, _fd: RawFd, token: usize) -> io::Result<()> {
        self.fds.remove(token).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let fds = self.fds.items_mut();
        // SAFETY: the pointer and length describe the initialised `fds` array, which lives
        // for the whole call.
        let mut ready = syscall!(poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timeout_ms(timeout)
        ))?;
        for (raw, &token) in self.fds.items().iter().zip(self.fds.tokens()) {
            if ready == 0 {
                break;
            }
            if raw.revents == 0 {
                continue;
            }
            ready -= 1;
            if token == WAKER {
                self.waker.reset();
                continue;
            }
            // HUP, ERR (and NVAL) make both directions "ready": the next call tells what
            // happened.
            let broken = raw.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
            events.push(Event {
                token,
                readable: broken || raw.revents & (libc::POLLIN | libc::POLLPRI) != 0,
                writable: broken || raw.revents & libc::POLLOUT != 0,
                hangup: broken,
            });
        }
        Ok(())
    }
}
