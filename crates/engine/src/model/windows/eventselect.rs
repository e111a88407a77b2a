//! WSAEventSelect: Winsock signals an event object per socket, and a thread per 63 sockets
//! waits on them, 64 handles at a time, and tells the worker.
//!
//! A wait takes at most WSA_MAXIMUM_WAIT_EVENTS = 64 handles, so, as the book does, the
//! sockets are split into groups of 63, each with a thread waiting on its sockets' events
//! and a control event. When a socket's event fires, its group thread calls
//! `WSAEnumNetworkEvents` (which says what happened and resets the event), and hands the
//! worker (token, readable, writable, hang-up) through a shared queue and an event the
//! worker waits on (which the waker sets too). The worker's register and deregister change
//! a group's slots under its lock and set its control event, which ends the thread's wait
//! before any socket's (it is first, and the lowest signalled index wins): the thread then
//! rebuilds its handle array.
//! Syscalls: per socket `CreateEventW`, `WSAEventSelect(s, event, FD_READ | FD_WRITE |
//! FD_CLOSE)` (`FD_ACCEPT` for the listener; an accepted socket inherits its listener's
//! selection, so each connection sets its own), `SetEvent(control)`, and at deregister
//! `WSAEventSelect(s, event, 0)`, `SetEvent(control)`, `CloseHandle`. Per group thread wake:
//! `WSAWaitForMultipleEvents`, then per signalled socket `WSAEnumNetworkEvents` and a
//! zero-timeout `WSAWaitForMultipleEvents` over the rest of the array to find the next
//! (so one wake serves every signalled socket, and high indices never starve); `SetEvent` for
//! the worker when its queue was empty. The worker: `WaitForSingleObject` per round.
//! Edge-triggered: Winsock records FD_READ once and again only after a `recv` (at once if
//! data is left), FD_WRITE when the connection is made and then only after a `send` failed
//! with WSAEWOULDBLOCK, FD_ACCEPT after an `accept`, FD_CLOSE once.
//! Cost per event: a group thread wakes (a context switch), makes two calls per socket, and
//! wakes the worker (another switch, shared by everything reported meanwhile). Per
//! connection: an event object and a slot of four words. Per 63 connections: a thread (a
//! 128 KiB stack reservation, of which a few pages are touched). Measured under Wine 8.0,
//! 1,000 registered connections made 16 group threads and raised the resident memory by
//! 16 MB, nearly all of it Wine's own cost per thread (about 1 MB); on Windows a thread
//! costs its touched stack pages and a kernel stack (not measured here).
//! Closing: the group thread touches a socket only while holding its group's lock and only
//! while its slot is there, and deregister removes the slot under that lock before the
//! loop closes the socket, so `WSAEnumNetworkEvents` never sees a closed handle, or a
//! reused one. The event object stays open (a group thread holds a reference) until that
//! thread stops waiting on it. Each report carries its registration's number, and the
//! worker drops reports for registrations that have ended, so a token or socket handle
//! reused by a newer connection gets nothing meant for the old one.
//! Wine: an `accept` that fails with WSAEWOULDBLOCK does not re-enable FD_ACCEPT there
//! (Windows re-enables an event on any call to its re-enabling function, even one that
//! fails), and the wineserver can record an FD_ACCEPT for a connection the loop has already
//! accepted; the loop's next `accept` then fails and the listener falls silent until an
//! `accept` succeeds. Renewing `WSAEventSelect` does not re-enable it there. So when the
//! listener has not been reported for 100 ms, the worker reports it anyway and the loop
//! tries one `accept`: at most ten failed calls a second, and on Wine a connection caught
//! in that state waits at most 100 ms.
//! Limit: a thread per 63 sockets (threads are the cost: memory and switches), and 64
//! handles per wait; nothing else but memory.
//! Linux kin: epoll ([`crate::model`]'s `epoll`), the kernel-kept interest list this
//! model builds by hand.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector, LISTENER};
use crate::runtime::Wake;
use crate::sys::{self, RawSock};
use std::collections::HashMap;
use std::io;
use std::ptr::null;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, FALSE, HANDLE, WAIT_FAILED};
use windows_sys::Win32::Networking::WinSock::{
    self as ws, FD_ACCEPT, FD_ACCEPT_BIT, FD_CLOSE, FD_CLOSE_BIT, FD_READ, FD_READ_BIT, FD_WRITE,
    FD_WRITE_BIT, SOCKET, WSANETWORKEVENTS, WSA_MAXIMUM_WAIT_EVENTS, WSA_WAIT_FAILED,
    WSA_WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, ResetEvent, SetEvent, WaitForSingleObject, INFINITE,
};

