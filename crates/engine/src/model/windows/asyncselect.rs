//! WSAAsyncSelect: Winsock posts a window message for each network event to a hidden window
//! of the worker thread, and the worker takes them off its message queue.
//!
//! Syscalls: `RegisterClassW` once per process (a class whose procedure is `DefWindowProcW`);
//! once per worker `CreateWindowExW` with parent `HWND_MESSAGE` (a message-only window: never
//! shown, no display needed, it only receives messages), destroyed with the selector. Once
//! per socket `WSAAsyncSelect(s, hwnd, WM_SOCKET, FD_READ | FD_WRITE | FD_CLOSE)`
//! (`FD_ACCEPT` for the listener; an accepted socket inherits its listener's selection, so
//! each connection sets its own), and `WSAAsyncSelect(s, hwnd, 0, 0)` before it is closed.
//! Per round, `PeekMessageW(PM_REMOVE)` until the queue is empty; when it was empty,
//! `MsgWaitForMultipleObjectsEx` sleeps until a message is posted or the timeout passes.
//! `wParam` names the socket, `lParam` the event (WSAGETSELECTEVENT) and its error
//! (WSAGETSELECTERROR); messages for one socket in one round are merged into one event.
//! Edge-triggered: Winsock posts FD_READ once and again only after a `recv` (at once if data
//! is left), FD_WRITE when the connection is made and then only after a `send` failed with
//! WSAEWOULDBLOCK, FD_ACCEPT again after an `accept`, FD_CLOSE once (after the data is read).
//! Cost per event: a posted message, which we copy out (a 48-byte `MSG`) and look up in a
//! socket-to-token map. Under Wine 8.0 a `PostMessageW` and its `PeekMessageW` take about
//! 37 µs together (each is a round trip to the wineserver); Windows keeps the queue in the
//! kernel, without that trip.
//! Stale messages: a message posted before the socket was deregistered can still be queued
//! when it is closed and its handle reused by a new connection. It then names the newer
//! connection, which costs that one a `recv` returning WSAEWOULDBLOCK (spurious readiness,
//! which the loop allows); a stale FD_CLOSE only makes it read to WSAEWOULDBLOCK instead of
//! trusting short reads. Messages for a socket not watched are dropped.
//! Limit: a thread's message queue holds at most 10,000 posted messages (the registry's
//! `USERPostMessageLimit`, which can be set no lower than 4,000). Past it `PostMessageW`
//! fails with ERROR_NOT_ENOUGH_QUOTA, and Winsock, which does not retry, loses the event:
//! the socket would stay silent until a `recv` or `send` re-enabled it, which the loop does
//! only when told. A post can fail only if the queue held that many messages at once, so
//! at least that many were posted since the worker last found it empty, and the worker
//! counts every message it takes until it finds it empty again: at half the limit it
//! reports every socket readable, writable and hung up, and the loop tries each one until
//! WSAEWOULDBLOCK. No connection is lost; a sweep costs one `recv` per connection. (Wine
//! enforces no limit: 30,000 posts in a row all succeed.)
//! Wine: an `accept` that fails with WSAEWOULDBLOCK does not re-enable FD_ACCEPT there
//! (Windows re-enables an event on any call to its re-enabling function, even one that
//! fails), and the wineserver can post an FD_ACCEPT for a connection the loop has already
//! accepted; the loop's next `accept` then fails and the listener falls silent for good. So
//! after each round that brought an FD_ACCEPT the listener's `WSAAsyncSelect` is renewed,
//! which re-enables it on both (and on Windows posts at once if a connection is pending):
//! one call per burst of connections.
//! Wake-up: `PostMessageW(WM_WAKE)` to the same window; the mailbox wakes a worker at most
//! once per round, so wake-ups never fill the queue.
//! Linux kin: signal-driven I/O ([`crate::model`]'s `signal`), where the real-time signal
//! queue plays the message queue and its overflow (SIGIO) the failed post.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector, LISTENER};
use crate::runtime::Wake;
use crate::sys::{self, RawSock};
use std::collections::HashMap;
use std::io;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_CLASS_ALREADY_EXISTS, ERROR_SUCCESS, HWND, POINT, WAIT_FAILED,
};
use windows_sys::Win32::Networking::WinSock::{
    self as ws, FD_ACCEPT, FD_CLOSE, FD_CONNECT, FD_OOB, FD_READ, FD_WRITE, SOCKET,
};
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DestroyWindow, DispatchMessageW, MsgWaitForMultipleObjectsEx,
    PeekMessageW, PostMessageW, RegisterClassW, HWND_MESSAGE, MSG, MWMO_INPUTAVAILABLE, PM_REMOVE,
    QS_ALLINPUT, WM_APP, WNDCLASSW,
};

