// SPDX-License-Identifier: GPL-2.0
/*
 * cptest.c - tests of /dev/checkpoint, run inside the VM guest
 *
 * Built static twice, for x86_64 and i386 (the i386 build goes through
 * compat_ptr_ioctl). Each run forks targets that set up known state, report
 * that state as they see it through their own raw system calls (exactly
 * what a capture would get by injecting those calls), and then block. The
 * test seizes and interrupts a target and checks every field the module
 * returns against the report and against the values the target was told
 * to set. Then it feeds the module bad input and races it against a dying
 * target.
 *
 *   cptest                          all tests, targets of the same arch
 *   cptest --target-exe PATH        the state tests against targets exec'd
 *                                   from PATH (the other arch's cptest)
 *   cptest --be-target MODE         internal: be a target, report on fd 3
 *
 * Output: "FAIL ..." lines, one "PASS name" line per test, and a last line
 * "cptest ARCH: N checks, M failed"; the exit status is 0 only if M is 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "psnc_checkpoint.h"

#ifndef SECBIT_KEEP_CAPS
#define SECBIT_KEEP_CAPS	(1U << 4)
#endif
/* What the targets set: SECBIT_KEEP_CAPS, which needs only CAP_SETPCAP. */
#define TARGET_SECUREBITS	SECBIT_KEEP_CAPS
/* sizeof(struct compat_robust_list_head): three 32-bit words. */
#define COMPAT_ROBUST_LEN	12

#ifndef SS_AUTODISARM
#define SS_AUTODISARM	(1U << 31)
#endif

#ifdef __x86_64__
#define ARCH "x86_64"
#else
#define ARCH "i386"
#endif

/* Every struct has the same size on both arches (kmod/tests/layout.c). */
_Static_assert(sizeof(struct psnc_cp_header) == 24, "header");
_Static_assert(sizeof(struct psnc_cp_version) == 80, "version");
_Static_assert(sizeof(struct psnc_cp_sigactions) == 2080, "sigactions");
_Static_assert(sizeof(struct psnc_cp_sigaltstack) == 48, "sigaltstack");
_Static_assert(sizeof(struct psnc_cp_itimers) == 72, "itimers");
_Static_assert(sizeof(struct psnc_cp_task_misc) == 80, "task_misc");
_Static_assert(sizeof(struct psnc_cp_task_misc2) == 64, "task_misc2");
_Static_assert(sizeof(struct psnc_cp_posix_timers) == 1568, "posix_timers");

#define REPORT_MAGIC	0x70736e6372657074ULL	/* "psncrept" */
#define SLEEP_SEC	100
#define NSEC		1000000000ULL
#define ALTSTACK_SIZE	(64 * 1024)
#define BRK_GROWTH	12345
/* Generous bounds: the TCG guest runs 10-50x slower than a host. */
#define SLACK_NS	(60 * NSEC)

#define REAL_VALUE_US		(1000 * 1000000ULL + 123456)
#define REAL_INTERVAL_US	(500 * 1000000ULL + 7)
#define VIRT_VALUE_US		(900 * 1000000ULL + 5)
#define VIRT_INTERVAL_US	(7 * 1000000ULL)
#define PROF_VALUE_US		(2000 * 1000000ULL)
#define PROF_INTERVAL_US	(3 * 1000000ULL + 1)

/*
 * The POSIX timers of MODE_MAIN, all signalling PTIMER_SIG, which it
 * blocks: a CLOCK_MONOTONIC periodic timer, a CLOCK_REALTIME one-shot, a
 * CLOCK_MONOTONIC periodic one that has expired with its signal still
 * queued (timer_gettime forwards its expiry), a disarmed CLOCK_BOOTTIME one
 * and a CLOCK_PROCESS_CPUTIME_ID one (value unknown to the module).
 */
#define NR_PTIMERS		5
#define PTIMER_SIG		40
#define PT_MONO_VALUE_NS	(1000 * NSEC + 123)
#define PT_MONO_INTERVAL_NS	(3 * NSEC + 7)
#define PT_REAL_VALUE_NS	(800 * NSEC + 5)
#define PT_FAST_INTERVAL_NS	(20 * 1000000ULL)
#define PT_CPU_VALUE_NS		(100 * NSEC)
static const int ptimer_clocks[NR_PTIMERS] = {
	CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
	CLOCK_PROCESS_CPUTIME_ID,
};

enum target_mode {
	MODE_MAIN,	/* state set, then nanosleep(SLEEP_SEC) in main */
	MODE_HANDLER,	/* pause() inside a SIGUSR1 handler on the altstack */
	MODE_THREAD,	/* a second thread reports and sleeps; main pauses */
	MODE_IDLE,	/* no state: pause() */
	/* No state, no report; blocked in a call with another restart function: */
	MODE_POLL,	/* poll(NULL, 0, timeout) */
	MODE_FUTEX,	/* futex(FUTEX_WAIT) with a relative timeout */
	MODE_CPUSLEEP,	/* clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID), relative */
	MODE_COUNT
};

static const char *const mode_names[MODE_COUNT] = {
	"main", "handler", "thread", "idle", "poll", "futex", "cpusleep",
};

/* Modes that send no report. */
static int is_quiet(enum target_mode mode)
{
	return mode >= MODE_IDLE;
}

/* What a target sees through its own system calls. Only u64: one layout. */
struct report {
	uint64_t magic;
	uint64_t tid;		/* thread that reports and blocks */
	uint64_t act[64][4];	/* handler, flags, restorer, mask */
	uint64_t ss_sp, ss_size, ss_flags;
	uint64_t it_value_us[3], it_interval_us[3];
	uint64_t clear_child_tid, brk, pdeathsig, subreaper, dumpable;
	uint64_t handler_a, handler_b, handler_alt, altstack;	/* addresses */
	uint64_t securebits, robust_head, robust_len, is_compat, robust_set;
	/* MODE_MAIN: its POSIX timers, as timer_gettime reports them. */
	uint64_t nr_ptimers, ptimer_id[NR_PTIMERS];
	uint64_t ptimer_value_ns[NR_PTIMERS], ptimer_interval_ns[NR_PTIMERS];
};

static int checks, failures;

