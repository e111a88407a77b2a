//! An eventfd(2): a counter other threads bump to wake a thread waiting on it.

use crate::syscall;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd: a counter other threads bump to wake a thread waiting on it
/// (close-on-exec, non-blocking).
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd, not readable until [`EventFd::wake`].
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Make the descriptor readable.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: `one` is 8 readable bytes. EAGAIN (counter saturated) still leaves it
        // readable, which is all a wake needs.
        let _ = syscall!(write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8));
    }

    /// Clear it after a wake.
    pub fn reset(&self) {
        let mut value: u64 = 0;
        // SAFETY: `value` is 8 writable bytes. EAGAIN means it was already clear.
        let _ = syscall!(read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8));
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call; a zero timeout never blocks.
        syscall!(poll(&mut pollfd, 1, 0)).unwrap() == 1
    }

    #[test]
    fn wake_makes_it_readable_and_reset_clears_it() {
        let event = EventFd::new().unwrap();
        assert!(!readable(event.as_raw_fd()));
        event.wake();
        event.wake();
        assert!(readable(event.as_raw_fd()));
        event.reset();
        assert!(!readable(event.as_raw_fd()));
        // Resetting a clear eventfd is harmless.
        event.reset();
        assert!(!readable(event.as_raw_fd()));
    }
}