/// The message Winsock posts for a network event.
const WM_SOCKET: u32 = WM_APP + 1;
/// The message the waker posts.
const WM_WAKE: u32 = WM_APP + 2;

/// The posted-message limit when the registry does not set one.
const DEFAULT_POST_LIMIT: usize = 10_000;
/// The lowest value Windows accepts for `USERPostMessageLimit`.
const MIN_POST_LIMIT: usize = 4_000;

/// `s` as a NUL-terminated UTF-16 string (ASCII only).
const fn wide<const N: usize>(s: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}

/// The window class of every worker's message-only window.
const CLASS_NAME: [u16; 21] = wide(b"iomodels.asyncselect\0");

/// One watched socket, and what its messages said this round.
#[derive(Clone, Copy)]
struct Slot {
    token: usize,
    readable: bool,
    writable: bool,
    hangup: bool,
}

impl Slot {
    fn touched(&self) -> bool {
        self.readable || self.writable || self.hangup
    }
}

/// One worker's message-only window and the sockets that post to it.
pub(crate) struct AsyncSelect {
    /// Created on this thread, destroyed on drop (also on this thread: a selector never
    /// leaves the thread that created it).
    window: HWND,
    /// Keyed by socket handle, which is what a message names.
    slots: HashMap<SOCKET, Slot>,
    /// Sockets whose slot got a message this round.
    touched: Vec<SOCKET>,
    /// The listener, if an FD_ACCEPT came this round: its selection is renewed.
    accepting: Option<SOCKET>,
    waker: Arc<Poster>,
    /// Messages taken since the queue was last found empty.
    since_empty: usize,
    /// Half the posted-message limit: past this count, a post may have failed.
    sweep_at: usize,
    /// Sweeps done (each one a suspected lost message).
    sweeps: u64,
}

/// The waker: posts WM_WAKE to the worker's window from any thread.
struct Poster {
    /// The window, until the selector destroys it.
    window: Mutex<Option<Target>>,
}

/// A window handle that other threads may post to.
struct Target(HWND);

// SAFETY: a window handle is a plain value. Other threads use it only for PostMessageW, which
// any thread may call for any window, and only under the `Poster` lock, which holds `Some`
// only while the window exists (the selector clears it under that lock before destroying it).
unsafe impl Send for Target {}

impl Wake for Poster {
    fn wake(&self) {
        let window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(target) = window.as_ref() {
            // SAFETY: the window exists while the lock holds it (see `Target`). A failure
            // (ERROR_NOT_ENOUGH_QUOTA) means the queue is full: the worker has messages to
            // take anyway, and it drains the mailbox every round.
            unsafe { PostMessageW(target.0, WM_WAKE, 0, 0) };
        }
    }
}

/// The handle of the executable, which owns the window class.
fn instance() -> windows_sys::Win32::Foundation::HINSTANCE {
    // SAFETY: a null name asks for the executable's own module, which is always loaded.
    unsafe { GetModuleHandleW(null()) }
}