#define CHECK(cond, ...)							\
	do {									\
		checks++;							\
		if (!(cond)) {							\
			failures++;						\
			printf("FAIL %s:%d [%s] ", __FILE__, __LINE__, ARCH);	\
			printf(__VA_ARGS__);					\
			printf("\n");						\
		}								\
	} while (0)

#define CHECK_EQ(got, want, what)						\
	do {									\
		unsigned long long g_ = (unsigned long long)(got);		\
		unsigned long long w_ = (unsigned long long)(want);		\
		CHECK(g_ == w_, "%s: got %#llx, want %#llx", what, g_, w_);	\
	} while (0)

/* ioctl() that returns -errno, so a check names the error. */
static int cp(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

#define CHECK_ERR(expr, err, what)						\
	do {									\
		int r_ = (expr);						\
		CHECK(r_ == -(err), "%s: got %d (%s), want -%s", what, r_,	\
		      r_ ? strerror(-r_) : "success", #err);			\
	} while (0)

static void hdr_init(struct psnc_cp_header *h, uint32_t size, int32_t tid)
{
	memset(h, 0, sizeof(*h));
	h->version = PSNC_CP_HEADER_V1;
	h->size = size;
	h->tid = tid;
}

/* ---- the target side ---- */

static volatile int tid_word;
static volatile int thread_tid_word;
static char altstack[ALTSTACK_SIZE] __attribute__((aligned(64)));
static char thread_altstack[ALTSTACK_SIZE / 2] __attribute__((aligned(64)));
static struct report rep;
static struct robust_list_head robust_head = { .list = { &robust_head.list } };
static int report_fd = 3;

static void handler_a(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
}

static void handler_b(int sig)
{
	(void)sig;
}

/* The kernel's struct sigaction, native or compat: both match this. */
struct ksigaction {
	unsigned long handler;
	unsigned long flags;
	unsigned long restorer;
	unsigned long long mask;
};

/* The kernel's itimerval, native (long) or compat (32-bit long). */
struct kitimerval {
	long interval_sec, interval_usec, value_sec, value_usec;
};

/* The kernel's itimerspec, native (long) or compat (32-bit long). */
struct kitimerspec {
	long interval_sec, interval_nsec, value_sec, value_nsec;
};

/* Creates and arms the POSIX timers of MODE_MAIN; their IDs go to rep. */
static void set_posix_timers(void)
{
	static const uint64_t value[NR_PTIMERS] = {
		PT_MONO_VALUE_NS, PT_REAL_VALUE_NS, 1000000, 0, PT_CPU_VALUE_NS,
	};
	static const uint64_t interval[NR_PTIMERS] = {
		PT_MONO_INTERVAL_NS, 0, PT_FAST_INTERVAL_NS, 0, 0,
	};
	struct sigevent sev;
	sigset_t set;
	int i;

	sigemptyset(&set);
	sigaddset(&set, PTIMER_SIG);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < NR_PTIMERS; i++) {
		struct kitimerspec its = {
			.interval_sec = interval[i] / NSEC, .interval_nsec = interval[i] % NSEC,
			.value_sec = value[i] / NSEC, .value_nsec = value[i] % NSEC,
		};
		int id = -1;

		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = PTIMER_SIG;
		if (syscall(SYS_timer_create, ptimer_clocks[i], &sev, &id))
			_exit(8);
		if (value[i] && syscall(SYS_timer_settime, id, 0, &its, NULL))
			_exit(9);
		rep.ptimer_id[i] = id;
	}
	rep.nr_ptimers = NR_PTIMERS;
	/* The fast one expires and stays expired: its signal is blocked. */
	usleep(50000);
}

/* Fills rep from the calling thread's own view, through raw syscalls. */
static void collect_report(void)
{
	struct kitimerval itv;
	struct ksigaction ksa;
	stack_t ss;
	int sig, i, v;

	rep.magic = REPORT_MAGIC;
	rep.tid = syscall(SYS_gettid);
	for (sig = 1; sig <= 64; sig++) {
		memset(&ksa, 0, sizeof(ksa));
		if (syscall(SYS_rt_sigaction, sig, NULL, &ksa, 8) == 0) {
			rep.act[sig - 1][0] = ksa.handler;
			rep.act[sig - 1][1] = ksa.flags;
			rep.act[sig - 1][2] = ksa.restorer;
			rep.act[sig - 1][3] = ksa.mask;
		}
	}
	if (syscall(SYS_sigaltstack, NULL, &ss) == 0) {
		rep.ss_sp = (uintptr_t)ss.ss_sp;
		rep.ss_size = ss.ss_size;
		rep.ss_flags = (uint32_t)ss.ss_flags;
	}
	for (i = 0; i < 3; i++) {
		if (syscall(SYS_getitimer, i, &itv) == 0) {
			rep.it_value_us[i] = itv.value_sec * 1000000ULL + itv.value_usec;
			rep.it_interval_us[i] = itv.interval_sec * 1000000ULL + itv.interval_usec;
		}
	}
	rep.brk = syscall(SYS_brk, 0);
	if (prctl(PR_GET_PDEATHSIG, &v) == 0)
		rep.pdeathsig = v;
	if (prctl(PR_GET_CHILD_SUBREAPER, &v) == 0)
		rep.subreaper = v;
	rep.dumpable = prctl(PR_GET_DUMPABLE);
	rep.securebits = prctl(PR_GET_SECUREBITS);
	{
		/* The native list for x86_64, the compat one for i386. */
		void *head = NULL;
		size_t len = 0;

		if (syscall(SYS_get_robust_list, 0, &head, &len) == 0) {
			rep.robust_head = (uintptr_t)head;
			rep.robust_len = len;
		}
	}
	for (i = 0; i < (int)rep.nr_ptimers; i++) {
		struct kitimerspec its;

		if (syscall(SYS_timer_gettime, (int)rep.ptimer_id[i], &its) == 0) {
			rep.ptimer_value_ns[i] = its.value_sec * NSEC + its.value_nsec;
			rep.ptimer_interval_ns[i] = its.interval_sec * NSEC + its.interval_nsec;
		}
	}
	rep.is_compat = sizeof(long) == 4;
	rep.handler_a = (uintptr_t)handler_a;
	rep.handler_b = (uintptr_t)handler_b;
	rep.altstack = (uintptr_t)altstack;
}

static void send_report(void)
{
	const char *p = (const char *)&rep;
	size_t left = sizeof(rep);

	while (left) {
		ssize_t n = write(report_fd, p, left);

		if (n <= 0)
			_exit(3);
		p += n;
		left -= n;
	}
	close(report_fd);
}

static void sleep_forever(void)
{
	struct timespec ts = { SLEEP_SEC, 0 };

	for (;;)
		nanosleep(&ts, NULL);
}

static void handler_alt(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	collect_report();
	rep.handler_alt = (uintptr_t)handler_alt;
	send_report();
	for (;;)
		pause();
}

static void *thread_main(void *arg)
{
	stack_t ss = { .ss_sp = thread_altstack, .ss_size = sizeof(thread_altstack) };

	(void)arg;
	/* Per-thread state, different from the main thread's. */
	sigaltstack(&ss, NULL);
	syscall(SYS_set_tid_address, &thread_tid_word);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	collect_report();
	rep.clear_child_tid = (uintptr_t)&thread_tid_word;
	rep.altstack = (uintptr_t)thread_altstack;
	send_report();
	sleep_forever();
	return NULL;
}

static void set_itimer(int which, uint64_t value_us, uint64_t interval_us)
{
	struct kitimerval itv = {
		.interval_sec = interval_us / 1000000, .interval_usec = interval_us % 1000000,
		.value_sec = value_us / 1000000, .value_usec = value_us % 1000000,
	};

	if (syscall(SYS_setitimer, which, &itv, NULL))
		_exit(4);
}

static void target_setup(enum target_mode mode)
{
	struct sigaction sa;
	stack_t ss;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = mode == MODE_HANDLER ? handler_alt : handler_a;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGUSR1, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR2, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler_b;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigaction(SIGTERM, &sa, NULL);

	/* Through the raw call: glibc reserves 32 and 33, and signal 64 sets mask bit 63. */
	{
		struct ksigaction ksa = {
			.handler = (uintptr_t)handler_b,
			.flags = SA_RESTART | 0x04000000 /* SA_RESTORER */,
			.mask = 1ULL << 63,
		};
		struct ksigaction cur;

		syscall(SYS_rt_sigaction, SIGUSR1, NULL, &cur, 8);
		ksa.restorer = cur.restorer;
		syscall(SYS_rt_sigaction, 37, &ksa, NULL, 8);
	}

	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = mode == MODE_MAIN ? SS_AUTODISARM : 0;
	sigaltstack(&ss, NULL);

	set_itimer(ITIMER_REAL, REAL_VALUE_US, REAL_INTERVAL_US);
	set_itimer(ITIMER_VIRTUAL, VIRT_VALUE_US, VIRT_INTERVAL_US);
	set_itimer(ITIMER_PROF, PROF_VALUE_US, PROF_INTERVAL_US);

	syscall(SYS_set_tid_address, &tid_word);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_SECUREBITS, TARGET_SECUREBITS);
	/* A robust list of its own, at an address the report names. */
	syscall(SYS_set_robust_list, &robust_head, sizeof(robust_head));
	rep.robust_set = (uintptr_t)&robust_head;
	/* An unaligned break: brk(0) reports it unaligned. */
	syscall(SYS_brk, syscall(SYS_brk, 0) + BRK_GROWTH);
}

