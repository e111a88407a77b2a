//! Overlapped I/O completed through event objects: the book's "overlapped I/O with event
//! notification", on one worker thread.
//!
//! Every op (`WSARecv`, `WSASend`, `AcceptEx`) carries a manual-reset event in its
//! `OVERLAPPED.hEvent`, which Winsock signals when the op is done; the op's result is then
//! read with `WSAGetOverlappedResult` and applied by the loop every overlapped model shares
//! (`overlapped/`).
//!
//! **More than 64 events.** A thread can wait for at most 64 handles at once
//! (`WSA_MAXIMUM_WAIT_EVENTS`); the book's answer is more threads. Here the worker hands
//! each posted op's event to a *waiter* thread that watches up to 63 of them plus a control
//! event (to learn of new ones) in `WaitForMultipleObjects`; when one is signalled the
//! waiter stops watching it and forwards the op to the worker's ready queue, setting the
//! worker's one event. Waiters are started as the number of ops in flight grows (one per 63)
//! and only ever look at event handles: every op, and all the connection state, stays on
//! the worker thread, which waits on its single ready event (also its wake-up event for
//! other threads). The alternative, one thread rotating `WSAWaitForMultipleEvents` over
//! groups of 64 with short timeouts, would poll and add up to a timeout of latency per
//! group.
//!
//! **Syscalls.** Per op: `WSARecv`/`WSASend`/`AcceptEx`, `WSAResetEvent` when its event is
//! reused, one waiter wake-up (`WSASetEvent` on the control event) and, on completion, a
//! `WaitForMultipleObjects` return in the waiter, a `WSASetEvent` on the ready event and
//! `WSAGetOverlappedResult` in the worker. Per connection: as for the other overlapped
//! models (`SO_UPDATE_ACCEPT_CONTEXT`, `TCP_NODELAY`, `getpeername`, `shutdown` or
//! `SO_LINGER`, `CancelIoEx` if ops are left, `closesocket`).
//!
//! **Cost per event.** Two thread hand-offs per completed op (kernel to waiter, waiter to
//! worker) and a rebuilt handle array in the waiter: the most expensive of the overlapped
//! models, as the book says of its event model.
//!
//! **Limits.** One waiter thread per 63 ops in flight, so about one per 30 busy connections
//! (a receive and a send each); each wait is O(its 64 handles). Events are recycled, one
//! per op in flight at most.
//!
//! **Linux kin.** None exactly; `poll` (an array of handles scanned per wait) is the
//! closest in cost, `uring` in what completes.

