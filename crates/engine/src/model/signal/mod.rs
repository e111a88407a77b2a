//! Signal-driven I/O: the kernel queues a real-time signal for each socket event, and the
//! worker takes them off its queue like window messages.
//!
//! Syscalls: once per worker, `pthread_sigmask` blocks the I/O signal (SIGRTMIN+5) and
//! SIGIO in the worker thread and `signalfd` opens a descriptor that reads them. Once per
//! descriptor, `fcntl` four times: F_SETSIG (which signal), F_SETOWN_EX with F_OWNER_TID
//! (send it to this thread, not to the process), then F_GETFL and F_SETFL adding O_ASYNC.
//! Per round, one `read` of the signalfd takes up to 64 queued signals, each a
//! `signalfd_siginfo` naming the descriptor (`ssi_fd`) and what happened (`ssi_band`:
//! POLLIN, POLLOUT, POLLHUP, POLLERR); when none is queued, `poll` on that one descriptor
//! sleeps until one is, or the timeout passes.
//! Cost per event: the kernel allocates and queues a siginfo, and we copy 128 bytes of it
//! out. Events come per arriving segment (not per byte) and POLLOUT only after a send hit
//! EAGAIN; signals for one descriptor taken in one round are merged into one event.
//! Edge-triggered: a signal reports a change, once.
//! Limit: the real-time signal queue (RLIMIT_SIGPENDING, counted per user). When it is full
//! the kernel sends a plain SIGIO instead, which says only "something was lost". The driver
//! then reports every descriptor readable and writable; the loop tries each one until
//! EAGAIN, so no event is lost, at the cost of one sweep over every connection.
//! Wake-up: a pipe whose read end raises the same signal for this thread, so a wake is one
//! more message in the queue, like the book's PostMessage.
//! Signal hygiene: the signals are blocked in the worker thread before any descriptor points
//! at it, and only there (other threads keep their masks; the old mask is restored when
//! the selector is dropped). They are thread-directed, so only this thread's signalfd
//! reads them, and several servers in one process each get their own. A copy sent to the
//! whole process by someone else (`kill`) must not kill it, so a do-nothing handler is
//! installed for both signals where none is set.
//! Windows original: WSAAsyncSelect, which posts a window message per network event.

use crate::config::Model;
use crate::model::reactor::{Event, Interest, Selector};
use crate::runtime::Wake;
use crate::sys::syscall;
use crate::sys::timeout_ms;
use libc::c_int;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Once};
use std::time::Duration;

/// The real-time signal that carries events. glibc's SIGRTMIN already lies above the
/// signals its thread library keeps; the offset leaves the first few to applications.
fn io_signal() -> c_int {
    libc::SIGRTMIN() + 5
}

// From <asm-generic/fcntl.h>: the libc crate does not define these for Linux with glibc.
const F_SETSIG: c_int = 10;
const F_SETOWN_EX: c_int = 15;
const F_OWNER_TID: c_int = 0;

/// `struct f_owner_ex`, the argument of F_SETOWN_EX.
#[repr(C)]
struct OwnerEx {
    kind: c_int,
    pid: libc::pid_t,
}

/// The `si_code` of a readiness signal: POLL_IN (1) to POLL_HUP (6), <asm-generic/siginfo.h>.
fn is_readiness(code: i32) -> bool {
    (1..=6).contains(&code)
}

/// Signals taken per read of the signalfd.
const BATCH: usize = 64;
/// Reads per round; what is still queued after that waits for the next round.
const MAX_READS: usize = 16;

/// One watched descriptor, and what its signals said this round.
#[derive(Clone, Copy)]
struct Slot {
    token: usize,
    readable: bool,
    writable: bool,
}

/// One worker's signal queue.
pub(crate) struct Signal {
    signo: c_int,
    signalfd: OwnedFd,
    tid: libc::pid_t,
    /// Indexed by descriptor.
    slots: Vec<Option<Slot>>,
    /// Descriptors whose slot got a signal this round.
    touched: Vec<RawFd>,
    buffer: Vec<libc::signalfd_siginfo>,
    waker: Arc<Pipe>,
    /// Queue overflows seen (each one cost a rescan).
    overflows: u64,
    /// Dropped last: the signals stay blocked until every descriptor above is closed.
    _blocked: Blocked,
}

