//! A process's usage from /proc ([`crate::proc`]), pinning between fork and exec, SIGTERM.

use super::{Memory, Usage};
use crate::cpu::pin_before_exec;
use crate::proc::{self, ProcError};
use crate::syscall;
use std::io;
use std::process::{Child, Command};

pub(super) fn usage(pid: u32) -> Result<Usage, ProcError> {
    let stat = proc::stat(pid)?;
    Ok(Usage {
        user: stat.user,
        system: stat.system,
        threads: stat.threads,
    })
}

pub(super) fn memory(pid: u32) -> Result<Memory, ProcError> {
    let status = proc::status(pid)?;
    Ok(Memory {
        resident_kib: status.rss_kib,
        peak_resident_kib: status.hwm_kib,
    })
}

pub(super) fn spawn(command: &mut Command, cpus: Option<&[usize]>) -> io::Result<Child> {
    if let Some(cpus) = cpus {
        pin_before_exec(command, cpus)?;
    }
    command.spawn()
}

pub(super) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls
    // are allowed: prctl(2) and getppid(2) are system calls on plain integers, and nothing
    // is allocated (an OS error is stored inline in io::Error).
    unsafe {
        command.pre_exec(move || {
            // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointer is passed.
            syscall!(prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong
            ))?;
            // The parent may have died before the prctl: then no signal will come.
            // SAFETY: getppid takes no arguments and cannot fail.
            if syscall!(getppid())? as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

pub(super) fn request_stop(child: &Child) -> io::Result<()> {
    // SAFETY: kill(2) takes no pointers; the pid is our own child's, not yet waited for
    // (the caller checked), so it cannot have been reused by another process.
    syscall!(kill(child.id() as libc::pid_t, libc::SIGTERM))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_pinned_child_starts_pinned_and_stops_on_request() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "grep Cpus_allowed_list /proc/self/status; exec sleep 30",
        ]);
        command.stdout(std::process::Stdio::piped());
        // A CPU this process may use: the one it runs on now.
        // SAFETY: sched_getcpu takes no arguments.
        let cpu = syscall!(sched_getcpu()).unwrap() as usize;
        let mut child = super::super::spawn(&mut command, Some(&[cpu])).unwrap();
        let mut line = String::new();
        io::BufRead::read_line(
            &mut io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let list = line.split(':').nth(1).unwrap_or_default().trim();
        assert_eq!(crate::parse_cpu_list(list).unwrap(), [cpu], "{line}");
        super::super::request_stop(&mut child).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Stopping a child that is gone is nothing to do.
        super::super::request_stop(&mut child).unwrap();
    }
}
