//! `WSAPoll`: an array of `WSAPOLLFD` in, the same array with `revents` filled in out.
//!
//! Syscalls: one `WSAPoll` per round over a `Vec<WSAPOLLFD>` kept in step with the loop's
//! register/reregister/deregister calls (a token-to-position map; a deregistered entry is
//! replaced by the last one), so nothing is rebuilt per round. Entry 0 is the waker, a
//! loopback UDP socket (`WSAPoll` watches sockets only).
//! Cost per round: O(watched): Winsock copies in and checks every entry and we scan every
//! `revents`, however few are ready. Level-triggered, like select: the loop asks for write
//! interest only while output is pending.
//! Flags: only `POLLRDNORM` and `POLLWRNORM` are asked for. Windows fails the whole call
//! with WSAEINVAL if `events` holds a flag it does not support (POLLPRI, or the output-only
//! POLLHUP/POLLERR/POLLNVAL); Wine accepts and ignores them. Those three come in `revents`
//! unasked, and make both directions "ready" here, so the next call says what happened.
//! A socket with no interest at all (a paused listener) is parked as `INVALID_SOCKET`:
//! Windows skips a negative `fd` and clears its `revents`; Wine sets POLLNVAL there
//! instead (without counting the entry in its result), so a parked entry's `revents` is
//! never read.
//! Hang-ups: POLLHUP comes for a connection "disconnected or aborted", which includes the
//! peer's FIN, and then on every call, asked or not (Wine: with read interest, POLLHUP
//! alone, no POLLRDNORM). The loop reads the end of stream and stops asking to read, but a
//! socket that still waits to write (output blocked behind a half-closed peer that reads
//! slowly) would make every wait return at once. Such a socket is parked too, and offered
//! to the loop as writable every millisecond ([`RETRY`], the polling model's way), which
//! also caps the wait while one exists. select has no such case: it reports a hang-up in
//! the read set only.
//! Limit: none on the number of sockets; only the O(n) cost per round.
//! Linux kin: `model/poll.rs`, the same array over poll(2), where a FIN is POLLRDHUP, only
//! when asked for.

use crate::config::Model;
use crate::model::reactor::watched::Watched;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::{socket, timeout_ms, wsa, LoopbackWaker, RawSock};
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use windows_sys::Win32::Networking::WinSock::{
    self as ws, INVALID_SOCKET, POLLERR, POLLHUP, POLLNVAL, POLLRDBAND, POLLRDNORM, POLLWRNORM,
    WSAPOLLFD,
};

/// The token of the waker, always at position 0.
const WAKER: usize = usize::MAX - 1;

/// How often a hung-up socket that waits only to write is offered to the loop as writable.
const RETRY: Duration = Duration::from_millis(1);

/// One worker's poll array.
pub(crate) struct WsaPoll {
    /// The array handed to `WSAPoll`, with each entry's token. Entry 0 is the waker.
    fds: Watched<WSAPOLLFD>,
    /// Tokens whose socket reported POLLHUP or POLLERR: it will report it on every call.
    hung_up: HashSet<usize>,
    /// Of those, the ones that want to write but not to read: parked in `fds`, and offered
    /// to the loop as writable every [`RETRY`] instead.
    retrying: HashSet<usize>,
    /// When `retrying` was last offered.
    retried: Instant,
    waker: Arc<LoopbackWaker>,
}

/// Whether a socket watched for `interest` is retried rather than polled: its peer hung up
/// and it waits only to write (POLLHUP would end every wait at once).
fn retries(interest: Interest, hung_up: bool) -> bool {
    hung_up && interest.write && !interest.read
}

/// The array entry for `fd`. A socket with nothing to wait for, or one that [`retries`],
/// is parked.
fn pollfd(fd: RawSock, interest: Interest, hung_up: bool) -> WSAPOLLFD {
    let mut events = 0;
    if interest.read {
        events |= POLLRDNORM;
    }
    if interest.write && !retries(interest, hung_up) {
        events |= POLLWRNORM;
    }
    WSAPOLLFD {
        fd: if events == 0 {
            INVALID_SOCKET
        } else {
            socket(fd)
        },
        events,
        revents: 0,
    }
}

impl WsaPoll {
    /// Note whether `token`, watched for `interest`, waits only to write after a hang-up.
    fn update_retrying(&mut self, token: usize, interest: Interest) {
        if retries(interest, self.hung_up.contains(&token)) {
            self.retrying.insert(token);
        } else {
            self.retrying.remove(&token);
        }
    }
}

impl Selector for WsaPoll {
    const MODEL: Model = Model::WsaPoll;
    const EDGE_TRIGGERED: bool = false;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<WsaPoll> {
        let waker = Arc::new(LoopbackWaker::new()?);
        let mut fds = Watched::new();
        fds.insert(WAKER, pollfd(waker.raw(), Interest::READ, false));
        Ok(WsaPoll {
            fds,
            hung_up: HashSet::new(),
            retrying: HashSet::new(),
            retried: Instant::now(),
            waker,
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        self.fds.insert(token, pollfd(fd, interest, false));
        Ok(())
    }

    fn reregister(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        let hung_up = self.hung_up.contains(&token);
        *self.fds.get_mut(token)? = pollfd(fd, interest, hung_up);
        self.update_retrying(token, interest);
        Ok(())
    }

    fn deregister(&mut self, _fd: RawSock, token: usize) -> io::Result<()> {
        self.hung_up.remove(&token);
        self.retrying.remove(&token);
        self.fds.remove(token).map(drop)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = if self.retrying.is_empty() {
            timeout
        } else {
            let due = RETRY.saturating_sub(self.retried.elapsed());
            Some(timeout.map_or(due, |t| t.min(due)))
        };
        let fds = self.fds.items_mut();
        // SAFETY: the pointer and length describe the initialised `fds` array, which lives
        // for the whole call; its length fits in u32 (each entry is an open socket).
        let mut ready =
            wsa(unsafe { ws::WSAPoll(fds.as_mut_ptr(), fds.len() as u32, timeout_ms(timeout)) })?;
        let mut newly_hung_up = Vec::new();
        for (raw, &token) in self.fds.items().iter().zip(self.fds.tokens()) {
            if ready == 0 {
                break;
            }
            if raw.fd == INVALID_SOCKET || raw.revents == 0 {
                continue;
            }
            ready -= 1;
            if token == WAKER {
                self.waker.drain();
                continue;
            }
            // HUP, ERR (and NVAL) make both directions "ready": the next call tells what
            // happened.
            let broken = raw.revents & (POLLHUP | POLLERR | POLLNVAL) != 0;
            if broken && !self.hung_up.contains(&token) {
                newly_hung_up.push((raw.fd, token, raw.events));
            }
            events.push(Event {
                token,
                readable: broken || raw.revents & (POLLRDNORM | POLLRDBAND) != 0,
                writable: broken || raw.revents & POLLWRNORM != 0,
                hangup: broken,
            });
        }
        for (fd, token, asked) in newly_hung_up {
            self.hung_up.insert(token);
            let interest = Interest {
                read: asked & POLLRDNORM != 0,
                write: asked & POLLWRNORM != 0,
            };
            *self.fds.get_mut(token)? = pollfd(fd as RawSock, interest, true);
            self.update_retrying(token, interest);
        }
        if !self.retrying.is_empty() && self.retried.elapsed() >= RETRY {
            self.retried = Instant::now();
            events.extend(self.retrying.iter().map(|&token| Event {
                token,
                readable: false,
                writable: true,
                hangup: true,
            }));
        }
        Ok(())
    }
}