/// The signals blocked in this thread; dropping it restores the mask it replaced.
struct Blocked(libc::sigset_t);

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: the mask is a valid sigset_t saved by pthread_sigmask on this thread
        // (a selector never leaves the thread that created it).
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// The wake-up pipe. Both ends live here, so a late wake never writes to a closed pipe.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Wake for Pipe {
    fn wake(&self) {
        // SAFETY: one readable byte. EAGAIN (pipe full) means a wake is already queued.
        let _ = syscall!(write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1));
    }
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }

    fn drain(&self) {
        let mut sink = [0u8; 64];
        // SAFETY: `sink` is writable for its length. Stops at EAGAIN.
        while syscall!(read(
            self.read.as_raw_fd(),
            sink.as_mut_ptr().cast(),
            sink.len()
        ))
        .is_ok_and(|n| n > 0)
        {}
    }
}

/// Route signals for `fd` to thread `tid` as `signo`, then turn them on.
fn arm(fd: RawFd, signo: c_int, tid: libc::pid_t) -> io::Result<()> {
    syscall!(fcntl(fd, F_SETSIG, signo))?;
    let owner = OwnerEx {
        kind: F_OWNER_TID,
        pid: tid,
    };
    // SAFETY: F_SETOWN_EX reads one `struct f_owner_ex`, which `owner` is (repr(C)).
    syscall!(fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx))?;
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    syscall!(fcntl(
        fd,
        libc::F_SETFL,
        flags | libc::O_ASYNC | libc::O_NONBLOCK
    ))?;
    Ok(())
}

/// The set {`io_signal()`, SIGIO}.
fn signal_set(signo: c_int) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset with valid signal numbers cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signo);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGIO);
        set.assume_init()
    }
}

/// Give both signals a do-nothing handler where they still have the default one, which
/// would end the process if a copy were sent to it as a whole. Once per process.
fn guard_process() {
    extern "C" fn ignore(_: c_int) {}
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for signo in [io_signal(), libc::SIGIO] {
            // SAFETY: all-zero is a valid sigaction; the first call only reads the current
            // one, the second installs a handler that touches nothing (async-signal-safe).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signo, std::ptr::null(), &mut action) != 0
                    || action.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                action.sa_sigaction = ignore as extern "C" fn(c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signo, &action, std::ptr::null_mut());
            }
        }
    });
}

