//! Held signals, memory access both ways, the small syscall wrappers, and the exact errors.

// Tests of psnc-ptrace, the one crate allowed unsafe code: raw calls that set up a target's state.
#![allow(unsafe_code)]

mod common;

use std::os::fd::AsFd;

use common::{slept, Target};
use nix::errno::Errno;
use psnc_ptrace::{
    sys, vm_read, Arch, OnSignal, Options, ProcMem, PtraceError, Regs, RemoteRange,
    RemoteSyscaller, Stop, Sysno, Tracee,
};

/// A signal that arrives while the thread is stopped is dequeued when the engine resumes it; it
/// must be held, not lost, and re-injected at detach with its original siginfo. With EXITKILL
/// the thread ends in the step's signal-delivery-stop; without, it is parked in an interrupt
/// stop and detach brings it back into a signal-delivery-stop for the held signal.
fn held_signal_is_reinjected(a: Arch, options: Options) {
    let Some(tgt) = Target::start(a, 1500) else {
        psnc_testkit::skip!(
            format!(
                "held_signal_is_reinjected {a:?} exitkill={}",
                options.contains(Options::PTRACE_O_EXITKILL)
            ),
            psnc_testkit::NO_M32
        );
    };
    let pid = tgt.pid();
    let mut t = Tracee::seize(pid, options).expect("seize");
    assert_eq!(t.stop(OnSignal::Hold).expect("stop"), Stop::Interrupt);
    let regs = t.get_regs().expect("regs");
    // Queued while the thread is in its ptrace-stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("kill");
    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        assert_eq!(sc.getpid().expect("getpid"), pid);
        assert_eq!(sc.getpid().expect("getpid again"), pid);
    }
    let parked = !options.contains(Options::PTRACE_O_EXITKILL);
    assert_eq!(
        matches!(t.current_stop(), Some(Stop::Interrupt)),
        parked,
        "{:?}",
        t.current_stop()
    );
    let held = t.held_signals().to_vec();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].signo(), libc::SIGUSR1);
    assert_eq!(held[0].code(), libc::SI_USER);
    assert_eq!(t.get_regs().expect("regs"), regs);
    t.detach().expect("detach");
    expect_usr1_from_us(tgt);
}

/// The target took SIGUSR1 with our siginfo (our pid, SI_USER) and its nanosleep returned EINTR
/// (a handler ran; nanosleep is not restarted even with SA_RESTART).
fn expect_usr1_from_us(tgt: Target) {
    let (out, code) = tgt.finish();
    assert_eq!(code, 0, "{out}");
    let me = std::process::id();
    assert!(out.contains(&format!("usr1 pid={me} code=0")), "{out}");
    assert_eq!(out.matches("usr1").count(), 1, "delivered once: {out}");
    let (ret, errno, _) = slept(&out);
    assert_eq!((ret, errno), (-1, libc::EINTR), "{out}");
}

#[test]
fn x86_64_held_signal_is_reinjected() {
    held_signal_is_reinjected(Arch::X86_64, Options::PTRACE_O_EXITKILL);
    held_signal_is_reinjected(Arch::X86_64, Options::empty());
}

#[test]
fn i386_held_signal_is_reinjected() {
    held_signal_is_reinjected(Arch::I386, Options::PTRACE_O_EXITKILL);
    held_signal_is_reinjected(Arch::I386, Options::empty());
}

/// A signal that reaches the seized thread before our interrupt: `Deliver` lets the thread take
/// it and still ends in the interrupt stop; `Hold` stops in the signal-delivery-stop and the
/// signal survives remote syscalls and parking until detach.
#[test]
fn signal_before_the_interrupt_is_delivered_or_held() {
    for policy in [OnSignal::Deliver, OnSignal::Hold] {
        let tgt = Target::start(Arch::X86_64, 1500).expect("target");
        let pid = tgt.pid();
        let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .expect("kill");
        // The tracee reports the signal: it sits in a signal-delivery-stop ("t") before we ask.
        common::wait_state(pid, 't');
        match policy {
            OnSignal::Deliver => {
                assert_eq!(t.stop(policy).expect("stop"), Stop::Interrupt);
                assert!(t.held_signals().is_empty());
            }
            OnSignal::Hold => {
                assert_eq!(t.stop(policy).expect("stop"), Stop::Signal(libc::SIGUSR1));
                assert_eq!(t.held_signals().len(), 1);
                let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
                assert_eq!(sc.getpid().expect("getpid"), pid);
                drop(sc);
                assert_eq!(t.current_stop(), Some(Stop::Interrupt));
                assert_eq!(t.held_signals().len(), 1);
            }
        }
        t.detach().expect("detach");
        expect_usr1_from_us(tgt);
    }
}