/// Sockets per group: a wait's 64 handles less the control event.
const GROUP_SIZE: usize = WSA_MAXIMUM_WAIT_EVENTS as usize - 1;
/// A group thread's stack: it only waits, copies and locks.
const GROUP_STACK: usize = 128 * 1024;
/// How long the listener may go unreported before the loop is told to try `accept` anyway
/// (see "Wine" above).
const LISTENER_RECHECK: Duration = Duration::from_millis(100);

/// An event object, closed on drop.
struct EventObject(HANDLE);

// SAFETY: an event handle is a plain value, and SetEvent, ResetEvent and the waits may be
// called on it from any thread; it is closed only on drop, when no reference is left.
unsafe impl Send for EventObject {}
// SAFETY: as above: every call made through `&EventObject` is thread-safe.
unsafe impl Sync for EventObject {}

impl EventObject {
    /// A new, unsignalled event: manual-reset (for a socket: `WSAEnumNetworkEvents` resets
    /// it) or auto-reset (a wait consumes it).
    fn new(manual_reset: bool) -> io::Result<EventObject> {
        // SAFETY: no attributes and no name are allowed; the handle returned is new.
        let handle = unsafe { CreateEventW(null(), manual_reset.into(), FALSE, null()) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(EventObject(handle))
    }

    fn set(&self) {
        // SAFETY: the handle is open while `self` lives. It cannot fail on a valid event.
        unsafe { SetEvent(self.0) };
    }
}

impl Drop for EventObject {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and nothing waits on it any more: waiters
        // hold a reference (see `GroupThread::wait`).
        unsafe { CloseHandle(self.0) };
    }
}

/// What the group threads hand the worker, and the event that tells it so.
struct Inbox {
    /// Each report with the registration it is for.
    reports: Mutex<Vec<(u64, Event)>>,
    /// Auto-reset; set when `reports` stops being empty, and by the waker.
    ready: EventObject,
}

impl Wake for Inbox {
    fn wake(&self) {
        self.ready.set();
    }
}

/// One watched socket of a group.
struct Slot {
    /// The registration's number, unique within the selector.
    id: u64,
    socket: SOCKET,
    token: usize,
    event: Arc<EventObject>,
}

/// What a group's thread and the worker share, under the group's lock.
struct Slots {
    /// At most GROUP_SIZE; a slot keeps its position while it lives.
    slots: Vec<Option<Slot>>,
    stop: bool,
}

