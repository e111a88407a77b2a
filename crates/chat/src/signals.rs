//! Waiting for SIGINT or SIGTERM without a signal handler: block both signals in the
//! calling thread before any server thread starts (threads inherit the mask, so no other
//! thread takes them), then `sigwait` for one.

use std::mem::MaybeUninit;

/// SIGINT and SIGTERM, blocked in the thread that made it.
pub(crate) struct Termination {
    set: libc::sigset_t,
}

impl Termination {
    /// Block SIGINT and SIGTERM in this thread and in every thread it starts from now on.
    pub(crate) fn block() -> std::io::Result<Termination> {
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
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(Termination { set })
    }

    /// Wait for SIGINT or SIGTERM; return its number.
    pub(crate) fn wait(&self) -> i32 {
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
}
