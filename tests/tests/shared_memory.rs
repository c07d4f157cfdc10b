//! Shared memory (issue 9): `MAP_SHARED | MAP_ANONYMOUS` memory and sealed memfds shared by a
//! parent and its children, or left behind by sharers that exited; each object stored once (section 15
//! `shared-memory`) and mapped by every process that had it after restore.

use std::time::Duration;

use psnc_tests::{alive, wait_for, Bits, ProcGuard, Report, RunOpts, Spawn, Target};

/// The PIDs after `prefix` on a report line (`KIDS 12 13`).
fn pids_after(r: &Report, prefix: &str) -> Vec<u32> {
    r.lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", r.lines.join("\n")))
        .split_whitespace()
        .map(|w| w.parse().expect("a pid"))
        .collect()
}

/// Captures `t` and its children `kids` with `--kill`, waits until all are gone, restores.
/// Returns the image path and guards that kill the children (original or restored, they have
/// the same PIDs) when the test ends.
fn cycle(t: &mut Target, kids: &[u32]) -> (std::path::PathBuf, Vec<ProcGuard>) {
    let guards = kids.iter().map(|&p| ProcGuard::foreign(p)).collect();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let left = wait_for(Duration::from_secs(10), || {
        kids.iter().all(|&p| !alive(p)).then_some(())
    });
    assert!(left.is_some(), "some of {kids:?} still run after --kill");
    t.restore(&image, &[], RunOpts::default());
    (image, guards)
}

/// The `/proc/PID/maps` lines of `pid` that contain `what`.
fn maps_with(pid: u32, what: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

/// `psnc-imgtool ARGS`, asserting success; its stdout.
fn imgtool(args: &[&str]) -> String {
    let r = psnc_tests::run(&psnc_tests::tool("psnc-imgtool"), args, RunOpts::default());
    r.assert_ok();
    r.stdout
}

fn counter(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "shm counter i386") {
        return;
    }
    let mut t = Spawn::new("shm").args(&["counter"]).bits(bits).start();
    let kids = pids_after(&t.report(), "KIDS ");
    let (image, _guards) = cycle(&mut t, &kids);
    // One object, mapped by all three at the same address, as a memfd now.
    let mut lines = maps_with(t.pid(), "/memfd:psnc-shared-anon");
    assert_eq!(lines.len(), 1, "{lines:?}");
    for &k in &kids {
        let l = maps_with(k, "/memfd:psnc-shared-anon");
        assert_eq!(l.len(), 1, "child {k}: {l:?}");
        lines.extend(l);
    }
    let inode = |l: &String| l.split_whitespace().nth(4).map(str::to_string);
    assert!(
        lines.iter().all(|l| inode(l) == inode(&lines[0])
            && l.split_whitespace().next() == lines[0].split_whitespace().next()),
        "not one object at one address: {lines:?}"
    );
    let info: serde_json::Value = serde_json::from_str(&imgtool(&[
        "info",
        "--json",
        image.to_str().expect("utf-8"),
    ]))
    .expect("json");
    let objects = info["shared_memory"].as_array().expect("shared_memory");
    assert_eq!(objects.len(), 1, "{info}");
    assert_eq!(objects[0]["mappings"].as_array().map(Vec::len), Some(3));

    let r = t.verify();
    let mut expect = vec!["P:children_done".to_string()];
    for n in ["P", "C1", "C2"] {
        for what in [
            "counter_is_sum",
            "own_count",
            "counted_before",
            "counter_goes_on",
            "sees_the_others",
        ] {
            expect.push(format!("{n}:{what}"));
        }
    }
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    r.assert_passed(&expect);
}

#[test]
fn counter_under_a_robust_mutex_64() {
    counter(Bits::B64);
}

#[test]
fn counter_under_a_robust_mutex_32() {
    counter(Bits::B32);
}

