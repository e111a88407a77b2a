//! SIGINT and SIGTERM (Linux), waited for without a signal handler.
//!
//! [`Termination::block`] blocks both signals in the calling thread before any other thread
//! starts; threads inherit the mask, so no other thread ever takes them and nothing is
//! killed mid-flush. [`Termination::wait`] then `sigwait`s for one of them, from the main
//! thread or from a thread of its own.

use std::io;
use std::mem::MaybeUninit;

/// SIGINT and SIGTERM, blocked in the thread that made it and in every thread it starts
/// afterwards.
#[derive(Clone, Copy)]
pub struct Termination {
    set: libc::sigset_t,
}

impl std::fmt::Debug for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Termination(SIGINT, SIGTERM)")
    }
}

impl Termination {
    /// Block SIGINT and SIGTERM in this thread and in every thread it starts from now on.
    /// Call it before starting any thread: a thread started earlier keeps its own mask and
    /// could take the signal (and die of it) instead of the waiter.
    pub fn block() -> io::Result<Termination> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the sigset_t we own; sigaddset only edits it.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
            libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
            set.assume_init()
        };
        // SAFETY: `set` is an initialised signal set; the old mask is not asked for.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Termination { set })
    }

    /// Wait for SIGINT or SIGTERM; return its number. Call it from a thread whose mask
    /// blocks both (the one that called [`Termination::block`], or one it started).
    pub fn wait(&self) -> i32 {
        let mut signal = 0;
        loop {
            // SAFETY: `self.set` is an initialised signal set and `signal` a valid out
            // pointer; both signals are blocked in this thread, as sigwait requires.
            let rc = unsafe { libc::sigwait(&self.set, &mut signal) };
            if rc == 0 {
                return signal;
            }
        }
    }

    /// A thread that waits for SIGINT or SIGTERM and exits the process with status 0, for
    /// servers with nothing to flush.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_waited_for() {
        // Blocked in this test thread only; raised at this thread, so it stays pending
        // here until sigwait takes it.
        let termination = Termination::block().unwrap();
        // SAFETY: pthread_kill on our own thread with a signal it blocks only marks it
        // pending.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
        assert_eq!(termination.wait(), libc::SIGTERM);
    }
}
