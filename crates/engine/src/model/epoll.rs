//! epoll(7): the kernel keeps the interest list, so a wait costs O(ready), not O(watched).
//!
//! Syscalls: `epoll_create1` once per worker, `epoll_ctl(ADD)` once per connection with
//! `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, `epoll_wait` per round. Edge-triggered: the
//! kernel reports a change once, so the loop reads until EAGAIN (or remembers that it did
//! not) and never calls `epoll_ctl(MOD)` on the hot path. Each worker has its own epoll
//! instance and its own SO_REUSEPORT listener, so accepts spread over workers with no lock.
//! Windows original: WSAEventSelect (kernel event objects signalled per socket); on Linux
//! epoll is the answer the book gives. Limit: none but descriptors and memory.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::timeout_ms;
use crate::sys::{syscall, EventFd};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// The token of the wake-up eventfd inside the epoll set.
const WAKER: u64 = u64::MAX - 1;
/// Events taken per `epoll_wait`.
const BATCH: usize = 1024;

/// One worker's epoll instance.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    waker: Arc<EventFd>,
    buffer: Vec<libc::epoll_event>,
}

impl Epoll {
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, flags: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event))?;
        Ok(())
    }
}

fn flags(interest: Interest) -> u32 {
    let mut flags = libc::EPOLLET | libc::EPOLLRDHUP;
    if interest.read {
        flags |= libc::EPOLLIN;
    }
    if interest.write {
        flags |= libc::EPOLLOUT;
    }
    flags as u32
}

impl Selector for Epoll {
    const MODEL: Model = Model::Epoll;
    const EDGE_TRIGGERED: bool = true;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<Epoll> {
        let epfd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 returned a new descriptor that nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let waker = Arc::new(EventFd::new()?);
        let epoll = Epoll {
            epfd,
            waker,
            buffer: Vec::with_capacity(BATCH),
        };
        epoll.ctl(
            libc::EPOLL_CTL_ADD,
            epoll.waker.as_raw_fd(),
            WAKER,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
        )?;
        Ok(epoll)
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token as u64, flags(interest))
    }

    fn reregister(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token as u64, flags(interest))
    }

    fn deregister(&mut self, fd: RawFd, _token: usize) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        syscall!(epoll_ctl(
            self.epfd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut()
        ))?;
        Ok(())
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        self.buffer.clear();
        // SAFETY: the buffer has room for BATCH events, and the kernel writes at most that
        // many; `set_len` below trusts the count it returns.
        let n = syscall!(epoll_wait(
            self.epfd.as_raw_fd(),
            self.buffer.as_mut_ptr(),
            BATCH as libc::c_int,
            timeout_ms(timeout)
        ))? as usize;
        // SAFETY: epoll_wait initialised the first `n` entries.
        unsafe { self.buffer.set_len(n) };
        for raw in &self.buffer {
            let (token, bits) = (raw.u64, raw.events as libc::c_int);
            if token == WAKER {
                self.waker.reset();
                continue;
            }
            // HUP and ERR make both directions "ready": the next call reports what happened.
            let broken = bits & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
            events.push(Event {
                token: token as usize,
                readable: broken || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0,
                writable: broken || bits & libc::EPOLLOUT != 0,
                hangup: broken || bits & libc::EPOLLRDHUP != 0,
            });
        }
        Ok(())
    }
}
