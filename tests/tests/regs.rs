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
        eprintln!("skipped: this CPU has no AVX");
        return;
    }
    roundtrip(&cases::REGS_AVX, Bits::B64);
}

#[test]
fn avx512() {
    if !cpu_has("avx512f") || !cpu_has("avx512bw") {
        eprintln!("skipped: this CPU has no AVX-512F/BW");
        return;
    }
    roundtrip(&cases::REGS_AVX512, Bits::B64);
}
