//! I/O completion ports: the book's scalable model, on a pool of worker threads.
//!
//! Every socket is associated with a completion port; `WSARecv`, `WSASend` and `AcceptEx`
//! are posted with an `OVERLAPPED` and an owned buffer, and the kernel queues a completion
//! packet on the port when each is done. A worker blocks in `GetQueuedCompletionStatusEx`,
//! takes up to 256 packets at once and applies them with the loop every overlapped model
//! shares (`overlapped/`).
//!
//! **One port per worker.** The book creates one port and lets 2 x cores threads take
//! packets from it; any thread may then get any session's completion, so a session needs
//! a lock, and two completions of one session (a receive, then the next receive) may run
//! on two threads out of order. Here each worker owns ONE port and the connections
//! associated with it: a session's completions are dequeued in order by one thread,
//! without a lock per session, exactly as in the engine's other event loops. The book's
//! pool stays: [`crate::Model::default_workers`] is 2 x cores threads, each blocked in
//! `GetQueuedCompletionStatusEx` on its port. What is lost is the port's own balancing
//! (a free thread taking a busy thread's packets); connections are spread round-robin.
//!
//! **Accepting.** One listener (a port per worker cannot share SO_REUSEPORT listeners as
//! epoll does: Windows has none), associated with worker 0's port, with 10 `AcceptEx` ops
//! pre-posted (the book's default) and one re-posted per completion. An accepted socket
//! gets `SO_UPDATE_ACCEPT_CONTEXT` and `TCP_NODELAY`, then goes round-robin to a worker:
//! associated with that worker's port, and handed over with `PostQueuedCompletionStatus`
//! under the key [`NEW_CONNECTION`], the packet's pointer owning the socket (a
//! `Box<Sock>`). A worker that has exited refuses it (the port's `open` flag, checked under
//! its lock) and the socket is closed, not leaked; packets still queued when a worker exits
//! are drained and their sockets closed.
//!
//! **Syscalls.** Per worker: `CreateIoCompletionPort` once, then one
//! `GetQueuedCompletionStatusEx` per loop turn. Per connection: `CreateIoCompletionPort`
//! (association), `setsockopt(SO_UPDATE_ACCEPT_CONTEXT)`, `setsockopt(TCP_NODELAY)`,
//! `getpeername`, `PostQueuedCompletionStatus` (hand-over), then `WSARecv`/`WSASend` per
//! op, `shutdown` or `setsockopt(SO_LINGER)`, `CancelIoEx` if ops are left, `closesocket`.
//! Other threads wake a worker with `PostQueuedCompletionStatus` under [`WAKE`].
//!
//! **Cost per event.** A received message costs its `WSARecv` (posted ahead) and one
//! dequeued packet, taken in batches; its echo one `WSASend` and one packet. No readiness
//! step, no copy but the handler's. `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` is not set:
//! every op completes through the port, even one that finished inline, so completions are
//! handled in one place and in order (the saving would be one packet per inline op).
//!
//! **What maps to the book.** The completion key and the per-I/O `OVERLAPPED` extension
//! (the op, `overlapped/op.rs`, whose first field is the `OVERLAPPED`); the memory pool
//! (4 KiB receive buffers recycled per worker); pre-posted `AcceptEx`; 2 x cores workers;
//! `PostQueuedCompletionStatus` to wake a worker and to stop it.
//!
//! **Limits.** One `WSARecv` buffer (4 KiB) is posted per connection that is being read,
//! so 10,000 idle connections hold 40 MiB (a zero-byte receive would avoid it, at one
//! more call per message). The listener's accepts all run on worker 0.
//!
//! **Linux kin.** `uring`: a ring per worker, owned buffers, completions instead of
//! readiness, a posted completion to wake it.

use super::overlapped::{Event, Outcome, Source, Worker};
use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::{Core, Started, Wake};
use crate::sys::{RawSock, Sock};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE, WAIT_TIMEOUT};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus, OVERLAPPED,
    OVERLAPPED_ENTRY,
};

