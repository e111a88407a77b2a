//! Bindings to `WSAPoll` (Windows): poll(2)'s Winsock twin, over an array of `WSAPOLLFD`.
//!
//! Level-triggered, like poll(2): a socket is reported for as long as it is readable or
//! writable, so a caller asks for writability only while it has bytes waiting to go out.
//! O(watched) per wait. The events asked for may only be `POLLRDNORM`, `POLLRDBAND`,
//! `POLLWRNORM` (and `POLLIN`, `POLLOUT`, which combine them); `POLLHUP`, `POLLERR` and
//! `POLLNVAL` are reported without being asked for. Windows before 10 version 2004 does not
//! report a failed non-blocking connect at all, so a caller that connects keeps a deadline.

use crate::timeout_ms;
use std::io;
use std::time::Duration;
use windows_sys::Win32::Networking::WinSock::{WSAGetLastError, WSAPoll, SOCKET_ERROR};

pub use windows_sys::Win32::Networking::WinSock::{
    POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD,
};

/// A `WSAPOLLFD` for `socket`, asking for `events`, nothing reported yet.
pub fn poll_fd(socket: SOCKET, events: i16) -> WSAPOLLFD {
    WSAPOLLFD {
        fd: socket,
        events,
        revents: 0,
    }
}

/// Wait up to `timeout` (rounded up to whole milliseconds; `None` for ever) for a socket of
/// `fds` to be ready, and fill their `revents`. Returns how many have events.
///
/// An empty `fds` sleeps for the timeout and returns 0, as poll(2) does (`WSAPoll` itself
/// refuses an empty array). Every `fd` must be a socket: a handle that is not one is
/// reported `POLLNVAL`.
pub fn wsa_poll(fds: &mut [WSAPOLLFD], timeout: Option<Duration>) -> io::Result<usize> {
    if fds.is_empty() {
        match timeout {
            Some(timeout) => std::thread::sleep(timeout),
            None => loop {
                std::thread::park();
            },
        }
        return Ok(0);
    }
    let count = u32::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many sockets to poll"))?;
    // SAFETY: `fds` is a writable array of `count` WSAPOLLFDs, alive for the whole call.
    let ready = unsafe { WSAPoll(fds.as_mut_ptr(), count, timeout_ms(timeout)) };
    if ready == SOCKET_ERROR {
        // SAFETY: WSAGetLastError takes no arguments.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    Ok(ready as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::windows::io::AsRawSocket;
    use std::time::Instant;

    #[test]
    fn reports_readable_and_writable_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let socket = server.as_raw_socket() as SOCKET;
        let mut fds = [poll_fd(socket, POLLRDNORM)];
        assert_eq!(wsa_poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
        client.write_all(b"x").unwrap();
        assert_eq!(wsa_poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_ne!(fds[0].revents & POLLRDNORM, 0);
        let mut fds = [poll_fd(socket, POLLWRNORM)];
        assert_eq!(wsa_poll(&mut fds, Some(Duration::ZERO)).unwrap(), 1);
        assert_ne!(fds[0].revents & POLLWRNORM, 0);
        drop(client);
        let mut fds = [poll_fd(socket, POLLRDNORM)];
        assert_eq!(wsa_poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_ne!(fds[0].revents & (POLLRDNORM | POLLHUP), 0);
    }

    #[test]
    fn an_empty_set_sleeps_for_the_timeout() {
        let start = Instant::now();
        assert_eq!(
            wsa_poll(&mut [], Some(Duration::from_millis(20))).unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