/// What a group's thread is given.
struct Shared {
    state: Mutex<Slots>,
    /// Auto-reset; set after each change of `state`.
    control: EventObject,
    inbox: Arc<Inbox>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A group, as the worker sees it.
struct Group {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Free positions in `Slots::slots`.
    free: Vec<usize>,
}

/// Where a token is watched.
#[derive(Clone, Copy)]
struct Place {
    group: usize,
    position: usize,
    id: u64,
}

/// One worker's groups.
pub(crate) struct EventSelect {
    inbox: Arc<Inbox>,
    groups: Vec<Group>,
    places: HashMap<usize, Place>,
    next_id: u64,
    /// The inbox's queue, swapped out each round (its allocation is reused).
    reports: Vec<(u64, Event)>,
    /// When the listener was last reported (or re-checked).
    listener_seen: Instant,
}

/// `WSAEventSelect(socket, event, events)`.
fn event_select(socket: SOCKET, event: &EventObject, events: u32) -> io::Result<()> {
    // SAFETY: callers pass a socket the loop keeps open for the call, and an open event.
    sys::wsa(unsafe { ws::WSAEventSelect(socket, event.0 as isize, events as i32) })?;
    Ok(())
}

/// A group's thread: the arrays it waits on, rebuilt from the slots after each change.
struct GroupThread {
    shared: Arc<Shared>,
    /// The control event first, then one event per slot.
    handles: Vec<HANDLE>,
    /// For each handle after the first: its slot's position and registration.
    owners: Vec<(usize, u64)>,
    /// Keeps every event in `handles` open while it is waited on, even after its slot is
    /// gone.
    keep: Vec<Arc<EventObject>>,
    found: Vec<(u64, Event)>,
}

impl GroupThread {
    fn new(shared: Arc<Shared>) -> GroupThread {
        GroupThread {
            shared,
            handles: Vec::with_capacity(GROUP_SIZE + 1),
            owners: Vec::with_capacity(GROUP_SIZE),
            keep: Vec::with_capacity(GROUP_SIZE),
            found: Vec::with_capacity(GROUP_SIZE),
        }
    }

    fn run(mut self) {
        while self.rebuild() {
            self.wait();
        }
    }

    /// Copy the slots into the arrays. Returns false when the group is to stop.
    fn rebuild(&mut self) -> bool {
        let state = self.shared.lock();
        if state.stop {
            return false;
        }
        self.handles.clear();
        self.owners.clear();
        self.keep.clear();
        self.handles.push(self.shared.control.0);
        for (position, slot) in state.slots.iter().enumerate() {
            if let Some(slot) = slot {
                self.handles.push(slot.event.0);
                self.owners.push((position, slot.id));
                self.keep.push(slot.event.clone());
            }
        }
        true
    }

    /// Wait and report until the control event fires.
    fn wait(&mut self) {
        loop {
            // SAFETY: at most 64 handles, each open: the control event is owned by
            // `shared` and the others by `keep`, for as long as this call lasts.
            let rc = unsafe {
                ws::WSAWaitForMultipleEvents(
                    self.handles.len() as u32,
                    self.handles.as_ptr(),
                    FALSE,
                    INFINITE,
                    FALSE,
                )
            };
            if rc == WSA_WAIT_FAILED {
                // Cannot happen with open handles; do not spin on it.
                tracing::error!("eventselect: waiting failed: {}", sys::last_error());
                std::thread::sleep(Duration::from_millis(10));
                return;
            }
            let first = rc as usize;
            if first == 0 || first >= self.handles.len() {
                // The control event (which wins over the others): rebuild.
                return;
            }
            self.report(first);
        }
    }

