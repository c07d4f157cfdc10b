// SPDX-License-Identifier: GPL-2.0
/*
 * layout.c - prints the layout of every struct, ioctl number and constant
 * of include/uapi/psnc_checkpoint.h, one item per line.
 *
 * crates/ptrace/src/kmod/uapi.rs (the Rust mirror) generates the same table; its
 * test compares the two; building this file with -m32 as well shows that
 * i386 callers see the same layout. Format:
 *   size STRUCT BYTES
 *   field STRUCT.FIELD OFFSET BYTES
 *   ioctl NAME 0xNUMBER
 *   const NAME VALUE
 */
#include <stddef.h>
#include <stdio.h>

#include "psnc_checkpoint.h"

#define S(s) printf("size %s %zu\n", #s, sizeof(struct s))
#define F(s, f) printf("field %s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), \
		       sizeof(((struct s *)0)->f))
#define I(n) printf("ioctl %s 0x%08lx\n", #n, (unsigned long)(n))
#define C(n) printf("const %s %llu\n", #n, (unsigned long long)(n))

int main(void)
{
	S(psnc_cp_header);
	F(psnc_cp_header, version);
	F(psnc_cp_header, size);
	F(psnc_cp_header, tid);
	F(psnc_cp_header, flags);
	F(psnc_cp_header, reserved);

	S(psnc_cp_version);
	F(psnc_cp_version, hdr);
	F(psnc_cp_version, abi_version);
	F(psnc_cp_version, pad);
	F(psnc_cp_version, features);
	F(psnc_cp_version, module_version);
	F(psnc_cp_version, reserved);

	S(psnc_cp_sigaction);
	F(psnc_cp_sigaction, handler);
	F(psnc_cp_sigaction, flags);
	F(psnc_cp_sigaction, restorer);
	F(psnc_cp_sigaction, mask);

	S(psnc_cp_sigactions);
	F(psnc_cp_sigactions, hdr);
	F(psnc_cp_sigactions, nr);
	F(psnc_cp_sigactions, pad);
	F(psnc_cp_sigactions, act);

	S(psnc_cp_sigaltstack);
	F(psnc_cp_sigaltstack, hdr);
	F(psnc_cp_sigaltstack, sp);
	F(psnc_cp_sigaltstack, size);
	F(psnc_cp_sigaltstack, flags);
	F(psnc_cp_sigaltstack, pad);

	S(psnc_cp_itimer);
	F(psnc_cp_itimer, value_ns);
	F(psnc_cp_itimer, interval_ns);

	S(psnc_cp_itimers);
	F(psnc_cp_itimers, hdr);
	F(psnc_cp_itimers, timer);

	S(psnc_cp_task_misc);
	F(psnc_cp_task_misc, hdr);
	F(psnc_cp_task_misc, clear_child_tid);
	F(psnc_cp_task_misc, brk);
	F(psnc_cp_task_misc, pdeathsig);
	F(psnc_cp_task_misc, child_subreaper);
	F(psnc_cp_task_misc, dumpable);
	F(psnc_cp_task_misc, restart_kind);
	F(psnc_cp_task_misc, restart_clockid);
	F(psnc_cp_task_misc, pad);
	F(psnc_cp_task_misc, restart_remaining_ns);
	F(psnc_cp_task_misc, reserved);

	S(psnc_cp_task_misc2);
	F(psnc_cp_task_misc2, hdr);
	F(psnc_cp_task_misc2, securebits);
	F(psnc_cp_task_misc2, pad);
	F(psnc_cp_task_misc2, compat_robust_list);
	F(psnc_cp_task_misc2, compat_robust_list_len);
	F(psnc_cp_task_misc2, reserved);

	S(psnc_cp_posix_timer);
	F(psnc_cp_posix_timer, id);
	F(psnc_cp_posix_timer, clockid);
	F(psnc_cp_posix_timer, sigev_notify);
	F(psnc_cp_posix_timer, signo);
	F(psnc_cp_posix_timer, flags);
	F(psnc_cp_posix_timer, pad);
	F(psnc_cp_posix_timer, overrun);
	F(psnc_cp_posix_timer, value_ns);
	F(psnc_cp_posix_timer, interval_ns);

	S(psnc_cp_posix_timers);
	F(psnc_cp_posix_timers, hdr);
	F(psnc_cp_posix_timers, nr);
	F(psnc_cp_posix_timers, flags);
	F(psnc_cp_posix_timers, timer);

	I(PSNC_CP_GET_VERSION);
	I(PSNC_CP_GET_SIGACTIONS);
	I(PSNC_CP_GET_SIGALTSTACK);
	I(PSNC_CP_GET_ITIMERS);
	I(PSNC_CP_GET_TASK_MISC);
	I(PSNC_CP_GET_TASK_MISC2);
	I(PSNC_CP_GET_POSIX_TIMERS);

	C(PSNC_CP_ABI_VERSION);
	C(PSNC_CP_HEADER_V1);
	C(PSNC_CP_FEAT_SIGACTIONS);
	C(PSNC_CP_FEAT_SIGALTSTACK);
	C(PSNC_CP_FEAT_ITIMERS);
	C(PSNC_CP_FEAT_TASK_MISC);
	C(PSNC_CP_FEAT_RESTART_SLEEP);
	C(PSNC_CP_FEAT_TASK_MISC2);
	C(PSNC_CP_FEAT_POSIX_TIMERS);
	C(PSNC_CP_NSIG);
	C(PSNC_CP_ITIMER_REAL);
	C(PSNC_CP_ITIMER_VIRTUAL);
	C(PSNC_CP_ITIMER_PROF);
	C(PSNC_CP_RESTART_NONE);
	C(PSNC_CP_RESTART_NANOSLEEP);
	C(PSNC_CP_RESTART_CPU_NANOSLEEP);
	C(PSNC_CP_RESTART_FUTEX_WAIT);
	C(PSNC_CP_RESTART_POLL);
	C(PSNC_CP_RESTART_OTHER);
	C(PSNC_CP_PTIMER_VALUE_KNOWN);
	C(PSNC_CP_PTIMERS_MORE);
	C(PSNC_CP_MAX_POSIX_TIMERS);
	C(PSNC_CP_IOC_MAGIC);
	return 0;
}
