//! What [`crate::run`] reports while it measures: the caller decides how to show it (the
//! `iomodels` binary draws a bar on a terminal and prints plain lines otherwise).

/// Told about each run as it starts and ends. Only [`Progress::finish`] is required; the
/// other hooks default to doing nothing.
pub trait Progress {
    /// `total` runs are planned; called once, before the first.
    fn begin(&mut self, total: u64) {
        let _ = total;
    }

    /// A run starts; `what` names it (server, mode, connection count).
    fn start(&mut self, what: &str) {
        let _ = what;
    }

    /// A run ended: `line` says how it went, in one line.
    fn finish(&mut self, line: &str);

    /// `runs` runs will not happen (their server failed to start, or the capacity ramp
    /// ended early).
    fn skip(&mut self, runs: u64) {
        let _ = runs;
    }

    /// Every run is done.
    fn close(&mut self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn finish(&mut self, _line: &str) {}
}
