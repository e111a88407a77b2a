//! select(2): two bitmaps of descriptors in, the same bitmaps with only the ready ones out.
//!
//! Syscalls: one `select` per round. select overwrites the `fd_set`s it is given with its
//! answer, so each round rebuilds them from a table of interest kept here (one entry per
//! descriptor), then scans them with `FD_ISSET` up to the highest descriptor watched.
//! Cost per round: O(highest descriptor), in the kernel and in the scan, however few are
//! ready, plus copying 2 x 128 bytes of bitmap in and out. Level-triggered: a socket is
//! reported for as long as it is ready, so the loop asks for write interest only while
//! output is pending (it reregisters), or every round would return at once.
//! Limit: an `fd_set` has room for descriptors 0..FD_SETSIZE (1024) and `FD_SET` on a higher
//! one writes past it. `register` refuses such a descriptor with an error, and the loop
//! closes that connection and counts it refused. The wake-up eventfd and the listener must
//! fit too; they are opened before the connections, so they get low numbers.
//! Windows original: select, where an `fd_set` is a counted array of at most FD_SETSIZE (64)
//! sockets rather than a bitmap indexed by descriptor.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::{syscall, EventFd};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// What one watched descriptor is watched for.
#[derive(Clone, Copy)]
struct Watch {
    token: usize,
    interest: Interest,
}

/// One worker's select state.
pub(crate) struct Select {
    /// Indexed by descriptor; `None` where nothing is watched.
    watched: Vec<Option<Watch>>,
    /// The highest descriptor select must look at (at least the waker's).
    max_fd: RawFd,
    waker: Arc<EventFd>,
}

/// Refuse a descriptor that cannot enter an `fd_set`.
fn check(fd: RawFd) -> io::Result<usize> {
    match usize::try_from(fd) {
        Ok(index) if index < libc::FD_SETSIZE => Ok(index),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "descriptor {fd} is at or above FD_SETSIZE ({}); select cannot watch it",
                libc::FD_SETSIZE
            ),
        )),
    }
}

fn empty_set() -> libc::fd_set {
    // SAFETY: fd_set is a plain array of bits, for which all zeroes is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

impl Select {
    fn highest(&self) -> RawFd {
        let last = self.watched.iter().rposition(Option::is_some);
        last.map_or(0, |i| i as RawFd).max(self.waker.as_raw_fd())
    }
}

impl Selector for Select {
    const MODEL: Model = Model::Select;
    const EDGE_TRIGGERED: bool = false;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<Select> {
        let waker = Arc::new(EventFd::new()?);
        let max_fd = waker.as_raw_fd();
        check(max_fd)?;
        Ok(Select {
            watched: Vec::new(),
            max_fd,
            waker,
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        let index = check(fd)?;
        if self.watched.len() <= index {
            self.watched.resize(index + 1, None);
        }
        self.watched[index] = Some(Watch { token, interest });
        self.max_fd = self.max_fd.max(fd);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        match self.watched.get_mut(check(fd)?) {
            Some(Some(watch)) => {
                *watch = Watch { token, interest };
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not watched"),
            )),
        }
    }

    fn deregister(&mut self, fd: RawFd, _token: usize) -> io::Result<()> {
        if let Some(slot) = self.watched.get_mut(check(fd)?) {
            *slot = None;
        }
        if fd == self.max_fd {
            self.max_fd = self.highest();
        }
        Ok(())
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let (mut read, mut write) = (empty_set(), empty_set());
        // SAFETY: every descriptor put in a set passed `check` (it is below FD_SETSIZE), and
        // the sets are valid, initialised fd_sets.
        unsafe {
            libc::FD_SET(self.waker.as_raw_fd(), &mut read);
            for (fd, watch) in self.watched.iter().enumerate() {
                let Some(watch) = watch else { continue };
                if watch.interest.read {
                    libc::FD_SET(fd as RawFd, &mut read);
                }
                if watch.interest.write {
                    libc::FD_SET(fd as RawFd, &mut write);
                }
            }
        }
        let mut tv = timeout.map(|t| libc::timeval {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            // Round a sub-microsecond wait up, or it would be a busy poll.
            tv_usec: t.subsec_micros().max(u32::from(t.subsec_nanos() > 0)) as libc::suseconds_t,
        });
        let tv_ptr = tv
            .as_mut()
            .map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
        // SAFETY: the sets and the timeval (or null: wait forever) are valid for the call, and
        // `max_fd + 1` does not exceed FD_SETSIZE, the sets' capacity.
        let ready = syscall!(select(
            self.max_fd + 1,
            &mut read,
            &mut write,
            std::ptr::null_mut(),
            tv_ptr
        ))?;
        if ready == 0 {
            return Ok(());
        }
        // SAFETY: the waker's descriptor is below FD_SETSIZE; select filled in the set.
        if unsafe { libc::FD_ISSET(self.waker.as_raw_fd(), &read) } {
            self.waker.reset();
        }
        for (fd, watch) in self.watched.iter().enumerate() {
            let Some(watch) = watch else { continue };
            // SAFETY: `fd` passed `check` when it was registered; select filled in the sets.
            let readable = unsafe { libc::FD_ISSET(fd as RawFd, &read) };
            // SAFETY: likewise.
            let writable = unsafe { libc::FD_ISSET(fd as RawFd, &write) };
            if readable || writable {
                events.push(Event {
                    token: watch.token,
                    readable,
                    writable,
                    hangup: false,
                });
            }
        }
        Ok(())
    }
}
