//! The Winsock calls every Windows driver shares.
//!
//! Winsock reports failure as `SOCKET_ERROR` (or `INVALID_SOCKET`) and leaves the reason
//! in `WSAGetLastError`; [`wsa`] turns that into `io::Result`, whose error kinds the
//! standard library maps from the `WSAE*` codes (`WSAEWOULDBLOCK` is `WouldBlock`).
//! Winsock itself is started (`WSAStartup`) by socket2 and the standard library before
//! the first socket is made, and every listener is made through socket2.

pub(crate) use iomodels_sys::timeout_ms;

use crate::chunks::MAX_SLICES;
use crate::runtime::policy::AcceptFailure;
use crate::runtime::timers::SendProgress;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::windows::io::{AsRawSocket, BorrowedSocket, OwnedSocket, RawSocket};
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Networking::WinSock::{
    self as ws, SOCKET, SOCKET_ERROR, WSAECONNABORTED, WSAECONNRESET, WSAEMFILE, WSAENETDOWN,
    WSAENETRESET, WSAENOBUFS, WSAENOTCONN, WSAESHUTDOWN, WSAETIMEDOUT, WSA_OPERATION_ABORTED,
};
use windows_sys::Win32::System::IO::CancelIoEx;

/// A Win32 wait's timeout (`WaitForSingleObject`, `GetQueuedCompletionStatusEx`,
/// `MsgWaitForMultipleObjects`, ...) in milliseconds: rounded up, so that a timer due in
/// under a millisecond does not turn into a busy loop; `INFINITE` for none, and never
/// `INFINITE` for a finite one.
pub(crate) fn wait_ms(timeout: Option<std::time::Duration>) -> u32 {
    use windows_sys::Win32::System::Threading::INFINITE;
    timeout.map_or(INFINITE, |t| {
        u32::try_from(t.as_nanos().div_ceil(1_000_000))
            .map_or(INFINITE - 1, |ms| ms.min(INFINITE - 1))
    })
}

/// An owned socket: a `SOCKET` handle on Windows, closed with `closesocket` on drop.
pub(crate) type Sock = OwnedSocket;

/// A socket's raw handle, as the calls take it.
pub(crate) type RawSock = RawSocket;

impl super::AsRaw for OwnedSocket {
    fn raw(&self) -> RawSocket {
        self.as_raw_socket()
    }
}

/// The `SOCKET` of a raw handle: the same value, in the type windows-sys declares.
pub(crate) fn socket(raw: RawSock) -> SOCKET {
    raw as SOCKET
}

/// Turn a Winsock return value into `io::Result`: `SOCKET_ERROR` means the reason is in
/// `WSAGetLastError`.
pub(crate) fn wsa(result: i32) -> io::Result<i32> {
    if result == SOCKET_ERROR {
        Err(last_error())
    } else {
        Ok(result)
    }
}

/// The calling thread's last Winsock error.
pub(crate) fn last_error() -> io::Error {
    // SAFETY: WSAGetLastError reads the calling thread's error slot; it has no inputs.
    io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() })
}

/// Borrow a raw handle for a socket2 call. The caller keeps the socket open meanwhile.
fn borrow(raw: RawSock) -> BorrowedSocket<'static> {
    // SAFETY: every caller passes the handle of a socket it owns and keeps open for the
    // duration of the call the borrow is made for; the borrow never outlives that call.
    unsafe { BorrowedSocket::borrow_raw(raw) }
}

/// Read from a socket into `buf`. `Ok(0)` is end of stream, and also a socket shut for
/// reading by [`shutdown_read`] or [`abort`] (WSAESHUTDOWN, or WSA_OPERATION_ABORTED for a
/// blocked call they cancelled), as Linux's `recv` returns 0 after `SHUT_RD`.
pub(crate) fn recv(raw: RawSock, buf: &mut [u8]) -> io::Result<usize> {
    let len = i32::try_from(buf.len()).unwrap_or(i32::MAX);
    // SAFETY: `buf` is valid for writes of `len` bytes for the whole call.
    match wsa(unsafe { ws::recv(socket(raw), buf.as_mut_ptr(), len, 0) }) {
        Ok(n) => Ok(n as usize),
        Err(e) if matches!(e.raw_os_error(), Some(WSAESHUTDOWN | WSA_OPERATION_ABORTED)) => Ok(0),
        Err(e) => Err(e),
    }
}

