//! Linux: one edge-triggered epoll instance per load thread ([`iomodels_sys::Epoll`]).

use super::{Event, Poller};
use iomodels_sys::{HANGUP, READABLE, WRITABLE};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// epoll events taken per wait.
const EVENTS: usize = 1024;

/// An epoll instance and the buffer its waits fill.
pub(crate) struct Epoll {
    epoll: iomodels_sys::Epoll,
    events: Vec<libc::epoll_event>,
}

impl Poller for Epoll {
    fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            epoll: iomodels_sys::Epoll::new()?,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
        })
    }

    /// Non-blocking and close-on-exec from its creation.
    fn socket(addr: SocketAddr) -> io::Result<Socket> {
        Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)
    }

    fn add(&mut self, socket: &Socket, token: usize) -> io::Result<()> {
        self.epoll.add(socket.as_raw_fd(), token as u64)
    }

    /// Edge-triggered: writability is always watched, and reported only when it comes back.
    fn want_write(&mut self, _token: usize, _on: bool) {}

    /// Closing the socket removes it from the instance.
    fn remove(&mut self, _token: usize) {}

    fn wait(&mut self, timeout: Duration) -> usize {
        // An epoll_wait failure on our own valid instance cannot happen short of EINTR
        // (handled as 0); treat anything else as an empty wait rather than spin.
        self.epoll.wait(&mut self.events, timeout).unwrap_or(0)
    }

    fn event(&self, index: usize) -> Event {
        let event = self.events[index];
        let bits = event.events;
        Event {
            token: event.u64 as usize,
            readable: bits & READABLE != 0,
            writable: bits & WRITABLE != 0,
            hangup: bits & HANGUP != 0,
        }
    }
}