/// Requeued from inside the target, a signal keeps its si_code, sender and value; for i386 the
/// siginfo goes through the compat conversion and comes back the same through PEEKSIGINFO.
fn requeue_keeps_siginfo(a: Arch) {
    let Some(tgt) = Target::start(a, 10_000) else {
        psnc_testkit::skip!(format!("requeue_keeps_siginfo {a:?}"), psnc_testkit::NO_M32);
    };
    let pid = tgt.pid();
    let mut t = Tracee::seize(pid, Options::PTRACE_O_EXITKILL).expect("seize");
    t.stop(OnSignal::Hold).expect("stop");
    let queued = t.peek_siginfo(true).expect("peek shared");
    assert_eq!(queued.len(), 1);
    // SI_QUEUE from the target itself, with value 7: queue a thread-directed copy.
    let rt = queued[0];
    // A kernel-made SIGCHLD (CLD_EXITED, pid 4242, status 7, utime 11, stime 12): only the
    // target itself may queue that.
    let mut chld = [0u8; 128];
    chld[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
    chld[8..12].copy_from_slice(&libc::CLD_EXITED.to_ne_bytes());
    chld[16..20].copy_from_slice(&4242i32.to_ne_bytes());
    chld[24..28].copy_from_slice(&7i32.to_ne_bytes());
    chld[32..40].copy_from_slice(&11i64.to_ne_bytes());
    chld[40..48].copy_from_slice(&12i64.to_ne_bytes());
    let chld = psnc_ptrace::KernelSigInfo(chld);
    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        sc.rt_tgsigqueueinfo(pid, pid, &rt).expect("requeue rt");
        sc.rt_tgsigqueueinfo(pid, pid, &chld).expect("queue chld");
        // More than one PTRACE_PEEKSIGINFO batch (32) of real-time signals.
        for _ in 0..40 {
            sc.rt_tgsigqueueinfo(pid, pid, &rt).expect("requeue rt");
        }
        sc.finish().expect("finish");
    }
    // From outside, the same SIGCHLD is refused: that is why it runs inside.
    // SAFETY: rt_tgsigqueueinfo reads one 128-byte siginfo_t from a buffer that lives across it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            pid,
            libc::SIGCHLD,
            chld.0.as_ptr(),
        )
    };
    assert_eq!((r, Errno::last()), (-1, Errno::EPERM));
    let private = t.peek_siginfo(false).expect("peek private");
    assert_eq!(private.len(), 43, "{private:?}");
    assert_eq!(private.iter().filter(|s| s.0 == rt.0).count(), 41);
    assert_eq!(private[0].signo(), libc::SIGUSR2);
    let got_rt = private
        .iter()
        .find(|s| s.signo() == rt.signo())
        .expect("rt requeued");
    assert_eq!(&got_rt.0[..32], &rt.0[..32]);
    let got_chld = private
        .iter()
        .find(|s| s.signo() == libc::SIGCHLD)
        .expect("chld queued");
    assert_eq!(&got_chld.0[..48], &chld.0[..48]);
    t.detach().expect("detach");
}

#[test]
fn x86_64_requeue_keeps_siginfo() {
    requeue_keeps_siginfo(Arch::X86_64);
}

#[test]
fn i386_requeue_keeps_siginfo() {
    requeue_keeps_siginfo(Arch::I386);
}

