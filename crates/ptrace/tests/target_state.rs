//! Reading a real target's state through ptrace and remote syscalls, in both modes, and letting
//! it go on unharmed: its nanosleep must still complete with its full duration.

mod common;

use common::{slept, Target};
use psnc_ptrace::{arch, Arch, OnSignal, Options, Regs, RemoteSyscaller, Stop, Tracee};

const SLEEP_MS: u64 = 1500;

fn sigbit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Everything that reads state, for one mode. Returns false when the mode cannot be built.
fn read_state_and_resume(a: Arch) -> bool {
    let Some(tgt) = Target::start(a, SLEEP_MS) else {
        return false;
    };
    let pid = tgt.pid();
    let r = &tgt.ready;

    let mut t = Tracee::seize(pid, Options::PTRACE_O_EXITKILL).expect("seize");
    assert_eq!(t.stop(OnSignal::Deliver).expect("stop"), Stop::Interrupt);
    assert_eq!(t.arch().expect("arch"), a);
    let regs = t.get_regs().expect("get_regs");
    assert_eq!(regs.arch(), a);
    let view64 = t.get_regs_x86_64_view().expect("64-bit view");
    match (a, &regs) {
        (Arch::X86_64, Regs::X86_64(g)) => {
            assert_eq!(g[arch::x86_64::CS], 0x33);
            assert_eq!(g, &view64);
            assert!(g[arch::x86_64::FS_BASE] != 0, "glibc sets fs_base");
        }
        (Arch::I386, Regs::I386(g)) => {
            assert_eq!(g[arch::i386::CS], 0x23);
            assert_eq!(view64[arch::x86_64::CS], 0x23);
            assert_eq!(u64::from(g[arch::i386::GS]), r.gs);
            // glibc's i386 TLS: %gs selects GDT entry 12 (selector 12 << 3 | 3).
            let entry = (r.gs >> 3) as u32;
            let desc = t.get_thread_area(entry).expect("get_thread_area");
            assert_eq!(desc.entry_number, entry);
            assert!(desc.base_addr != 0);
            t.set_thread_area(&desc).expect("set_thread_area");
            assert_eq!(t.get_thread_area(entry).expect("again"), desc);
        }
        _ => panic!("layout {regs:?} for {a:?}"),
    }
    // Blocked in nanosleep (glibc: clock_nanosleep); PTRACE_INTERRUPT leaves a restart code.
    assert!(regs.in_restartable_syscall(), "{regs:?}");
    assert_eq!(regs.syscall_ret(), arch::restart::ERESTART_RESTARTBLOCK);

    // XSAVE area: at least legacy area + header; XSTATE_BV has x87|SSE bits available.
    let xs = t.get_xstate().expect("xstate");
    assert!(xs.len() >= 576, "xstate {} bytes", xs.len());
    let masks = psnc_ptrace::xstate_masks(&xs).expect("xstate masks");
    assert_eq!(
        masks.supported & 3,
        3,
        "x87 and SSE always supported: {masks:x?}"
    );
    assert_eq!(masks.in_use & !masks.supported, 0, "{masks:x?}");
    t.set_xstate(&xs).expect("set_xstate");
    // A wrong size is refused by the kernel.
    assert!(matches!(
        t.set_xstate(&xs[..512]),
        Err(psnc_ptrace::PtraceError::Ptrace {
            op: "PTRACE_SETREGSET(NT_X86_XSTATE)",
            ..
        })
    ));
    assert_eq!(t.get_xstate().expect("xstate again"), xs);

    let mask = t.get_sigmask().expect("sigmask");
    let rtmin1 = libc::SIGRTMIN() + 1;
    assert_eq!(
        mask & (sigbit(libc::SIGUSR2) | sigbit(rtmin1)),
        sigbit(libc::SIGUSR2) | sigbit(rtmin1)
    );
    t.set_sigmask(mask).expect("set_sigmask");

    let private = t.peek_siginfo(false).expect("peek private");
    assert_eq!(private.len(), 1, "{private:?}");
    assert_eq!(private[0].signo(), libc::SIGUSR2);
    assert_eq!(private[0].code(), libc::SI_TKILL);
    let shared = t.peek_siginfo(true).expect("peek shared");
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].signo(), rtmin1);
    assert_eq!(shared[0].code(), libc::SI_QUEUE);

    let rseq = t.get_rseq().expect("rseq");
    assert!(rseq.addr != 0 && rseq.len >= 32, "{rseq:?}");

    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        assert_eq!(sc.arch(), a);
        assert_eq!(sc.getpid().expect("getpid"), pid);
        assert_eq!(sc.brk(0).expect("brk"), r.brk);

        let usr1 = sc.get_sigaction(libc::SIGUSR1).expect("sigaction");
        assert_eq!(usr1.handler, r.handler);
        assert_eq!(
            usr1.flags & (libc::SA_SIGINFO | libc::SA_RESTART) as u64,
            (libc::SA_SIGINFO | libc::SA_RESTART) as u64
        );
        assert_eq!(usr1.mask, sigbit(libc::SIGUSR2));
        let all = sc.get_all_sigactions().expect("all sigactions");
        assert_eq!(all.len(), 64);
        assert_eq!(all[libc::SIGUSR1 as usize - 1], usr1);
        assert_eq!(all[libc::SIGKILL as usize - 1].handler, 0);
        // Write one back and read it again.
        sc.set_sigaction(libc::SIGUSR1, &usr1)
            .expect("set_sigaction");
        assert_eq!(sc.get_sigaction(libc::SIGUSR1).expect("sigaction"), usr1);

        let ss = sc.get_sigaltstack().expect("sigaltstack");
        assert_eq!((ss.sp, ss.size, ss.flags), (r.altsp, r.altsize, 0));
        sc.set_sigaltstack(&ss).expect("set_sigaltstack");

        let it = sc.getitimer(libc::ITIMER_VIRTUAL).expect("getitimer");
        assert_eq!(it.interval_sec, 500);
        assert!(it.value_sec >= 999 && it.value_sec <= 1000, "{it:?}");
        sc.setitimer(libc::ITIMER_VIRTUAL, &it).expect("setitimer");
        let pt = sc
            .timer_gettime(tgt.ready.timer as i32)
            .expect("timer_gettime");
        assert_eq!((pt.interval_sec, pt.interval_nsec), (3, 500));
        assert!(pt.value_sec >= 998 && pt.value_sec <= 1000, "{pt:?}");
        sc.timer_settime(tgt.ready.timer as i32, 0, &pt)
            .expect("timer_settime");
        assert!(matches!(
            sc.timer_gettime(12345),
            Err(psnc_ptrace::PtraceError::RemoteSyscall {
                sysno: psnc_ptrace::Sysno::TimerGettime,
                errno: nix::errno::Errno::EINVAL,
                ..
            })
        ));
        let real = sc.getitimer(libc::ITIMER_REAL).expect("getitimer real");
        assert_eq!(real, psnc_ptrace::ITimerVal::default());

        assert_eq!(sc.prctl_get_pdeathsig().expect("pdeathsig"), libc::SIGHUP);
        assert!(!sc.prctl_get_child_subreaper().expect("subreaper"));
        assert_eq!(sc.prctl_get_dumpable().expect("dumpable"), 1);
        let tid_addr = sc.prctl_get_tid_address().expect("tid address");
        assert!(tid_addr != 0 && tid_addr <= a.word_max(), "{tid_addr:#x}");
        // The batched readers give what the one-call readers give.
        let pc = sc.get_process_calls().expect("process calls");
        assert_eq!(pc.brk, sc.brk(0).expect("brk"));
        assert_eq!(
            (pc.pdeathsig, pc.child_subreaper, pc.dumpable),
            (libc::SIGHUP as u32, false, 1)
        );
        assert_eq!(pc.itimers[libc::ITIMER_REAL as usize], real);
        assert_eq!(pc.itimers[libc::ITIMER_VIRTUAL as usize].interval_sec, 500);
        let tc = sc.get_thread_calls().expect("thread calls");
        assert_eq!(
            (tc.sigaltstack.sp, tc.sigaltstack.size),
            (r.altsp, r.altsize)
        );
        assert_eq!(tc.clear_child_tid, tid_addr);
        assert_eq!(tc.robust_list.is_some(), a == Arch::I386);
        let (head, len) = sc.get_robust_list().expect("robust list");
        assert!(head != 0 && len > 0, "{head:#x} {len}");
        if a == Arch::X86_64 {
            assert_eq!(
                psnc_ptrace::sys::get_robust_list(pid).expect("get_robust_list"),
                (head, len)
            );
        }
        // A file opened inside the target, a seek beyond 4 GiB (split over two registers for
        // i386), closed again.
        let fd = sc
            .open(b"/proc/self/exe", libc::O_RDONLY | 0o100000, 0)
            .expect("open");
        assert!(fd > 2);
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("fd link");
        assert_eq!(
            link,
            std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link")
        );
        let far = 0x1_2345_6789i64;
        assert_eq!(
            sc.lseek(fd, far, libc::SEEK_SET).expect("lseek"),
            far as u64
        );
        assert_eq!(
            sc.lseek(fd, 0, libc::SEEK_CUR).expect("lseek cur"),
            far as u64
        );
        sc.close(fd).expect("close");
        assert!(matches!(
            sc.close(fd),
            Err(psnc_ptrace::PtraceError::RemoteSyscall {
                sysno: psnc_ptrace::Sysno::Close,
                errno: nix::errno::Errno::EBADF,
                ..
            })
        ));
        let (scr, _) = sc.scratch_range().expect("scratch mapped");
        sc.finish().expect("finish");
        let maps = psnc_proc::ProcDir::new(pid).maps().expect("maps");
        assert!(
            !maps.iter().any(|m| m.start == scr),
            "scratch page left behind:\n{maps:#?}"
        );
    }

    // Nothing changed: registers and the pending signals are exactly as before.
    assert_eq!(t.get_regs().expect("regs"), regs);
    assert_eq!(t.peek_siginfo(false).expect("peek"), private);
    assert_eq!(t.peek_siginfo(true).expect("peek"), shared);
    assert!(t.held_signals().is_empty());
    t.detach().expect("detach");

    let (out, code) = tgt.finish();
    assert_eq!(code, 0, "{out}");
    let (ret, errno, ms) = slept(&out);
    assert_eq!(
        (ret, errno),
        (0, 0),
        "nanosleep must complete after the injections: {out}"
    );
    assert!(
        ms + 20 >= SLEEP_MS,
        "slept only {ms} ms of {SLEEP_MS}: {out}"
    );
    true
}

#[test]
fn x86_64_state_and_nanosleep_survives_injection() {
    assert!(read_state_and_resume(Arch::X86_64));
}

#[test]
fn i386_state_and_nanosleep_survives_injection() {
    if !read_state_and_resume(Arch::I386) {
        psnc_testkit::skip(
            "i386_state_and_nanosleep_survives_injection",
            psnc_testkit::NO_M32,
        );
    }
}