    /// Enumerate the events of every signalled socket from index `first` on, and hand them
    /// to the worker.
    fn report(&mut self, first: usize) {
        {
            let state = self.shared.lock();
            let mut index = first;
            while index < self.handles.len() {
                let (position, id) = self.owners[index - 1];
                match state.slots[position].as_ref() {
                    Some(slot) if slot.id == id => self.found.push((id, enumerate(slot))),
                    // Deregistered since the rebuild (the control event is set): its event
                    // will be dropped from the array.
                    _ => {}
                }
                index += 1;
                if index == self.handles.len() {
                    break;
                }
                // The next signalled one, without waiting.
                let rest = &self.handles[index..];
                // SAFETY: as in `wait`: open handles, at most 64.
                let rc = unsafe {
                    ws::WSAWaitForMultipleEvents(rest.len() as u32, rest.as_ptr(), FALSE, 0, FALSE)
                };
                if rc == WSA_WAIT_TIMEOUT || rc == WSA_WAIT_FAILED || rc as usize >= rest.len() {
                    break;
                }
                index += rc as usize;
            }
        }
        if self.found.is_empty() {
            return;
        }
        let was_empty = {
            let mut reports = self
                .shared
                .inbox
                .reports
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let was_empty = reports.is_empty();
            reports.append(&mut self.found);
            was_empty
        };
        if was_empty {
            self.shared.inbox.ready.set();
        }
    }
}

/// Ask Winsock what happened to `slot`'s socket (this resets its event). The caller holds
/// the group's lock, under which the slot is present, so the socket is open.
fn enumerate(slot: &Slot) -> Event {
    let mut network = WSANETWORKEVENTS {
        lNetworkEvents: 0,
        iErrorCode: [0; 10],
    };
    // SAFETY: the socket is open: the loop closes a socket only after deregister removed
    // its slot, under the lock the caller holds. The event is open (the slot holds it) and
    // `network` is valid for writes.
    let rc = unsafe { ws::WSAEnumNetworkEvents(slot.socket, slot.event.0 as isize, &mut network) };
    if rc != 0 {
        // Left signalled, the event would end every wait at once: reset it, and let the
        // loop's next call on the socket find what is wrong.
        // SAFETY: the event is open (the slot holds it).
        unsafe { ResetEvent(slot.event.0) };
        return Event {
            token: slot.token,
            readable: true,
            writable: true,
            hangup: true,
        };
    }
    let bits = network.lNetworkEvents as u32;
    let failed = |bit: u32, flag: u32| bits & flag != 0 && network.iErrorCode[bit as usize] != 0;
    // The close, or a failed event, makes both directions "ready": the next call says what.
    let broken = bits & FD_CLOSE != 0
        || failed(FD_READ_BIT, FD_READ)
        || failed(FD_WRITE_BIT, FD_WRITE)
        || failed(FD_ACCEPT_BIT, FD_ACCEPT)
        || failed(FD_CLOSE_BIT, FD_CLOSE);
    Event {
        token: slot.token,
        readable: broken || bits & (FD_READ | FD_ACCEPT) != 0,
        writable: broken || bits & FD_WRITE != 0,
        hangup: broken,
    }
}

impl EventSelect {
    /// A group with a free slot: the first one, or a new one with its thread.
    fn vacancy(&mut self) -> io::Result<usize> {
        if let Some(index) = self.groups.iter().position(|g| !g.free.is_empty()) {
            return Ok(index);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(Slots {
                slots: (0..GROUP_SIZE).map(|_| None).collect(),
                stop: false,
            }),
            control: EventObject::new(false)?,
            inbox: self.inbox.clone(),
        });
        let index = self.groups.len();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("eventselect-group-{index}"))
            .stack_size(GROUP_STACK)
            .spawn(move || GroupThread::new(thread_shared).run())?;
        self.groups.push(Group {
            shared,
            thread: Some(thread),
            free: (0..GROUP_SIZE).rev().collect(),
        });
        Ok(index)
    }

    /// Take what the group threads reported, for registrations still alive.
    fn take(&mut self, events: &mut Vec<Event>) -> bool {
        std::mem::swap(
            &mut self.reports,
            &mut *self.inbox.reports.lock().unwrap_or_else(|p| p.into_inner()),
        );
        let any = !self.reports.is_empty();
        for (id, event) in self.reports.drain(..) {
            if matches!(self.places.get(&event.token), Some(place) if place.id == id) {
                if event.token == LISTENER {
                    self.listener_seen = Instant::now();
                }
                events.push(event);
            }
        }
        any
    }

    /// Report the listener if it has gone unreported for [`LISTENER_RECHECK`]. Returns
    /// whether it did, and how long until the next re-check (`None` without a listener).
    fn recheck_listener(&mut self, events: &mut Vec<Event>) -> (bool, Option<Duration>) {
        if !self.places.contains_key(&LISTENER) {
            return (false, None);
        }
        let silent = self.listener_seen.elapsed();
        if silent < LISTENER_RECHECK {
            return (false, Some(LISTENER_RECHECK - silent));
        }
        self.listener_seen = Instant::now();
        events.push(Event {
            token: LISTENER,
            readable: true,
            writable: false,
            hangup: false,
        });
        (true, Some(LISTENER_RECHECK))
    }

    /// The number of group threads (for tests and measurements).
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.groups.len()
    }
}

