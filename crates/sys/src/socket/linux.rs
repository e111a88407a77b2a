//! `IP_BIND_ADDRESS_NO_PORT` (Linux).

use crate::syscall;
use std::io;
use std::os::fd::RawFd;

/// Set `IP_BIND_ADDRESS_NO_PORT` on an IPv4 socket, so binding it to a source address
/// defers the choice of the port to connect(2), which then only needs the whole 4-tuple to
/// be unique.
pub fn set_bind_address_no_port(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the duration of the call and its size is passed.
    syscall!(setsockopt(
        fd,
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        (&on as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn sets_the_option_on_a_tcp_socket() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_bind_address_no_port(socket.as_raw_fd()).unwrap();
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes and `len` holds the value's size.
        syscall!(getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len
        ))
        .unwrap();
        assert_eq!(value, 1);
    }
}
