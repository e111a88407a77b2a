//! The open-file limit on Windows: there is none to raise.

/// The most handles one process can hold: Windows keeps them in a table of 2^24 entries (a
/// handle is a multiple of 4 below 2^26), and sets no lower limit on sockets or files.
pub const HANDLE_TABLE: u64 = 1 << 24;

/// What Linux's `raise_open_file_limit` is on Windows: nothing to raise, since Windows has no
/// per-process limit on sockets or files; returns [`HANDLE_TABLE`], the ceiling the handle
/// table sets (memory runs out long before).
pub fn raise_open_file_limit() -> u64 {
    HANDLE_TABLE
}
