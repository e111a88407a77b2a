//! Tests every Windows readiness selector must pass, written once, generic over the
//! [`Selector`]; each driver's own test module runs them on its selector.

use crate::model::reactor::{Interest, Selector, LISTENER};
use std::net::{TcpListener, TcpStream};
use std::os::windows::io::AsRawSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Networking::WinSock as ws;

/// FD_ACCEPT disabled after the loop's failing `accept`: the next connection must still be
/// reported. Without a remedy, about half of these trials left a connection unannounced
/// under Wine 8.0 (see each driver's module comment).
pub(super) fn a_stale_fd_accept_does_not_silence_the_listener<S: Selector>() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut selector = S::new().unwrap();
    selector
        .register(listener.as_raw_socket(), LISTENER, Interest::READ)
        .unwrap();
    let accept_all = || std::iter::from_fn(|| listener.accept().ok()).count();
    with_busy_system(|| {
        for trial in 0..30 {
            // Accept at once, as the loop does when it starts, then act on events.
            let connector = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
            let start = Instant::now();
            while accept_all() == 0 && start.elapsed() < Duration::from_millis(20) {}
            let _first = connector.join().unwrap();
            let mut events = Vec::new();
            loop {
                events.clear();
                selector
                    .select(&mut events, Some(Duration::from_millis(150)))
                    .unwrap();
                // Until an announcement finds nothing to accept (a stale one, or a
                // re-check).
                if !events.iter().any(|e| e.token == LISTENER) || accept_all() == 0 {
                    break;
                }
            }
            let _second = TcpStream::connect(addr).unwrap();
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut seen = false;
            while !seen && Instant::now() < deadline {
                events.clear();
                selector
                    .select(&mut events, Some(Duration::from_millis(100)))
                    .unwrap();
                seen = events.iter().any(|e| e.token == LISTENER);
            }
            assert!(
                seen,
                "trial {trial}: a pending connection was never announced"
            );
            accept_all();
        }
    });
}

/// Keeps the wineserver busy, as a test suite's other threads do, while `run` runs:
/// three threads setting and resetting an event (each call a server request on Wine).
fn with_busy_system(run: impl FnOnce()) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // SAFETY: creates a new event, used below and closed at the end.
                let event = unsafe { ws::WSACreateEvent() } as HANDLE;
                assert!(!event.is_null());
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: the event is open until the WSACloseEvent below.
                    unsafe {
                        ws::WSASetEvent(event);
                        ws::WSAResetEvent(event);
                    }
                }
                // SAFETY: the event is open and nothing else uses it.
                unsafe { ws::WSACloseEvent(event as _) };
            })
        })
        .collect();
    run();
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
}

/// A wake from another thread ends a long wait; returns the selector for more checks.
pub(super) fn a_wake_from_another_thread_ends_the_wait<S: Selector>() -> S {
    let mut selector = S::new().unwrap();
    let waker = selector.waker();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
    });
    let mut events = Vec::new();
    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    thread.join().unwrap();
    selector
}