use super::overlapped::op::{Event as OpEvent, Op};
use super::overlapped::{Event, Outcome, Source, Worker};
use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::{Core, Started, Wake};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::Networking::WinSock::WSA_MAXIMUM_WAIT_EVENTS;
use windows_sys::Win32::System::Threading::{
    WaitForMultipleObjects, WaitForSingleObjectEx, INFINITE,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

const MODEL: Model = Model::OverlappedEvent;

/// Op events one waiter watches: 64 minus its control event.
const PER_WAITER: usize = WSA_MAXIMUM_WAIT_EVENTS as usize - 1;

/// The worker's ready queue: ops whose events were signalled, and the event that wakes
/// the worker (set by waiters, and by other threads as the worker's waker).
struct Ready {
    queue: Mutex<Vec<usize>>,
    event: OpEvent,
}

impl Wake for Ready {
    fn wake(&self) {
        self.event.set();
    }
}

/// What a waiter watches: (event handle, op address) pairs, as integers.
#[derive(Default)]
struct Watch {
    watched: Vec<(usize, usize)>,
    exit: bool,
}

/// One waiter thread's shared half.
struct Waiter {
    control: OpEvent,
    watch: Mutex<Watch>,
    ready: Arc<Ready>,
}

impl Waiter {
    /// The waiter thread: wait for its events; forward each signalled op to the worker.
    fn run(&self) {
        let mut handles: Vec<HANDLE> = Vec::with_capacity(PER_WAITER + 1);
        loop {
            {
                let watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
                if watch.exit {
                    return;
                }
                handles.clear();
                handles.push(self.control.handle());
                handles.extend(watch.watched.iter().map(|&(event, _)| event as HANDLE));
            }
            // SAFETY: every handle is a live event: the control event lives in `self`; an
            // op's event belongs to the op, which the worker keeps (in flight, not freed)
            // until this waiter has forwarded it and stopped watching its event.
            let result = unsafe {
                WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, INFINITE)
            };
            if result == WAIT_OBJECT_0 {
                self.control.reset();
                continue;
            }
            if result == WAIT_FAILED {
                tracing::error!(model = %MODEL, "waiter: {}", io::Error::last_os_error());
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let index = (result - WAIT_OBJECT_0) as usize;
            let Some(&event) = handles.get(index) else {
                continue;
            };
            let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
            // Only this thread removes entries, so the op is still watched.
            if let Some(at) = watch.watched.iter().position(|&(e, _)| e == event as usize) {
                let (_, op) = watch.watched.swap_remove(at);
                drop(watch);
                self.ready
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(op);
                self.ready.event.set();
            }
        }
    }

    fn stop(&self) {
        self.watch.lock().unwrap_or_else(|p| p.into_inner()).exit = true;
        self.control.set();
    }
}

struct Events {
    ready: Arc<Ready>,
    waiters: Vec<(Arc<Waiter>, Option<JoinHandle<()>>)>,
    /// Ops in flight per waiter, as the worker counts them.
    load: Vec<usize>,
    /// Which waiter watches each op in flight.
    watcher: HashMap<usize, usize>,
    /// Events of finished ops, for reuse.
    spare: Vec<OpEvent>,
    taken: Vec<usize>,
}

impl Events {
    /// A waiter with room, started if none has.
    fn waiter(&mut self) -> io::Result<usize> {
        if let Some(index) = self.load.iter().position(|&n| n < PER_WAITER) {
            return Ok(index);
        }
        let waiter = Arc::new(Waiter {
            control: OpEvent::new()?,
            watch: Mutex::new(Watch::default()),
            ready: self.ready.clone(),
        });
        let thread = {
            let waiter = waiter.clone();
            std::thread::Builder::new()
                .name(format!("{MODEL}-waiter-{}", self.waiters.len()))
                .spawn(move || waiter.run())?
        };
        self.waiters.push((waiter, Some(thread)));
        self.load.push(0);
        Ok(self.waiters.len() - 1)
    }
}

impl Source for Events {
    const MODEL: Model = MODEL;

    fn prepare(&mut self, op: &mut Op) -> io::Result<()> {
        if op.event.is_none() {
            op.event = Some(match self.spare.pop() {
                Some(event) => event,
                None => OpEvent::new()?,
            });
        }
        // Make sure a waiter can take it (starting one may fail).
        self.waiter().map(drop)
    }

    fn posted(&mut self, op: *mut OVERLAPPED, event: Option<HANDLE>) {
        let Some(event) = event else {
            return;
        };
        let Ok(index) = self.waiter() else {
            unreachable!("`prepare` found a waiter with room");
        };
        self.load[index] += 1;
        self.watcher.insert(op as usize, index);
        let waiter = &self.waiters[index].0;
        waiter
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watched
            .push((event as usize, op as usize));
        waiter.control.set();
    }

    fn reclaim(&mut self, op: &mut Op) {
        if let Some(index) = self.watcher.remove(&(op as *mut Op as usize)) {
            self.load[index] -= 1;
        }
        if let Some(event) = op.event.take() {
            self.spare.push(event);
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        // SAFETY: the ready event lives in `self.ready`.
        let result = unsafe {
            WaitForSingleObjectEx(self.ready.event.handle(), crate::sys::wait_ms(timeout), 0)
        };
        match result {
            WAIT_TIMEOUT => return Ok(()),
            WAIT_FAILED => return Err(io::Error::last_os_error()),
            _ => {}
        }
        // Reset before taking the queue: a waiter that queues later sets it again.
        self.ready.event.reset();
        std::mem::swap(
            &mut self.taken,
            &mut *self.ready.queue.lock().unwrap_or_else(|p| p.into_inner()),
        );
        events.push(Event::Wake);
        for op in self.taken.drain(..) {
            events.push(Event::Done(op as *mut OVERLAPPED, Outcome::Ask));
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.ready.clone()
    }

    fn close(&mut self) {
        for (waiter, _) in &self.waiters {
            waiter.stop();
        }
        for (_, thread) in &mut self.waiters {
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.close();
    }
}

/// Start the one worker thread, with the listener.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<Started, Error> {
    let (listeners, local_addr) =
        crate::sys::listeners(core.config.addr, 1, core.config.backlog, false)?;
    let threads = crate::runtime::spawn_workers(core, MODEL, listeners, |core, listener| {
        let event = OpEvent::new().map_err(Error::setup(MODEL, "creating the ready event"))?;
        let source = Events {
            ready: Arc::new(Ready {
                queue: Mutex::new(Vec::new()),
                event,
            }),
            waiters: Vec::new(),
            load: Vec::new(),
            watcher: HashMap::new(),
            spare: Vec::new(),
            taken: Vec::new(),
        };
        let worker = Worker::new(core, source, Some(listener))?;
        Ok(Box::new(move || worker.run()))
    })?;
    Ok((threads, local_addr))
}
