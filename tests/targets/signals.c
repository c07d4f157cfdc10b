/*
 * signals MODE: signal state.
 *   sigaction  SA_SIGINFO|SA_RESTART handlers with masks for SIGUSR1 and SIGRTMIN+2, SIGHUP
 *              ignored, SIGPIPE default: each survives and a raised SIGUSR1 reaches its handler
 *   pending    SIGUSR1 and SIGRTMIN+3 blocked and pending, queued by a child with sigqueue
 *              (si_code SI_QUEUE, si_pid the child, si_value), taken with sigtimedwait
 *   altstack   a sigaltstack; an SA_ONSTACK handler runs on it
 *   itimer     ITIMER_REAL every 100 ms; SIGALRM keeps coming, the interval is kept
 *   all        every mode above
 */
#include "target.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>

#define IS(m) (all || !strcmp(mode, m))

static volatile sig_atomic_t usr1_count, usr1_code, usr1_signo, alrm_count;
static volatile uintptr_t onstack_addr;
static void *altstack_mem;
#define ALTSTACK_SIZE (64 * 1024)

static void usr1_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	usr1_signo = sig;
	usr1_code = si->si_code;
	usr1_count++;
}

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
}

static void onstack_handler(int sig)
{
	volatile int local;

	(void)sig;
	onstack_addr = (uintptr_t)&local;
}

static void alrm_handler(int sig)
{
	(void)sig;
	alrm_count++;
}

static sigset_t handler_mask(int a, int b)
{
	sigset_t m;

	sigemptyset(&m);
	sigaddset(&m, a);
	sigaddset(&m, b);
	return m;
}

static void sigaction_setup(void)
{
	struct sigaction sa = { 0 };

	sa.sa_sigaction = usr1_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sa.sa_mask = handler_mask(SIGTERM, SIGWINCH);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_sigaction = rt_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sa.sa_mask = handler_mask(SIGRTMIN + 5, SIGCHLD);
	sigaction(SIGRTMIN + 2, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_DFL);
}

static int same_action(int sig, void *fn, int flags, sigset_t mask)
{
	struct sigaction cur;

	if (sigaction(sig, NULL, &cur) < 0)
		return 0;
	for (int s = 1; s < SIGRTMAX; s++)
		if (sigismember(&cur.sa_mask, s) != sigismember(&mask, s))
			return 0;
	return (void *)cur.sa_sigaction == fn &&
	       (cur.sa_flags & (SA_SIGINFO | SA_RESTART | SA_NODEFER | SA_ONSTACK)) == flags;
}

static void sigaction_verify(void)
{
	struct sigaction cur;

	check(same_action(SIGUSR1, (void *)usr1_handler, SA_SIGINFO | SA_RESTART,
			  handler_mask(SIGTERM, SIGWINCH)),
	      "sigaction_usr1", "handler, flags or mask changed");
	check(same_action(SIGRTMIN + 2, (void *)rt_handler, SA_SIGINFO | SA_NODEFER,
			  handler_mask(SIGRTMIN + 5, SIGCHLD)),
	      "sigaction_rt", "handler, flags or mask changed");
	sigaction(SIGHUP, NULL, &cur);
	check(cur.sa_handler == SIG_IGN, "sigaction_ignored", "SIGHUP no longer ignored");
	sigaction(SIGPIPE, NULL, &cur);
	/* signal() sets SA_RESTART (glibc), also on a SIG_DFL action: kept like any flag. */
	check(cur.sa_handler == SIG_DFL && (cur.sa_flags & SA_RESTART), "sigaction_default",
	      "SIGPIPE not default, or its SA_RESTART lost (flags %#x)", (unsigned)cur.sa_flags);
	raise(SIGUSR1);
	check(usr1_count == 1 && usr1_signo == SIGUSR1 && usr1_code == SI_TKILL,
	      "sigaction_delivery", "count %d signo %d code %d", (int)usr1_count, (int)usr1_signo,
	      (int)usr1_code);
}

static pid_t pending_sender;

static void pending_setup(void)
{
	sigset_t m;
	pid_t child;

	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &m, NULL);
	child = fork();
	if (child == 0) {
		union sigval v1 = { .sival_int = 4242 }, v2 = { .sival_int = 777 };

		sigqueue(getppid(), SIGUSR1, v1);
		sigqueue(getppid(), SIGRTMIN + 3, v2);
		v2.sival_int = 778;
		sigqueue(getppid(), SIGRTMIN + 3, v2);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	pending_sender = child;
}