#[test]
fn memory_read_many_ranges_partial_and_through_protections() {
    let tgt = Target::start(Arch::X86_64, 10_000).expect("target");
    let pid = tgt.pid();
    let (rw, none) = (tgt.ready.rw, tgt.ready.prot_none);

    // Two readable ranges in one call.
    let mut buf = vec![0u8; 200];
    let n = vm_read(
        pid,
        &[
            RemoteRange { addr: rw, len: 100 },
            RemoteRange {
                addr: rw + 1000,
                len: 100,
            },
        ],
        &mut buf,
    )
    .expect("vm_read");
    assert_eq!(n, 200);
    assert!(buf.iter().all(|&b| b == 0xa5));
    // The second range is PROT_NONE: the read stops there.
    let n = vm_read(
        pid,
        &[
            RemoteRange { addr: rw, len: 100 },
            RemoteRange {
                addr: none,
                len: 100,
            },
        ],
        &mut buf,
    )
    .expect("vm_read");
    assert_eq!(n, 100);
    // Nothing readable at all.
    assert_eq!(
        vm_read(
            pid,
            &[RemoteRange {
                addr: none,
                len: 100
            }],
            &mut buf
        )
        .expect("vm_read"),
        0
    );
    assert!(matches!(
        psnc_ptrace::vm_read_exact(pid, none, &mut buf[..10]),
        Err(PtraceError::ShortTransfer { op: "read", addr, len: 10, done: 0, .. }) if addr == none
    ));
    // More ranges than IOV_MAX in one request.
    let ranges: Vec<RemoteRange> = (0..2000)
        .map(|i| RemoteRange {
            addr: rw + (i % 4000),
            len: 2,
        })
        .collect();
    let mut big = vec![0u8; 4000];
    assert_eq!(vm_read(pid, &ranges, &mut big).expect("vm_read many"), 4000);
    assert!(big.iter().all(|&b| b == 0xa5));

    // /proc/PID/mem reads and writes through PROT_NONE.
    let mem = ProcMem::open(pid, true).expect("open mem");
    let mut page = vec![0u8; 4096];
    mem.read_exact_at(none, &mut page).expect("read prot_none");
    assert!(page.iter().all(|&b| b == 0x5a));
    mem.write_at(none + 10, b"written")
        .expect("write prot_none");
    mem.read_exact_at(none + 10, &mut page[..7])
        .expect("read back");
    assert_eq!(&page[..7], b"written");
    // process_vm_writev needs a writable page.
    assert_eq!(psnc_ptrace::vm_write(pid, rw, b"abc").expect("vm_write"), 3);
    assert!(matches!(
        psnc_ptrace::vm_write(pid, none, b"abc"),
        Err(PtraceError::Syscall {
            op: "process_vm_writev",
            errno: Errno::EFAULT,
            ..
        })
    ));
    // Many pieces in one request (more than IOV_MAX), then one that is not writable: the
    // count stops at it.
    let ones = [1u8; 2];
    let pieces: Vec<(u64, &[u8])> = (0..2000)
        .map(|i| (rw + 2 * (i % 2000), &ones[..]))
        .collect();
    assert_eq!(
        psnc_ptrace::vm_write_many(pid, &pieces).expect("vm_write_many"),
        4000
    );
    mem.read_exact_at(rw, &mut page[..4000]).expect("read back");
    assert!(page[..4000].iter().all(|&b| b == 1));
    let partial: Vec<(u64, &[u8])> = vec![(rw, b"ab"), (none, b"cd"), (rw + 2, b"ef")];
    assert_eq!(
        psnc_ptrace::vm_write_many(pid, &partial).expect("vm_write_many partial"),
        2
    );
    // Unmapped address: a short transfer, named.
    assert!(matches!(
        mem.write_at(8, b"x"),
        Err(PtraceError::ShortTransfer {
            op: "write",
            addr: 8,
            len: 1,
            done: 0,
            ..
        })
    ));
}

#[test]
fn pidfd_getfd_and_tee_copy_pipe_bytes_without_consuming() {
    let tgt = Target::start(Arch::X86_64, 10_000).expect("target");
    let pid = tgt.pid();
    let pidfd = sys::pidfd_open(pid).expect("pidfd_open");
    let dup = sys::pidfd_getfd(pidfd.as_fd(), pid, tgt.ready.pipe_rd).expect("pidfd_getfd");
    let read_copy = || {
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        let n = sys::tee(dup.as_fd(), wr.as_fd(), 1 << 16, true).expect("tee");
        let mut b = vec![0u8; n];
        nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&rd), &mut b).expect("read");
        b
    };
    assert_eq!(read_copy(), b"pipedata");
    // Still there for the target.
    assert_eq!(read_copy(), b"pipedata");
    assert!(matches!(
        sys::pidfd_getfd(pidfd.as_fd(), pid, 999),
        Err(PtraceError::Syscall {
            op: "pidfd_getfd",
            errno: Errno::EBADF,
            ..
        })
    ));
    let m = sys::memfd_create(c"psnc-test", libc::MFD_CLOEXEC).expect("memfd");
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&m)
    ))
    .expect("link");
    assert!(
        link.to_string_lossy().starts_with("/memfd:psnc-test"),
        "{link:?}"
    );
    let p = sys::personality(0xffff_ffff).expect("personality");
    assert_eq!(sys::personality(p).expect("set"), p);
}

