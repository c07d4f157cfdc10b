//! System V shared memory (issues 9 and 10, section 22 `sysv-shm`): a keyed segment attached
//! twice (one attachment split by an `mprotect`) and a private segment removed while attached
//! (`SHM_DEST`), one attachment of it read-only and one with its first page unmapped, held by a
//! parent and its child. After restore the target checks the identifiers, keys, sizes, modes,
//! attach counts, contents, protections and that the two processes still share the memory.

use std::time::Duration;

use psnc_ptrace::shm;
use psnc_tests::{alive, restore_run, wait_for, Bits, ProcGuard, Report, RunOpts, Spawn, Target};

/// What the target reported: `SYSV KEY ID PRIV nattch N M`, and its child.
struct Sysv {
    key: i32,
    id: i32,
    private: i32,
    kid: u32,
}

fn sysv_line(r: &Report) -> Sysv {
    let line = r
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("SYSV "))
        .unwrap_or_else(|| panic!("no SYSV line in:\n{}", r.lines.join("\n")));
    let w: Vec<&str> = line.split_whitespace().collect();
    let kid = r
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("KIDS "))
        .and_then(|k| k.trim().parse().ok())
        .expect("KIDS line");
    Sysv {
        key: w[0].parse().expect("key"),
        id: w[1].parse().expect("id"),
        private: w[2].parse().expect("id"),
        kid,
    }
}

/// Removes the keyed segment at the end, whatever happened (a target that reached its end
/// removed it already).
struct SegmentGuard(i32, i32);

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        if shm::stat(self.0).is_ok_and(|st| st.key == self.1) {
            let _ = shm::remove(self.0);
        }
    }
}

fn start(bits: Bits) -> (Target, Sysv, SegmentGuard, ProcGuard) {
    let t = Spawn::new("shm").args(&["sysv"]).bits(bits).start();
    let s = sysv_line(&t.report());
    let guard = SegmentGuard(s.id, s.key);
    let kid = ProcGuard::foreign(s.kid);
    (t, s, guard, kid)
}

fn capture_kill(t: &mut Target, s: &Sysv) -> std::path::PathBuf {
    let image = t.dir.join("image");
    t.capture_kill(&image);
    wait_for(Duration::from_secs(10), || (!alive(s.kid)).then_some(()))
        .expect("the child gone after --kill");
    image
}

fn segments(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "sysv shm i386") {
        return;
    }
    let (mut t, s, _segment, _kid) = start(bits);
    let image = capture_kill(&mut t, &s);
    let r = psnc_tests::run(
        &psnc_tests::tool("psnc-imgtool"),
        &[
            "dump",
            image.to_str().expect("utf-8"),
            "--section",
            "sysv-shm",
            "--json",
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    let dump: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let segs = dump["sysv-shm"].as_array().expect("segments");
    assert_eq!(segs.len(), 2, "{dump}");
    let keyed = segs.iter().find(|x| x["shmid"] == s.id).expect("keyed");
    let private = segs
        .iter()
        .find(|x| x["shmid"] == s.private)
        .expect("private");
    // Two processes: one whole attachment and one split in three, each.
    assert_eq!(
        keyed["attachments"].as_array().map(Vec::len),
        Some(8),
        "{keyed}"
    );
    assert_eq!(keyed["size"], 3 * 4096 + 100, "{keyed}");
    assert_eq!(keyed["removed"], false, "{keyed}");
    assert_eq!(
        private["attachments"].as_array().map(Vec::len),
        Some(4),
        "{private}"
    );
    assert_eq!(private["removed"], true, "{private}");
    // The keyed segment outlived the kill: restore replaces it, saying so.
    assert!(shm::stat(s.id).is_ok_and(|st| st.nattch == 0));
    let run = t.restore_with_output(&image, &[], RunOpts::default());
    assert!(
        run.stderr
            .contains(&format!("System V segment {} (key", s.id))
            && run.stderr.contains("replaced by the image's"),
        "no line about the leftover segment:\n{run}"
    );
    t.verify().assert_passed(&[
        "sysv:same_id_by_key",
        "sysv:keyed_stat",
        "sysv:keyed_nattch",
        "sysv:removed_stat",
        "sysv:removed_nattch",
        "sysv:contents",
        "sysv:second_attachment",
        "sysv:removed_contents",
        "sysv:protections",
        "sysv:sees_child_writes",
        "sysv:new_attach",
        "sysv:remove",
    ]);
}

#[test]
fn segments_shared_by_parent_and_child_64() {
    segments(Bits::B64);
}

#[test]
fn segments_shared_by_parent_and_child_32() {
    segments(Bits::B32);
}

/// A segment of the image whose identifier is taken by a live segment (here the leftover of the
/// capture, attached by the test itself) is refused before anything is created, naming the
/// segment and what holds it (69); once it is detached, the same image restores.
#[test]
fn identifier_in_use_is_refused_before_anything_is_created() {
    let (mut t, s, _segment, _kid) = start(Bits::B64);
    let image = capture_kill(&mut t, &s);
    let held = shm::Attached::new(s.id, 4 * 4096, true).expect("attach the leftover");
    let r = restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    assert!(
        r.stderr
            .contains(&format!("System V shared memory segment {} ", s.id))
            && r.stderr.contains("1 attachment(s)")
            && r.stderr.contains("ipcrm"),
        "the refusal does not name the segment, its holder and the remedy:\n{r}"
    );
    assert!(!alive(t.pid()), "a process exists after the refusal");
    assert!(
        shm::stat(s.private).is_err(),
        "the private segment was made although the restore was refused"
    );
    drop(held);
    t.restore(&image, &[], RunOpts::default());
    t.verify().assert_passed(&[
        "sysv:contents",
        "sysv:keyed_nattch",
        "sysv:sees_child_writes",
    ]);
}
