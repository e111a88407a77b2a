//! The open-file limit on Linux: `RLIMIT_NOFILE`.

use crate::syscall;

/// The soft open-file limit assumed when it cannot be read: the usual default.
const DEFAULT_OPEN_FILES: u64 = 1024;

/// Raise the soft open-file limit (`RLIMIT_NOFILE`) to the hard one, and return the soft
/// limit after: the most descriptors the process may hold.
///
/// If the limit cannot be raised the old soft limit is returned; if it cannot even be read,
/// 1024.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)).is_err() {
        return DEFAULT_OPEN_FILES;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; failure leaves the old limit in place.
        if syscall!(setrlimit(libc::RLIMIT_NOFILE, &raised)).is_ok() {
            limit = raised;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_one() {
        let raised = raise_open_file_limit();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit.
        syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)).unwrap();
        assert_eq!(raised, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        // Raising again changes nothing.
        assert_eq!(raise_open_file_limit(), raised);
    }
}
