//! Values held in vector registers survive capture, kill and restore (issue 3). The target never
//! reloads them: a lost or shuffled XSAVE component shows as a mismatch.

use psnc_tests::{cases, cpu_has, roundtrip, Bits};

#[test]
fn sse() {
    roundtrip(&cases::REGS_SSE, Bits::B64);
}

#[test]
fn avx() {
    if !cpu_has("avx") {
        // The target's own wording when it skips: one reason in the summary.
        psnc_testkit::skip!("regs avx", "the CPU lacks AVX");
    }
    roundtrip(&cases::REGS_AVX, Bits::B64);
}

#[test]
fn avx512() {
    if !cpu_has("avx512f") || !cpu_has("avx512bw") {
        psnc_testkit::skip!("regs avx512", "the CPU lacks AVX-512F/BW");
    }
    roundtrip(&cases::REGS_AVX512, Bits::B64);
}