impl Selector for EventSelect {
    const MODEL: Model = Model::EventSelect;
    const EDGE_TRIGGERED: bool = true;
    // FD_READ is recorded again after a recv that left data, and FD_CLOSE on its own.
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<EventSelect> {
        Ok(EventSelect {
            inbox: Arc::new(Inbox {
                reports: Mutex::new(Vec::new()),
                ready: EventObject::new(false)?,
            }),
            groups: Vec::new(),
            places: HashMap::new(),
            next_id: 0,
            reports: Vec::new(),
            listener_seen: Instant::now(),
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.inbox.clone()
    }

    fn register(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        if self.places.contains_key(&token) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("token {token} is already watched"),
            ));
        }
        let event = Arc::new(EventObject::new(true)?);
        let socket = sys::socket(fd);
        let group = self.vacancy()?;
        let id = self.next_id;
        let shared = self.groups[group].shared.clone();
        let Some(position) = self.groups[group].free.pop() else {
            unreachable!("vacancy returns a group with a free slot");
        };
        let selected = {
            let mut state = shared.lock();
            // This replaces the listener's selection an accepted socket inherited. The event
            // may be set at once; the thread sees it after its rebuild.
            let selected = event_select(socket, &event, super::network_events(token, interest));
            if selected.is_ok() {
                state.slots[position] = Some(Slot {
                    id,
                    socket,
                    token,
                    event,
                });
            }
            selected
        };
        if let Err(e) = selected {
            self.groups[group].free.push(position);
            return Err(e);
        }
        shared.control.set();
        self.next_id += 1;
        self.places.insert(
            token,
            Place {
                group,
                position,
                id,
            },
        );
        Ok(())
    }

    fn reregister(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        let place = self.places.get(&token).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("token {token} is not watched"),
            )
        })?;
        let state = self.groups[place.group].shared.lock();
        match state.slots[place.position].as_ref() {
            Some(slot) => event_select(
                sys::socket(fd),
                &slot.event,
                super::network_events(token, interest),
            ),
            None => unreachable!("a placed token has its slot"),
        }
    }

    fn deregister(&mut self, fd: RawSock, token: usize) -> io::Result<()> {
        let place = self.places.remove(&token).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("token {token} is not watched"),
            )
        })?;
        let group = &mut self.groups[place.group];
        let cancelled = {
            let mut state = group.shared.lock();
            let slot = state.slots[place.position].take();
            // Once the lock is released the group thread can no longer reach the socket,
            // which the loop closes next. Stop the recording too (a lingering close
            // registers the same socket again).
            slot.map_or(Ok(()), |slot| event_select(sys::socket(fd), &slot.event, 0))
        };
        group.free.push(place.position);
        group.shared.control.set();
        cancelled
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let reported = self.take(events);
        let (rechecked, recheck) = self.recheck_listener(events);
        if reported || rechecked || timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        let wait = match (timeout, recheck) {
            (Some(timeout), Some(recheck)) => Some(timeout.min(recheck)),
            (timeout, None) => timeout,
            (None, recheck) => recheck,
        };
        // SAFETY: the event is open while `self.inbox` lives.
        let rc = unsafe { WaitForSingleObject(self.inbox.ready.0, crate::sys::wait_ms(wait)) };
        if rc == WAIT_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.take(events);
        self.recheck_listener(events);
        Ok(())
    }
}