/// The most one `send` is given. A blocking `send` on Windows returns only once it has
/// buffered everything or failed, and `SO_SNDTIMEO` bounds the whole call (Linux's returns
/// what it wrote when the timeout comes): given a large batch, it would time out against a
/// peer that reads steadily but slower than the batch divided by the idle timeout.
const SEND_CHUNK: usize = 64 * 1024;

/// Write at most [`SEND_CHUNK`] bytes of `buf` to a socket (Windows raises no signal on a
/// closed peer).
pub(crate) fn send(raw: RawSock, buf: &[u8]) -> io::Result<usize> {
    let len = buf.len().min(SEND_CHUNK) as i32;
    // SAFETY: `buf` is valid for reads of `len` bytes for the whole call.
    let n = wsa(unsafe { ws::send(socket(raw), buf.as_ptr(), len, 0) })?;
    Ok(n as usize)
}

/// Write the concatenation of `bufs`, at most [`SEND_CHUNK`] bytes of it, with one
/// `WSASend` (one `send` for one slice).
pub(crate) fn send_vectored(raw: RawSock, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let [one] = bufs {
        return send(raw, one);
    }
    let (wsabufs, count) = wsabufs(bufs, SEND_CHUNK);
    let mut sent = 0u32;
    // SAFETY: the first `count` WSABUFs each point at bytes of `bufs`, valid for reads of
    // their length for the whole call (WSASend only reads them); no OVERLAPPED is given,
    // so the call completes before it returns.
    wsa(unsafe {
        ws::WSASend(
            socket(raw),
            wsabufs.as_ptr(),
            count as u32,
            &mut sent,
            0,
            std::ptr::null_mut(),
            None,
        )
    })?;
    Ok(sent as usize)
}

/// The `WSABUF`s for a gathered `WSASend` of `bufs`, at most `limit` bytes of them, and
/// how many are used. Each points at bytes of `bufs` (`WSASend` only reads through it).
pub(crate) fn wsabufs(bufs: &[IoSlice<'_>], limit: usize) -> ([ws::WSABUF; MAX_SLICES], usize) {
    let mut wsabufs = [ws::WSABUF {
        len: 0,
        buf: std::ptr::null_mut(),
    }; MAX_SLICES];
    let (mut count, mut total) = (0, 0);
    for slice in bufs.iter().take(MAX_SLICES) {
        let take = slice.len().min(limit - total);
        if take == 0 {
            break;
        }
        wsabufs[count] = ws::WSABUF {
            len: take as u32,
            buf: slice.as_ptr().cast_mut(),
        };
        count += 1;
        total += take;
    }
    (wsabufs, count)
}

/// Accept one connection, non-blocking if asked. (An accepted socket inherits the
/// listener's mode and its `WSAAsyncSelect`/`WSAEventSelect` selection; the drivers that
/// use those set their own on it.)
pub(crate) fn accept(listener: RawSock, nonblocking: bool) -> io::Result<(Sock, SocketAddr)> {
    let (socket, addr) = SockRef::from(&borrow(listener)).accept()?;
    socket.set_nonblocking(nonblocking)?;
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "peer is not an IP address"))?;
    Ok((OwnedSocket::from(socket), peer))
}

/// Options every accepted connection gets: no Nagle delay, and a send buffer of
/// [`SEND_BUFFER`].
///
/// Why the send buffer: the engine keeps its own output queue, with back-pressure, and
/// judges a peer idle by the output it takes. On Linux the kernel tells how much the peer
/// acknowledged; here [`send_progress`] is unknown, so only a write counts, and a readiness
/// model writes only when the socket says it is writable. Under Wine that is Linux's
/// POLLOUT on a loopback buffer autotuned to megabytes, which comes only once a third of it
/// is free: a peer reading 1.6 MB/s left select and WSAPoll without a write for more than
/// 250 ms. A fixed buffer keeps the gaps between writes short. (Windows itself sizes the
/// buffer to the connection's ideal send backlog unless `SO_SNDBUF` is set; a fixed one
/// caps a connection at 64 KiB per round trip, plenty for a game server's traffic.)
pub(crate) fn tune_accepted(sock: &Sock) {
    // Failing to set these only costs latency; never worth refusing the connection.
    let _ = SockRef::from(sock).set_nodelay(true);
    let _ = SockRef::from(sock).set_send_buffer_size(SEND_BUFFER);
}

