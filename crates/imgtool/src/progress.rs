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

/// Runs `work` (a call that reports no progress, such as the format crate's digest checks over
/// `total` bytes) on a helper thread while a spinner with the elapsed time turns on stderr; on a
/// pipe or for small work, just runs it.
pub fn with_spinner<T: Send>(total: u64, what: &'static str, work: impl FnOnce() -> T + Send) -> T {
    if total < MIN_VISIBLE_BYTES || !std::io::stderr().is_terminal() {
        return work();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(format!("{what} {} MiB", total >> 20));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let out = std::thread::scope(|s| {
        let h = s.spawn(work);
        match h.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    bar.finish_and_clear();
    out
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
