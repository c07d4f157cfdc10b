//! Progress bars for long operations on big images, on a terminal only.
//!
//! A bar is drawn on stderr when stderr is a terminal and the work is at least
//! [`MIN_VISIBLE_BYTES`]; otherwise (piped, redirected, small image) it is hidden and costs
//! nothing, so scripts and tests see clean output.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work below this many bytes finishes too fast for a bar to help.
pub const MIN_VISIBLE_BYTES: u64 = 64 << 20;

/// A byte-counting progress bar that clears itself when dropped.
#[derive(Debug)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar for `total` bytes of work labelled `what`, visible only on a terminal and for big work.
    pub fn bytes(total: u64, what: &'static str) -> Self {
        if total < MIN_VISIBLE_BYTES || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>10} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what);
        Progress(bar)
    }

    /// A bar that never draws.
    pub fn hidden() -> Self {
        Progress(ProgressBar::hidden())
    }

    /// Whether the bar draws (a terminal and big work).
    pub fn is_visible(&self) -> bool {
        !self.0.is_hidden()
    }

    /// Counts `n` more bytes done.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
