//! Console control events and stop requests (Windows).
//!
//! Windows has no SIGINT or SIGTERM: a console sends its processes control events (Ctrl-C,
//! Ctrl-Break, the console window closing, logoff, shutdown) by running the handlers
//! registered with `SetConsoleCtrlHandler` on a new thread. Another program cannot send
//! an event to one process alone, and not at all without sharing its console, so a
//! graceful stop from outside (what SIGTERM is on Linux) is a named auto-reset event,
//! `Local\iomodels-stop-PID`, that [`crate::process::request_stop`] sets.
//!
//! [`Termination::block`] registers the handler and creates the event, once per process;
//! [`Termination::wait`] waits on the event, which the handler sets too. The handler returns
//! at once for Ctrl-C and Ctrl-Break (handled: the process lives on); for close, logoff and
//! shutdown Windows ends the process when the handler returns, so it does not return: the
//! waiter has the time Windows grants (5 s for close) to stop gracefully and exit.

use crate::win::{check, wide};
use std::fmt;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use windows_sys::Win32::Foundation::{BOOL, FALSE, TRUE};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};
use windows_sys::Win32::System::Threading::{
    CreateEventW, OpenEventW, SetEvent, WaitForSingleObject, EVENT_MODIFY_STATE, INFINITE,
};

/// What [`Termination::wait`] returns for a stop request from
/// [`crate::process::request_stop`]: above every console control code (0 to 6).
pub const STOP_REQUEST: i32 = 256;

/// The stop event's name for process `pid`.
fn event_name(pid: u32) -> String {
    format!("Local\\iomodels-stop-{pid}")
}

/// What the handler and the waiters share, made once per process and never freed.
struct Shared {
    /// The auto-reset stop event: set by the handler and by stop requests.
    event: OwnedHandle,
    /// The console control code that set the event, or [`STOP_REQUEST`].
    code: AtomicI32,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Ctrl-C, Ctrl-Break, the console closing, logoff and shutdown, and stop requests, taken
/// from their default action (ending the process) and waited for instead.
#[derive(Clone, Copy)]
pub struct Termination {
    shared: &'static Shared,
}

impl fmt::Debug for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Termination(console events, stop requests)")
    }
}

/// The console control handler: record the event, wake the waiter, and for the events that
/// end the process when the handler returns, never return.
unsafe extern "system" fn on_console_event(code: u32) -> BOOL {
    let Some(shared) = SHARED.get() else {
        return FALSE;
    };
    shared.code.store(code as i32, Ordering::SeqCst);
    // SAFETY: the event handle is owned by a static that is never dropped.
    unsafe { SetEvent(shared.event.as_raw_handle()) };
    if code == CTRL_C_EVENT || code == CTRL_BREAK_EVENT {
        return TRUE;
    }
    // Close, logoff or shutdown: Windows ends the process as soon as this returns, or when
    // its grace period is over. Give the waiter all of it.
    loop {
        std::thread::park();
    }
}

impl Termination {
    /// Take Ctrl-C, Ctrl-Break, the console closing, logoff and shutdown from their default
    /// action, and accept stop requests. Idempotent: every call returns the same waiter. It
    /// may be called after threads have started (Windows runs the handler on a thread of its
    /// own), but a server should call it before it says it listens, so that a stop request
    /// sent as soon as it does finds the event.
    pub fn block() -> io::Result<Termination> {
        static INIT: Mutex<()> = Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(shared) = SHARED.get() {
            return Ok(Termination { shared });
        }
        // The handler copes with being called before the event exists (it lets the default
        // action happen), so it can be registered first.
        // SAFETY: the handler is a function that lives as long as the program.
        check(unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) })?;
        let name = wide(&event_name(std::process::id()));
        // SAFETY: `name` is a NUL-terminated UTF-16 string alive for the call; no security
        // attributes. Auto-reset, not signalled.
        let event = unsafe { CreateEventW(std::ptr::null(), FALSE, FALSE, name.as_ptr()) };
        if event.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a non-null handle CreateEventW just returned, owned by no one else.
        let event = unsafe { OwnedHandle::from_raw_handle(event) };
        let shared = SHARED.get_or_init(|| Shared {
            event,
            code: AtomicI32::new(STOP_REQUEST),
        });
        Ok(Termination { shared })
    }

    /// Wait for Ctrl-C, Ctrl-Break, the console closing, logoff, shutdown or a stop request;
    /// return the console control code (`CTRL_C_EVENT` is 0, `CTRL_BREAK_EVENT` 1,
    /// `CTRL_CLOSE_EVENT` 2) or [`STOP_REQUEST`]. Several events before a wait are one.
    pub fn wait(&self) -> i32 {
        // SAFETY: the event handle is owned by a static that is never dropped.
        unsafe { WaitForSingleObject(self.shared.event.as_raw_handle(), INFINITE) };
        self.shared.code.swap(STOP_REQUEST, Ordering::SeqCst)
    }

    /// A thread that waits for any of them and exits the process with status 0, for servers
    /// with nothing to flush.
    pub fn exit_on_signal(self) -> io::Result<()> {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                self.wait();
                std::process::exit(0);
            })?;
        Ok(())
    }
}

/// Set the stop event of process `pid`; `NotFound` if it has none.
pub(crate) fn request_stop(pid: u32) -> io::Result<()> {
    let name = wide(&event_name(pid));
    // SAFETY: `name` is a NUL-terminated UTF-16 string alive for the call.
    let event = unsafe { OpenEventW(EVENT_MODIFY_STATE, FALSE, name.as_ptr()) };
    if event.is_null() {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!("process {pid} takes no stop request ({error})"),
        ));
    }
    // SAFETY: a non-null handle OpenEventW just returned, owned by no one else.
    let event = unsafe { OwnedHandle::from_raw_handle(event) };
    // SAFETY: `event` is a valid event handle opened with EVENT_MODIFY_STATE.
    check(unsafe { SetEvent(event.as_raw_handle()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_events_and_stop_requests_are_waited_for() {
        let termination = Termination::block().unwrap();
        // Every call gives the same waiter.
        assert!(std::ptr::eq(
            Termination::block().unwrap().shared,
            termination.shared
        ));
        request_stop(std::process::id()).unwrap();
        assert_eq!(termination.wait(), STOP_REQUEST);
        // As the console would: on a thread of its own.
        // SAFETY: the handler may run on any thread; Ctrl-C makes it return at once.
        let handled = std::thread::spawn(|| unsafe { on_console_event(CTRL_C_EVENT) })
            .join()
            .unwrap();
        assert_eq!(handled, TRUE);
        assert_eq!(termination.wait(), CTRL_C_EVENT as i32);
    }

    #[test]
    fn a_process_without_the_event_takes_no_request() {
        // Pid 0 is the idle process: it never calls Termination::block.
        let err = request_stop(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}
