//! Multithreaded and i386 processes (issue 4): every thread keeps its TID and its state, glibc's
//! mutexes, condition variables, pthread_join and pthread_kill work after restore.

use std::time::Duration;

use psnc_tests::{
    assert_consecutive, capture_kill, cases, restore, roundtrip, spawn_program, targets,
    wait_ticks, Bits, RunOpts, WorkDir,
};

fn need_m32() -> bool {
    if !targets().m32 {
        eprintln!("skipped: no -m32 targets (install gcc-multilib; scripts/test.sh does)");
        return false;
    }
    true
}

#[test]
fn threads_x86_64() {
    roundtrip(&cases::THREADS, Bits::B64);
}

#[test]
fn threads_i386() {
    if need_m32() {
        roundtrip(&cases::THREADS, Bits::B32);
    }
}

#[test]
fn i386_sse_registers() {
    if need_m32() {
        roundtrip(&cases::REGS_SSE, Bits::B32);
    }
}

#[test]
fn i386_counter() {
    if need_m32() {
        roundtrip(&cases::COUNTER, Bits::B32);
    }
}

#[test]
fn i386_memory_files_signals() {
    if !need_m32() {
        return;
    }
    for c in [
        cases::MEM_HEAP,
        cases::MEM_STACK,
        cases::MEM_ANON,
        cases::MEM_GUARD,
        cases::MEM_FILE_PRIVATE,
        cases::MEM_FILE_SHARED,
        cases::FILE_OFFSET,
        cases::FILE_DELETED,
        cases::FILE_PIPE,
        cases::SIG_PENDING,
        cases::SIG_ACTION,
    ] {
        roundtrip(&c, Bits::B32);
    }
}

const PY_THREADS: &str = r#"
import sys, threading, time
log = sys.argv[1]
counts = [0] * 4
lock = threading.Lock()
total = [0]
def work(k):
    while True:
        with lock:
            counts[k] += 1
            total[0] += 1
        time.sleep(0.01)
for k in range(4):
    threading.Thread(target=work, args=(k,), daemon=True).start()
i = 0
while True:
    i += 1
    with lock:
        ok = sum(counts) == total[0]
    with open(log, "a") as f:
        f.write(f"{i} {int(ok)} {threading.active_count()}\n")
    time.sleep(0.05)
"#;

#[test]
fn python_threading() {
    let dir = WorkDir::new("pythreads");
    let log = dir.join("log");
    let mut p = spawn_program(
        std::process::Command::new("python3")
            .args(["-c", PY_THREADS])
            .arg(&log),
    );
    wait_ticks(&log, 5, Duration::from_secs(20));
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let before = psnc_tests::read_ticks(&log).len();
    let _r = restore(&image, &[], RunOpts::default());
    let ticks = wait_ticks(&log, before + 10, Duration::from_secs(20));
    assert_consecutive(&ticks);
    let text = std::fs::read_to_string(&log).expect("read log");
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.get(1), Some(&"1"), "inconsistent counters: {line}");
        assert_eq!(f.get(2), Some(&"5"), "not 5 threads: {line}");
    }
}

/// i386 image -> 64-bit layout class -> restore works; converting back gives identical bytes.
#[test]
fn i386_image_converted_to_64_restores_and_converts_back() {
    if !need_m32() {
        return;
    }
    let mut t = psnc_tests::Spawn::new("memory")
        .args(&["all"])
        .bits(Bits::B32)
        .start();
    let image = t.dir.join("image32");
    t.capture_kill(&image);
    let img64 = t.dir.join("image64");
    let back = t.dir.join("image32-again");
    let imgtool = psnc_tests::tool("psnc-imgtool");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    psnc_tests::run(
        &imgtool,
        &["convert", "--to", "64", "-o", &s(&img64), &s(&image)],
        RunOpts::default(),
    )
    .assert_ok();
    psnc_tests::run(
        &imgtool,
        &["convert", "--to", "32", "-o", &s(&back), &s(&img64)],
        RunOpts::default(),
    )
    .assert_ok();
    assert!(
        std::fs::read(&image).expect("read") == std::fs::read(&back).expect("read"),
        "32 -> 64 -> 32 did not give the same bytes"
    );
    t.restore(&img64, &[], RunOpts::default());
    let mut expect: Vec<&str> = Vec::new();
    for c in [
        cases::MEM_HEAP,
        cases::MEM_BSS,
        cases::MEM_ANON,
        cases::MEM_GUARD,
        cases::MEM_FILE_PRIVATE,
        cases::MEM_FILE_SHARED,
    ] {
        expect.extend_from_slice(c.expect);
    }
    t.verify().assert_passed(&expect);
}
