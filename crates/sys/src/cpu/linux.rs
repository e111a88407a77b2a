//! Pinning and CPU time on Linux: `sched_setaffinity(2)`, `sched_getaffinity(2)` and
//! `getrusage(RUSAGE_THREAD)`.

use crate::syscall;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// The number of CPUs a `cpu_set_t` can name: CPU numbers must be below it.
pub const CPU_SETSIZE: usize = libc::CPU_SETSIZE as usize;

/// A set of CPUs as the affinity calls take it.
#[derive(Clone, Copy)]
struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// The set of `cpus`; a CPU at or beyond [`CPU_SETSIZE`] is `InvalidInput`.
    fn new(cpus: &[usize]) -> io::Result<CpuSet> {
        // SAFETY: cpu_set_t is plain data and all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus {
            if cpu >= CPU_SETSIZE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CPU {cpu} is beyond CPU_SETSIZE ({CPU_SETSIZE})"),
                ));
            }
            // SAFETY: `cpu` was checked to be below CPU_SETSIZE, so the bit is inside `set`.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        Ok(CpuSet(set))
    }

    /// Make it the affinity of the calling thread. Allocates nothing, so it may run
    /// between fork and exec.
    fn apply_to_current_thread(&self) -> io::Result<()> {
        // SAFETY: `self.0` is a valid cpu_set_t of the size passed; pid 0 is the calling
        // thread.
        syscall!(sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &self.0
        ))?;
        Ok(())
    }
}

/// Pin the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    CpuSet::new(&[cpu])?.apply_to_current_thread()
}

/// Have the process `command` spawns run on `cpus` only: its affinity is set between fork
/// and exec, so the program starts pinned. A CPU at or beyond [`CPU_SETSIZE`] is
/// `InvalidInput`, returned here; a CPU the system lacks makes the spawn fail.
pub fn pin_before_exec(command: &mut Command, cpus: &[usize]) -> io::Result<()> {
    let set = CpuSet::new(cpus)?;
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls
    // are allowed: it makes one system call on a set built before the fork, and allocates
    // nothing (an OS error is stored inline in io::Error).
    unsafe {
        command.pre_exec(move || set.apply_to_current_thread());
    }
    Ok(())
}

/// How many CPUs process (or thread) `pid` may run on; 0 is the calling thread.
pub fn allowed_cpus(pid: u32) -> io::Result<usize> {
    // SAFETY: cpu_set_t is plain data and all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    syscall!(sched_getaffinity(
        pid as libc::pid_t,
        std::mem::size_of_val(&set),
        &mut set
    ))?;
    // SAFETY: `set` is a valid cpu_set_t the kernel just filled.
    Ok(unsafe { libc::CPU_COUNT(&set) } as usize)
}

/// CPU time (user + system) the calling thread has used, from `getrusage(RUSAGE_THREAD)`
/// (microsecond resolution).
pub fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage. RUSAGE_THREAD cannot fail on Linux with
    // a valid pointer, and if it did the zeroed value stays.
    let _ = syscall!(getrusage(libc::RUSAGE_THREAD, &mut usage));
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::parse_cpu_list;

    #[test]
    fn pinning_beyond_the_set_size_is_refused() {
        let err = pin_current_thread(CPU_SETSIZE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let mut command = Command::new("true");
        let err = pin_before_exec(&mut command, &[0, CPU_SETSIZE]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// The CPU the calling thread runs on now: one this process may use.
    fn current_cpu() -> usize {
        // SAFETY: sched_getcpu takes no arguments.
        syscall!(sched_getcpu()).unwrap() as usize
    }

    #[test]
    fn a_thread_pins_to_a_cpu_it_may_use() {
        std::thread::spawn(|| {
            assert!(allowed_cpus(0).unwrap() >= 1);
            let cpu = current_cpu();
            pin_current_thread(cpu).unwrap();
            assert_eq!(allowed_cpus(0).unwrap(), 1);
            assert_eq!(current_cpu(), cpu);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_child_starts_pinned() {
        let cpu = current_cpu();
        let mut command = Command::new("sh");
        command.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pin_before_exec(&mut command, &[cpu]).unwrap();
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        let list = text.split(':').nth(1).unwrap().trim();
        assert_eq!(parse_cpu_list(list).unwrap(), [cpu]);
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(thread_cpu_time() > before);
    }
}
