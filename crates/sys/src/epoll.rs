//! Bindings to epoll (Linux): an edge-triggered instance, waited on with `epoll_wait(2)`.
//!
//! `epoll_wait` takes its timeout in milliseconds. It is used rather than `epoll_pwait2`
//! (nanoseconds) because glibc only has the latter since 2.35, and linking it keeps a
//! binary from starting on Debian 11, Ubuntu 20.04 or RHEL 9. A timeout is rounded *up*
//! to whole milliseconds: a wait never ends before the time asked, so a caller waiting
//! for a deadline less than a millisecond away sleeps once instead of spinning.

use crate::{syscall, timeout_ms};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readiness bit: the descriptor has bytes to read (or a connection to accept).
pub const READABLE: u32 = libc::EPOLLIN as u32;
/// Readiness bit: the socket can take more bytes (or finished connecting).
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// Readiness bits: the peer shut down, or the socket has an error.
pub const HANGUP: u32 = (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new close-on-exec epoll instance.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Watch `fd` edge-triggered for reading, writing and hang-up, tagged with `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call; the kernel
        // copies it. Bad descriptors are reported as errors, not undefined behaviour.
        syscall!(epoll_ctl(
            self.fd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            &mut event
        ))?;
        Ok(())
    }

    /// Wait up to `timeout` (rounded up to whole milliseconds) and fill `events`.
    /// Returns how many are ready; an interrupted wait returns 0.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a writable buffer of at least `max` epoll_events, alive for
        // the whole call.
        match syscall!(epoll_wait(
            self.fd.as_raw_fd(),
            events.as_mut_ptr(),
            max,
            timeout_ms(Some(timeout))
        )) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventFd;
    use std::time::Instant;

    #[test]
    fn a_sub_millisecond_wait_sleeps_instead_of_returning_at_once() {
        let epoll = Epoll::new().unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let start = Instant::now();
        let n = epoll.wait(&mut events, Duration::from_micros(10)).unwrap();
        assert_eq!(n, 0);
        assert!(start.elapsed() >= Duration::from_micros(10));
    }

    #[test]
    fn reports_a_ready_descriptor_with_its_token() {
        let epoll = Epoll::new().unwrap();
        let event = EventFd::new().unwrap();
        epoll.add(event.as_raw_fd(), 7).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // An eventfd is writable from the start.
        let n = epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(n, 1);
        let (bits, token) = (events[0].events, events[0].u64);
        assert_eq!(token, 7);
        assert_eq!(bits & WRITABLE, WRITABLE);
        assert_eq!(bits & READABLE, 0);
        // Edge-triggered: nothing new, nothing reported.
        assert_eq!(epoll.wait(&mut events, Duration::ZERO).unwrap(), 0);
        event.wake();
        let n = epoll.wait(&mut events, Duration::from_secs(5)).unwrap();
        assert_eq!(n, 1);
        let bits = events[0].events;
        assert_eq!(bits & READABLE, READABLE);
    }
}
