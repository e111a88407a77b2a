//! Pinning and CPU time on Windows: affinity masks (`SetThreadAffinityMask`,
//! `GetProcessAffinityMask`) and `GetThreadTimes`.
//!
//! An affinity mask is one machine word, naming the 64 logical processors of one processor
//! group; a machine with more has several groups, and a process runs in one of them unless
//! it asks for more. CPU numbers here are within the process's group, so at most 64.
//!
//! Windows keeps the CPU time of a thread in scheduler ticks: [`thread_cpu_time`] moves in
//! steps of the clock interrupt (15.6 ms by default), not continuously as on Linux.

use crate::win::{check, open_process, span, NO_TIME};
use std::io;
use std::os::windows::io::AsRawHandle;
use std::time::Duration;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, GetProcessAffinityMask, GetThreadTimes,
    SetThreadAffinityMask, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// The number of CPUs an affinity mask can name: CPU numbers must be below it.
pub const CPU_SETSIZE: usize = usize::BITS as usize;

/// A set of CPUs as the affinity calls take it: one bit per CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mask(pub(crate) usize);

impl Mask {
    /// The mask of `cpus`; a CPU at or beyond [`CPU_SETSIZE`] is `InvalidInput`.
    pub(crate) fn new(cpus: &[usize]) -> io::Result<Mask> {
        let mut mask = 0usize;
        for &cpu in cpus {
            if cpu >= CPU_SETSIZE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CPU {cpu} is beyond CPU_SETSIZE ({CPU_SETSIZE})"),
                ));
            }
            mask |= 1 << cpu;
        }
        Ok(Mask(mask))
    }
}

/// Pin the calling thread to `cpu`. A CPU the process may not use is an error.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let mask = Mask::new(&[cpu])?;
    // SAFETY: GetCurrentThread returns a pseudo-handle that needs no closing; the mask is
    // passed by value.
    let previous = unsafe { SetThreadAffinityMask(GetCurrentThread(), mask.0) };
    if previous == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many CPUs process `pid` may run on; 0 is the calling process.
///
/// Unlike Linux, 0 means the process, not the calling thread: Windows has no call that reads
/// a thread's affinity, so a thread pinned with [`pin_current_thread`] still sees its
/// process's count.
pub fn allowed_cpus(pid: u32) -> io::Result<usize> {
    Ok(allowed_mask(pid)?.count_ones() as usize)
}

/// The affinity mask of process `pid`; 0 is the calling process.
pub(crate) fn allowed_mask(pid: u32) -> io::Result<usize> {
    let (mut process_mask, mut system_mask) = (0usize, 0usize);
    let own;
    let handle = if pid == 0 {
        // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing.
        unsafe { GetCurrentProcess() }
    } else {
        own = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
        own.as_raw_handle()
    };
    // SAFETY: `handle` is a valid process handle for the call (a pseudo-handle, or `own`,
    // alive until the end of the function); both out pointers are valid usizes.
    check(unsafe { GetProcessAffinityMask(handle, &mut process_mask, &mut system_mask) })?;
    Ok(process_mask)
}

/// CPU time (user + kernel) the calling thread has used, from `GetThreadTimes` (in steps of
/// the scheduler tick; see the module's notes).
pub fn thread_cpu_time() -> Duration {
    let (mut created, mut exited, mut kernel, mut user) = (NO_TIME, NO_TIME, NO_TIME, NO_TIME);
    // SAFETY: the pseudo-handle of the calling thread is always valid; the four out pointers
    // are valid FILETIMEs. On failure (which a valid pseudo-handle cannot cause) they stay
    // zero.
    let _ = unsafe {
        GetThreadTimes(
            GetCurrentThread(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    span(kernel) + span(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_name_cpus_below_the_word_size() {
        assert_eq!(Mask::new(&[0, 2]).unwrap(), Mask(0b101));
        assert_eq!(Mask::new(&[63]).unwrap(), Mask(1 << 63));
        let err = Mask::new(&[64]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            pin_current_thread(CPU_SETSIZE).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_thread_pins_to_a_cpu_its_process_may_use() {
        let allowed = allowed_cpus(0).unwrap();
        assert!(allowed >= 1);
        assert_eq!(allowed_cpus(std::process::id()).unwrap(), allowed);
        std::thread::spawn(|| {
            let first = allowed_mask(0).unwrap().trailing_zeros() as usize;
            pin_current_thread(first).unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        // Several scheduler ticks: Windows counts thread time per tick.
        while start.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(thread_cpu_time() > before);
    }
}
