//! The Linux system calls every driver shares, through [`syscall!`].

use crate::runtime::policy::AcceptFailure;
use crate::runtime::timers::SendProgress;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use iomodels_sys::{syscall, timeout_ms, EventFd};

/// Read from a socket into `buf`. `Ok(0)` is end of stream.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let n = syscall!(recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0))?;
    Ok(n as usize)
}

/// Write `buf` to a socket without raising SIGPIPE on a closed peer.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let n = syscall!(send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL))?;
    Ok(n as usize)
}

/// Write the concatenation of `bufs` to a socket with one `sendmsg` (one `send` for one
/// slice), without raising SIGPIPE on a closed peer.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let [one] = bufs {
        return send(fd, one);
    }
    // SAFETY: `msghdr` is plain data for which all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` (std guarantees it on Unix); sendmsg only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points at `bufs.len()` iovecs, each valid for reads of its length for
    // the whole call; no address, control data or flags are given.
    let n = syscall!(sendmsg(fd, &msg, libc::MSG_NOSIGNAL))?;
    Ok(n as usize)
}

/// Accept one connection; the new socket is close-on-exec, and non-blocking if asked.
pub(crate) fn accept(listener: RawFd, nonblocking: bool) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: `storage` and `len` are valid for writes and `len` holds the storage's size.
    let fd = syscall!(accept4(
        listener,
        storage.as_mut_ptr().cast(),
        &mut len,
        flags
    ))?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel initialised `len` bytes of `storage` with the peer's address.
    let addr = unsafe { SockAddr::new(storage.assume_init(), len) };
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "peer is not an IP address"))?;
    Ok((fd, peer))
}

/// Low-latency options every accepted connection gets: no Nagle delay.
pub(crate) fn tune_accepted(fd: &OwnedFd) {
    // Failing to set it only costs latency; never worth refusing the connection.
    let _ = SockRef::from(fd).set_nodelay(true);
}

/// Half-close the sending side: the peer reads everything sent so far, then EOF.
pub(crate) fn shutdown_write(fd: RawFd) {
    // ENOTCONN after a reset is expected and harmless.
    let _ = syscall!(shutdown(fd, libc::SHUT_WR));
}

/// Stop reads on a socket (wakes a thread blocked in recv on it).
pub(crate) fn shutdown_read(fd: RawFd) {
    let _ = syscall!(shutdown(fd, libc::SHUT_RD));
}

/// Make a thread blocked in `accept` on `listener` (listening on `_addr`) return: on Linux,
/// shutting the listener down for reading stops it and fails the accept with EINVAL.
pub(crate) fn unblock_accept(listener: RawFd, _addr: std::net::SocketAddr) {
    shutdown_read(listener);
}