impl Signal {
    /// Take what is queued (without waiting), merged per descriptor, into `events`.
    /// Returns whether any signal was queued.
    fn take(&mut self, events: &mut Vec<Event>) -> io::Result<bool> {
        let record = size_of::<libc::signalfd_siginfo>();
        let mut any = false;
        let mut lost = false;
        for _ in 0..MAX_READS {
            self.buffer.clear();
            // SAFETY: the buffer has room for BATCH records and read writes at most that.
            let read = syscall!(read(
                self.signalfd.as_raw_fd(),
                self.buffer.as_mut_ptr().cast(),
                BATCH * record
            ));
            let bytes = match read {
                Ok(bytes) => bytes as usize,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            // SAFETY: a signalfd read returns whole records, and `bytes` of them were written.
            unsafe { self.buffer.set_len(bytes / record) };
            any = true;
            for info in &self.buffer {
                if info.ssi_signo as c_int != self.signo || !is_readiness(info.ssi_code) {
                    // SIGIO: the queue overflowed. Or our signal sent by hand: no trustworthy
                    // descriptor. Either way, look at everything.
                    lost = true;
                    continue;
                }
                let fd = info.ssi_fd;
                if fd == self.waker.read.as_raw_fd() {
                    self.waker.drain();
                    continue;
                }
                // A stale signal for a descriptor closed since finds no slot, or a newer
                // connection on the same number that then reads EAGAIN: harmless.
                let Some(Some(slot)) = self.slots.get_mut(fd as usize) else {
                    continue;
                };
                let band = info.ssi_band as libc::c_short;
                let broken = band & (libc::POLLHUP | libc::POLLERR) != 0;
                let readable =
                    broken || band & (libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM) != 0;
                let writable = broken || band & (libc::POLLOUT | libc::POLLWRNORM) != 0;
                if !slot.readable && !slot.writable && (readable || writable) {
                    self.touched.push(fd);
                }
                slot.readable |= readable;
                slot.writable |= writable;
            }
            if bytes < BATCH * record {
                break;
            }
        }
        if lost {
            self.overflows += 1;
            tracing::debug!(
                overflows = self.overflows,
                "signal queue overflowed; rescanning every descriptor"
            );
            self.waker.drain();
            self.touched.clear();
            for slot in self.slots.iter_mut().flatten() {
                *slot = Slot {
                    readable: false,
                    writable: false,
                    ..*slot
                };
                events.push(Event {
                    token: slot.token,
                    readable: true,
                    writable: true,
                    hangup: false,
                });
            }
        }
        for fd in self.touched.drain(..) {
            if let Some(Some(slot)) = self.slots.get_mut(fd as usize) {
                events.push(Event {
                    token: slot.token,
                    readable: slot.readable,
                    writable: slot.writable,
                    hangup: false,
                });
                slot.readable = false;
                slot.writable = false;
            }
        }
        Ok(any)
    }
}

impl Selector for Signal {
    const MODEL: Model = Model::Signal;
    const EDGE_TRIGGERED: bool = true;

    fn new() -> io::Result<Signal> {
        guard_process();
        let signo = io_signal();
        let set = signal_set(signo);
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is initialised and `old` has room for the previous mask.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: pthread_sigmask succeeded, so it wrote the old mask.
        let blocked = Blocked(unsafe { old.assume_init() });
        // SAFETY: `set` is an initialised sigset_t.
        let fd = syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let signalfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let waker = Arc::new(Pipe::new()?);
        arm(waker.read.as_raw_fd(), signo, tid)?;
        Ok(Signal {
            signo,
            signalfd,
            tid,
            slots: Vec::new(),
            touched: Vec::new(),
            buffer: Vec::with_capacity(BATCH),
            waker,
            overflows: 0,
            _blocked: blocked,
        })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn register(&mut self, fd: RawFd, token: usize, _interest: Interest) -> io::Result<()> {
        let index = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        if self.slots.len() <= index {
            self.slots.resize(index + 1, None);
        }
        self.slots[index] = Some(Slot {
            token,
            readable: false,
            writable: false,
        });
        if let Err(e) = arm(fd, self.signo, self.tid) {
            self.slots[index] = None;
            return Err(e);
        }
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: usize, _interest: Interest) -> io::Result<()> {
        // Edge-triggered: the loop never narrows interest; only the token could change.
        match self.slots.get_mut(fd as usize) {
            Some(Some(slot)) => {
                slot.token = token;
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not watched"),
            )),
        }
    }

    fn deregister(&mut self, fd: RawFd, _token: usize) -> io::Result<()> {
        // Closing the descriptor, which follows, takes it off the kernel's signal list.
        if let Some(slot) = self.slots.get_mut(fd as usize) {
            *slot = None;
        }
        Ok(())
    }

    fn select(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        if self.take(events)? || timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        let mut queue = libc::pollfd {
            fd: self.signalfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        if syscall!(poll(&mut queue, 1, timeout_ms(timeout)))? > 0 {
            self.take(events)?;
        }
        Ok(())
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        // Wakers outlive this thread (sessions and the server hold them): stop the pipe from
        // raising signals aimed at a thread id that may soon belong to someone else.
        let _ = syscall!(fcntl(
            self.waker.read.as_raw_fd(),
            libc::F_SETFL,
            libc::O_NONBLOCK
        ));
    }
}

#[cfg(test)]
mod tests;