/// Register the window class, once per process.
fn register_class() -> io::Result<()> {
    static CLASS: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = CLASS.get_or_init(|| {
        let class = WNDCLASSW {
            style: 0,
            lpfnWndProc: Some(DefWindowProcW),
            cbClsExtra: 0,
            cbWndExtra: 0,
            hInstance: instance(),
            hIcon: null_mut(),
            hCursor: null_mut(),
            hbrBackground: null_mut(),
            lpszMenuName: null(),
            lpszClassName: CLASS_NAME.as_ptr(),
        };
        // SAFETY: `class` is a valid WNDCLASSW; its name is a static NUL-terminated string.
        if unsafe { RegisterClassW(&class) } != 0 {
            return Ok(());
        }
        // SAFETY: reads the calling thread's last error; no inputs.
        match unsafe { GetLastError() } {
            // Another copy of this code (a second crate version) registered it first.
            ERROR_CLASS_ALREADY_EXISTS => Ok(()),
            code => Err(code as i32),
        }
    });
    result.map_err(io::Error::from_raw_os_error)
}

/// The posted-message limit of a thread's queue: `USERPostMessageLimit`, or the default.
fn post_limit() -> usize {
    const KEY: [u16; 53] = wide(b"SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Windows\0");
    const VALUE: [u16; 21] = wide(b"USERPostMessageLimit\0");
    let mut limit: u32 = 0;
    let mut size = std::mem::size_of::<u32>() as u32;
    // SAFETY: both names are NUL-terminated; `limit` has room for the DWORD asked for, and
    // `size` says so.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            KEY.as_ptr(),
            VALUE.as_ptr(),
            RRF_RT_REG_DWORD,
            null_mut(),
            (&mut limit as *mut u32).cast(),
            &mut size,
        )
    };
    if rc == ERROR_SUCCESS {
        (limit as usize).max(MIN_POST_LIMIT)
    } else {
        DEFAULT_POST_LIMIT
    }
}

impl AsyncSelect {
    /// Ask for `events` of `socket` as WM_SOCKET messages (0 cancels).
    fn select_events(&self, socket: SOCKET, events: u32) -> io::Result<()> {
        let message = if events == 0 { 0 } else { WM_SOCKET };
        // SAFETY: the loop passes sockets it keeps open until after deregister; the window
        // belongs to this thread and lives as long as `self`.
        sys::wsa(unsafe { ws::WSAAsyncSelect(socket, self.window, message, events as i32) })?;
        Ok(())
    }

    /// Record one WM_SOCKET message.
    fn note(&mut self, socket: SOCKET, lparam: isize) {
        // Not watched: sent before the socket was deregistered.
        let Some(slot) = self.slots.get_mut(&socket) else {
            return;
        };
        let event = (lparam & 0xFFFF) as u32;
        let error = (lparam >> 16) & 0xFFFF;
        // An error, or the close, makes both directions "ready": the next call says what.
        let broken = error != 0 || event & FD_CLOSE != 0;
        if !slot.touched() {
            self.touched.push(socket);
        }
        if event & FD_ACCEPT != 0 && slot.token == LISTENER {
            self.accepting = Some(socket);
        }
        slot.readable |= broken || event & (FD_READ | FD_OOB | FD_ACCEPT) != 0;
        slot.writable |= broken || event & (FD_WRITE | FD_CONNECT) != 0;
        slot.hangup |= broken;
    }