static void __attribute__((noreturn)) target_main(enum target_mode mode)
{
	pthread_t th;

	if (is_quiet(mode)) {
		struct timespec ts = { SLEEP_SEC, 0 };
		int word = 0;

		close(report_fd);
		for (;;) {
			/* Raw calls: what glibc wraps them in differs between versions. */
			if (mode == MODE_POLL)
				syscall(SYS_poll, NULL, 0, SLEEP_SEC * 1000);
			else if (mode == MODE_FUTEX)
				syscall(SYS_futex, &word, FUTEX_WAIT, 0, &ts, NULL, 0);
			else if (mode == MODE_CPUSLEEP)
				syscall(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, 0, &ts, NULL);
			else
				pause();
		}
	}
	target_setup(mode);
	switch (mode) {
	case MODE_MAIN:
		set_posix_timers();
		collect_report();
		rep.clear_child_tid = (uintptr_t)&tid_word;
		send_report();
		sleep_forever();
		break;
	case MODE_HANDLER:
		rep.clear_child_tid = (uintptr_t)&tid_word;
		raise(SIGUSR1);
		break;
	case MODE_THREAD:
		if (pthread_create(&th, NULL, thread_main, NULL))
			_exit(5);
		for (;;)
			pause();
	default:
		break;
	}
	_exit(6);
}

/* ---- the tester side ---- */

static const char *target_exe;	/* NULL: fork without exec */

/* State letter of /proc/TID/stat, or 0. */
static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * Kills a target and reaps it. A traced non-leader thread @tid must be
 * reaped by its tracer first: until then the leader's exit is not reported.
 */
static void kill_target(pid_t pid, pid_t tid)
{
	kill(pid, SIGKILL);
	if (tid != pid)
		while (waitpid(tid, NULL, __WALL) < 0 && errno == EINTR)
			;
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
}

/*
 * Starts a target in @mode, reads its report into @r, waits until the
 * reporting thread sleeps, then seizes and interrupts that thread.
 * Returns the process ID (the stopped thread is r->tid), or -1.
 */