/// Two processes map one 8 MiB object: the image holds its pages once.
#[test]
fn object_stored_once() {
    let mut t = Spawn::new("shm").args(&["big", "8"]).start();
    let kids = pids_after(&t.report(), "KIDS ");
    let (image, _guards) = cycle(&mut t, &kids);
    let size = std::fs::metadata(&image).expect("image").len();
    assert!(
        (8 << 20..11 << 20).contains(&size),
        "the image of two processes sharing 8 MiB is {size} bytes"
    );
    let info: serde_json::Value = serde_json::from_str(&imgtool(&[
        "info",
        "--json",
        image.to_str().expect("utf-8"),
    ]))
    .expect("json");
    let big: Vec<&serde_json::Value> = info["shared_memory"]
        .as_array()
        .expect("shared_memory")
        .iter()
        .filter(|o| o["size"] == 8 << 20)
        .collect();
    assert_eq!(big.len(), 1, "{info}");
    assert_eq!(big[0]["pages"], 2048);
    assert_eq!(big[0]["mappings"].as_array().map(Vec::len), Some(2));
    t.verify()
        .assert_passed(&["P:pattern", "C:pattern", "P:sees_child_write"]);
}

fn orphan(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "shm orphan i386") {
        return;
    }
    let mut t = Spawn::new("shm").args(&["orphan"]).bits(bits).start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    // The object is 4 pages; the process maps the last 3 of them.
    let dump: serde_json::Value = serde_json::from_str(&imgtool(&[
        "dump",
        image.to_str().expect("utf-8"),
        "--section",
        "shared-memory",
        "--json",
    ]))
    .expect("json");
    let o = &dump["shared-memory"][0];
    assert_eq!(o["size"], 4 * 4096, "{dump}");
    assert_eq!(o["mappings"].as_array().map(Vec::len), Some(1), "{dump}");
    t.restore(&image, &[], RunOpts::default());
    let l = maps_with(t.pid(), "/memfd:psnc-shared-anon");
    assert!(
        l.iter()
            .any(|l| l.split_whitespace().nth(2) == Some("00001000")),
        "no mapping at offset 0x1000: {l:?}"
    );
    t.verify()
        .assert_passed(&["orphan:contents", "orphan:writable", "orphan:new_mapping"]);
}

#[test]
fn sharers_exited_before_capture_64() {
    orphan(Bits::B64);
}

#[test]
fn sharers_exited_before_capture_32() {
    orphan(Bits::B32);
}

/// `psnc-imgtool convert` keeps the shared memory objects' pages: an i386 image converted to
/// the 64-bit layout restores with the object's contents (convert used to re-pack only the
/// processes' page runs, leaving the objects' runs pointing at other bytes).
#[test]
fn converted_image_keeps_the_shared_memory_contents() {
    if !psnc_tests::m32_or_skip(Bits::B32, "shm convert i386") {
        return;
    }
    let mut t = Spawn::new("shm").args(&["orphan"]).bits(Bits::B32).start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let img64 = t.dir.join("image64");
    let back = t.dir.join("image32");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    imgtool(&["convert", "--to", "64", "-o", &s(&img64), &s(&image)]);
    imgtool(&["convert", "--to", "32", "-o", &s(&back), &s(&img64)]);
    assert!(
        std::fs::read(&image).expect("read") == std::fs::read(&back).expect("read"),
        "32 -> 64 -> 32 did not give the same bytes"
    );
    t.restore(&img64, &[], RunOpts::default());
    t.verify()
        .assert_passed(&["orphan:contents", "orphan:writable", "orphan:new_mapping"]);
}

