//! Wait timeouts in whole milliseconds, as `poll(2)`, `epoll_wait(2)` and `WSAPoll` take them.

use std::time::Duration;

/// A wait timeout in whole milliseconds, for `poll(2)`, `epoll_wait(2)` and `WSAPoll` (an
/// `int` on both platforms): -1 for none, and otherwise rounded up (so a non-zero timeout
/// never becomes a zero, non-blocking wait, and a timer is never woken early) and capped at
/// `i32::MAX`.
pub fn timeout_ms(timeout: Option<Duration>) -> i32 {
    let Some(timeout) = timeout else {
        return -1;
    };
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    ms.min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(999))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1001))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(50))), 50);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
    }
}
