//! Sockets: the option socket2 does not wrap, and the errors a non-blocking connect gives.

use std::io;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::set_bind_address_no_port;

/// The error a non-blocking connect returns while the connection is on its way: `EINPROGRESS`
/// on Linux, `WSAEWOULDBLOCK` on Windows.
#[cfg(target_os = "linux")]
const IN_PROGRESS: i32 = libc::EINPROGRESS;
#[cfg(windows)]
const IN_PROGRESS: i32 = windows_sys::Win32::Networking::WinSock::WSAEWOULDBLOCK;

/// Whether `error`, returned by connect on a non-blocking socket, only says the connection
/// is on its way: the socket becomes writable when it is made (or has an error when not).
pub fn connect_in_progress(error: &io::Error) -> bool {
    error.raw_os_error() == Some(IN_PROGRESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};

    #[test]
    fn a_non_blocking_connect_is_in_progress_or_done() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(error) => assert!(connect_in_progress(&error), "{error}"),
        }
        assert!(!connect_in_progress(&io::Error::from(io::ErrorKind::Other)));
    }
}