/// The summary of spec/reader/psnc_reader.py (`--json`) of `image`.
fn python_reader(image: &std::path::Path) -> serde_json::Value {
    let reader = psnc_tests::package_dir().join("../spec/reader/psnc_reader.py");
    let r = psnc_tests::run(
        std::path::Path::new("python3"),
        &[
            reader.to_str().expect("utf-8"),
            "--json",
            image.to_str().expect("utf-8"),
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    serde_json::from_str(&r.stdout).expect("json")
}

/// The independent Python reader decodes the section as the Rust tools wrote it.
#[test]
fn python_reader_decodes_the_section() {
    let mut t = Spawn::new("shm").args(&["big", "1"]).start();
    let kids = pids_after(&t.report(), "KIDS ");
    let _originals: Vec<ProcGuard> = kids.iter().map(|&p| ProcGuard::foreign(p)).collect();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let v = python_reader(&image);
    let objects = v["shared_memory"].as_array().expect("shared_memory");
    let big: Vec<&serde_json::Value> = objects.iter().filter(|o| o["size"] == 1 << 20).collect();
    assert_eq!(big.len(), 1, "{v}");
    assert_eq!(big[0]["pages"], 256, "{v}");
    assert_eq!(big[0]["mappings"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(big[0]["kind"], "Anonymous", "{v}");
}

/// Workers of python3 `multiprocessing` (fork start method) add to a total and to their own
/// count in an anonymous `mmap` (MAP_SHARED | MAP_ANONYMOUS) under a `multiprocessing.Lock` (a
/// POSIX semaphore in a deleted /dev/shm file mapped by all); the parent logs the counts.
const PY_WORKERS: &str = r#"
import mmap, multiprocessing as mp, struct, sys, time
N = 3
def work(i, mem, lock):
    while True:
        with lock:
            total, mine = struct.unpack_from("q", mem, 0)[0], struct.unpack_from("q", mem, 8 * (1 + i))[0]
            struct.pack_into("q", mem, 0, total + 1)
            struct.pack_into("q", mem, 8 * (1 + i), mine + 1)
        time.sleep(0.005)
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    mem = mmap.mmap(-1, 1 << 20)
    lock = ctx.Lock()
    ps = [ctx.Process(target=work, args=(i, mem, lock), daemon=True) for i in range(N)]
    for p in ps:
        p.start()
    while True:
        time.sleep(0.05)
        with lock:
            vals = struct.unpack_from("q" * (N + 1), mem, 0)
        with open(sys.argv[1], "a") as f:
            f.write(" ".join(map(str, vals)) + "\n")
"#;

/// The same protocol on `multiprocessing.Value` and `Array`: shared ctypes in an arena that
/// multiprocessing maps `MAP_SHARED` from a deleted temporary file whose fd every worker inherits
/// (one file description across fork, fd-shares, and one shared file mapping).
const PY_VALUES: &str = r#"
import multiprocessing as mp, sys, time
N = 3
def work(i, total, counts):
    while True:
        with total.get_lock():
            total.value += 1
            counts[i] += 1
        time.sleep(0.005)
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    total = ctx.Value("q", 0)
    counts = ctx.Array("q", N, lock=False)
    ps = [ctx.Process(target=work, args=(i, total, counts), daemon=True) for i in range(N)]
    for p in ps:
        p.start()
    while True:
        time.sleep(0.05)
        with total.get_lock():
            vals = [total.value] + list(counts)
        with open(sys.argv[1], "a") as f:
            f.write(" ".join(map(str, vals)) + "\n")
"#;

/// The same protocol on `multiprocessing.shared_memory`: a named file in /dev/shm that each
/// worker opens again by name and maps `MAP_SHARED` (one tmpfs file, mapped by four processes
/// through four separate opens).
const PY_SHARED_MEMORY: &str = r#"
import multiprocessing as mp, struct, sys, time
from multiprocessing import shared_memory
N = 3
def work(i, name, lock):
    shm = shared_memory.SharedMemory(name=name)
    while True:
        with lock:
            total, mine = struct.unpack_from("q", shm.buf, 0)[0], struct.unpack_from("q", shm.buf, 8 * (1 + i))[0]
            struct.pack_into("q", shm.buf, 0, total + 1)
            struct.pack_into("q", shm.buf, 8 * (1 + i), mine + 1)
        time.sleep(0.005)
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    shm = shared_memory.SharedMemory(create=True, size=4096)
    with open(sys.argv[1] + ".shm", "w") as f:
        f.write(shm.name)
    lock = ctx.Lock()
    ps = [ctx.Process(target=work, args=(i, shm.name, lock), daemon=True) for i in range(N)]
    for p in ps:
        p.start()
    try:
        while True:
            time.sleep(0.05)
            with lock:
                vals = struct.unpack_from("q" * (N + 1), shm.buf, 0)
            with open(sys.argv[1], "a") as f:
                f.write(" ".join(map(str, vals)) + "\n")
    finally:
        shm.unlink()
"#;

/// The complete lines of the python log, as numbers.
fn log_lines(log: &std::path::Path) -> Vec<Vec<u64>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .collect()
}

#[test]
fn python_multiprocessing_workers() {
    python_workers("shm-python", PY_WORKERS, 3);
}

#[test]
fn python_multiprocessing_shared_memory_in_dev_shm() {
    // The fourth child is multiprocessing's resource tracker, which shared_memory starts.
    python_workers("shm-python-devshm", PY_SHARED_MEMORY, 4);
}

#[test]
fn python_multiprocessing_value_and_array() {
    python_workers("shm-python-values", PY_VALUES, 3);
}

/// Runs a python3 script of the `PY_WORKERS` protocol (a root and 3 fork workers counting in
/// shared memory, the root logging `total c0 c1 c2` lines; `children` counts the root's children,
/// helpers included), captures it with --kill, restores it, and checks that no update was lost and
/// that every count goes on.
fn python_workers(name: &str, script: &str, children: usize) {
    let dir = psnc_tests::WorkDir::new(name);
    let log = dir.join("log");
    let mut p = psnc_tests::spawn_program(
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&log),
    );
    let kids = wait_for(Duration::from_secs(20), || {
        let k: Vec<u32> = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (k.len() == children && log_lines(&log).len() >= 5).then_some(k)
    })
    .expect("python did not start its workers and log");
    let _guards: Vec<ProcGuard> = kids.iter().map(|&k| ProcGuard::foreign(k)).collect();
    let image = dir.join("image");
    psnc_tests::capture_kill(&mut p, &image);
    assert!(
        wait_for(Duration::from_secs(10), || kids
            .iter()
            .all(|&k| !alive(k))
            .then_some(()))
        .is_some(),
        "workers {kids:?} survived --kill"
    );
    let before = log_lines(&log);
    let last = before.last().expect("a line").clone();
    let r = psnc_tests::restore(&image, &[], RunOpts::default());
    assert_eq!(r.pid, p.pid);
    let _root = r;
    // The restored workers have the old PIDs but new start times: guard them again, or they
    // outlive the test (daemonic workers end only with an orderly exit of the root).
    let _restored: Vec<ProcGuard> = kids.iter().map(|&k| ProcGuard::foreign(k)).collect();
    let after = wait_for(Duration::from_secs(20), || {
        let l = log_lines(&log);
        (l.len() >= before.len() + 10).then_some(l)
    })
    .expect("the restored python logs no more");
    for l in &after {
        assert_eq!(l.len(), 4, "{l:?}");
        assert_eq!(l[0], l[1] + l[2] + l[3], "an update was lost: {l:?}");
    }
    let end = after.last().expect("a line");
    for i in 0..4 {
        assert!(
            end[i] > last[i],
            "count {i} stopped: {last:?} at capture, {end:?} now"
        );
    }
    // The killed script cannot unlink its /dev/shm file itself.
    if let Ok(name) = std::fs::read_to_string(log.with_extension("shm")) {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(name.trim()));
    }
}

/// A sealed memfd, mapped shared by a parent and its child with its fd closed: one memfd after
/// restore, with its name, contents and seals (still enforced).
fn memfd(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "shm memfd i386") {
        return;
    }
    let mut t = Spawn::new("shm").args(&["memfd"]).bits(bits).start();
    let kids = pids_after(&t.report(), "KIDS ");
    let (image, _guards) = cycle(&mut t, &kids);
    let dump: serde_json::Value = serde_json::from_str(&imgtool(&[
        "dump",
        image.to_str().expect("utf-8"),
        "--section",
        "shared-memory",
        "--json",
    ]))
    .expect("json");
    let o = &dump["shared-memory"][0];
    assert_eq!(
        o["kind"],
        serde_json::json!({"Memfd": {"name": "psnc-buf", "seals": 6}}),
        "{dump}"
    );
    assert_eq!(o["mappings"].as_array().map(Vec::len), Some(2), "{dump}");
    let summary = python_reader(&image);
    let o = &summary["shared_memory"][0];
    assert_eq!(
        (&o["kind"], o["size"].as_u64()),
        (&serde_json::json!("Memfd"), Some(3 * 4096)),
        "{summary}"
    );
    for pid in [t.pid(), kids[0]] {
        let l = maps_with(pid, "/memfd:psnc-buf (deleted)");
        assert_eq!(l.len(), 1, "pid {pid}: {l:?}");
    }
    t.verify().assert_passed(&[
        "memfd:pattern",
        "memfd:sees_child_write",
        "memfd:reopen",
        "memfd:seals",
        "memfd:seals_enforced",
        "memfd:write",
    ]);
}

#[test]
fn sealed_memfd_mapping_64() {
    memfd(Bits::B64);
}

#[test]
fn sealed_memfd_mapping_32() {
    memfd(Bits::B32);
}
