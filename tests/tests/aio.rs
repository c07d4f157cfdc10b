//! AIO contexts (issue 9, tests/targets/aio.c): a context with no events used after restore, a
//! wrapped ring with completed events reaped after restore, two contexts in one process, for
//! x86_64 and i386; a ring the kernel would never produce, and a request in flight that completes
//! during the capture, refused, the target left running. What capture cannot see (a request in
//! flight that does not complete during the capture) is said in its warning, checked here too.

use std::path::Path;

use psnc_format::Image;
use psnc_tests::{
    assert_running_untraced, restore_run, targets, Bits, Case, ProcGuard, RunOpts, Spawn, Target,
};

const IDLE: Case = Case {
    name: "aio",
    args: &["idle"],
    expect: &[
        "idle_ring",
        "idle_submit",
        "idle_new_read",
        "idle_nothing_left",
        "idle_destroy",
        "idle_destroyed",
    ],
};

const PENDING_CHECKS: [&str; 7] = [
    "pending_ring",
    "pending_completed_events",
    "pending_submit",
    "pending_new_read",
    "pending_nothing_left",
    "pending_destroy",
    "pending_destroyed",
];

const PENDING: Case = Case {
    name: "aio",
    args: &["pending"],
    expect: &PENDING_CHECKS,
};

const TWO: Case = Case {
    name: "aio",
    args: &["two"],
    expect: &[
        "pending_ring",
        "pending_completed_events",
        "pending_submit",
        "pending_new_read",
        "pending_nothing_left",
        "pending_destroy",
        "pending_destroyed",
        "big_ring",
        "big_ring_size",
        "big_submit",
        "big_new_read",
        "big_nothing_left",
        "big_destroy",
        "big_destroyed",
    ],
};

/// The context ids the target reported (`INFO ctx A nr N ctx2 B nr M`; 0 for none).
fn reported_contexts(t: &Target) -> Vec<(u64, u32)> {
    let r = t.report();
    let line = r
        .lines
        .iter()
        .find(|l| l.starts_with("INFO ctx "))
        .unwrap_or_else(|| panic!("no INFO ctx line:\n{}", r.lines.join("\n")));
    let w: Vec<&str> = line.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0);
    let mut out = vec![(hex(w[2]), w[4].parse().unwrap_or(0))];
    if hex(w[6]) != 0 {
        out.push((hex(w[6]), w[8].parse().unwrap_or(0)));
    }
    out.sort();
    out
}

/// The image holds the contexts where the target has them, not as VMAs, with the completed
/// events of the pending ring.
fn check_image(image: &Path, pid: u32, want: &[(u64, u32)], pending: bool) {
    let img = Image::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let p = img
        .checkpoint()
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .expect("the target in the image");
    let got: Vec<(u64, u32)> = p.aio.iter().map(|a| (a.ring, a.nr_events)).collect();
    assert_eq!(got, want, "{:?}", p.aio);
    for a in &p.aio {
        assert!(
            !p.vmas
                .iter()
                .any(|v| v.start < a.ring + a.ring_len && a.ring < v.end),
            "the ring {:#x} is also a VMA",
            a.ring
        );
        if pending && a.nr_events == 127 {
            // Head 2 slots before the end, tail 3: 5 events, the first with data 26.
            assert_eq!((a.head, a.tail, a.events.len()), (125, 3, 5 * 32), "{a:?}");
            assert_eq!(a.events[0], 26);
        } else {
            assert_eq!(a.events.len(), 0, "{a:?}");
        }
    }
}

fn roundtrip(case: &Case, bits: Bits, pending: bool) {
    let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
    let want = reported_contexts(&t);
    let image = t.dir.join("image");
    let r = t.capture_kill(&image);
    let ids: Vec<String> = want.iter().map(|(c, _)| format!("{c:#x}")).collect();
    assert!(
        r.stderr.contains(&format!(
            "psnc-capture: warning: PID {}: AIO context(s) {}: a request still in flight \
             (submitted, not completed) cannot be seen from user space and is not in the image",
            t.pid(),
            ids.join(", ")
        )),
        "no warning about requests in flight:\n{r}"
    );
    check_image(&image, t.pid(), &want, pending);
    let r = restore_run(&image, &["-v"], RunOpts::default());
    r.assert_ok();
    let pid: u32 = r
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("psnc-restore printed no PID:\n{r}"));
    assert_eq!(pid, t.pid(), "the restored process has another PID");
    t.proc = ProcGuard::foreign(pid);
    assert!(
        r.stderr
            .contains(&format!("{} AIO context(s) restored", want.len())),
        "-v does not report the contexts:\n{r}"
    );
    t.verify().assert_passed(case.expect);
}

fn each_bits(f: impl Fn(Bits)) {
    f(Bits::B64);
    if targets().m32 {
        f(Bits::B32);
    } else {
        psnc_testkit::skip(
            "aio i386",
            "no -m32 targets (install gcc-multilib; scripts/test.sh does)",
        );
    }
}

#[test]
fn aio_targets_pass_without_a_checkpoint() {
    each_bits(|bits| {
        for case in [&IDLE, &PENDING, &TWO] {
            let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
            t.verify().assert_passed(case.expect);
        }
    });
}

#[test]
fn an_idle_context_is_used_after_restore() {
    each_bits(|bits| roundtrip(&IDLE, bits, false));
}

#[test]
fn completed_events_are_reaped_after_restore() {
    each_bits(|bits| roundtrip(&PENDING, bits, true));
}

#[test]
fn two_contexts_in_one_process() {
    each_bits(|bits| roundtrip(&TWO, bits, true));
}

#[test]
fn a_ring_the_kernel_never_produces_is_refused_and_the_target_runs_on() {
    each_bits(|bits| {
        let mut t = Spawn::new("aio").args(&["badring"]).bits(bits).start();
        let (ctx, nr) = reported_contexts(&t)[0];
        let image = t.dir.join("image");
        let r = t.capture(&image, &["--kill"]);
        r.assert_status(69);
        assert!(
            r.stderr.contains(&format!(
                "PID {}: AIO context {ctx:#x}: the ring is not as the kernel lays it out (its \
                 head {} is not below nr {nr}); psnc-capture cannot tell what it holds",
                t.pid(),
                nr + 5
            )),
            "{r}"
        );
        assert!(!image.exists(), "an image after a refused capture");
        assert_running_untraced(t.pid());
        t.verify().assert_passed(&["badring_untouched"]);
    });
}

#[test]
fn a_request_in_flight_is_refused_and_the_target_runs_on() {
    each_bits(|bits| {
        let mut t = Spawn::new("aio").args(&["inflight"]).bits(bits).start();
        let (ctx, _) = reported_contexts(&t)[0];
        let image = t.dir.join("image");
        let r = t.capture(&image, &["--kill"]);
        r.assert_status(69);
        assert!(
            r.stderr.contains(&format!(
                "PID {}: AIO context {ctx:#x} has requests in flight (an event completed while \
                 the process was stopped: ring tail 0 -> 1), which psnc-capture cannot capture; \
                 capture it again once its requests have completed",
                t.pid()
            )),
            "{r}"
        );
        assert!(!image.exists(), "an image after a refused capture");
        assert_running_untraced(t.pid());
        t.verify().assert_passed(&["inflight_completed"]);
    });
}
