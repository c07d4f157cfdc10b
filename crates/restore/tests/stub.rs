//! The generated stub, on the real kernel: it execs, as a task of the right mode, and stops at its
//! `int3`; and the system tools read the ELF the way we wrote it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use psnc_format::model::Arch;
use psnc_restore::placement::Region;
use psnc_restore::spawn::start_stub;
use psnc_restore::stub::Stub;

const BASE: u64 = 0x1000_0000;

fn stub_file(arch: Arch) -> (tempfile::TempDir, std::path::PathBuf, Stub) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("stub-{arch:?}"));
    let stub = Stub::generate(arch, BASE).unwrap();
    std::fs::write(&path, &stub.bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path, stub)
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn readelf_and_file_agree() {
    for (arch, class, machine, entry_off) in [
        (
            Arch::X86_64,
            "ELF64",
            "Advanced Micro Devices X86-64",
            176 + 2,
        ),
        (Arch::I386, "ELF32", "Intel 80386", 116 + 2),
    ] {
        let (_dir, path, stub) = stub_file(arch);
        let p = path.to_str().unwrap();
        let Some(h) = run("readelf", &["-h", "-l", "-W", p]) else {
            psnc_testkit::skip!("readelf_and_file_agree", "no readelf (install binutils)");
        };
        assert!(
            h.contains(&format!("Class:                             {class}")),
            "{h}"
        );
        assert!(
            h.contains(&format!("Machine:                           {machine}")),
            "{h}"
        );
        assert!(h.contains("EXEC (Executable file)"), "{h}");
        assert!(
            h.contains(&format!(
                "Entry point address:               {:#x}",
                BASE + entry_off
            )),
            "{h}"
        );
        assert_eq!(stub.entry, BASE + entry_off);
        let load = h
            .lines()
            .find(|l| l.trim_start().starts_with("LOAD"))
            .unwrap();
        let vaddr = load
            .split_whitespace()
            .nth(2)
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        assert_eq!(vaddr, Some(BASE), "{load}");
        assert!(load.contains("R E"), "{load}");
        let stack = h
            .lines()
            .find(|l| l.trim_start().starts_with("GNU_STACK"))
            .unwrap();
        assert!(stack.contains("RW "), "{stack}");
        let Some(f) = run("file", &["-b", p]) else {
            psnc_testkit::skip(
                format!("readelf_and_file_agree file(1) {arch:?}"),
                "no file(1) (install file)",
            );
            continue;
        };
        let bits = if arch == Arch::X86_64 {
            "64-bit"
        } else {
            "32-bit"
        };
        assert!(f.starts_with(&format!("ELF {bits} LSB executable")), "{f}");
        assert!(f.contains("statically linked"), "{f}");
    }
}

/// Run directly, untraced, the stub's `int3` kills it with SIGTRAP: proof it ran to its entry.
#[test]
fn untraced_stub_dies_of_its_int3() {
    use std::os::unix::process::ExitStatusExt;
    for arch in [Arch::X86_64, Arch::I386] {
        let (_dir, path, _) = stub_file(arch);
        // Another test thread may fork while the file is still open for writing in this one;
        // the child holds the write fd for a moment and exec fails with ETXTBSY meanwhile.
        let status = (0..50)
            .find_map(|_| match Command::new(&path).status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                r => Some(r.unwrap()),
            })
            .expect("the stub still busy after 1 s");
        assert_eq!(status.signal(), Some(libc::SIGTRAP), "{arch:?}: {status:?}");
    }
}

/// Through the restore's own spawn path: clone3, execveat of a memfd, seize; the first stop is
/// the `int3`, in the right mode, with the stub loaded where asked and its scratch area mapped.
#[test]
fn spawned_stub_stops_at_int3_in_both_modes() {
    for arch in [Arch::X86_64, Arch::I386] {
        let region = Region { base: BASE };
        let (mut task, stub) = start_stub(None, arch, region, true, false).unwrap();
        let regs = task.tracee.get_regs().unwrap();
        assert_eq!(regs.ip(), stub.entry + 1, "{arch:?}");
        let want = match arch {
            Arch::X86_64 => psnc_ptrace::Arch::X86_64,
            Arch::I386 => psnc_ptrace::Arch::I386,
        };
        assert_eq!(regs.arch(), want);
        let proc_dir = psnc_proc::ProcDir::new(task.pid);
        let maps = proc_dir.maps().unwrap();
        assert!(
            maps.iter().any(|m| m.start == BASE
                && m.end == BASE + 0x1000
                && m.perms() == "r-xp"
                && m.path.contains("/memfd:psnc-stub")),
            "{maps:#?}"
        );
        assert!(
            maps.iter()
                .any(|m| m.start == region.scratch() && m.perms() == "rw-p"),
            "{maps:#?}"
        );
        // A remote call through the stub's own instruction works in this mode.
        let pid = task
            .call("getpid", psnc_ptrace::Sysno::Getpid, &[])
            .unwrap();
        assert_eq!(pid, task.pid as u64);
        // It runs with ADDR_NO_RANDOMIZE and in a new session.
        assert_eq!(
            proc_dir.personality().unwrap() & libc::ADDR_NO_RANDOMIZE as u32,
            libc::ADDR_NO_RANDOMIZE as u32
        );
        let stat = proc_dir.stat().unwrap();
        assert_eq!(stat.session, task.pid, "session id is its PID");
        task.kill();
        assert!(!proc_dir.exists());
    }
}
