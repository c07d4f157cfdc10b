//! Every target passes its own checks without any checkpoint (64-bit, and 32-bit when
//! gcc-multilib is installed). This validates the targets and the harness themselves: a target
//! that fails here would make its checkpoint test meaningless.

use psnc_tests::{cases, native, targets, Bits, Case};

fn both(case: &Case) {
    native(case, Bits::B64);
    if targets().m32 {
        native(case, Bits::B32);
    } else {
        let what = format!(
            "{} {}",
            case.label(Bits::B32, "native"),
            case.args.join(" ")
        );
        psnc_testkit::skip(what.trim_end(), psnc_testkit::NO_M32);
    }
}

#[test]
fn counter() {
    both(&cases::COUNTER);
}

#[test]
fn memory() {
    for c in [
        cases::MEM_HEAP,
        cases::MEM_STACK,
        cases::MEM_BSS,
        cases::MEM_ANON,
        cases::MEM_GUARD,
        cases::MEM_FILE_PRIVATE,
        cases::MEM_FILE_SHARED,
    ] {
        both(&c);
    }
}

#[test]
fn files() {
    for c in [
        cases::FILE_OFFSET,
        cases::FILE_APPEND,
        cases::FILE_DELETED,
        cases::FILE_PIPE,
    ] {
        both(&c);
    }
}

#[test]
fn signals() {
    for c in [
        cases::SIG_ACTION,
        cases::SIG_PENDING,
        cases::SIG_ALTSTACK,
        cases::SIG_ITIMER,
    ] {
        both(&c);
    }
}

#[test]
fn regs() {
    both(&cases::REGS_SSE);
    native(&cases::REGS_AVX, Bits::B64);
    native(&cases::REGS_AVX512, Bits::B64);
}

#[test]
fn threads() {
    both(&cases::THREADS);
}

#[test]
fn churn() {
    native(&cases::CHURN, Bits::B64);
}

#[test]
fn withlib() {
    let mut t = psnc_tests::Target::start_with_lib();
    t.verify()
        .assert_passed(&["lib_state", "lib_code", "lib_data"]);
}

#[test]
fn unsupported() {
    for mode in [
        "socket",
        "io_uring",
        "perf_event",
        "userfaultfd",
        "fanotify",
        "memfd",
        "sysv",
        "seccomp",
    ] {
        let mut t = psnc_tests::Spawn::new("unsupported").args(&[mode]).start();
        t.verify().assert_passed(&[mode]);
    }
}

#[test]
fn zombie() {
    for case in [
        &cases::ZOMBIE_CHILDREN,
        &cases::ZOMBIE_BLOCKED,
        &cases::ZOMBIE_LEADER,
    ] {
        both(case);
    }
}

#[test]
fn shm() {
    for (args, passes) in [
        (
            &["counter"][..],
            &["P:counter_is_sum", "C1:sees_the_others", "P:children_done"][..],
        ),
        (
            &["big", "1"][..],
            &["P:pattern", "C:pattern", "P:sees_child_write"][..],
        ),
        (
            &["orphan"][..],
            &["orphan:contents", "orphan:new_mapping"][..],
        ),
    ] {
        let mut t = psnc_tests::Spawn::new("shm").args(args).start();
        t.verify().assert_passed(passes);
    }
}

#[test]
fn memfd() {
    for (mode, pass) in [
        ("mapped", "mapped:one_file"),
        ("unmapped", "unmapped:contents"),
    ] {
        let mut t = psnc_tests::Spawn::new("memfd").args(&[mode]).start();
        t.verify().assert_passed(&[pass]);
    }
}