/// The send buffer of an accepted connection (see [`tune_accepted`]).
const SEND_BUFFER: usize = 64 * 1024;

/// Half-close the sending side: the peer reads everything sent so far, then EOF.
pub(crate) fn shutdown_write(raw: RawSock) {
    // SAFETY: a plain call on a handle the caller keeps open; WSAENOTCONN after a reset
    // is expected and harmless.
    let _ = unsafe { ws::shutdown(socket(raw), ws::SD_SEND) };
}

/// Stop reads on a socket, and make a thread blocked in `recv` on it return (with end of
/// stream, see [`recv`]). Unlike Linux's `SHUT_RD`, `shutdown(SD_RECEIVE)` fails only the
/// calls made after it (seen under Wine; Windows documents no wake-up either), so the
/// pending one is cancelled too.
pub(crate) fn shutdown_read(raw: RawSock) {
    // SAFETY: as in `shutdown_write`.
    let _ = unsafe { ws::shutdown(socket(raw), ws::SD_RECEIVE) };
    cancel_blocked(raw);
}

/// Cancel the blocking calls pending on a socket, from any thread (`CancelIoEx`, as .NET
/// unblocks a socket it disposes): they fail with WSA_OPERATION_ABORTED. Done after a
/// `shutdown`, which makes every later call fail at once, so a call that starts in
/// between cannot block either.
fn cancel_blocked(raw: RawSock) {
    // SAFETY: a socket is a kernel handle; the caller keeps it open for the call, and a
    // null OVERLAPPED pointer asks for every pending operation on it. Nothing to cancel
    // (ERROR_NOT_FOUND) is the common, harmless case.
    let _ = unsafe { CancelIoEx(socket(raw) as HANDLE, std::ptr::null()) };
}

/// Make a thread blocked in `accept` on `listener` return. Shutting a listener down does
/// not do it on Windows; a connection does: connect to it once, and the acceptor, which
/// looks at the shutdown flag after every accept, drops what it got.
pub(crate) fn unblock_accept(_listener: RawSock, addr: SocketAddr) {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    };
    let _ = std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(1));
}

/// Close now, whoever is blocked on the socket: linger off with a zero timeout (the close
/// will send RST), `shutdown(SD_BOTH)`, and the blocked calls cancelled (a shutdown alone
/// wakes neither a blocked `recv` nor a blocked `send`). None of these calls blocks. The
/// caller guarantees that the socket is still open.
pub(crate) fn abort(raw: RawSock) {
    let _ = SockRef::from(&borrow(raw)).set_linger(Some(std::time::Duration::ZERO));
    // SAFETY: as in `shutdown_write`.
    let _ = unsafe { ws::shutdown(socket(raw), ws::SD_BOTH) };
    cancel_blocked(raw);
}

/// Bind a listener on `addr`. Windows has no SO_REUSEPORT to spread connections over
/// several listeners (its SO_REUSEADDR lets another socket steal the port instead), so the
/// Windows drivers that run more than one worker share one listener; asking for more than
/// one is refused here.
pub(crate) fn listeners(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
    nonblocking: bool,
) -> Result<(Vec<Sock>, SocketAddr), crate::Error> {
    let listen_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::AddrInUse {
            crate::Error::AddrInUse { addr }
        } else {
            crate::Error::Listen { addr, source }
        }
    };
    if count != 1 {
        return Err(listen_err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{count} listeners asked for: this Windows model runs one loop"),
        )));
    }
    let socket = bind(addr, backlog, nonblocking).map_err(listen_err)?;
    let local = socket
        .local_addr()
        .map_err(listen_err)?
        .as_socket()
        .unwrap_or(addr);
    Ok((vec![OwnedSocket::from(socket)], local))
}

