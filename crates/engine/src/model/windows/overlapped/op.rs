//! The overlapped operations a worker lends Winsock, and the table that owns them while
//! Winsock has them.
//!
//! An overlapped call (`WSARecv`, `WSASend`, `AcceptEx`) takes a pointer to an
//! `OVERLAPPED` and may write it, and the buffer named with it, until the operation's
//! completion is reported: through a completion port, a completion routine or an event,
//! and for a cancelled operation too. Here that memory always belongs to one [`Op`], a heap
//! object whose first field is the `OVERLAPPED` (so the pointer Winsock hands back is the
//! op's address) and which owns its buffer (receive, send, or the `AcceptEx` address
//! block and the socket being accepted).
//!
//! [`Ops::post`] turns the op's `Box` into a raw pointer and records it in the table
//! *before* Winsock sees it; the only way back to a `Box` is [`Ops::complete`], with a
//! pointer a completion named, which the table checks against what it recorded. So an
//! op's memory is freed or reused only after its completion arrived. If a worker must give
//! up on ops whose completions never come (an exit whose cancellations did not complete in
//! time), [`Ops::abandon`] leaks them on purpose; dropping an [`Ops`] with ops in it leaks
//! them too (the table holds addresses, not boxes), never frees them under the kernel.
//! A connection's socket is closed only when its count of ops in flight ([`Ops::on_conn`])
//! is zero, and the listener only when no `AcceptEx` is in flight, so the handles an op
//! names stay open while it runs.

use crate::chunks::{Chunks, MAX_SLICES};
use crate::sys::{self, RawSock, Sock};
use std::collections::HashSet;
use std::io;
use std::io::IoSlice;
use std::os::windows::io::{AsRawSocket, FromRawHandle, OwnedHandle};
use windows_sys::Win32::Foundation::{BOOL, HANDLE};
use windows_sys::Win32::Networking::WinSock::{
    self as ws, LPWSAOVERLAPPED_COMPLETION_ROUTINE, SOCKADDR_STORAGE, WSABUF,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// Bytes `AcceptEx` needs per address: the largest address plus 16 (its documentation).
const ADDRESS_LEN: usize = std::mem::size_of::<SOCKADDR_STORAGE>() + 16;

/// The most one `WSASend` is given. An overlapped send completes only once Winsock has
/// taken all of it; a larger send to a slow reader would complete so rarely that the
/// connection looks idle (Windows does not let the engine read the peer's
/// acknowledgements, see `sys::send_progress`). Each completion of a chunk is output
/// activity, and the rest of the buffer goes next.
pub(crate) const SEND_CHUNK: usize = 64 * 1024;

/// A manual-reset event object (for an op's `hEvent`), closed on drop.
#[derive(Debug)]
pub(crate) struct Event(OwnedHandle);

impl Event {
    /// A new manual-reset event, not signalled (`WSACreateEvent`; closed with
    /// `CloseHandle`, which is what `WSACloseEvent` does).
    pub(crate) fn new() -> io::Result<Event> {
        // SAFETY: the call only creates an object.
        let handle = unsafe { ws::WSACreateEvent() } as HANDLE;
        if handle.is_null() {
            return Err(sys::last_error());
        }
        // SAFETY: `handle` is a new event handle that nothing else owns.
        Ok(Event(unsafe { OwnedHandle::from_raw_handle(handle) }))
    }

    /// The raw handle, for waits and for `hEvent`.
    pub(crate) fn handle(&self) -> HANDLE {
        std::os::windows::io::AsRawHandle::as_raw_handle(&self.0)
    }

    /// Signal it.
    pub(crate) fn set(&self) {
        // SAFETY: the handle is a live event owned by `self`.
        unsafe { ws::WSASetEvent(self.handle()) };
    }

    /// Back to not signalled (before the event is given to a new op).
    pub(crate) fn reset(&self) {
        // SAFETY: the handle is a live event owned by `self`.
        unsafe { ws::WSAResetEvent(self.handle()) };
    }
}

/// What an op does, with the memory it lends Winsock.
#[derive(Debug)]
pub(crate) enum Kind {
    /// `WSARecv` into `buf` (its full length).
    Recv { buf: Vec<u8> },
    /// `WSASend` of the bytes of `buf`, gathered (a shared broadcast is sent from the
    /// shared buffer itself), at most [`SEND_CHUNK`] bytes of them.
    Send { buf: Chunks },
    /// `AcceptEx` of a new connection into `socket`; `addresses` receives both ends.
    Accept {
        socket: Sock,
        addresses: Box<[u8; 2 * ADDRESS_LEN]>,
    },
}

/// One overlapped operation. `#[repr(C)]` with the `OVERLAPPED` first: the pointer a
/// completion names is the op's own address.
#[repr(C)]
pub(crate) struct Op {
    overlapped: OVERLAPPED,
    /// The socket the op was issued on (the listener, for an accept).
    pub(crate) socket: RawSock,
    /// The connection slot it counts against; `None` for an accept.
    pub(crate) slot: Option<u32>,
    /// The event its completion signals (the event model; the routine model's accepts).
    pub(crate) event: Option<Event>,
    pub(crate) kind: Kind,
}

impl Op {
    /// A new op on `socket`.
    pub(crate) fn new(socket: RawSock, slot: Option<u32>, kind: Kind) -> Box<Op> {
        Box::new(Op {
            // SAFETY: OVERLAPPED is plain data for which all zeroes is the documented
            // initial state.
            overlapped: unsafe { std::mem::zeroed() },
            socket,
            slot,
            event: None,
            kind,
        })
    }

    /// An accept op on `listener`: a fresh overlapped socket of the listener's family to
    /// accept into.
    pub(crate) fn accept(listener: RawSock, ipv6: bool) -> io::Result<Box<Op>> {
        let domain = if ipv6 {
            socket2::Domain::IPV6
        } else {
            socket2::Domain::IPV4
        };
        // socket2 creates it with WSASocketW(.., WSA_FLAG_OVERLAPPED | NO_HANDLE_INHERIT).
        let socket =
            socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
        let kind = Kind::Accept {
            socket: socket.into(),
            addresses: Box::new([0; 2 * ADDRESS_LEN]),
        };
        Ok(Op::new(listener, None, kind))
    }

    /// The outcome Winsock recorded in this op's `OVERLAPPED`: bytes, and the error code
    /// (0 for success). Asked only once the completion arrived.
    pub(crate) fn result(&self) -> (u32, i32) {
        let mut bytes = 0u32;
        let mut flags = 0u32;
        // SAFETY: the op is complete (it came back from `Ops::complete`), so its
        // OVERLAPPED is no longer written; the socket it names is still open (closed only
        // after its last op completed and was dropped).
        let ok = unsafe {
            ws::WSAGetOverlappedResult(
                sys::socket(self.socket),
                &self.overlapped,
                &mut bytes,
                0,
                &mut flags,
            )
        };
        if ok != 0 {
            (bytes, 0)
        } else {
            let code = sys::last_error().raw_os_error().unwrap_or(ws::WSAEFAULT);
            (bytes, code)
        }
    }
}

/// An op in flight: the address Winsock holds. Only [`Ops::post`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InFlight(usize);

impl InFlight {
    /// The `OVERLAPPED` pointer Winsock holds.
    pub(crate) fn overlapped(self) -> *mut OVERLAPPED {
        self.0 as *mut OVERLAPPED
    }
}

/// The op table: the addresses of every op Winsock holds, and the count per connection.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    live: HashSet<usize>,
    per_conn: Vec<u16>,
}