static void pending_verify(void)
{
	sigset_t pend, m, blocked;
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	int r;

	sigpending(&pend);
	check(sigismember(&pend, SIGUSR1) && sigismember(&pend, SIGRTMIN + 3), "pending_set",
	      "SIGUSR1 %d SIGRTMIN+3 %d", sigismember(&pend, SIGUSR1),
	      sigismember(&pend, SIGRTMIN + 3));
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	check(sigismember(&blocked, SIGUSR1) && sigismember(&blocked, SIGRTMIN + 3) &&
		      !sigismember(&blocked, SIGTERM),
	      "pending_mask", "blocked mask changed");
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	r = sigtimedwait(&m, &si, &zero);
	check(r == SIGUSR1 && si.si_code == SI_QUEUE && si.si_pid == pending_sender &&
		      si.si_value.sival_int == 4242,
	      "pending_siginfo", "got %d code %d pid %d (sender %d) value %d", r, si.si_code,
	      si.si_pid, pending_sender, si.si_value.sival_int);
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + 3);
	r = sigtimedwait(&m, &si, &zero);
	check(r == SIGRTMIN + 3 && si.si_code == SI_QUEUE && si.si_pid == pending_sender &&
		      si.si_value.sival_int == 777,
	      "pending_rt_first", "got %d code %d pid %d value %d", r, si.si_code, si.si_pid,
	      si.si_value.sival_int);
	r = sigtimedwait(&m, &si, &zero);
	check(r == SIGRTMIN + 3 && si.si_value.sival_int == 778, "pending_rt_queued_twice",
	      "got %d value %d", r, si.si_value.sival_int);
	r = sigtimedwait(&m, &si, &zero);
	check(r < 0 && errno == EAGAIN, "pending_no_extra", "an extra signal %d was pending", r);
	sigaddset(&m, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &m, NULL);
}

static void altstack_setup(void)
{
	stack_t ss;
	struct sigaction sa = { 0 };

	altstack_mem = malloc(ALTSTACK_SIZE);
	ss.ss_sp = altstack_mem;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	sigaltstack(&ss, NULL);
	sa.sa_handler = onstack_handler;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGURG, &sa, NULL);
}

static void altstack_verify(void)
{
	stack_t ss;

	sigaltstack(NULL, &ss);
	check(ss.ss_sp == altstack_mem && ss.ss_size == ALTSTACK_SIZE && ss.ss_flags == 0,
	      "altstack_set", "sp %p size %zu flags %d", ss.ss_sp, ss.ss_size, ss.ss_flags);
	raise(SIGURG);
	check(onstack_addr >= (uintptr_t)altstack_mem &&
		      onstack_addr < (uintptr_t)altstack_mem + ALTSTACK_SIZE,
	      "altstack_used", "handler ran at %#lx, altstack %p", (unsigned long)onstack_addr,
	      altstack_mem);
}

static void itimer_setup(void)
{
	struct itimerval it = { { 0, 100000 }, { 0, 100000 } };

	signal(SIGALRM, alrm_handler);
	setitimer(ITIMER_REAL, &it, NULL);
}

static void itimer_verify(void)
{
	struct itimerval it;
	int before = alrm_count;
	double t0 = mono_now();

	getitimer(ITIMER_REAL, &it);
	check(it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 100000 &&
		      (it.it_value.tv_sec || it.it_value.tv_usec),
	      "itimer_set", "interval %ld.%06ld value %ld.%06ld", (long)it.it_interval.tv_sec,
	      (long)it.it_interval.tv_usec, (long)it.it_value.tv_sec, (long)it.it_value.tv_usec);
	while (mono_now() - t0 < 0.65)
		nap_ms(20);
	check(alrm_count - before >= 3, "itimer_fires", "%d SIGALRM in 650 ms",
	      (int)(alrm_count - before));
}

int main(int argc, char **argv)
{
	const char *mode;
	int all;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "all";
	all = !strcmp(mode, "all");
	if (IS("sigaction"))
		sigaction_setup();
	if (IS("pending"))
		pending_setup();
	if (IS("altstack"))
		altstack_setup();
	if (IS("itimer"))
		itimer_setup();
	report_ready();
	wait_for_go();
	if (IS("pending"))
		pending_verify();
	if (IS("sigaction"))
		sigaction_verify();
	if (IS("altstack"))
		altstack_verify();
	if (IS("itimer"))
		itimer_verify();
	done_and_idle();
}