const MODEL: Model = Model::Iocp;

/// Completion key of every socket: the packet's pointer is an op's `OVERLAPPED`.
const OP: usize = 0;
/// Completion key of a wake-up packet (no pointer).
const WAKE: usize = 1;
/// Completion key of a hand-over: the pointer is a `Box<Sock>` the worker takes over.
const NEW_CONNECTION: usize = 2;
/// Packets dequeued at a time.
const BATCH: usize = 256;

/// One completion port. Its handle is kept as an integer (`HANDLE` is a raw pointer,
/// neither `Send` nor `Sync`); the port is closed on drop.
struct Port {
    handle: usize,
    /// Whether its worker still takes connections (see [`Port::hand_over`]).
    open: Mutex<bool>,
}

impl Port {
    fn new() -> io::Result<Port> {
        // SAFETY: creating a port (no file handle, no existing port); one thread dequeues.
        let handle =
            unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Port {
            handle: handle as usize,
            open: Mutex::new(true),
        })
    }

    fn raw(&self) -> HANDLE {
        self.handle as HANDLE
    }

    /// Associate `socket` with this port under `key`.
    fn associate(&self, socket: RawSock, key: usize) -> io::Result<()> {
        // SAFETY: the socket is open (the caller owns it) and the port lives as long as
        // `self`; association adds no pointer the kernel keeps into our memory.
        let port = unsafe { CreateIoCompletionPort(socket as HANDLE, self.raw(), key, 0) };
        if port.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Queue a packet.
    fn post(&self, key: usize, overlapped: *mut OVERLAPPED) -> io::Result<()> {
        // SAFETY: the port is open; the pointer is null or, for NEW_CONNECTION, a box the
        // receiving worker takes over (and the caller takes back if this fails).
        if unsafe { PostQueuedCompletionStatus(self.raw(), 0, key, overlapped) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Hand `socket` to this port's worker; give it back if that worker has exited or the
    /// packet could not be queued.
    fn hand_over(&self, socket: Sock) -> Result<(), Sock> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(socket);
        }
        if let Err(e) = self.associate(crate::sys::AsRaw::raw(&socket), OP) {
            tracing::warn!(model = %MODEL, "associating a connection: {e}");
            return Err(socket);
        }
        let packet = Box::into_raw(Box::new(socket));
        if let Err(e) = self.post(NEW_CONNECTION, packet.cast()) {
            tracing::warn!(model = %MODEL, "handing over a connection: {e}");
            // SAFETY: the packet was not queued, so nobody else has the pointer; it came
            // from `Box::into_raw` just above.
            return Err(*unsafe { Box::from_raw(packet) });
        }
        // The worker drains its port after closing it under this lock: it sees the packet.
        drop(open);
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the handle is the port this value owns; nothing uses it after drop.
        unsafe { CloseHandle(self.raw()) };
    }
}

impl Wake for Port {
    fn wake(&self) {
        // A lost wake-up would only be the port failing, which nothing can repair here.
        let _ = self.post(WAKE, std::ptr::null_mut());
    }
}

/// Take back a hand-over packet's socket.
///
/// # Safety
///
/// `overlapped` is the pointer of a packet queued under [`NEW_CONNECTION`] by
/// [`Port::hand_over`], dequeued once.
unsafe fn adopt(overlapped: *mut OVERLAPPED) -> Sock {
    // SAFETY: as the caller guarantees, it is a `Box<Sock>` turned into a raw pointer by
    // `hand_over`, and this is the only packet that carries it.
    *unsafe { Box::from_raw(overlapped.cast::<Sock>()) }
}

/// One worker's completion source: its port, and every port (to hand connections to).
struct Iocp {
    index: usize,
    ports: Arc<Vec<Arc<Port>>>,
    /// Round-robin position for the next accepted connection (worker 0 only).
    next: AtomicUsize,
    entries: Vec<OVERLAPPED_ENTRY>,
}

impl Iocp {
    fn port(&self) -> &Arc<Port> {
        &self.ports[self.index]
    }
}