/// One listening socket on `addr`, with `SO_EXCLUSIVEADDRUSE`: no other socket may bind
/// the port while it is open.
pub(crate) fn bind(addr: SocketAddr, backlog: i32, nonblocking: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let exclusive: i32 = 1;
    // SAFETY: `exclusive` is a valid i32 option value and the length passed is its size.
    wsa(unsafe {
        ws::setsockopt(
            socket.as_raw_socket() as SOCKET,
            ws::SOL_SOCKET,
            ws::SO_EXCLUSIVEADDRUSE,
            (&exclusive as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    })?;
    socket.set_nonblocking(nonblocking)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// The Linux drivers keep a descriptor in reserve for EMFILE. Windows has no per-process
/// limit on sockets to run into, so there is nothing to reserve and nothing to shed.
pub(crate) struct Reserve;

impl Reserve {
    pub(crate) fn new() -> Reserve {
        Reserve
    }

    /// Never sheds: see [`Reserve`].
    pub(crate) fn shed(&mut self, _listener: RawSock) -> bool {
        false
    }
}

/// The send progress of a connected socket. Windows has it (`SIO_TCP_INFO`, Windows 10
/// 1703) but Wine does not, and the tests run under Wine: report it unknown, which makes
/// the idle rule and the linger fall back to their plain timers.
pub(crate) fn send_progress(_raw: RawSock) -> io::Result<SendProgress> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "send progress is not read on Windows",
    ))
}

/// Whether a blocking `recv` or `send` failed because its `SO_RCVTIMEO`/`SO_SNDTIMEO`
/// expired: Windows says WSAETIMEDOUT (not WSAEWOULDBLOCK, as Linux's EAGAIN), and leaves
/// the connection in an indeterminate state, fit only to be closed.
pub(crate) fn timed_out(err: &io::Error) -> bool {
    err.raw_os_error() == Some(WSAETIMEDOUT)
}

/// Classify a socket error for [`crate::CloseReason`].
pub(crate) fn close_reason(err: &io::Error) -> crate::CloseReason {
    match err.raw_os_error() {
        Some(WSAECONNRESET | WSAECONNABORTED | WSAENETRESET | WSAESHUTDOWN) => {
            crate::CloseReason::Reset
        }
        _ => crate::CloseReason::Error,
    }
}

/// Classify a failed accept for the connection policy: a connection reset before it was
/// accepted concerns only itself; out of buffers or handles is exhaustion. Windows reports
/// that reset as WSAECONNRESET; Wine as WSAENOTCONN (its `accept` asks the new socket for
/// its peer's address, which fails on a reset connection, and closes it).
pub(crate) fn accept_failure(err: &io::Error) -> AcceptFailure {
    match err.raw_os_error() {
        Some(WSAECONNRESET | WSAENOTCONN | WSAENETDOWN | WSAETIMEDOUT) => AcceptFailure::Transient,
        Some(WSAEMFILE | WSAENOBUFS) => AcceptFailure::Exhausted,
        _ => AcceptFailure::Other,
    }
}

/// A waker for the drivers that wait in `select` or `WSAPoll`, which watch sockets only:
/// a loopback UDP socket in the watched set, and a second one connected to it that
/// [`crate::runtime::Wake::wake`] sends a byte from. The waiting thread drains it.
pub(crate) struct LoopbackWaker {
    receiver: UdpSocket,
    sender: UdpSocket,
}

impl LoopbackWaker {
    /// Bind both ends on 127.0.0.1.
    pub(crate) fn new() -> io::Result<LoopbackWaker> {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        receiver.set_nonblocking(true)?;
        let sender = UdpSocket::bind("127.0.0.1:0")?;
        sender.connect(receiver.local_addr()?)?;
        sender.set_nonblocking(true)?;
        Ok(LoopbackWaker { receiver, sender })
    }

    /// The socket to watch for reading.
    pub(crate) fn raw(&self) -> RawSock {
        self.receiver.as_raw_socket()
    }

    /// Read every wake-up byte waiting.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while self.receiver.recv(&mut buf).is_ok() {}
    }
}

impl crate::runtime::Wake for LoopbackWaker {
    fn wake(&self) {
        // A full buffer means wake-ups are already waiting: nothing is lost.
        let _ = self.sender.send(&[1]);
    }
}
