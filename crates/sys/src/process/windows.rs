//! A process's usage from `GetProcessTimes`, `GetProcessMemoryInfo` and a Toolhelp snapshot;
//! pinning by creating the child suspended; stop requests by named event.

use super::{Memory, Usage};
use crate::cpu::Mask;
use crate::win::{check, open_process, open_thread, span, NO_TIME};
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::process::{Child, Command};
use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, Thread32First, Thread32Next,
    PROCESSENTRY32W, TH32CS_SNAPPROCESS, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, ResumeThread, SetProcessAffinityMask, CREATE_SUSPENDED,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_VM_READ, THREAD_SUSPEND_RESUME,
};

pub(super) fn usage(pid: u32) -> io::Result<Usage> {
    let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
    let (mut created, mut exited, mut kernel, mut user) = (NO_TIME, NO_TIME, NO_TIME, NO_TIME);
    // SAFETY: `process` is a valid handle with the access GetProcessTimes needs; the four
    // out pointers are valid FILETIMEs.
    check(unsafe {
        GetProcessTimes(
            process.as_raw_handle(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    })?;
    let threads = processes()?
        .find(|entry| entry.th32ProcessID == pid)
        .map(|entry| u64::from(entry.cntThreads))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "not in the process snapshot (exited)",
            )
        })?;
    Ok(Usage {
        user: span(user),
        system: span(kernel),
        threads,
    })
}

pub(super) fn memory(pid: u32) -> io::Result<Memory> {
    let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ)?;
    // SAFETY: PROCESS_MEMORY_COUNTERS is plain data and all-zero is a valid value.
    let mut counters: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    // SAFETY: `process` is a valid handle with the access the call needs; `counters` is a
    // writable structure of the size passed.
    check(unsafe { K32GetProcessMemoryInfo(process.as_raw_handle(), &mut counters, size) })?;
    Ok(Memory {
        resident_kib: counters.WorkingSetSize as u64 / 1024,
        peak_resident_kib: counters.PeakWorkingSetSize as u64 / 1024,
    })
}

pub(super) fn spawn(command: &mut Command, cpus: Option<&[usize]>) -> io::Result<Child> {
    let Some(cpus) = cpus else {
        return command.spawn();
    };
    let mask = Mask::new(cpus)?;
    let mut child = command.creation_flags(CREATE_SUSPENDED).spawn()?;
    match pin_and_resume(&child, mask) {
        Ok(()) => Ok(child),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// Give the suspended `child` its affinity, then resume its one thread.
fn pin_and_resume(child: &Child, mask: Mask) -> io::Result<()> {
    // SAFETY: the child's handle is valid while `child` lives and has every access right;
    // the mask is passed by value (one outside the system's CPUs is refused, not UB).
    check(unsafe { SetProcessAffinityMask(child.as_raw_handle(), mask.0) })?;
    let mut resumed = 0;
    for entry in threads()?.filter(|entry| entry.th32OwnerProcessID == child.id()) {
        let thread = open_thread(entry.th32ThreadID, THREAD_SUSPEND_RESUME)?;
        // SAFETY: `thread` is a valid handle opened with THREAD_SUSPEND_RESUME.
        if unsafe { ResumeThread(thread.as_raw_handle()) } == u32::MAX {
            return Err(io::Error::last_os_error());
        }
        resumed += 1;
    }
    if resumed == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the suspended child has no thread to resume",
        ));
    }
    Ok(())
}

pub(super) fn die_with_parent(_command: &mut Command) {
    // Nothing: Windows has no parent-death signal. A job object with
    // JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE would do it; until then the parent kills its
    // children itself when it fails.
}

pub(super) fn request_stop(child: &Child) -> io::Result<()> {
    crate::signals::request_stop(child.id())
}

/// A Toolhelp snapshot of every process or every thread of the system.
fn snapshot(what: u32) -> io::Result<OwnedHandle> {
    // SAFETY: CreateToolhelp32Snapshot takes no pointers; it fails with
    // INVALID_HANDLE_VALUE, not null.
    let handle = unsafe { CreateToolhelp32Snapshot(what, 0) };
    if handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a valid snapshot handle just returned, owned by no one else.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// Every process of a snapshot taken now.
fn processes() -> io::Result<impl Iterator<Item = PROCESSENTRY32W>> {
    let snapshot = snapshot(TH32CS_SNAPPROCESS)?;
    // SAFETY: PROCESSENTRY32W is plain data and all-zero is a valid value.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    let mut first = true;
    Ok(std::iter::from_fn(move || {
        let handle = snapshot.as_raw_handle();
        // SAFETY: `snapshot` is a valid process snapshot, `entry` a writable entry whose
        // dwSize says its size. The end of the list is a FALSE return.
        let ok = unsafe {
            if std::mem::take(&mut first) {
                Process32FirstW(handle, &mut entry)
            } else {
                Process32NextW(handle, &mut entry)
            }
        };
        (ok != 0).then_some(entry)
    }))
}

/// Every thread of a snapshot taken now.
fn threads() -> io::Result<impl Iterator<Item = THREADENTRY32>> {
    let snapshot = snapshot(TH32CS_SNAPTHREAD)?;
    // SAFETY: THREADENTRY32 is plain data and all-zero is a valid value.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    let mut first = true;
    Ok(std::iter::from_fn(move || {
        let handle = snapshot.as_raw_handle();
        // SAFETY: `snapshot` is a valid thread snapshot, `entry` a writable entry whose
        // dwSize says its size. The end of the list is a FALSE return.
        let ok = unsafe {
            if std::mem::take(&mut first) {
                Thread32First(handle, &mut entry)
            } else {
                Thread32Next(handle, &mut entry)
            }
        };
        (ok != 0).then_some(entry)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{Termination, STOP_REQUEST};
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    /// Set in the child this test binary starts of itself.
    const CHILD: &str = "IOMODELS_SYS_STOP_CHILD";

    /// In the child: say how many CPUs it may use, wait for a stop request, exit 0 if that
    /// is what came. In the test run itself: nothing.
    #[test]
    fn child_waits_for_a_stop_request() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let termination = Termination::block().unwrap();
        // The harness may have written "test NAME ... " on this line already.
        println!(
            "child ready, CPUs: {}",
            crate::cpu::allowed_cpus(0).unwrap()
        );
        let code = termination.wait();
        std::process::exit(if code == STOP_REQUEST { 0 } else { 3 });
    }

    #[test]
    fn a_pinned_child_starts_pinned_and_stops_on_request() {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "process::windows::tests::child_waits_for_a_stop_request",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdout(Stdio::piped());
        let first = crate::cpu::allowed_mask(0).unwrap().trailing_zeros() as usize;
        let mut child = super::super::spawn(&mut command, Some(&[first])).unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let cpus = stdout
            .lines()
            .map(Result::unwrap)
            .find_map(|line| Some(line.split_once("child ready, CPUs: ")?.1.to_string()))
            .expect("the child says it is ready");
        assert_eq!(cpus, "1");
        super::super::request_stop(&mut child).unwrap();
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn the_snapshot_lists_this_process_and_its_threads() {
        let pid = std::process::id();
        assert!(processes().unwrap().any(|entry| entry.th32ProcessID == pid));
        assert!(threads()
            .unwrap()
            .any(|entry| entry.th32OwnerProcessID == pid));
    }
}