impl Source for Iocp {
    const MODEL: Model = MODEL;

    fn attach_listener(&mut self, listener: RawSock) -> io::Result<()> {
        self.port().associate(listener, OP)
    }

    fn dispatch(&mut self, socket: Sock) -> Option<Sock> {
        let target = self.next.fetch_add(1, Ordering::Relaxed) % self.ports.len();
        if target == self.index {
            if let Err(e) = self.port().associate(crate::sys::AsRaw::raw(&socket), OP) {
                tracing::warn!(model = %MODEL, "associating a connection: {e}");
                return None;
            }
            return Some(socket);
        }
        match self.ports[target].hand_over(socket) {
            Ok(()) => None,
            // Its worker is gone (shutting down): the connection is closed here.
            Err(socket) => {
                drop(socket);
                tracing::debug!(model = %MODEL, "refused: the target worker has exited");
                None
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        let mut removed = 0u32;
        // SAFETY: `entries` has room for BATCH entries, as passed; the port is open.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.port().raw(),
                self.entries.as_mut_ptr(),
                BATCH as u32,
                &mut removed,
                crate::sys::wait_ms(timeout),
                0,
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(WAIT_TIMEOUT as i32) {
                return Ok(());
            }
            return Err(e);
        }
        for entry in &self.entries[..removed as usize] {
            match entry.lpCompletionKey {
                WAKE => events.push(Event::Wake),
                // SAFETY: packets under this key come only from `Port::hand_over`.
                NEW_CONNECTION => events.push(Event::Adopt(unsafe { adopt(entry.lpOverlapped) })),
                _ if entry.lpOverlapped.is_null() => {}
                _ => {
                    // `Internal` is the op's NTSTATUS: 0 is success; for anything else the
                    // op is asked for its Winsock error (WSAGetOverlappedResult).
                    let outcome = if entry.Internal == 0 {
                        Outcome::Known(entry.dwNumberOfBytesTransferred, 0)
                    } else {
                        Outcome::Ask
                    };
                    events.push(Event::Done(entry.lpOverlapped, outcome));
                }
            }
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.port().clone()
    }

    fn close(&mut self) {
        *self.port().open.lock().unwrap_or_else(|p| p.into_inner()) = false;
        // Connections handed over before the port closed: close them.
        let mut events = Vec::new();
        while self.wait(Some(Duration::ZERO), &mut events).is_ok() && !events.is_empty() {
            for event in events.drain(..) {
                if let Event::Adopt(socket) = event {
                    drop(socket);
                }
            }
        }
    }
}

/// What each worker thread is built from.
struct Setup {
    index: usize,
    ports: Arc<Vec<Arc<Port>>>,
    listener: Option<Sock>,
}

/// Start the IOCP workers: a port each, the listener on worker 0.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<Started, Error> {
    let workers = core.config.worker_count().max(1);
    let (mut listeners, local_addr) =
        crate::sys::listeners(core.config.addr, 1, core.config.backlog, false)?;
    let ports = (0..workers)
        .map(|_| Port::new().map(Arc::new))
        .collect::<io::Result<Vec<_>>>()
        .map_err(Error::setup(MODEL, "creating a completion port"))?;
    let ports = Arc::new(ports);
    let setups = (0..workers)
        .map(|index| Setup {
            index,
            ports: ports.clone(),
            listener: if index == 0 { listeners.pop() } else { None },
        })
        .collect();
    let threads = crate::runtime::spawn_workers(core, MODEL, setups, |core, setup| {
        let source = Iocp {
            index: setup.index,
            ports: setup.ports,
            next: AtomicUsize::new(0),
            // SAFETY: OVERLAPPED_ENTRY is plain data; zeroes are overwritten by the wait.
            entries: vec![unsafe { std::mem::zeroed() }; BATCH],
        };
        let worker = Worker::new(core, source, setup.listener)?;
        Ok(Box::new(move || worker.run()))
    })?;
    Ok((threads, local_addr))
}
