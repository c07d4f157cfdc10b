//! Honest skips for the tests of every psnc-cr crate.
//!
//! A check that cannot run on this machine (no gcc-multilib for the i386 cases, a CPU without
//! AVX-512, no `readelf`, no uapi headers, ...) must not count as passed. It calls [`skip`] (or
//! the [`skip!`] macro, which also returns), which
//!
//! 1. prints `SKIP <what>: <why>` on stderr,
//! 2. appends the same line to the file named by `$PSNC_SKIP_LOG` when it is set, so that
//!    `scripts/test.sh` can count the skips and list their reasons even though libtest captures
//!    the output of passing tests, and
//! 3. panics with the same line when skips are not allowed here ([`skips_are_fatal`]: `CI` is
//!    set, or `PSNC_REQUIRE_ALL=1`), so that CI, which installs everything, notices a check that
//!    silently stopped running.
//!
//! `<what>` names the check (a test name, with the variant: `i386_counter`, `regs avx512 (after
//! restore)`) and must not contain `": "`, which separates it from `<why>`; `<why>` says what is
//! missing and, where it can be installed, how (`cc -m32 cannot build (install gcc-multilib)`).
//! Keep `<why>` the same for every check skipped for the same reason: the summary prints one line
//! per distinct reason.
//!
//! No dependencies, no unsafe code: every crate's tests can use it as a dev-dependency.

#![forbid(unsafe_code)]

use std::fmt::Display;
use std::io::Write;

/// The environment variable naming the file that every skip is appended to.
pub const SKIP_LOG_ENV: &str = "PSNC_SKIP_LOG";

/// The environment variable that makes skips fatal outside CI too (`PSNC_REQUIRE_ALL=1`).
pub const REQUIRE_ALL_ENV: &str = "PSNC_REQUIRE_ALL";

/// The reason of every check skipped because `cc -m32` cannot build i386 programs, in one
/// wording so that the summary counts them on one line.
pub const NO_M32: &str = "cc -m32 cannot build (install gcc-multilib)";

/// Whether a skip fails the test here: `CI` set to anything but the empty string, `false` or
/// `0`, or `PSNC_REQUIRE_ALL=1`.
///
/// CI installs everything the checks need (`scripts/test.sh` does), so a skip there means a check
/// stopped running without anyone deciding so.
pub fn skips_are_fatal() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    let ci = !ci.is_empty() && ci != "false" && ci != "0";
    ci || std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1")
}

/// The line a skip is reported with: `SKIP <what>: <why>`.
pub fn skip_line(what: impl Display, why: impl Display) -> String {
    format!("SKIP {what}: {why}")
}

/// Reports that the check `what` cannot run here because of `why` (see the crate docs); panics
/// instead when [`skips_are_fatal`]. Returns normally otherwise: the caller returns or goes on
/// with the checks it can run.
#[track_caller]
pub fn skip(what: impl Display, why: impl Display) {
    let line = skip_line(what, why);
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // One write of a short line to an O_APPEND file: lines of parallel tests do not mix.
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = logged {
            eprintln!(
                "psnc-testkit: cannot append to {SKIP_LOG_ENV}={}: {e}; this skip is not counted",
                std::path::Path::new(&path).display()
            );
        }
    }
    if skips_are_fatal() {
        panic!("{line}");
    }
}

/// [`skip`], then `return` from the calling function (which must return `()`).
///
/// ```no_run
/// fn i386_case(built: Option<std::path::PathBuf>) {
///     let Some(exe) = built else {
///         psnc_testkit::skip!("i386_case", "cc -m32 cannot build (install gcc-multilib)");
///     };
///     // ... the check, with `exe`
/// #   drop(exe);
/// }
/// ```
#[macro_export]
macro_rules! skip {
    ($what:expr, $why:expr $(,)?) => {{
        $crate::skip($what, $why);
        return;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_what_then_why() {
        assert_eq!(
            skip_line(
                "i386_counter",
                "cc -m32 cannot build (install gcc-multilib)"
            ),
            "SKIP i386_counter: cc -m32 cannot build (install gcc-multilib)"
        );
    }
}
