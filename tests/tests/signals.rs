//! Signal state survives capture, kill and restore (issue 3).

use psnc_tests::{cases, roundtrip, Bits};

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn handlers_with_siginfo() {
    roundtrip(&cases::SIG_ACTION, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn blocked_pending_signals_keep_siginfo() {
    roundtrip(&cases::SIG_PENDING, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn sigaltstack() {
    roundtrip(&cases::SIG_ALTSTACK, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn itimer_real() {
    roundtrip(&cases::SIG_ITIMER, Bits::B64);
}