    /// Take what is queued, without waiting: network events into `events`. Returns whether
    /// any message was taken.
    fn take(&mut self, events: &mut Vec<Event>) -> bool {
        let mut msg = MSG {
            hwnd: null_mut(),
            message: 0,
            wParam: 0,
            lParam: 0,
            time: 0,
            pt: POINT { x: 0, y: 0 },
        };
        let mut taken = 0;
        let mut overflow = false;
        // At most `sweep_at` per round; the rest waits for the next one.
        while taken < self.sweep_at {
            // SAFETY: `msg` is valid for writes. A null window takes every message posted
            // to this thread, so the queue is really empty when none is returned.
            if unsafe { PeekMessageW(&mut msg, null_mut(), 0, 0, PM_REMOVE) } == 0 {
                self.since_empty = 0;
                break;
            }
            taken += 1;
            self.since_empty += 1;
            overflow |= self.since_empty >= self.sweep_at;
            if msg.hwnd == self.window && msg.message == WM_SOCKET {
                self.note(msg.wParam as SOCKET, msg.lParam);
            } else if msg.hwnd != self.window {
                // Not ours (a window the handler made on this thread): its procedure's.
                // SAFETY: `msg` was just filled in by PeekMessageW.
                unsafe { DispatchMessageW(&msg) };
            }
        }
        if let Some(listener) = self.accepting.take() {
            // Renew the listener's selection before the loop accepts (see "Wine" above):
            // a connection already pending is announced again, so none waits unseen.
            if let Err(e) = self.select_events(listener, FD_ACCEPT) {
                tracing::warn!("asyncselect: renewing the listener's FD_ACCEPT: {e}");
            }
        }
        if overflow {
            self.sweep(events);
        }
        for socket in self.touched.drain(..) {
            if let Some(slot) = self.slots.get_mut(&socket) {
                events.push(Event {
                    token: slot.token,
                    readable: slot.readable,
                    writable: slot.writable,
                    hangup: slot.hangup,
                });
                slot.readable = false;
                slot.writable = false;
                slot.hangup = false;
            }
        }
        taken > 0
    }

    /// A post may have failed: report every socket, so the loop tries each one.
    fn sweep(&mut self, events: &mut Vec<Event>) {
        self.sweeps += 1;
        tracing::debug!(
            sweeps = self.sweeps,
            "the message queue may have overflowed; trying every socket"
        );
        self.touched.clear();
        for slot in self.slots.values_mut() {
            *slot = Slot {
                token: slot.token,
                readable: false,
                writable: false,
                hangup: false,
            };
            events.push(Event {
                token: slot.token,
                readable: true,
                writable: true,
                // A lost FD_CLOSE: read to the end rather than trust a short read.
                hangup: true,
            });
        }
    }
}

impl Selector for AsyncSelect {
    const MODEL: Model = Model::AsyncSelect;
    const EDGE_TRIGGERED: bool = true;
    // FD_READ comes again after a recv that left data, and FD_CLOSE on its own.
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<AsyncSelect> {
        register_class()?;
        // SAFETY: the class is registered in this module; the name is NUL-terminated; the
        // other pointers may be null; HWND_MESSAGE makes a message-only window.
        let window = unsafe {
            CreateWindowExW(
                0,
                CLASS_NAME.as_ptr(),
                null(),
                0,
                0,
                0,
                0,
                0,
                HWND_MESSAGE,
                null_mut(),
                instance(),
                null(),
            )
        };
        if window.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(AsyncSelect {
            window,
            slots: HashMap::new(),
            touched: Vec::new(),
            accepting: None,
            waker: Arc::new(Poster {
                window: Mutex::new(Some(Target(window))),
            }),
            since_empty: 0,
            sweep_at: post_limit() / 2,
            sweeps: 0,
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        let socket = sys::socket(fd);
        self.slots.insert(
            socket,
            Slot {
                token,
                readable: false,
                writable: false,
                hangup: false,
            },
        );
        // This replaces the listener's selection an accepted socket inherited.
        if let Err(e) = self.select_events(socket, super::network_events(token, interest)) {
            self.slots.remove(&socket);
            return Err(e);
        }
        Ok(())
    }

    fn reregister(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        let socket = sys::socket(fd);
        let Some(slot) = self.slots.get_mut(&socket) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("socket {socket} is not watched"),
            ));
        };
        slot.token = token;
        self.select_events(socket, super::network_events(token, interest))
    }

    fn deregister(&mut self, fd: RawSock, _token: usize) -> io::Result<()> {
        let socket = sys::socket(fd);
        // Messages already queued stay queued: with no slot, they are dropped.
        self.slots.remove(&socket);
        self.select_events(socket, 0)
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        if self.take(events) || timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        // SAFETY: no handles to wait on, only this thread's queue. MWMO_INPUTAVAILABLE
        // returns at once for a message already queued, even one seen before.
        let rc = unsafe {
            MsgWaitForMultipleObjectsEx(
                0,
                null(),
                crate::sys::wait_ms(timeout),
                QS_ALLINPUT,
                MWMO_INPUTAVAILABLE,
            )
        };
        if rc == WAIT_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.take(events);
        Ok(())
    }
}