#[test]
fn errors_name_the_operation_and_thread() {
    // A PID that does not exist.
    let gone = {
        let mut c = std::process::Command::new("true").spawn().expect("spawn");
        let pid = c.id() as i32;
        c.wait().expect("wait");
        pid
    };
    let e = Tracee::seize(gone, Options::empty()).expect_err("seize a dead pid");
    assert!(
        matches!(e, PtraceError::Ptrace { op: "PTRACE_SEIZE", errno: Errno::ESRCH, tid } if tid == gone),
        "{e}"
    );

    let tgt = Target::start(Arch::X86_64, 10_000).expect("target");
    let pid = tgt.pid();
    let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
    // Seizing twice is refused by the kernel.
    assert!(matches!(
        Tracee::seize(pid, Options::empty()),
        Err(PtraceError::Ptrace {
            op: "PTRACE_SEIZE",
            errno: Errno::EPERM,
            ..
        })
    ));
    // Running: no register access.
    assert!(matches!(
        t.get_regs(),
        Err(PtraceError::NotStopped {
            op: "PTRACE_GETREGSET",
            ..
        })
    ));
    t.stop(OnSignal::Deliver).expect("stop");
    // i386 registers for a 64-bit thread.
    assert!(matches!(
        t.set_regs(&Regs::I386([0; 17])),
        Err(PtraceError::WrongArch {
            thread: Arch::X86_64,
            given: Arch::I386,
            ..
        })
    ));
    let regs = t.get_regs().expect("regs");
    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        // munmap of an unaligned address: EINVAL from inside the target, named.
        assert!(matches!(
            sc.munmap(0x1001, 4096),
            Err(PtraceError::RemoteSyscall { sysno: Sysno::Munmap, errno: Errno::EINVAL, tid }) if tid == pid
        ));
        assert_eq!(
            sc.syscall_raw(Sysno::Close, &[9999]).expect("raw close"),
            -i64::from(libc::EBADF)
        );
    }
    assert_eq!(t.get_regs().expect("regs"), regs);
    // An "instruction" in a non-executable page faults: an error, the registers come back, the
    // fault is not held (re-injecting it would kill the target).
    {
        let mut sc = RemoteSyscaller::new(&mut t, tgt.ready.rw).expect("syscaller");
        let e = sc.getpid().expect_err("fault");
        assert!(
            matches!(e, PtraceError::InjectionFault { signal: libc::SIGSEGV, addr, .. } if addr == tgt.ready.rw),
            "{e}"
        );
    }
    assert!(t.held_signals().is_empty());
    assert_eq!(t.get_regs().expect("regs"), regs);
    t.detach().expect("detach");
    std::thread::sleep(std::time::Duration::from_millis(50));
    common::wait_state(pid, 'S');
}

#[test]
fn i386_rejects_values_above_4g() {
    let Some(tgt) = Target::start(Arch::I386, 10_000) else {
        psnc_testkit::skip!("i386_rejects_values_above_4g", psnc_testkit::NO_M32);
    };
    let mut t = Tracee::seize(tgt.pid(), Options::empty()).expect("seize");
    t.stop(OnSignal::Deliver).expect("stop");
    let regs = t.get_regs().expect("regs");
    let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
    assert!(matches!(
        sc.munmap(0x1_0000_0000, 4096),
        Err(PtraceError::DoesNotFit {
            value: 0x1_0000_0000,
            arch: Arch::I386,
            ..
        })
    ));
    // mmap2 takes the offset in pages: an unaligned offset is refused before the call.
    assert!(matches!(
        sc.mmap(
            0,
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            100
        ),
        Err(PtraceError::RemoteSyscall {
            sysno: Sysno::Mmap,
            errno: Errno::EINVAL,
            ..
        })
    ));
    let addr = sc
        .mmap(
            0,
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .expect("mmap2");
    assert!(addr < 1 << 32);
    sc.munmap(addr, 8192).expect("munmap");
    sc.finish().expect("finish");
    assert_eq!(t.get_regs().expect("regs"), regs);
}

#[test]
fn kill_ends_the_target() {
    let tgt = Target::start(Arch::X86_64, 10_000).expect("target");
    let pid = tgt.pid();
    let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
    t.stop(OnSignal::Deliver).expect("stop");
    t.kill().expect("kill");
    // We are its parent too, so kill() reaped it.
    assert!(!psnc_proc::ProcDir::new(pid).exists());
    drop(tgt);
}