static pid_t spawn_stopped(enum target_mode mode, struct report *r)
{
	int fds[2], status, i;
	size_t got = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		if (dup2(fds[1], 3) < 0)
			_exit(2);
		if (fds[1] != 3)
			close(fds[1]);
		if (target_exe) {
			execl(target_exe, target_exe, "--be-target", mode_names[mode], (char *)NULL);
			_exit(7);
		}
		target_main(mode);
	}
	close(fds[1]);
	while (got < sizeof(*r)) {
		ssize_t n = read(fds[0], (char *)r + got, sizeof(*r) - got);

		if (n <= 0)
			break;
		got += n;
	}
	close(fds[0]);
	if (is_quiet(mode)) {
		r->tid = pid;
	} else if (got != sizeof(*r) || r->magic != REPORT_MAGIC) {
		printf("FAIL [%s] target %s sent no report (%zu bytes)\n", ARCH,
		       mode_names[mode], got);
		failures++;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	/* Blocked in its final call: sleeping ('S'). */
	for (i = 0; i < 2000 && thread_state(pid, r->tid) != 'S'; i++)
		usleep(5000);
	CHECK(thread_state(pid, r->tid) == 'S', "target %s never went to sleep",
	      mode_names[mode]);
	if (ptrace(PTRACE_SEIZE, r->tid, 0, 0) || ptrace(PTRACE_INTERRUPT, r->tid, 0, 0)) {
		printf("FAIL [%s] seize %d: %s\n", ARCH, (int)r->tid, strerror(errno));
		failures++;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	if (waitpid(r->tid, &status, __WALL) != (pid_t)r->tid || !WIFSTOPPED(status) ||
	    status >> 16 != PTRACE_EVENT_STOP) {
		printf("FAIL [%s] no ptrace stop of %d: status %#x\n", ARCH, (int)r->tid, status);
		failures++;
		kill_target(pid, r->tid);
		return -1;
	}
	return pid;
}


static void test_version(int fd)
{
	struct psnc_cp_version v;
	int f = failures;

	memset(&v, 0xa5, sizeof(v));
	hdr_init(&v.hdr, sizeof(v), 0);
	CHECK_ERR(cp(fd, PSNC_CP_GET_VERSION, &v), 0, "GET_VERSION");
	CHECK_EQ(v.hdr.version, PSNC_CP_HEADER_V1, "header left alone: version");
	CHECK_EQ(v.hdr.size, sizeof(v), "header left alone: size");
	CHECK_EQ(v.abi_version, PSNC_CP_ABI_VERSION, "abi_version");
	CHECK_EQ(v.pad, 0, "version pad");
	CHECK_EQ(v.features, PSNC_CP_FEAT_SIGACTIONS | PSNC_CP_FEAT_SIGALTSTACK |
		 PSNC_CP_FEAT_ITIMERS | PSNC_CP_FEAT_TASK_MISC | PSNC_CP_FEAT_RESTART_SLEEP |
		 PSNC_CP_FEAT_TASK_MISC2 | PSNC_CP_FEAT_POSIX_TIMERS, "features");
	CHECK(memchr(v.module_version, 0, sizeof(v.module_version)) != NULL &&
	      strcmp(v.module_version, "0.3.0") == 0, "module_version '%.32s'",
	      v.module_version);
	CHECK_EQ(v.reserved[0], 0, "version reserved");
	if (f == failures)
		printf("PASS version\n");
}

static void check_sigactions(int fd, const struct report *r, int same_binary)
{
	struct psnc_cp_sigactions *a = malloc(sizeof(*a));
	char what[64];
	int i;

	if (!a)
		return;
	memset(a, 0xa5, sizeof(*a));
	hdr_init(&a->hdr, sizeof(*a), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), 0, "GET_SIGACTIONS");
	CHECK_EQ(a->hdr.tid, r->tid, "header left alone: tid");
	CHECK_EQ(a->nr, 64, "nr");
	CHECK_EQ(a->pad, 0, "sigactions pad");
	for (i = 0; i < 64; i++) {
		snprintf(what, sizeof(what), "signal %d handler", i + 1);
		CHECK_EQ(a->act[i].handler, r->act[i][0], what);
		snprintf(what, sizeof(what), "signal %d flags", i + 1);
		CHECK_EQ(a->act[i].flags, r->act[i][1], what);
		snprintf(what, sizeof(what), "signal %d restorer", i + 1);
		CHECK_EQ(a->act[i].restorer, r->act[i][2], what);
		snprintf(what, sizeof(what), "signal %d mask", i + 1);
		CHECK_EQ(a->act[i].mask, r->act[i][3], what);
	}
	/* What the target was told to set, independent of its report. */
	if (same_binary)
		CHECK_EQ(a->act[SIGUSR1 - 1].handler,
			 r->handler_alt ? r->handler_alt : (uintptr_t)handler_a, "SIGUSR1 handler");
	CHECK_EQ(a->act[SIGUSR1 - 1].handler,
		 r->handler_alt ? r->handler_alt : r->handler_a, "SIGUSR1 handler (reported)");
	CHECK_EQ(a->act[SIGUSR1 - 1].flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK),
		 SA_SIGINFO | SA_RESTART | SA_ONSTACK, "SIGUSR1 flags");
	CHECK_EQ(a->act[SIGUSR1 - 1].mask, (1ULL << (SIGUSR2 - 1)) | (1ULL << (SIGTERM - 1)),
		 "SIGUSR1 mask");
	CHECK_EQ(a->act[SIGUSR2 - 1].handler, 1, "SIGUSR2 SIG_IGN");
	CHECK_EQ(a->act[SIGTERM - 1].handler, r->handler_b, "SIGTERM handler");
	CHECK_EQ(a->act[SIGTERM - 1].flags & (SA_RESETHAND | SA_NODEFER),
		 SA_RESETHAND | SA_NODEFER, "SIGTERM flags");
	CHECK_EQ(a->act[37 - 1].handler, r->handler_b, "signal 37 handler");
	CHECK_EQ(a->act[37 - 1].mask, 1ULL << 63, "signal 37 mask");
	CHECK_EQ(a->act[SIGKILL - 1].handler, 0, "SIGKILL default");
	CHECK_EQ(a->act[SIGCHLD - 1].handler, 0, "SIGCHLD default");
	/* No kernel-internal bit (SA_IA32_ABI 0x02000000, SA_X32_ABI 0x01000000). */
	for (i = 0; i < 64; i++)
		CHECK_EQ(a->act[i].flags & 0x03000000, 0, "internal sa_flags bit");
	free(a);
}

static void check_sigaltstack(int fd, const struct report *r, uint32_t want_flags)
{
	struct psnc_cp_sigaltstack s;

	memset(&s, 0xa5, sizeof(s));
	hdr_init(&s.hdr, sizeof(s), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), 0, "GET_SIGALTSTACK");
	CHECK_EQ(s.sp, r->ss_sp, "ss_sp (reported)");
	CHECK_EQ(s.size, r->ss_size, "ss_size (reported)");
	CHECK_EQ(s.flags, r->ss_flags, "ss_flags (reported)");
	CHECK_EQ(s.sp, r->altstack, "ss_sp");
	CHECK_EQ(s.flags, want_flags, "ss_flags");
	CHECK_EQ(s.pad, 0, "sigaltstack pad");
}

