/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User-space ABI of /dev/checkpoint.
 *
 * The module hands a ptracer the per-task kernel state that user space can
 * otherwise read only by running system calls inside the stopped target
 * (signal handlers, sigaltstack, interval timers, clear_child_tid, brk, ...).
 * Every command is read-only.
 *
 * Rules of this ABI (Documentation/driver-api/ioctl.rst, autofs dev-ioctl):
 *
 *  - Every argument struct opens with struct psnc_cp_header. The caller fills
 *    in version, size and tid and zeroes flags and reserved; the module reads
 *    only the header and overwrites everything after it.
 *  - Only fixed-width fields; addresses are __u64; every __u64 sits at an
 *    8-byte offset and every struct is a multiple of 8 bytes, so i386 and
 *    x86_64 callers see the same layout (checked by kmod/tests/layout.c and
 *    crates/ptrace/src/kmod/uapi.rs) and one _IOWR number serves both.
 *  - The ioctl numbers encode the struct size. A struct never changes: a new
 *    layout or a new meaning gets a new command number, and a new feature bit
 *    in PSNC_CP_GET_VERSION. PSNC_CP_ABI_VERSION changes only if an old
 *    command ever had to change meaning, which this ABI promises not to do.
 *  - Errors: ENOTTY unknown command (includes a size the module does not
 *    know); EINVAL bad header (version, size, non-zero flags or reserved,
 *    tid <= 0, or tid != 0 for GET_VERSION); ESRCH no such thread in the
 *    caller's PID namespace, or it is exiting; EPERM caller lacks
 *    CAP_SYS_PTRACE or is not the thread's ptracer; EBUSY thread is not in a
 *    ptrace stop; EFAULT bad user pointer; EINTR interrupted by a fatal
 *    signal.
 */
#ifndef _UAPI_PSNC_CHECKPOINT_H
#define _UAPI_PSNC_CHECKPOINT_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Device node, created by the module (misc device, mode 0600). */
#define PSNC_CP_DEVICE		"/dev/checkpoint"

/* Value of psnc_cp_version.abi_version. */
#define PSNC_CP_ABI_VERSION	1

/* Value of psnc_cp_header.version: layout version of every struct here. */
#define PSNC_CP_HEADER_V1	1

/* Bits of psnc_cp_version.features: which commands this module serves. */
#define PSNC_CP_FEAT_SIGACTIONS		(1ULL << 0)
#define PSNC_CP_FEAT_SIGALTSTACK	(1ULL << 1)
#define PSNC_CP_FEAT_ITIMERS		(1ULL << 2)
#define PSNC_CP_FEAT_TASK_MISC		(1ULL << 3)
/* GET_TASK_MISC reports an interrupted relative sleep (restart_* fields). */
#define PSNC_CP_FEAT_RESTART_SLEEP	(1ULL << 4)
/* PSNC_CP_GET_TASK_MISC2 is served (module 0.2.0). */
#define PSNC_CP_FEAT_TASK_MISC2		(1ULL << 5)
/* PSNC_CP_GET_POSIX_TIMERS is served (module 0.3.0). */
#define PSNC_CP_FEAT_POSIX_TIMERS	(1ULL << 6)

/* Number of signal handlers reported: signals 1..64. */
#define PSNC_CP_NSIG		64

/*
 * struct psnc_cp_header - opens every argument struct (24 bytes)
 * @version:	PSNC_CP_HEADER_V1.
 * @size:	sizeof the whole argument struct the caller passes.
 * @tid:	target thread ID in the caller's PID namespace; 0 for
 *		PSNC_CP_GET_VERSION.
 * @flags:	must be 0.
 * @reserved:	must be 0.
 *
 * The module never writes the header back.
 */
struct psnc_cp_header {
	__u32 version;
	__u32 size;
	__s32 tid;
	__u32 flags;
	__u64 reserved;
};

/*
 * struct psnc_cp_version - PSNC_CP_GET_VERSION (80 bytes)
 * @abi_version:	PSNC_CP_ABI_VERSION of the module.
 * @pad:		0.
 * @features:		PSNC_CP_FEAT_* bits.
 * @module_version:	NUL-terminated module version, e.g. "0.1.0".
 * @reserved:		0.
 */
struct psnc_cp_version {
	struct psnc_cp_header hdr;
	__u32 abi_version;
	__u32 pad;
	__u64 features;
	char module_version[32];
	__u64 reserved[1];
};

/*
 * struct psnc_cp_sigaction - one handler as rt_sigaction(2) reports it
 * @handler:	sa_handler / sa_sigaction (0 = SIG_DFL, 1 = SIG_IGN).
 * @flags:	sa_flags, masked to the bits rt_sigaction(2) shows (kernel-
 *		internal bits such as SA_IA32_ABI are cleared).
 * @restorer:	sa_restorer.
 * @mask:	sa_mask, bit n-1 for signal n.
 */
