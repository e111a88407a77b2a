//! Winsock `select`: two counted arrays of sockets in, the same arrays holding only the
//! ready ones out.
//!
//! Syscalls: one `select` per round. Windows' `fd_set` is not a bitmap indexed by
//! descriptor but `fd_count` followed by `fd_array`, a list of socket handles; `select`
//! overwrites it with the ready ones, packed at the front. So each round rebuilds both sets
//! from a table of interest kept here (socket -> token and interest), and maps each socket
//! that comes back to its token through that table. The timeout is a `TIMEVAL` (null:
//! block); `select` with every set empty fails with WSAEINVAL, which never happens here
//! because the waker is always in the read set.
//! Cost per round: O(watched): copying up to two arrays of 8-byte handles in and out, and
//! the kernel's own walk over each, however few are ready. Level-triggered: a socket is
//! reported for as long as it is ready, so the loop asks for write interest only while
//! output is pending (it reregisters), or every round would return at once.
//! Limit: `FD_SETSIZE` is 64 by default, but it only sizes the C struct: Winsock reads
//! `fd_count` entries from whatever array it is given. The sets here are our own struct of
//! the same layout with room for [`CAPACITY`] (1,024) sockets, the real limit: the waker,
//! the listener and every connection (and every socket lingering after a close) count
//! towards it. `register` refuses a socket past it with an error, and the loop closes that
//! connection and counts it refused.
//! Linux kin: `model/select.rs`, whose limit is on descriptor values (below 1,024), not
//! on how many are watched.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::{socket, wsa, LoopbackWaker, RawSock};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use windows_sys::Win32::Networking::WinSock::{self as ws, FD_SET, SOCKET, TIMEVAL};

/// Sockets per set, the waker and the listener included: the real limit of this model.
pub(crate) const CAPACITY: usize = 1024;

/// An `fd_set` with room for [`CAPACITY`] sockets instead of `FD_SETSIZE` (64).
///
/// # Invariant
/// Same layout as [`FD_SET`] but a longer array (`#[repr(C)]`: a `u32`, padding, then
/// `SOCKET`s), and `count <= CAPACITY`. Winsock reads `fd_count` entries, so a pointer to
/// this struct, cast, is a valid `FD_SET` pointer for `select`, which also writes at most
/// the `fd_count` entries it was given.
#[repr(C)]
struct SocketSet {
    count: u32,
    sockets: [SOCKET; CAPACITY],
}

impl SocketSet {
    fn new() -> Box<SocketSet> {
        Box::new(SocketSet {
            count: 0,
            sockets: [0; CAPACITY],
        })
    }

    /// Add `s`; the caller keeps the count within [`CAPACITY`] (see [`Select::register`]).
    fn push(&mut self, s: SOCKET) {
        self.sockets[self.count as usize] = s;
        self.count += 1;
    }

    /// The sockets in the set (after `select`: the ready ones).
    fn sockets(&self) -> &[SOCKET] {
        &self.sockets[..self.count as usize]
    }

    fn as_ptr(&mut self) -> *mut FD_SET {
        (self as *mut SocketSet).cast()
    }
}

/// What one watched socket is watched for.
#[derive(Clone, Copy)]
struct Watch {
    token: usize,
    interest: Interest,
    /// The round in which this socket was last reported, and its event's index then: a
    /// socket both readable and writable gets one event.
    reported: (u64, usize),
}

/// One worker's select state.
pub(crate) struct Select {
    /// Every watched socket, by handle. The waker is not in it.
    watched: HashMap<SOCKET, Watch>,
    /// Counts calls to `select`, for [`Watch::reported`]; starts at 1.
    round: u64,
    read: Box<SocketSet>,
    write: Box<SocketSet>,
    waker: Arc<LoopbackWaker>,
}

fn not_watched(s: SOCKET) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("socket {s:#x} is not watched"),
    )
}

/// The wait as a `TIMEVAL`, a sub-microsecond remainder rounded up (or a short timer would
/// be a busy poll) and the seconds capped at `i32::MAX`.
fn timeval(timeout: Duration) -> TIMEVAL {
    TIMEVAL {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as i32,
        tv_usec: timeout
            .subsec_micros()
            .max(u32::from(timeout.subsec_nanos() > 0)) as i32,
    }
}

impl Selector for Select {
    const MODEL: Model = Model::Select;
    const EDGE_TRIGGERED: bool = false;
    const SHORT_READ_DRAINS: bool = true;

    fn new() -> io::Result<Select> {
        Ok(Select {
            watched: HashMap::new(),
            round: 1,
            read: SocketSet::new(),
            write: SocketSet::new(),
            waker: Arc::new(LoopbackWaker::new()?),
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        // The waker takes one place in the read set.
        if self.watched.len() + 1 >= CAPACITY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "select's sets are full: they hold {CAPACITY} sockets, the waker and the \
                     listener included"
                ),
            ));
        }
        let watch = Watch {
            token,
            interest,
            reported: (0, 0),
        };
        self.watched.insert(socket(fd), watch);
        Ok(())
    }

    fn reregister(&mut self, fd: RawSock, token: usize, interest: Interest) -> io::Result<()> {
        let s = socket(fd);
        let watch = self.watched.get_mut(&s).ok_or_else(|| not_watched(s))?;
        watch.token = token;
        watch.interest = interest;
        Ok(())
    }

    fn deregister(&mut self, fd: RawSock, _token: usize) -> io::Result<()> {
        let s = socket(fd);
        self.watched
            .remove(&s)
            .map(drop)
            .ok_or_else(|| not_watched(s))
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        let waker = socket(self.waker.raw());
        self.read.count = 0;
        self.write.count = 0;
        self.read.push(waker);
        for (&s, watch) in &self.watched {
            if watch.interest.read {
                self.read.push(s);
            }
            if watch.interest.write {
                self.write.push(s);
            }
        }
        let tv = timeout.map(timeval);
        let tv_ptr = tv
            .as_ref()
            .map_or(std::ptr::null(), |tv| tv as *const TIMEVAL);
        // No write interest: no write set.
        let write = if self.write.count == 0 {
            std::ptr::null_mut()
        } else {
            self.write.as_ptr()
        };
        // SAFETY: both sets are `SocketSet`s, valid `FD_SET`s of `count` entries by their
        // invariant (`register` keeps the waker and the watched sockets within CAPACITY),
        // and live, like the TIMEVAL (or null: wait forever), for the whole call. The first
        // argument is ignored by Winsock.
        let ready =
            wsa(unsafe { ws::select(0, self.read.as_ptr(), write, std::ptr::null_mut(), tv_ptr) })?;
        if ready == 0 {
            return Ok(());
        }
        self.round += 1;
        let round = self.round;
        let mut report = |s: SOCKET, readable: bool, events: &mut Vec<Event>| {
            // Every reported socket is watched: nothing is deregistered during a select.
            let Some(watch) = self.watched.get_mut(&s) else {
                return;
            };
            if watch.reported.0 == round {
                let event = &mut events[watch.reported.1];
                event.readable |= readable;
                event.writable |= !readable;
            } else {
                watch.reported = (round, events.len());
                events.push(Event {
                    token: watch.token,
                    readable,
                    writable: !readable,
                    hangup: false,
                });
            }
        };
        let mut woken = false;
        for &s in self.read.sockets() {
            if s == waker {
                woken = true;
            } else {
                report(s, true, events);
            }
        }
        if !write.is_null() {
            for &s in self.write.sockets() {
                report(s, false, events);
            }
        }
        if woken {
            self.waker.drain();
        }
        Ok(())
    }
}