/*
 * A time left that the module reads after the target saw @earlier_us: at
 * most that (plus @late_ns), and not much less.
 */
static void check_remaining(uint64_t module_ns, uint64_t earlier_us, uint64_t late_ns,
			    const char *what)
{
	CHECK(module_ns <= earlier_us * 1000 + 999 + late_ns &&
	      module_ns + SLACK_NS >= earlier_us * 1000,
	      "%s: module %llu ns, expected at most %llu us", what,
	      (unsigned long long)module_ns, (unsigned long long)earlier_us);
}

static void check_itimers(int fd, const struct report *r)
{
	static const uint64_t want_interval_us[3] = {
		REAL_INTERVAL_US, VIRT_INTERVAL_US, PROF_INTERVAL_US,
	};
	static const uint64_t want_value_us[3] = { REAL_VALUE_US, VIRT_VALUE_US, PROF_VALUE_US };
	static const char *const names[3] = { "REAL", "VIRTUAL", "PROF" };
	struct psnc_cp_itimers t;
	char what[64];
	int i;

	memset(&t, 0xa5, sizeof(t));
	hdr_init(&t.hdr, sizeof(t), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_ITIMERS, &t), 0, "GET_ITIMERS");
	for (i = 0; i < 3; i++) {
		snprintf(what, sizeof(what), "ITIMER_%s interval", names[i]);
		CHECK_EQ(t.timer[i].interval_ns, want_interval_us[i] * 1000, what);
		CHECK_EQ(t.timer[i].interval_ns / 1000, r->it_interval_us[i], what);
		snprintf(what, sizeof(what), "ITIMER_%s value", names[i]);
		check_remaining(t.timer[i].value_ns, r->it_value_us[i], 0, what);
		/* setitimer adds one tick (at most 10 ms) to a CPU timer. */
		check_remaining(t.timer[i].value_ns, want_value_us[i], 10000000, what);
	}
}

static void check_task_misc(int fd, const struct report *r, uint32_t pdeathsig,
			    uint32_t want_restart)
{
	struct psnc_cp_task_misc m;

	memset(&m, 0xa5, sizeof(m));
	hdr_init(&m.hdr, sizeof(m), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_TASK_MISC, &m), 0, "GET_TASK_MISC");
	CHECK_EQ(m.clear_child_tid, r->clear_child_tid, "clear_child_tid");
	CHECK_EQ(m.brk, r->brk, "brk (reported)");
	CHECK_EQ(m.brk % 4096, (r->brk % 4096), "brk keeps its unaligned offset");
	CHECK_EQ(m.pdeathsig, r->pdeathsig, "pdeathsig (reported)");
	CHECK_EQ(m.pdeathsig, pdeathsig, "pdeathsig");
	CHECK_EQ(m.child_subreaper, r->subreaper, "child_subreaper (reported)");
	CHECK_EQ(m.child_subreaper, 1, "child_subreaper");
	CHECK_EQ(m.dumpable, r->dumpable, "dumpable (reported)");
	CHECK_EQ(m.dumpable, 0, "dumpable");
	CHECK_EQ(m.pad, 0, "task_misc pad");
	CHECK_EQ(m.reserved[0], 0, "task_misc reserved");
	CHECK_EQ(m.restart_kind, want_restart, "restart_kind");
	if (want_restart == PSNC_CP_RESTART_NANOSLEEP) {
		CHECK_EQ(m.restart_clockid, CLOCK_MONOTONIC, "restart_clockid");
		CHECK(m.restart_remaining_ns > 0 &&
		      m.restart_remaining_ns <= SLEEP_SEC * NSEC + NSEC / 10 &&
		      m.restart_remaining_ns + SLACK_NS >= SLEEP_SEC * NSEC,
		      "restart_remaining_ns %llu", (unsigned long long)m.restart_remaining_ns);
	} else {
		CHECK_EQ((uint32_t)m.restart_clockid, (uint32_t)-1, "restart_clockid");
		CHECK_EQ(m.restart_remaining_ns, 0, "restart_remaining_ns");
	}
}

static void check_task_misc2(int fd, const struct report *r, int own_list)
{
	struct psnc_cp_task_misc2 m;

	memset(&m, 0xa5, sizeof(m));
	hdr_init(&m.hdr, sizeof(m), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_TASK_MISC2, &m), 0, "GET_TASK_MISC2");
	CHECK_EQ(m.securebits, r->securebits, "securebits (reported)");
	CHECK_EQ(m.securebits, TARGET_SECUREBITS, "securebits");
	CHECK_EQ(m.pad, 0, "task_misc2 pad");
	CHECK_EQ(m.compat_robust_list_len, COMPAT_ROBUST_LEN, "compat_robust_list_len");
	if (r->is_compat) {
		CHECK_EQ(m.compat_robust_list, r->robust_head, "compat_robust_list (reported)");
		CHECK_EQ(r->robust_len, COMPAT_ROBUST_LEN, "compat robust_len (reported)");
		if (own_list)
			CHECK_EQ(m.compat_robust_list, r->robust_set, "compat_robust_list");
		else
			CHECK(m.compat_robust_list != 0 &&
			      m.compat_robust_list != r->robust_set,
			      "compat_robust_list of the second thread %#llx",
			      (unsigned long long)m.compat_robust_list);
	} else {
		/* An x86_64 thread's list is the native one: none in compat. */
		CHECK_EQ(m.compat_robust_list, 0, "compat_robust_list of an x86_64 thread");
	}
	CHECK_EQ(m.reserved[0], 0, "task_misc2 reserved[0]");
	CHECK_EQ(m.reserved[1], 0, "task_misc2 reserved[1]");
}

/*
 * GET_POSIX_TIMERS against MODE_MAIN's timers (@r) or, with @r->nr_ptimers
 * 0, a target without any. The values were reported earlier than the module
 * reads them: within SLACK_NS below the report, the forwarded fast timer in
 * (0, interval].
 */