impl Ops {
    /// Start `op` with Winsock: record it, then issue its call (with `routine` for
    /// `WSARecv`/`WSASend` when the model completes through routines). A call that fails
    /// at once (anything but success or `WSA_IO_PENDING`) gives the op back with the error.
    pub(crate) fn post(
        &mut self,
        mut op: Box<Op>,
        routine: LPWSAOVERLAPPED_COMPLETION_ROUTINE,
    ) -> Result<InFlight, (io::Error, Box<Op>)> {
        // A fresh OVERLAPPED for every call, keeping the op's event.
        // SAFETY: all zeroes is OVERLAPPED's initial state, as in `Op::new`.
        op.overlapped = unsafe { std::mem::zeroed() };
        if let Some(event) = &op.event {
            event.reset();
            op.overlapped.hEvent = event.handle();
        }
        let slot = op.slot;
        let raw = Box::into_raw(op);
        self.live.insert(raw as usize);
        // SAFETY: `raw` comes from `Box::into_raw` and is recorded in `live`, so nothing
        // frees it until `Ops::complete` receives its completion (or it is leaked); the
        // socket it names is open (see the module's comment).
        let started = unsafe { start(raw, routine) };
        match started {
            Ok(()) => {
                if let Some(slot) = slot {
                    let slot = slot as usize;
                    if self.per_conn.len() <= slot {
                        self.per_conn.resize(slot + 1, 0);
                    }
                    self.per_conn[slot] += 1;
                }
                Ok(InFlight(raw as usize))
            }
            Err(e) => {
                self.live.remove(&(raw as usize));
                // SAFETY: the call failed without starting an operation, so Winsock keeps
                // no pointer to the op and no completion will name it; `raw` came from
                // `Box::into_raw` above and is taken back once.
                Err((e, unsafe { Box::from_raw(raw) }))
            }
        }
    }

    /// A completion named `overlapped`: take its op back. `None` for an address that is
    /// not an op in flight here.
    pub(crate) fn complete(&mut self, overlapped: *mut OVERLAPPED) -> Option<Box<Op>> {
        if !self.live.remove(&(overlapped as usize)) {
            return None;
        }
        // SAFETY: the address was recorded by `post` from `Box::into_raw` and is removed
        // from the table here, so it is turned back into its box exactly once; its
        // completion arrived, so Winsock no longer uses it.
        let op = unsafe { Box::from_raw(overlapped.cast::<Op>()) };
        if let Some(slot) = op.slot {
            self.per_conn[slot as usize] -= 1;
        }
        Some(op)
    }

