//! Overlapped I/O completed by completion routines: the book's "overlapped I/O with
//! completion routines", on one thread.
//!
//! `WSARecv` and `WSASend` are posted with an `OVERLAPPED` and a completion routine; when
//! an op is done, Winsock queues the routine as an APC to the thread that posted it, and
//! the routine runs the next time that thread waits *alertably*. Here the routine does
//! nothing but record (op, bytes, error) in the thread's queue; the worker applies the
//! records after its wait returns, with the loop every overlapped model shares
//! (`overlapped/`), so no handler code runs inside an APC.
//!
//! **Accepting.** `AcceptEx` takes no completion routine (only an event or a port), so the
//! 10 pre-posted `AcceptEx` ops carry an event each, and the thread's one wait is
//! `WaitForMultipleObjectsEx([wake event, accept events..], alertable)`: it returns
//! `WAIT_IO_COMPLETION` after running routines, or the index of a signalled event (the
//! wake-up, or an accept, whose result is read with `WSAGetOverlappedResult`). A
//! non-blocking `accept` on a listener event would do as well; `AcceptEx` keeps the accept
//! overlapped like everything else and leaves the socket ready-made.
//!
//! **Syscalls.** One `WaitForMultipleObjectsEx` per loop turn (it runs every queued
//! routine); `WSARecv`/`WSASend` per op; per connection `setsockopt(SO_UPDATE_ACCEPT_CONTEXT,
//! TCP_NODELAY)`, `getpeername`, `shutdown` or `SO_LINGER`, `CancelIoEx` if ops are left,
//! `closesocket`. Other threads wake the worker with `WSASetEvent`.
//!
//! **Cost per event.** One APC per completed op, run in a batch by the wait; no readiness
//! step. Everything runs on one thread: APCs are delivered only to the thread that issued
//! the op, which is why the book's routine model cannot use a thread pool.
//!
//! **Limits.** One thread. 64 wait handles (`MAXIMUM_WAIT_OBJECTS`) bound the accept ops
//! (10 here), not the connections: completions of sockets need no handle. A thread that
//! never waits alertably never completes anything.
//!
//! **Linux kin.** `signal` (the kernel queues a notification per event to one thread) and,
//! for the completion side, `uring`.

use super::overlapped::op::{Event as OpEvent, Kind, Op};
use super::overlapped::{Event, Outcome, Source, Worker};
use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::{Core, Started, Wake};
use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use windows_sys::Win32::Foundation::{
    HANDLE, WAIT_FAILED, WAIT_IO_COMPLETION, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Networking::WinSock::LPWSAOVERLAPPED_COMPLETION_ROUTINE;
use windows_sys::Win32::System::Threading::WaitForMultipleObjectsEx;
use windows_sys::Win32::System::IO::OVERLAPPED;

const MODEL: Model = Model::OverlappedRoutine;

thread_local! {
    /// What the completion routines recorded on this thread: (op, bytes, error).
    static DONE: RefCell<Vec<(usize, u32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// The completion routine of every `WSARecv` and `WSASend`: record, nothing else.
unsafe extern "system" fn record(error: u32, bytes: u32, overlapped: *mut OVERLAPPED, _: u32) {
    DONE.with(|done| done.borrow_mut().push((overlapped as usize, bytes, error)));
}

/// The wake-up event other threads signal.
struct WakeEvent(OpEvent);

impl Wake for WakeEvent {
    fn wake(&self) {
        self.0.set();
    }
}

struct Routines {
    wake: Arc<WakeEvent>,
    /// The accept ops in flight and their events.
    accepts: Vec<(HANDLE, *mut OVERLAPPED)>,
    /// Events of finished accept ops, for reuse.
    spare: Vec<OpEvent>,
    handles: Vec<HANDLE>,
}

impl Source for Routines {
    const MODEL: Model = MODEL;

    fn routine(&self) -> LPWSAOVERLAPPED_COMPLETION_ROUTINE {
        Some(record)
    }

    fn prepare(&mut self, op: &mut Op) -> io::Result<()> {
        if matches!(op.kind, Kind::Accept { .. }) && op.event.is_none() {
            op.event = Some(match self.spare.pop() {
                Some(event) => event,
                None => OpEvent::new()?,
            });
        }
        Ok(())
    }

    fn posted(&mut self, op: *mut OVERLAPPED, event: Option<HANDLE>) {
        if let Some(event) = event {
            self.accepts.push((event, op));
        }
    }

    fn reclaim(&mut self, op: &mut Op) {
        if let Some(event) = op.event.take() {
            self.spare.push(event);
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        self.handles.clear();
        self.handles.push(self.wake.0.handle());
        self.handles
            .extend(self.accepts.iter().map(|&(event, _)| event));
        // SAFETY: every handle is a live event: the wake event lives in `self`, and an
        // accept's event belongs to its op, which is in flight (not freed) while listed.
        let result = unsafe {
            WaitForMultipleObjectsEx(
                self.handles.len() as u32,
                self.handles.as_ptr(),
                0,
                crate::sys::wait_ms(timeout),
                1,
            )
        };
        match result {
            WAIT_IO_COMPLETION | WAIT_TIMEOUT => {}
            WAIT_FAILED => return Err(io::Error::last_os_error()),
            WAIT_OBJECT_0 => {
                self.wake.0.reset();
                events.push(Event::Wake);
            }
            index => {
                let index = (index - WAIT_OBJECT_0) as usize - 1;
                if index < self.accepts.len() {
                    let (_, op) = self.accepts.swap_remove(index);
                    events.push(Event::Done(op, Outcome::Ask));
                }
            }
        }
        DONE.with(|done| {
            for (op, bytes, error) in done.borrow_mut().drain(..) {
                // A failed op is asked for its Winsock error code.
                let outcome = if error == 0 {
                    Outcome::Known(bytes, 0)
                } else {
                    Outcome::Ask
                };
                events.push(Event::Done(op as *mut OVERLAPPED, outcome));
            }
        });
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }
}

/// Start the one worker thread, with the listener.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<Started, Error> {
    let (listeners, local_addr) =
        crate::sys::listeners(core.config.addr, 1, core.config.backlog, false)?;
    let threads = crate::runtime::spawn_workers(core, MODEL, listeners, |core, listener| {
        let wake = OpEvent::new().map_err(Error::setup(MODEL, "creating the wake-up event"))?;
        let source = Routines {
            wake: Arc::new(WakeEvent(wake)),
            accepts: Vec::new(),
            spare: Vec::new(),
            handles: Vec::new(),
        };
        let worker = Worker::new(core, source, Some(listener))?;
        Ok(Box::new(move || worker.run()))
    })?;
    Ok((threads, local_addr))
}