static void check_posix_timers(int fd, const struct report *r)
{
	struct psnc_cp_posix_timers *p = malloc(sizeof(*p));
	char what[80];
	uint32_t i, j;

	if (!p)
		return;
	memset(p, 0xa5, sizeof(*p));
	hdr_init(&p->hdr, sizeof(*p), r->tid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), 0, "GET_POSIX_TIMERS");
	CHECK_EQ(p->hdr.size, sizeof(*p), "header left alone: size");
	CHECK_EQ(p->nr, r->nr_ptimers, "posix timers nr");
	CHECK_EQ(p->flags, 0, "posix timers flags");
	for (j = p->nr; j < PSNC_CP_MAX_POSIX_TIMERS; j++)
		CHECK_EQ(p->timer[j].id | p->timer[j].flags | p->timer[j].value_ns, 0,
			 "unused entry zeroed");
	for (i = 0; i < r->nr_ptimers && p->nr <= PSNC_CP_MAX_POSIX_TIMERS; i++) {
		const struct psnc_cp_posix_timer *t = NULL;
		uint64_t rv = r->ptimer_value_ns[i];

		for (j = 0; j < p->nr; j++)
			if (p->timer[j].id == (int32_t)r->ptimer_id[i])
				t = &p->timer[j];
		CHECK(t != NULL, "timer %d not listed", (int)r->ptimer_id[i]);
		if (!t)
			continue;
		snprintf(what, sizeof(what), "timer %d (clock %d)", t->id, ptimer_clocks[i]);
		/*
		 * The kernel's it_clock, as /proc/PID/timers shows it: the
		 * process CPU clock is stored as MAKE_PROCESS_CPUCLOCK(0,
		 * CPUCLOCK_SCHED), i.e. -6.
		 */
		CHECK_EQ(t->clockid, ptimer_clocks[i] == CLOCK_PROCESS_CPUTIME_ID ? -6 :
			 ptimer_clocks[i], what);
		CHECK_EQ(t->sigev_notify, SIGEV_SIGNAL, what);
		CHECK_EQ(t->signo, PTIMER_SIG, what);
		CHECK_EQ(t->pad, 0, what);
		CHECK_EQ(t->interval_ns, r->ptimer_interval_ns[i], what);
		if (ptimer_clocks[i] == CLOCK_PROCESS_CPUTIME_ID) {
			CHECK_EQ(t->flags, 0, "CPU-time timer: value unknown");
			CHECK_EQ(t->value_ns, 0, "CPU-time timer: value 0");
			CHECK(rv > 0 && rv <= PT_CPU_VALUE_NS, "%s: reported %llu", what,
			      (unsigned long long)rv);
			continue;
		}
		CHECK_EQ(t->flags, PSNC_CP_PTIMER_VALUE_KNOWN, what);
		if (i == 2) {
			/* Expired, signal queued: forwarded past now, as timer_gettime does. */
			CHECK(rv > 0 && rv <= PT_FAST_INTERVAL_NS, "%s: reported %llu", what,
			      (unsigned long long)rv);
			CHECK(t->value_ns > 0 && t->value_ns <= PT_FAST_INTERVAL_NS,
			      "%s: value %llu not in (0, interval]", what,
			      (unsigned long long)t->value_ns);
		} else if (i == 3) {
			CHECK_EQ(rv, 0, "disarmed timer reported");
			CHECK_EQ(t->value_ns, 0, "disarmed timer");
		} else {
			uint64_t set = i == 0 ? PT_MONO_VALUE_NS : PT_REAL_VALUE_NS;

			CHECK(rv <= set && rv + SLACK_NS > set, "%s: reported %llu", what,
			      (unsigned long long)rv);
			CHECK(t->value_ns <= rv && t->value_ns + SLACK_NS > rv,
			      "%s: value %llu, reported %llu", what,
			      (unsigned long long)t->value_ns, (unsigned long long)rv);
		}
	}
	free(p);
}

/* Every command against a live stopped target of each mode, field by field. */
static void test_state(int fd)
{
	static const enum target_mode modes[] = { MODE_MAIN, MODE_HANDLER, MODE_THREAD };
	struct report r;
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		enum target_mode mode = modes[i];
		int f = failures;
		pid_t pid = spawn_stopped(mode, &r);

		if (pid < 0)
			continue;
		check_sigactions(fd, &r, target_exe == NULL);
		check_sigaltstack(fd, &r, mode == MODE_MAIN ? SS_AUTODISARM :
				  mode == MODE_HANDLER ? SS_ONSTACK : 0);
		check_itimers(fd, &r);
		check_task_misc(fd, &r, mode == MODE_THREAD ? SIGTERM : SIGKILL,
				mode == MODE_HANDLER ? PSNC_CP_RESTART_NONE :
				PSNC_CP_RESTART_NANOSLEEP);
		check_task_misc2(fd, &r, mode != MODE_THREAD);
		check_posix_timers(fd, &r);
		/* The same answers a second time: reading changes nothing. */
		check_task_misc(fd, &r, mode == MODE_THREAD ? SIGTERM : SIGKILL,
				mode == MODE_HANDLER ? PSNC_CP_RESTART_NONE :
				PSNC_CP_RESTART_NANOSLEEP);
		kill_target(pid, r.tid);
		if (f == failures)
			printf("PASS state %s%s%s\n", mode_names[mode],
			       target_exe ? " of " : "", target_exe ? target_exe : "");
	}
}

/* Each other restart function, told apart (and no remaining time for them). */
static void test_restart_kinds(int fd)
{
	static const struct {
		enum target_mode mode;
		uint32_t kind;
	} cases[] = {
		{ MODE_POLL, PSNC_CP_RESTART_POLL },
		{ MODE_FUTEX, PSNC_CP_RESTART_FUTEX_WAIT },
		{ MODE_CPUSLEEP, PSNC_CP_RESTART_CPU_NANOSLEEP },
		{ MODE_IDLE, PSNC_CP_RESTART_NONE },
	};
	struct psnc_cp_task_misc m;
	struct report r;
	char what[64];
	size_t i;
	int f = failures;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid_t pid = spawn_stopped(cases[i].mode, &r);

		if (pid < 0)
			continue;
		hdr_init(&m.hdr, sizeof(m), pid);
		snprintf(what, sizeof(what), "GET_TASK_MISC in %s", mode_names[cases[i].mode]);
		CHECK_ERR(cp(fd, PSNC_CP_GET_TASK_MISC, &m), 0, what);
		snprintf(what, sizeof(what), "restart_kind in %s", mode_names[cases[i].mode]);
		CHECK_EQ(m.restart_kind, cases[i].kind, what);
		CHECK_EQ((uint32_t)m.restart_clockid, (uint32_t)-1, "restart_clockid");
		CHECK_EQ(m.restart_remaining_ns, 0, "restart_remaining_ns");
		kill_target(pid, pid);
	}
	if (f == failures)
		printf("PASS restart-kinds\n");
}