impl Drop for AsyncSelect {
    fn drop(&mut self) {
        // Wakers outlive the worker (sessions and the server hold them): stop them first.
        *self.waker.window.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // SAFETY: the window was created on this thread and nothing else destroys it. Its
        // sockets' later events fail to post, harmlessly, until the loop closes them.
        unsafe { DestroyWindow(self.window) };
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

    /// A connected pair: (client, the accepted server side).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// Select until `found` accepts an event for `token`, for up to 5 seconds.
    fn wait_for(selector: &mut AsyncSelect, token: usize, found: impl Fn(&Event) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        while Instant::now() < deadline {
            events.clear();
            selector
                .select(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            if events.iter().any(|e| e.token == token && found(e)) {
                return;
            }
        }
        panic!("no such event for token {token}");
    }

    #[test]
    fn reports_write_read_and_close() {
        let mut selector = AsyncSelect::new().unwrap();
        let (mut client, mut server) = pair();
        server.set_nonblocking(true).unwrap();
        selector
            .register(server.as_raw_socket(), 3, Interest::BOTH)
            .unwrap();
        wait_for(&mut selector, 3, |e| e.writable);
        client.write_all(b"hello").unwrap();
        wait_for(&mut selector, 3, |e| e.readable && !e.hangup);
        let mut buf = [0; 16];
        assert_eq!(server.read(&mut buf).unwrap(), 5);
        drop(client);
        wait_for(&mut selector, 3, |e| e.hangup);
        assert_eq!(server.read(&mut buf).unwrap(), 0);
        selector.deregister(server.as_raw_socket(), 3).unwrap();
    }

    #[test]
    fn drops_messages_for_a_deregistered_socket() {
        let mut selector = AsyncSelect::new().unwrap();
        let (mut client, server) = pair();
        selector
            .register(server.as_raw_socket(), 4, Interest::BOTH)
            .unwrap();
        client.write_all(b"x").unwrap();
        // Let the messages be posted, then stop watching before taking them.
        std::thread::sleep(Duration::from_millis(200));
        selector.deregister(server.as_raw_socket(), 4).unwrap();
        let mut events = Vec::new();
        selector
            .select(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn sweeps_every_socket_when_a_post_may_have_failed() {
        let mut selector = AsyncSelect::new().unwrap();
        selector.sweep_at = 100;
        let (_client, server) = pair();
        selector
            .register(server.as_raw_socket(), 5, Interest::BOTH)
            .unwrap();
        wait_for(&mut selector, 5, |e| e.writable);
        // Nothing is pending for the socket; fill the queue as a flood of events would.
        for _ in 0..100 {
            // SAFETY: the window lives as long as `selector`.
            let posted = unsafe { PostMessageW(selector.window, WM_APP + 9, 0, 0) };
            assert_ne!(posted, 0);
        }
        let mut events = Vec::new();
        selector.select(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.token == 5 && e.readable && e.writable && e.hangup),
            "{events:?}"
        );
        assert_eq!(selector.sweeps, 1);
        // The queue was found empty again: no second sweep.
        events.clear();
        selector.select(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_stale_fd_accept_does_not_silence_the_listener() {
        selector_tests::a_stale_fd_accept_does_not_silence_the_listener::<AsyncSelect>();
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let selector = selector_tests::a_wake_from_another_thread_ends_the_wait::<AsyncSelect>();
        // A waker that outlives the selector does nothing.
        let waker = selector.waker();
        drop(selector);
        waker.wake();
    }
}