impl Drop for EventSelect {
    fn drop(&mut self) {
        for group in &self.groups {
            group.shared.lock().stop = true;
            group.shared.control.set();
        }
        for group in &mut self.groups {
            if let Some(thread) = group.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::selector_tests;
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::windows::io::AsRawSocket;
    use std::time::Instant;

    /// `count` connected pairs: (client, the accepted server side).
    fn pairs(count: usize) -> Vec<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        (0..count)
            .map(|_| {
                let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                (client, server)
            })
            .collect()
    }

    /// Select for up to 5 seconds until `found` has seen what it wants.
    fn wait_for(selector: &mut EventSelect, mut found: impl FnMut(&Event) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        while Instant::now() < deadline {
            events.clear();
            selector
                .select(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            let mut done = false;
            for event in &events {
                done |= found(event);
            }
            if done {
                return;
            }
        }
        panic!("the expected events did not come");
    }

    #[test]
    fn a_thread_per_63_sockets_each_reporting() {
        let mut selector = EventSelect::new().unwrap();
        let mut pairs = pairs(130);
        for (token, (_, server)) in pairs.iter().enumerate() {
            selector
                .register(server.as_raw_socket(), token, Interest::BOTH)
                .unwrap();
        }
        assert_eq!(selector.threads(), 3);
        // Every socket is writable at once, whichever group it is in.
        let mut writable = vec![false; pairs.len()];
        let mut left = pairs.len();
        wait_for(&mut selector, |e| {
            if e.writable && !std::mem::replace(&mut writable[e.token], true) {
                left -= 1;
            }
            left == 0
        });
        // The last of the highest group, then the first of the lowest.
        for token in [129, 0] {
            pairs[token].0.write_all(b"ping").unwrap();
            wait_for(&mut selector, |e| e.token == token && e.readable);
            let mut buf = [0; 8];
            assert_eq!(pairs[token].1.read(&mut buf).unwrap(), 4);
        }
        // Deregistering frees a slot that the next registration takes: no new thread.
        selector.deregister(pairs[5].1.as_raw_socket(), 5).unwrap();
        let mut extra = self::pairs(1);
        selector
            .register(extra[0].1.as_raw_socket(), 500, Interest::BOTH)
            .unwrap();
        assert_eq!(selector.threads(), 3);
        extra[0].0.write_all(b"x").unwrap();
        wait_for(&mut selector, |e| e.token == 500 && e.readable);
    }

    #[test]
    fn nothing_is_reported_after_deregister_even_for_a_reused_token() {
        let mut selector = EventSelect::new().unwrap();
        let mut pairs = pairs(2);
        let (first, second) = pairs.split_at_mut(1);
        let (old_client, old_server) = &mut first[0];
        selector
            .register(old_server.as_raw_socket(), 1, Interest::BOTH)
            .unwrap();
        wait_for(&mut selector, |e| e.token == 1 && e.writable);
        old_client.write_all(b"x").unwrap();
        // Let the group thread report it, then end the registration and reuse the token.
        std::thread::sleep(Duration::from_millis(200));
        selector.deregister(old_server.as_raw_socket(), 1).unwrap();
        let (_, new_server) = &mut second[0];
        let mut buf = [0; 8];
        new_server.set_nonblocking(true).unwrap();
        assert!(new_server.read(&mut buf).is_err());
        selector
            .register(new_server.as_raw_socket(), 1, Interest::READ)
            .unwrap();
        let mut events = Vec::new();
        selector
            .select(&mut events, Some(Duration::from_millis(200)))
            .unwrap();
        assert!(
            events.iter().all(|e| e.token != 1 || !e.readable),
            "{events:?}"
        );
    }

    #[test]
    fn a_stale_fd_accept_does_not_silence_the_listener() {
        selector_tests::a_stale_fd_accept_does_not_silence_the_listener::<EventSelect>();
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        selector_tests::a_wake_from_another_thread_ends_the_wait::<EventSelect>();
    }
}