struct thread_call {
	int fd;
	pid_t tid;
	int ret;
};

static void *other_thread_call(void *arg)
{
	struct thread_call *c = arg;
	struct psnc_cp_sigaltstack s;

	hdr_init(&s.hdr, sizeof(s), c->tid);
	c->ret = cp(c->fd, PSNC_CP_GET_SIGALTSTACK, &s);
	return NULL;
}

/* A process without CAP_SYS_PTRACE that traces its own child gets EPERM. */
static void test_no_capability(int fd)
{
	pid_t helper, target;
	int status;

	helper = fork();
	if (helper == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		struct psnc_cp_sigaltstack s;
		struct psnc_cp_version v;

		target = fork();
		if (target == 0) {
			for (;;)
				pause();
		}
		if (ptrace(PTRACE_SEIZE, target, 0, 0) || ptrace(PTRACE_INTERRUPT, target, 0, 0) ||
		    waitpid(target, &status, __WALL) != target)
			_exit(10);
		if (syscall(SYS_capget, &h, d))
			_exit(11);
		d[0].effective &= ~(1u << CAP_SYS_PTRACE);
		if (syscall(SYS_capset, &h, d))
			_exit(12);
		hdr_init(&s.hdr, sizeof(s), target);
		if (cp(fd, PSNC_CP_GET_SIGALTSTACK, &s) != -EPERM)
			_exit(13);
		/* GET_VERSION needs no capability. */
		hdr_init(&v.hdr, sizeof(v), 0);
		if (cp(fd, PSNC_CP_GET_VERSION, &v) != 0)
			_exit(14);
		kill(target, SIGKILL);
		waitpid(target, NULL, __WALL);
		_exit(0);
	}
	CHECK(waitpid(helper, &status, 0) == helper && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "no-capability helper: status %#x", status);
}

/* Bad headers, bad commands, bad pointers, wrong threads. */
static void test_bad_input(int fd)
{
	struct psnc_cp_sigactions *a = malloc(sizeof(*a));
	struct psnc_cp_sigaltstack s;
	struct psnc_cp_version v;
	struct thread_call tc;
	struct report r;
	pthread_t th;
	pid_t pid, other, gone;
	char *page;
	char c;
	int f = failures, status;

	pid = spawn_stopped(MODE_IDLE, &r);
	if (pid < 0 || !a) {
		free(a);
		return;
	}

	/* Unknown commands, and a known number with another size. */
	hdr_init(&v.hdr, sizeof(v), 0);
	CHECK_ERR(cp(fd, _IOWR(PSNC_CP_IOC_MAGIC, 0x42, struct psnc_cp_version), &v), ENOTTY,
		  "unknown nr");
	CHECK_ERR(cp(fd, _IOWR('x', 0x00, struct psnc_cp_version), &v), ENOTTY, "other type");
	CHECK_ERR(cp(fd, _IOR(PSNC_CP_IOC_MAGIC, 0x00, struct psnc_cp_version), &v), ENOTTY,
		  "_IOR instead of _IOWR");
	CHECK_ERR(cp(fd, 0x5401 /* TCGETS */, &v), ENOTTY, "TCGETS");
	hdr_init(&s.hdr, sizeof(s), pid);
	CHECK_ERR(cp(fd, _IOWR(PSNC_CP_IOC_MAGIC, 0x02, struct psnc_cp_header), &s), ENOTTY,
		  "short size in the command");
	CHECK_ERR(cp(fd, _IOWR(PSNC_CP_IOC_MAGIC, 0x01, struct psnc_cp_sigaltstack), &s),
		  ENOTTY, "another command's size");

	/* Header fields. */
	hdr_init(&a->hdr, sizeof(*a) - 8, pid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.size short");
	hdr_init(&a->hdr, sizeof(*a) + 8, pid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.size long");
	hdr_init(&a->hdr, 0, pid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.size 0");
	hdr_init(&a->hdr, sizeof(*a), pid);
	a->hdr.version = 0;
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.version 0");
	a->hdr.version = 2;
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.version 2");
	hdr_init(&a->hdr, sizeof(*a), pid);
	a->hdr.flags = 1;
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.flags");
	hdr_init(&a->hdr, sizeof(*a), pid);
	a->hdr.reserved = 1ULL << 63;
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), EINVAL, "hdr.reserved");
	hdr_init(&v.hdr, sizeof(v), 0);
	v.hdr.reserved = 1;
	CHECK_ERR(cp(fd, PSNC_CP_GET_VERSION, &v), EINVAL, "GET_VERSION hdr.reserved");
	hdr_init(&v.hdr, sizeof(v), pid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_VERSION, &v), EINVAL, "GET_VERSION with a tid");
	hdr_init(&s.hdr, sizeof(s), 0);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EINVAL, "tid 0");
	hdr_init(&s.hdr, sizeof(s), -1);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EINVAL, "tid -1");

	/* GET_POSIX_TIMERS: a target without timers; its header and size checks. */
	{
		struct psnc_cp_posix_timers *p = (void *)a;	/* 2080 >= 1568 bytes */

		r.nr_ptimers = 0;
		check_posix_timers(fd, &r);
		hdr_init(&p->hdr, sizeof(*p) - 48, pid);
		CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), EINVAL, "posix timers hdr.size");
		hdr_init(&p->hdr, sizeof(*p), pid);
		p->hdr.flags = 1;
		CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), EINVAL, "posix timers hdr.flags");
		hdr_init(&p->hdr, sizeof(*p), 0);
		CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), EINVAL, "posix timers tid 0");
		hdr_init(&p->hdr, sizeof(*p), pid);
		CHECK_ERR(cp(fd, _IOWR(PSNC_CP_IOC_MAGIC, 0x06, struct psnc_cp_task_misc2), p),
			  ENOTTY, "posix timers with another size");
		hdr_init(&p->hdr, sizeof(*p), getpid());
		CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), EPERM, "posix timers of the caller");
		hdr_init(&p->hdr, sizeof(*p), 0x3ffffff0);
		CHECK_ERR(cp(fd, PSNC_CP_GET_POSIX_TIMERS, p), ESRCH, "posix timers beyond pid_max");
	}

	/* Pointers: none, header unreadable, header readable but body read-only. */
	CHECK_ERR(cp(fd, PSNC_CP_GET_VERSION, NULL), EFAULT, "NULL argument");
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, NULL), EFAULT, "NULL argument");
	page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page != MAP_FAILED) {
		struct psnc_cp_sigaltstack *edge =
			(void *)(page + 4096 - sizeof(struct psnc_cp_header));

		hdr_init(&edge->hdr, sizeof(*edge), pid);
		mprotect(page + 4096, 4096, PROT_READ);
		CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, edge), EFAULT, "read-only body");
		hdr_init(&v.hdr, sizeof(v), 0);
		memcpy(page + 4096 - sizeof(struct psnc_cp_header), &v.hdr, sizeof(v.hdr));
		CHECK_ERR(cp(fd, PSNC_CP_GET_VERSION, edge), EFAULT, "GET_VERSION read-only body");
		mprotect(page, 4096, PROT_NONE);
		CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, edge), EFAULT, "unreadable header");
		munmap(page, 8192);
	}

	/* Threads: gone, not traced, traced by another thread, running. */
	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	hdr_init(&s.hdr, sizeof(s), gone);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), ESRCH, "reaped thread");
	hdr_init(&s.hdr, sizeof(s), 0x3ffffff0);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), ESRCH, "TID beyond pid_max");
	other = fork();
	if (other == 0) {
		for (;;)
			pause();
	}
	hdr_init(&s.hdr, sizeof(s), other);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EPERM, "untraced child");
	kill_target(other, other);
	hdr_init(&s.hdr, sizeof(s), getpid());
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EPERM, "the caller itself");
	hdr_init(&s.hdr, sizeof(s), 1);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EPERM, "init");
	tc.fd = fd;
	tc.tid = pid;
	tc.ret = 1;
	if (pthread_create(&th, NULL, other_thread_call, &tc) == 0) {
		pthread_join(th, NULL);
		CHECK_ERR(tc.ret, EPERM, "caller is not the tracing thread");
	}
	hdr_init(&s.hdr, sizeof(s), pid);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), 0, "stopped target");
	CHECK(ptrace(PTRACE_CONT, pid, 0, 0) == 0, "PTRACE_CONT: %s", strerror(errno));
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), EBUSY, "running target");
	ptrace(PTRACE_INTERRUPT, pid, 0, 0);
	waitpid(pid, &status, __WALL);
	CHECK_ERR(cp(fd, PSNC_CP_GET_SIGALTSTACK, &s), 0, "stopped again");

	/* Not a file: read and write fail. */
	CHECK(read(fd, &c, 1) < 0 && errno == EINVAL, "read: %s", strerror(errno));
	CHECK(write(fd, &c, 1) < 0 && errno == EINVAL, "write: %s", strerror(errno));

	test_no_capability(fd);

	kill_target(pid, pid);
	free(a);
	if (f == failures)
		printf("PASS bad-input\n");
}

