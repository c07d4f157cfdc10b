//! Signal state survives capture, kill and restore (issue 3).

use psnc_tests::{cases, roundtrip, Bits};

#[test]
fn handlers_with_siginfo() {
    roundtrip(&cases::SIG_ACTION, Bits::B64);
}

#[test]
fn blocked_pending_signals_keep_siginfo() {
    roundtrip(&cases::SIG_PENDING, Bits::B64);
}

#[test]
fn sigaltstack() {
    roundtrip(&cases::SIG_ALTSTACK, Bits::B64);
}

#[test]
fn itimer_real() {
    roundtrip(&cases::SIG_ITIMER, Bits::B64);
}
