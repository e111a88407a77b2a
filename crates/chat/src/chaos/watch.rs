//! Many connections the server is expected to close, each close timed when it happens:
//! the sockets are non-blocking and waited on together, with epoll on Linux and `WSAPoll`
//! on Windows (the one platform choice of the chaos suite, made here). A socket that
//! becomes readable is read until it would block: bytes are dropped, an end of stream or
//! an error (a reset) is the server's close, and the socket is closed on our side too.

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::Instant;

/// One watched connection.
pub(super) struct Watched {
    /// When it was connected (or its connect failed).
    pub opened: Instant,
    /// When the server closed it (or refused the connect); `None` while open.
    pub closed: Option<Instant>,
    stream: Option<TcpStream>,
}

/// The connections, and the wait on them.
pub(super) struct Watch {
    entries: Vec<Watched>,
    open: usize,
    #[cfg(target_os = "linux")]
    epoll: iomodels_sys::Epoll,
}

impl Watch {
    /// An empty watch.
    pub(super) fn new() -> io::Result<Watch> {
        Ok(Watch {
            entries: Vec::new(),
            open: 0,
            #[cfg(target_os = "linux")]
            epoll: iomodels_sys::Epoll::new()?,
        })
    }

    /// Watch `stream`, connected at `opened`.
    pub(super) fn add(&mut self, stream: TcpStream, opened: Instant) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            self.epoll
                .add(stream.as_raw_fd(), self.entries.len() as u64)?;
        }
        self.entries.push(Watched {
            opened,
            closed: None,
            stream: Some(stream),
        });
        self.open += 1;
        Ok(())
    }

    /// Count a connect the server refused at `at` as a connection closed at once.
    pub(super) fn add_refused(&mut self, at: Instant) {
        self.entries.push(Watched {
            opened: at,
            closed: Some(at),
            stream: None,
        });
    }

    /// Every connection watched, in the order added.
    pub(super) fn entries(&self) -> &[Watched] {
        &self.entries
    }

    /// Wait until every connection is closed or `until` has come (at least one look,
    /// without waiting, when it has come already).
    pub(super) fn wait(&mut self, until: Instant) -> io::Result<()> {
        loop {
            if self.open == 0 {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            self.wait_once(left)?;
            if left.is_zero() {
                return Ok(());
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn wait_once(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
        let ready = self.epoll.wait(&mut events, timeout)?;
        for event in &events[..ready] {
            // By value: the struct is packed.
            let token = event.u64;
            self.check(token as usize);
        }
        Ok(())
    }

    #[cfg(windows)]
    fn wait_once(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        use iomodels_sys::wsapoll::{poll_fd, wsa_poll, POLLRDNORM, SOCKET};
        use std::os::windows::io::AsRawSocket;
        let (indices, mut fds): (Vec<usize>, Vec<_>) = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let stream = e.stream.as_ref()?;
                Some((i, poll_fd(stream.as_raw_socket() as SOCKET, POLLRDNORM)))
            })
            .unzip();
        if wsa_poll(&mut fds, Some(timeout))? > 0 {
            for (&index, fd) in indices.iter().zip(&fds) {
                if fd.revents != 0 {
                    self.check(index);
                }
            }
        }
        Ok(())
    }

    /// Read entry `index` until it would block; close it if the server did.
    fn check(&mut self, index: usize) {
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        let Some(stream) = entry.stream.as_mut() else {
            return;
        };
        let mut scratch = [0u8; 4096];
        let ended = loop {
            match stream.read(&mut scratch) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset, or any other error: the connection is over.
                Err(_) => break true,
            }
        };
        if ended {
            entry.closed = Some(Instant::now());
            entry.stream = None;
            self.open -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_close_by_the_peer_is_seen_and_timed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut watch = Watch::new().unwrap();
        let opened = Instant::now();
        watch
            .add(TcpStream::connect(addr).unwrap(), opened)
            .unwrap();
        watch
            .add(TcpStream::connect(addr).unwrap(), opened)
            .unwrap();
        let (first, _) = listener.accept().unwrap();
        let (_second, _) = listener.accept().unwrap();
        // Nothing closed yet: a look that does not wait sees both open.
        watch.wait(Instant::now()).unwrap();
        assert!(watch.entries().iter().all(|e| e.closed.is_none()));
        drop(first);
        // The second stays open: the wait ends at its deadline with one close seen.
        watch
            .wait(Instant::now() + Duration::from_millis(300))
            .unwrap();
        let closed: Vec<bool> = watch.entries().iter().map(|e| e.closed.is_some()).collect();
        assert_eq!(closed.iter().filter(|&&c| c).count(), 1, "{closed:?}");
        watch.add_refused(Instant::now());
        assert_eq!(watch.entries().len(), 3);
        assert!(watch.entries()[2].closed.is_some());
    }
}