struct psnc_cp_sigaction {
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

/*
 * struct psnc_cp_sigactions - PSNC_CP_GET_SIGACTIONS (2080 bytes)
 * @nr:		number of valid entries in @act (PSNC_CP_NSIG).
 * @pad:	0.
 * @act:	act[n-1] is the handler of signal n. Handlers are shared by
 *		the thread group, so any TID of the process gives the same.
 */
struct psnc_cp_sigactions {
	struct psnc_cp_header hdr;
	__u32 nr;
	__u32 pad;
	struct psnc_cp_sigaction act[PSNC_CP_NSIG];
};

/*
 * struct psnc_cp_sigaltstack - PSNC_CP_GET_SIGALTSTACK (48 bytes)
 * @sp:		ss_sp.
 * @size:	ss_size.
 * @flags:	ss_flags exactly as sigaltstack(2) would report them if the
 *		thread called it now: SS_DISABLE, or SS_ONSTACK when its user
 *		stack pointer lies on the alternate stack, plus SS_AUTODISARM.
 * @pad:	0.
 */
struct psnc_cp_sigaltstack {
	struct psnc_cp_header hdr;
	__u64 sp;
	__u64 size;
	__u32 flags;
	__u32 pad;
};

/*
 * struct psnc_cp_itimer - one interval timer, in nanoseconds
 * @value_ns:		time to the next expiry; 0 = disarmed.
 * @interval_ns:	reload value.
 *
 * getitimer(2) reports the same values truncated to microseconds.
 */
struct psnc_cp_itimer {
	__u64 value_ns;
	__u64 interval_ns;
};

/* Indices of psnc_cp_itimers.timer, equal to ITIMER_* of setitimer(2). */
#define PSNC_CP_ITIMER_REAL	0
#define PSNC_CP_ITIMER_VIRTUAL	1
#define PSNC_CP_ITIMER_PROF	2

/*
 * struct psnc_cp_itimers - PSNC_CP_GET_ITIMERS (72 bytes)
 * @timer:	ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF of the thread's
 *		process.
 */
struct psnc_cp_itimers {
	struct psnc_cp_header hdr;
	struct psnc_cp_itimer timer[3];
};

/*
 * Values of psnc_cp_task_misc.restart_kind.
 *
 * NONE: the thread is not stopped in an ERESTART_RESTARTBLOCK system call.
 * NANOSLEEP: nanosleep / clock_nanosleep with a relative time on an hrtimer
 * clock; restart_clockid and restart_remaining_ns are valid.
 */
#define PSNC_CP_RESTART_NONE		0
#define PSNC_CP_RESTART_NANOSLEEP	1
/* clock_nanosleep on a CPU-time clock. */
#define PSNC_CP_RESTART_CPU_NANOSLEEP	2
/* futex(FUTEX_WAIT) with a timeout. */
#define PSNC_CP_RESTART_FUTEX_WAIT	3
/* poll / ppoll. */
#define PSNC_CP_RESTART_POLL		4
/* Some other restart function. */
#define PSNC_CP_RESTART_OTHER		15

/*
 * struct psnc_cp_task_misc - PSNC_CP_GET_TASK_MISC (80 bytes)
 * @clear_child_tid:	set_tid_address(2) value (PR_GET_TID_ADDRESS).
 * @brk:		current program break of the process (brk(0)).
 * @pdeathsig:		PR_GET_PDEATHSIG of the thread.
 * @child_subreaper:	PR_GET_CHILD_SUBREAPER of the process (0 or 1).
 * @dumpable:		PR_GET_DUMPABLE of the process (SUID_DUMP_*).
 * @restart_kind:	PSNC_CP_RESTART_*: the system call the thread was
 *			interrupted in, when its saved return value is
 *			-ERESTART_RESTARTBLOCK (516).
 * @restart_clockid:	for PSNC_CP_RESTART_NANOSLEEP, the clock the sleep
 *			runs on (CLOCK_MONOTONIC for a relative CLOCK_REALTIME
 *			sleep), else -1.
 * @pad:		0.
 * @restart_remaining_ns: for PSNC_CP_RESTART_NANOSLEEP, the time left of
 *			the sleep (what the kernel would write to rmtp), 0 if
 *			it has already expired; else 0.
 * @reserved:		0.
 */
struct psnc_cp_task_misc {
	struct psnc_cp_header hdr;
	__u64 clear_child_tid;
	__u64 brk;
	__u32 pdeathsig;
	__u32 child_subreaper;
	__u32 dumpable;
	__u32 restart_kind;
	__s32 restart_clockid;
	__u32 pad;
	__u64 restart_remaining_ns;
	__u64 reserved[1];
};

/*
 * struct psnc_cp_task_misc2 - PSNC_CP_GET_TASK_MISC2 (64 bytes)
 * @securebits:		PR_GET_SECUREBITS of the thread.
 * @pad:		0.
 * @compat_robust_list:	the robust-futex list head the thread registered
 *			with the compat set_robust_list(2) (what get_robust_list(2)
 *			returns to an i386 caller asking for itself); 0 if none.
 * @compat_robust_list_len: the length that call reports,
 *			sizeof(struct compat_robust_list_head) (12).
 * @reserved:		0.
 *
 * Added in module 0.2.0 for values that GET_TASK_MISC lacks and that a
 * capture would otherwise read by running prctl(PR_GET_SECUREBITS) and the
 * compat get_robust_list(2) inside the target. The native robust list is
 * not here: get_robust_list(2) reads it from outside.
 */
struct psnc_cp_task_misc2 {
	struct psnc_cp_header hdr;
	__u32 securebits;
	__u32 pad;
	__u64 compat_robust_list;
	__u64 compat_robust_list_len;
	__u64 reserved[2];
};

/* Bits of psnc_cp_posix_timer.flags. */
/* value_ns is what timer_gettime(2) would report now. */
#define PSNC_CP_PTIMER_VALUE_KNOWN	(1U << 0)

/* Bits of psnc_cp_posix_timers.flags. */
/* The process has more timers than PSNC_CP_MAX_POSIX_TIMERS. */
#define PSNC_CP_PTIMERS_MORE		(1U << 0)

/* Capacity of psnc_cp_posix_timers.timer. */
#define PSNC_CP_MAX_POSIX_TIMERS	32

/*
 * struct psnc_cp_posix_timer - one POSIX timer of the process (48 bytes)
 * @id:		timer ID (timer_create(2)).
 * @clockid:	the clock it runs on, as /proc/PID/timers shows it (the
 *		kernel's encoding: CLOCK_PROCESS_CPUTIME_ID reads -6).
 * @sigev_notify: sigev_notify, SIGEV_THREAD_ID included.
 * @signo:	sigev_signo.
 * @flags:	PSNC_CP_PTIMER_*.
 * @pad:	0.
 * @overrun:	overruns counted so far for the expiry in progress (the
 *		kernel's it_overrun, not timer_getoverrun(2)'s value).
 * @value_ns:	time to the next expiry as timer_gettime(2) would report it
 *		now (0 = disarmed); valid only with PSNC_CP_PTIMER_VALUE_KNOWN,
 *		else 0. Known for timers on CLOCK_REALTIME, CLOCK_MONOTONIC,
 *		CLOCK_BOOTTIME and CLOCK_TAI whose expiry is not being handled
 *		on another CPU at that moment; unknown for CPU-time clocks and
 *		alarm timers.
 * @interval_ns: it_interval, as timer_gettime(2) reports it.
 */
struct psnc_cp_posix_timer {
	__s32 id;
	__s32 clockid;
	__s32 sigev_notify;
	__u32 signo;
	__u32 flags;
	__u32 pad;
	__s64 overrun;
	__u64 value_ns;
	__u64 interval_ns;
};

/*
 * struct psnc_cp_posix_timers - PSNC_CP_GET_POSIX_TIMERS (1568 bytes)
 * @nr:		valid entries in @timer.
 * @flags:	PSNC_CP_PTIMERS_*; with PSNC_CP_PTIMERS_MORE the process has
 *		more timers than @timer holds and @timer lists some of them.
 * @timer:	the POSIX timers of the thread's process, in no order.
 *
 * Added in module 0.3.0. Timers are process-wide: any TID of the process
 * gives the same list. The values are consistent with each other only
 * while every thread of the process is stopped (a running thread may
 * re-arm a timer meanwhile).
 */
struct psnc_cp_posix_timers {
	struct psnc_cp_header hdr;
	__u32 nr;
	__u32 flags;
	struct psnc_cp_posix_timer timer[PSNC_CP_MAX_POSIX_TIMERS];
};

/* ioctl type byte; 0xC5 is unassigned in ioctl-number.rst. */
#define PSNC_CP_IOC_MAGIC	0xC5

#define PSNC_CP_GET_VERSION	_IOWR(PSNC_CP_IOC_MAGIC, 0x00, struct psnc_cp_version)
#define PSNC_CP_GET_SIGACTIONS	_IOWR(PSNC_CP_IOC_MAGIC, 0x01, struct psnc_cp_sigactions)
#define PSNC_CP_GET_SIGALTSTACK	_IOWR(PSNC_CP_IOC_MAGIC, 0x02, struct psnc_cp_sigaltstack)
#define PSNC_CP_GET_ITIMERS	_IOWR(PSNC_CP_IOC_MAGIC, 0x03, struct psnc_cp_itimers)
#define PSNC_CP_GET_TASK_MISC	_IOWR(PSNC_CP_IOC_MAGIC, 0x04, struct psnc_cp_task_misc)
#define PSNC_CP_GET_TASK_MISC2	_IOWR(PSNC_CP_IOC_MAGIC, 0x05, struct psnc_cp_task_misc2)
#define PSNC_CP_GET_POSIX_TIMERS _IOWR(PSNC_CP_IOC_MAGIC, 0x06, struct psnc_cp_posix_timers)

#endif /* _UAPI_PSNC_CHECKPOINT_H */
