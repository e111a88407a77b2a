//! Progress on standard error: an indicatif bar when stderr is a terminal, plain lines
//! (at most about one a second) otherwise. The libraries only report through callbacks.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Where progress goes.
pub enum Progress {
    /// A bar redrawn in place.
    Bar(ProgressBar),
    /// Plain lines, paced.
    Lines {
        /// When the last line was printed.
        last: Option<Instant>,
    },
}

impl Progress {
    /// A bar of `length` steps drawn with `template` if stderr is a terminal, else lines.
    pub fn new(length: u64, template: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { last: None };
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Progress::Bar(ProgressBar::new(length.max(1)).with_style(style))
    }

    /// Whether a plain line is due: the first, or a second after the last. `force` makes
    /// it due (a phase change).
    pub fn line_due(&mut self, force: bool) -> bool {
        match self {
            Progress::Bar(_) => false,
            Progress::Lines { last } => {
                let due = force || last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
        }
    }

    /// Remove the bar, if any.
    pub fn clear(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