/* A target killed while the commands run: errors only (and no oops in dmesg). */
static void test_exit_race(int fd)
{
	static const unsigned long cmds[] = {
		PSNC_CP_GET_SIGACTIONS, PSNC_CP_GET_SIGALTSTACK,
		PSNC_CP_GET_ITIMERS, PSNC_CP_GET_TASK_MISC, PSNC_CP_GET_TASK_MISC2,
		PSNC_CP_GET_POSIX_TIMERS,
	};
	struct psnc_cp_sigactions *a = malloc(sizeof(*a));
	unsigned long calls = 0, errors = 0;
	int f = failures, round;

	if (!a)
		return;
	for (round = 0; round < 12; round++) {
		struct report r;
		pid_t pid = spawn_stopped(MODE_IDLE, &r), killer;
		int n, ret;

		if (pid < 0)
			break;
		killer = fork();
		if (killer == 0) {
			usleep(round * 700);
			kill(pid, SIGKILL);
			_exit(0);
		}
		for (n = 0; n < 100000; n++) {
			unsigned long cmd = cmds[n % (sizeof(cmds) / sizeof(cmds[0]))];

			hdr_init(&a->hdr, _IOC_SIZE(cmd), pid);
			ret = cp(fd, cmd, a);
			calls++;
			if (ret) {
				errors++;
				CHECK(ret == -ESRCH || ret == -EBUSY,
				      "dying target: %s", strerror(-ret));
				break;
			}
		}
		waitpid(killer, NULL, 0);
		kill_target(pid, pid);
		hdr_init(&a->hdr, sizeof(*a), pid);
		CHECK_ERR(cp(fd, PSNC_CP_GET_SIGACTIONS, a), ESRCH, "reaped target");
	}
	free(a);
	CHECK(errors > 0, "no call saw the target die");
	if (f == failures)
		printf("PASS exit-race (%lu calls, %lu errors)\n", calls, errors);
}

int main(int argc, char **argv)
{
	int fd, i;

	if (argc == 3 && !strcmp(argv[1], "--be-target")) {
		for (i = 0; i < MODE_COUNT; i++)
			if (!strcmp(argv[2], mode_names[i]))
				target_main(i);
		return 2;
	}
	if (argc == 3 && !strcmp(argv[1], "--target-exe"))
		target_exe = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--target-exe PATH]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open(PSNC_CP_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("FAIL [%s] open %s: %s\n", ARCH, PSNC_CP_DEVICE, strerror(errno));
		printf("cptest %s: 0 checks, 1 failed\n", ARCH);
		return 1;
	}
	test_version(fd);
	test_state(fd);
	test_restart_kinds(fd);
	if (!target_exe) {
		test_bad_input(fd);
		test_exit_race(fd);
	}
	close(fd);
	printf("cptest %s%s%s: %d checks, %d failed\n", ARCH, target_exe ? " targets " : "",
	       target_exe ? target_exe : "", checks, failures);
	return failures ? 1 : 0;
}