    /// Ops in flight on connection slot `slot`.
    pub(crate) fn on_conn(&self, slot: u32) -> usize {
        self.per_conn.get(slot as usize).map_or(0, |&n| n as usize)
    }

    /// Ops in flight.
    pub(crate) fn live(&self) -> usize {
        self.live.len()
    }

    /// Give up on the ops in flight: their memory stays allocated for good, since the
    /// kernel may still write it.
    pub(crate) fn abandon(&mut self) {
        self.live.clear();
    }
}

/// Issue the op's Winsock call.
///
/// # Safety
///
/// `raw` points to a live op that stays allocated and unmoved until its completion is
/// reported, and its socket (and, for an accept, its listener) stays open as long.
unsafe fn start(raw: *mut Op, routine: LPWSAOVERLAPPED_COMPLETION_ROUTINE) -> io::Result<()> {
    // SAFETY: (for each dereference below) `raw` is valid and unaliased for the call, as
    // the caller guarantees; the OVERLAPPED pointer and the buffer pointers stay valid
    // until the completion, since the op owns them and is not freed or moved before.
    let socket = unsafe { sys::socket((*raw).socket) };
    // SAFETY: as above.
    let overlapped = unsafe { std::ptr::addr_of_mut!((*raw).overlapped) };
    // SAFETY: as above; the `&mut` ends before the call.
    let kind = unsafe { &mut (*raw).kind };
    let result = match kind {
        Kind::Recv { buf } => {
            let wsabuf = WSABUF {
                len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
                buf: buf.as_mut_ptr(),
            };
            let mut flags = 0u32;
            // SAFETY: Winsock copies the WSABUF array before returning (so it may live on
            // the stack); the bytes it names and the OVERLAPPED belong to the op, which
            // outlives the operation. No byte count pointer: it is unreliable when
            // overlapped; the completion carries the count.
            unsafe {
                ws::WSARecv(
                    socket,
                    &wsabuf,
                    1,
                    std::ptr::null_mut(),
                    &mut flags,
                    overlapped,
                    routine,
                )
            }
        }
        Kind::Send { buf } => {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let pieces = buf.slices(&mut slices);
            let (wsabufs, count) = sys::wsabufs(&slices[..pieces], SEND_CHUNK);
            // SAFETY: as for WSARecv (the bytes belong to the op's `buf`, whose chunks do
            // not move or change while it is in flight).
            unsafe {
                ws::WSASend(
                    socket,
                    wsabufs.as_ptr(),
                    count as u32,
                    std::ptr::null_mut(),
                    0,
                    overlapped,
                    routine,
                )
            }
        }
        Kind::Accept {
            socket: accepted,
            addresses,
        } => {
            let mut bytes = 0u32;
            // SAFETY: the listener and the accepting socket are open; the address block
            // and the OVERLAPPED belong to the op. No data is received with the accept
            // (length 0), so it completes as soon as a connection is there.
            let ok: BOOL = unsafe {
                ws::AcceptEx(
                    socket,
                    sys::socket(accepted.as_raw_socket()),
                    addresses.as_mut_ptr().cast(),
                    0,
                    ADDRESS_LEN as u32,
                    ADDRESS_LEN as u32,
                    &mut bytes,
                    overlapped,
                )
            };
            if ok != 0 {
                0
            } else {
                ws::SOCKET_ERROR
            }
        }
    };
    match sys::wsa(result) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(ws::WSA_IO_PENDING) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Cancel every op in flight on `socket` (`CancelIoEx` with no OVERLAPPED): each still
/// completes, with `WSA_OPERATION_ABORTED` unless it finished first.
pub(crate) fn cancel_all(socket: RawSock) {
    // SAFETY: a plain call on a handle the caller keeps open; failing with ERROR_NOT_FOUND
    // (nothing to cancel) is harmless.
    unsafe {
        windows_sys::Win32::System::IO::CancelIoEx(socket as HANDLE, std::ptr::null());
    }
}

/// Make an accepted socket a full socket of its own: inherit the listener's properties
/// (`SO_UPDATE_ACCEPT_CONTEXT`), which `getpeername`, `shutdown` and the rest need.
pub(crate) fn update_accept_context(accepted: &Sock, listener: RawSock) -> io::Result<()> {
    let listener = sys::socket(listener);
    // SAFETY: the option value is the listener's SOCKET, of the size passed.
    sys::wsa(unsafe {
        ws::setsockopt(
            sys::socket(accepted.as_raw_socket()),
            ws::SOL_SOCKET,
            ws::SO_UPDATE_ACCEPT_CONTEXT,
            (&listener as *const ws::SOCKET).cast(),
            std::mem::size_of::<ws::SOCKET>() as i32,
        )
    })
    .map(drop)
}
