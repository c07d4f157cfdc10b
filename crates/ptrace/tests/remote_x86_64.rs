//! Remote syscalls and register handling against real 64-bit processes.

use std::process::{Child, Command};

use psnc_proc::ProcDir;
use psnc_ptrace::{arch::x86_64 as r, OnSignal, Options, Regs, RemoteSyscaller, Stop, Tracee};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Killed {
    Killed(
        Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep"),
    )
}

#[test]
fn seize_stop_remote_getpid_brk_mmap_restore_regs() {
    let child = sleeper();
    let pid = child.0.id() as i32;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
    let stop = t.stop(OnSignal::Deliver).expect("stop");
    assert_eq!(stop, Stop::Interrupt);
    assert_eq!(t.arch().expect("arch"), psnc_ptrace::Arch::X86_64);
    let before = t.get_regs().expect("regs");
    let Regs::X86_64(b) = before else {
        panic!("not x86_64: {before:?}")
    };
    assert_eq!(b[r::CS], 0x33);
    // sleep is blocked in clock_nanosleep: interrupted with a restart code.
    assert!(before.in_restartable_syscall(), "{before:?}");

    let mut sc = RemoteSyscaller::find(&mut t).expect("find insn");
    assert_eq!(sc.getpid().expect("getpid"), pid);
    let brk = sc.brk(0).expect("brk");
    assert!(brk > 0);
    let addr = sc
        .mmap(
            0,
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .expect("mmap");
    let maps = ProcDir::new(pid).maps().expect("maps");
    assert!(
        maps.iter()
            .any(|m| m.start == addr && m.end == addr + 8192 && m.perms() == "rw-p"),
        "{maps:#?}"
    );
    sc.mem().write_at(addr, b"hello").expect("write");
    let mut buf = [0u8; 5];
    psnc_ptrace::vm_read_exact(pid, addr, &mut buf).expect("vm_read");
    assert_eq!(&buf, b"hello");
    sc.munmap(addr, 8192).expect("munmap");
    let maps = ProcDir::new(pid).maps().expect("maps");
    assert!(!maps.iter().any(|m| m.start == addr), "{maps:#?}");
    sc.finish().expect("finish");

    let after = t.get_regs().expect("regs");
    assert_eq!(before, after);
    t.detach().expect("detach");
    // Still sleeping, not dead.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let stat = ProcDir::new(pid).stat().expect("stat");
    assert_eq!(stat.state, 'S', "{stat:?}");
}