/// Close now, whoever is blocked on the socket: `SO_LINGER 0` (the close will send RST)
/// and `shutdown(SHUT_RDWR)`, which fails a blocked `send` and ends a blocked `recv`.
/// Neither call blocks. The caller guarantees that `fd` is still open.
pub(crate) fn abort(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` and the length passed is its size.
    let _ = syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&linger as *const libc::linger).cast(),
        std::mem::size_of::<libc::linger>() as libc::socklen_t
    ));
    // ENOTCONN after a reset is expected and harmless.
    let _ = syscall!(shutdown(fd, libc::SHUT_RDWR));
}

/// An owned socket: a descriptor on Linux.
pub(crate) type Sock = OwnedFd;

/// A socket's raw handle, as the system calls take it.
pub(crate) type RawSock = RawFd;

impl super::AsRaw for OwnedFd {
    fn raw(&self) -> RawFd {
        self.as_raw_fd()
    }
}

/// Bind `count` listeners on `addr`. With more than one they share the port through
/// SO_REUSEPORT and the kernel spreads connections over them. The first one resolves port 0.
pub(crate) fn listeners(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
    nonblocking: bool,
) -> Result<(Vec<OwnedFd>, SocketAddr), crate::Error> {
    let asked = addr;
    let listen_err = |source: io::Error| {
        let addr = asked;
        if source.kind() == io::ErrorKind::AddrInUse {
            crate::Error::AddrInUse { addr }
        } else {
            crate::Error::Listen { addr, source }
        }
    };
    if count > 1 && addr.port() != 0 {
        // SO_REUSEPORT would let us share the port with another process of this user;
        // a plain bind first makes a busy port an error, as it is with one listener.
        drop(bind_one(addr, backlog, false, nonblocking).map_err(listen_err)?);
    }
    let mut addr = addr;
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = bind_one(addr, backlog, count > 1, nonblocking).map_err(listen_err)?;
        addr = socket
            .local_addr()
            .map_err(listen_err)?
            .as_socket()
            .unwrap_or(addr);
        fds.push(OwnedFd::from(socket));
    }
    Ok((fds, addr))
}

fn bind_one(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
    nonblocking: bool,
) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(nonblocking)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// A descriptor kept open so that, when accept fails with EMFILE, one can be freed to accept
/// the pending connection and close it, instead of leaving it to spin the loop.
pub(crate) struct Reserve(Option<OwnedFd>);

impl Reserve {
    pub(crate) fn new() -> Reserve {
        Reserve(open_null().ok())
    }

    /// Free the reserve, accept and drop one pending connection, take the reserve back.
    /// Returns whether a connection was shed.
    pub(crate) fn shed(&mut self, listener: RawFd) -> bool {
        // accept(2) takes a descriptor before it looks for a connection, so EMFILE comes
        // back even when none is pending. Shed only a connection that is there: on a
        // blocking listener the accept below would otherwise wait for the next one to come
        // and drop it, although descriptors may be free by then.
        let mut pending = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
        if !matches!(syscall!(poll(&mut pending, 1, 0)), Ok(1)) {
            return false;
        }
        if self.0.take().is_none() {
            // No reserve to give up (it could not be taken back last time). Accepting now
            // would shed a connection that may have a descriptor after all: try to take the
            // reserve again instead, and let the caller back off.
            self.0 = open_null().ok();
            return false;
        }
        let shed = accept(listener, true).is_ok();
        self.0 = open_null().ok();
        shed
    }
}

fn open_null() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal.
    let fd = syscall!(open(
        c"/dev/null".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC
    ))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl crate::runtime::Wake for EventFd {
    fn wake(&self) {
        EventFd::wake(self);
    }
}

/// The send progress of a connected TCP socket, from `TCP_INFO` (Linux 4.6).
pub(crate) fn send_progress(fd: RawFd) -> io::Result<SendProgress> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes and `len` holds the buffer's size; the
    // kernel writes at most `len` bytes.
    syscall!(getsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        info.as_mut_ptr().cast(),
        &mut len
    ))?;
    // SAFETY: zero-initialised, then (partly) filled by the kernel: every field is an
    // integer, valid whatever its bytes.
    let info = unsafe { info.assume_init() };
    Ok(SendProgress {
        acked: info.tcpi_bytes_acked,
        outstanding: info.tcpi_unacked > 0 || info.tcpi_notsent_bytes > 0,
    })
}

/// Whether a blocking `recv` or `send` failed because its `SO_RCVTIMEO`/`SO_SNDTIMEO`
/// expired: Linux says EAGAIN.
pub(crate) fn timed_out(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// Classify a socket error for [`crate::CloseReason`].
pub(crate) fn close_reason(err: &io::Error) -> crate::CloseReason {
    match err.raw_os_error() {
        Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNABORTED) => {
            crate::CloseReason::Reset
        }
        _ => crate::CloseReason::Error,
    }
}

/// Classify a failed accept for the connection policy.
///
/// Transient: the error concerns only the connection it would have returned (gone before
/// it was accepted, or a network error Linux passes on from it): accept(2) says to treat
/// these like EAGAIN and retry. Exhausted: out of descriptors, or of memory for them.
pub(crate) fn accept_failure(err: &io::Error) -> AcceptFailure {
    match err.raw_os_error() {
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT
            | libc::EINTR,
        ) => AcceptFailure::Transient,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptFailure::Exhausted
        }
        _ => AcceptFailure::Other,
    }
}
