//! The machine from the registry, `GlobalMemoryStatusEx` and `RtlGetVersion` (Windows), and
//! whether it is Wine.

use crate::win::wide;
use std::ffi::{c_char, CStr};
use windows_sys::Wdk::System::SystemServices::RtlGetVersion;
use windows_sys::Win32::Foundation::{ERROR_SUCCESS, STATUS_SUCCESS};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};
use windows_sys::Win32::System::SystemInformation::{
    GlobalMemoryStatusEx, MEMORYSTATUSEX, OSVERSIONINFOW,
};

/// The CPU model name, from the registry's `ProcessorNameString` of CPU 0.
pub fn cpu_model() -> Option<String> {
    let key = wide(r"HARDWARE\DESCRIPTION\System\CentralProcessor\0");
    let value = wide("ProcessorNameString");
    let mut buffer = [0u16; 256];
    let mut size = std::mem::size_of_val(&buffer) as u32;
    // SAFETY: `key` and `value` are NUL-terminated UTF-16 strings; `buffer` is writable for
    // `size` bytes, and the call writes at most that (with the NUL) or fails.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buffer.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if status != ERROR_SUCCESS {
        return None;
    }
    let chars = (size as usize / 2).min(buffer.len());
    let name = String::from_utf16_lossy(&buffer[..chars]);
    let name = name.trim_end_matches('\0').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Physical memory, KiB.
pub fn memory_kib() -> Option<u64> {
    // SAFETY: MEMORYSTATUSEX is plain data and all-zero is a valid value.
    let mut status: MEMORYSTATUSEX = unsafe { std::mem::zeroed() };
    status.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
    // SAFETY: `status` is writable and its dwLength says its size.
    let ok = unsafe { GlobalMemoryStatusEx(&mut status) };
    (ok != 0).then_some(status.ullTotalPhys / 1024)
}

/// `Windows MAJOR.MINOR.BUILD`, from `RtlGetVersion` (what Wine is configured to report,
/// under Wine).
pub fn kernel() -> String {
    // SAFETY: OSVERSIONINFOW is plain data and all-zero is a valid value.
    let mut info: OSVERSIONINFOW = unsafe { std::mem::zeroed() };
    info.dwOSVersionInfoSize = std::mem::size_of::<OSVERSIONINFOW>() as u32;
    // SAFETY: `info` is writable and its dwOSVersionInfoSize says its size.
    if unsafe { RtlGetVersion(&mut info) } != STATUS_SUCCESS {
        return "Windows".to_string();
    }
    format!(
        "Windows {}.{}.{}",
        info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber
    )
}

/// Windows has no open-file limit: always `None`.
pub fn open_files_limit() -> Option<u64> {
    None
}

/// The Wine release this program runs under (`8.0`), or `None` on Windows itself: Wine's
/// ntdll exports `wine_get_version`, Windows' does not.
pub fn wine_version() -> Option<String> {
    let ntdll = wide("ntdll.dll");
    // SAFETY: `ntdll` is a NUL-terminated UTF-16 string; ntdll is loaded in every process,
    // and the handle GetModuleHandleW returns needs no closing.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return None;
    }
    // SAFETY: `module` is a loaded module and the name a NUL-terminated string.
    let function = unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }?;
    // SAFETY: Wine declares it `const char *CDECL wine_get_version(void)`; on x86_64 cdecl
    // and the system ABI are one calling convention, so the pointer may be called as this.
    let wine_get_version: unsafe extern "C" fn() -> *const c_char =
        unsafe { std::mem::transmute(function) };
    // SAFETY: it takes no arguments and returns a static NUL-terminated string (or null).
    let version = unsafe { wine_get_version() };
    if version.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer to a NUL-terminated string Wine keeps for the process's
    // life.
    Some(
        unsafe { CStr::from_ptr(version) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wine_says_its_version() {
        // Under Wine (as in this project's CI) a version like "8.0"; on Windows none.
        if let Some(version) = wine_version() {
            assert!(
                version.starts_with(|c: char| c.is_ascii_digit()),
                "{version}"
            );
        }
    }
}
