//! What the Windows modules share: the `BOOL` convention turned into [`io::Result`], owned
//! process and thread handles, `FILETIME` spans, UTF-16 names.

use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::time::Duration;
use windows_sys::Win32::Foundation::{BOOL, FILETIME, HANDLE};
use windows_sys::Win32::System::Threading::{
    OpenProcess, OpenThread, PROCESS_ACCESS_RIGHTS, THREAD_ACCESS_RIGHTS,
};

/// A Win32 call's `BOOL` result: `FALSE` is the error `GetLastError` holds.
pub(crate) fn check(ok: BOOL) -> io::Result<()> {
    if ok == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Own a handle an `Open*` call returned; null is the error `GetLastError` holds.
fn own(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-null handle just returned by an Open* call is valid, and this is its
    // only owner.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// A handle to process `pid` with `access`.
pub(crate) fn open_process(pid: u32, access: PROCESS_ACCESS_RIGHTS) -> io::Result<OwnedHandle> {
    // SAFETY: OpenProcess takes no pointers; an unknown pid or a refused access returns null.
    own(unsafe { OpenProcess(access, 0, pid) })
}

/// A handle to thread `tid` with `access`.
pub(crate) fn open_thread(tid: u32, access: THREAD_ACCESS_RIGHTS) -> io::Result<OwnedHandle> {
    // SAFETY: OpenThread takes no pointers; an unknown tid or a refused access returns null.
    own(unsafe { OpenThread(access, 0, tid) })
}

/// A span of time in a `FILETIME` (100-nanosecond units), as the `Get*Times` calls give
/// CPU time.
pub(crate) fn span(time: FILETIME) -> Duration {
    let ticks = (u64::from(time.dwHighDateTime) << 32) | u64::from(time.dwLowDateTime);
    Duration::from_nanos(ticks.saturating_mul(100))
}

/// `text` as a NUL-terminated UTF-16 string, for the `W` calls.
pub(crate) fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// An all-zero `FILETIME`, to be filled by a call.
pub(crate) const NO_TIME: FILETIME = FILETIME {
    dwLowDateTime: 0,
    dwHighDateTime: 0,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_are_100_nanosecond_units() {
        let time = FILETIME {
            dwLowDateTime: 15_000_000,
            dwHighDateTime: 0,
        };
        assert_eq!(span(time), Duration::from_millis(1500));
        let large = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 1,
        };
        assert_eq!(span(large), Duration::from_nanos((1u64 << 32) * 100));
    }

    #[test]
    fn names_end_in_nul() {
        assert_eq!(wide("ab"), [b'a' as u16, b'b' as u16, 0]);
    }
}
