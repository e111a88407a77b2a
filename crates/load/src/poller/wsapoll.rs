//! Windows: `WSAPoll` ([`iomodels_sys::wsapoll`]) over a dense array of the thread's open
//! sockets.
//!
//! Level-triggered: a socket is asked for `POLLWRNORM` only while it connects or has bytes
//! waiting for room, or every wait would return at once. Each wait walks the whole array,
//! O(open sockets), the cost of poll(2) that epoll was made to avoid; IOCP is Windows'
//! answer, but a load generator that waits the same way on both platforms is simpler to
//! trust.

use super::{Event, Poller};
use iomodels_sys::wsapoll::{
    poll_fd, wsa_poll, POLLERR, POLLHUP, POLLNVAL, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD,
};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::windows::io::AsRawSocket;
use std::time::Duration;

/// Not in the array.
const ABSENT: usize = usize::MAX;

/// The sockets watched, and where each token's entry is.
pub(crate) struct WsaPoll {
    /// One entry per watched socket, in no order.
    fds: Vec<WSAPOLLFD>,
    /// The token of each entry of `fds`.
    tokens: Vec<usize>,
    /// Each token's index in `fds`, or [`ABSENT`].
    slots: Vec<usize>,
    /// What the last wait reported.
    events: Vec<Event>,
}

impl WsaPoll {
    fn slot(&self, token: usize) -> Option<usize> {
        self.slots
            .get(token)
            .copied()
            .filter(|&slot| slot != ABSENT)
    }
}

impl Poller for WsaPoll {
    fn new() -> io::Result<WsaPoll> {
        Ok(WsaPoll {
            fds: Vec::new(),
            tokens: Vec::new(),
            slots: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Windows sets the mode after creating the socket (and socket2 makes it
    /// non-inheritable).
    fn socket(addr: SocketAddr) -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    fn add(&mut self, socket: &Socket, token: usize) -> io::Result<()> {
        if self.slot(token).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "token already watched",
            ));
        }
        if self.slots.len() <= token {
            self.slots.resize(token + 1, ABSENT);
        }
        self.slots[token] = self.fds.len();
        let socket = socket.as_raw_socket() as SOCKET;
        self.fds.push(poll_fd(socket, POLLRDNORM | POLLWRNORM));
        self.tokens.push(token);
        Ok(())
    }

    fn want_write(&mut self, token: usize, on: bool) {
        if let Some(slot) = self.slot(token) {
            let fd = &mut self.fds[slot];
            fd.events = if on {
                POLLRDNORM | POLLWRNORM
            } else {
                POLLRDNORM
            };
        }
    }

    fn remove(&mut self, token: usize) {
        let Some(slot) = self.slot(token) else {
            return;
        };
        self.fds.swap_remove(slot);
        self.tokens.swap_remove(slot);
        self.slots[token] = ABSENT;
        if let Some(&moved) = self.tokens.get(slot) {
            self.slots[moved] = slot;
        }
    }

    fn wait(&mut self, timeout: Duration) -> usize {
        self.events.clear();
        // A failed wait on valid sockets does not happen; treat one as empty rather than
        // spin on it.
        if wsa_poll(&mut self.fds, Some(timeout)).unwrap_or(0) == 0 {
            return 0;
        }
        for (fd, &token) in self.fds.iter().zip(&self.tokens) {
            let bits = fd.revents;
            if bits != 0 {
                self.events.push(Event {
                    token,
                    readable: bits & POLLRDNORM != 0,
                    writable: bits & POLLWRNORM != 0,
                    hangup: bits & (POLLHUP | POLLERR | POLLNVAL) != 0,
                });
            }
        }
        self.events.len()
    }

    fn event(&self, index: usize) -> Event {
        self.events[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn removing_keeps_the_other_tokens_in_place() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut poller = WsaPoll::new().unwrap();
        let sockets: Vec<Socket> = (0..3)
            .map(|token| {
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                socket.connect(&addr.into()).unwrap();
                poller.add(&socket, token).unwrap();
                socket
            })
            .collect();
        let accepted: Vec<_> = (0..3).map(|_| listener.accept().unwrap().0).collect();
        assert!(poller.add(&sockets[1], 1).is_err());
        for token in 0..3 {
            poller.want_write(token, false);
        }
        poller.remove(0);
        poller.remove(0);
        // Token 2 moved into token 0's entry; writing to its peer wakes token 2, not 0.
        let peer_of_2 = accepted
            .iter()
            .find(|peer| {
                peer.peer_addr().unwrap() == sockets[2].local_addr().unwrap().as_socket().unwrap()
            })
            .unwrap();
        (&*peer_of_2).write_all(b"x").unwrap();
        assert_eq!(poller.wait(Duration::from_secs(5)), 1);
        let event = poller.event(0);
        assert_eq!((event.token, event.readable), (2, true));
        poller.want_write(1, true);
        assert_eq!(poller.wait(Duration::from_secs(5)), 2);
    }
}
