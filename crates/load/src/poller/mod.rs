//! How a load thread waits for its sockets: one contract, one backend per platform, picked
//! here with one `cfg`.
//!
//! - Linux: [`epoll`], edge-triggered; asking for writability costs nothing, so
//!   [`Poller::want_write`] and [`Poller::remove`] do nothing.
//! - Windows: [`wsapoll`], level-triggered `WSAPoll` over a dense array of the open
//!   sockets; a socket is watched for writability only while it connects or has bytes
//!   waiting, or every wait would return at once.
//!
//! The worker reads until `WouldBlock` and writes until done or `WouldBlock`, which is what
//! edge-triggered readiness requires and level-triggered readiness allows, so the same
//! worker runs on both.

use socket2::Socket;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
pub(crate) use epoll::Epoll as Platform;
#[cfg(windows)]
mod wsapoll;
#[cfg(windows)]
pub(crate) use wsapoll::WsaPoll as Platform;

/// What a wait reported for one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The token the socket was added with.
    pub(crate) token: usize,
    /// Bytes to read (or end of stream).
    pub(crate) readable: bool,
    /// Room to write, or a connect that finished.
    pub(crate) writable: bool,
    /// The peer shut down, or the socket has an error.
    pub(crate) hangup: bool,
}

/// A load thread's readiness queue over its sockets, each known by a token (the
/// connection's local index).
pub(crate) trait Poller: Sized {
    /// A new, empty queue.
    fn new() -> io::Result<Self>;

    /// A non-blocking TCP socket for `addr`, as this platform makes one.
    fn socket(addr: SocketAddr) -> io::Result<Socket>;

    /// Watch `socket` under `token` for reading, hang-up, and writing (so a connect in
    /// progress is reported when it finishes).
    fn add(&mut self, socket: &Socket, token: usize) -> io::Result<()>;

    /// Whether the socket of `token` is to be watched for writability: after a connect
    /// finished, only while bytes wait for room in its buffer.
    fn want_write(&mut self, token: usize, on: bool);

    /// Stop watching `token`, before its socket is closed.
    fn remove(&mut self, token: usize);

    /// Wait up to `timeout` (rounded up to whole milliseconds); return how many events
    /// [`Poller::event`] can read. A failed wait is an empty one.
    fn wait(&mut self, timeout: Duration) -> usize;

    /// Event `index` of the last wait.
    fn event(&self, index: usize) -> Event;
}
