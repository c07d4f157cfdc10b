/* Capture-side test target: process and signal state with known values.
 *
 * usage: state DIR
 * SIGUSR1 and SIGUSR2 handlers with SA_SIGINFO|SA_RESTART (mask SIGTERM), SIGALRM ignored; SIGUSR1 and SIGUSR2 blocked, one
 * SIGUSR1 queued process-wide with sigqueue (value 42) and one SIGUSR2 to this thread with tgkill;
 * a sigaltstack; ITIMER_REAL armed (100 s, interval 50 s) with SIGALRM ignored; a POSIX timer on
 * CLOCK_MONOTONIC (200 s); umask 027, RLIMIT_NOFILE 1000/2000, name "statetarget", cwd DIR,
 * PR_SET_PDEATHSIG SIGHUP, child subreaper, no_new_privs.
 * Prints "ready HANDLER_ADDR ALTSTACK_ADDR", then sleeps. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void handler(int sig, siginfo_t *si, void *ctx) { (void)sig; (void)si; (void)ctx; }

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]))
		return 2;
	struct sigaction sa = {0};
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGALRM, SIG_IGN);

	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	union sigval v = {.sival_int = 42};
	sigqueue(getpid(), SIGUSR1, v);
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2);

	static char alt[65536];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
	sigaltstack(&ss, NULL);

	struct itimerval it = {.it_interval = {50, 0}, .it_value = {100, 0}};
	setitimer(ITIMER_REAL, &it, NULL);

	timer_t tid;
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
	sev.sigev_value.sival_int = 7;
	timer_create(CLOCK_MONOTONIC, &sev, &tid);
	struct itimerspec ts = {.it_value = {200, 0}};
	timer_settime(tid, 0, &ts, NULL);

	umask(027);
	struct rlimit rl = {1000, 2000};
	setrlimit(RLIMIT_NOFILE, &rl);
	prctl(PR_SET_NAME, "statetarget");
	prctl(PR_SET_PDEATHSIG, SIGHUP);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

	printf("ready %p %p\n", (void *)handler, (void *)alt);
	fflush(stdout);
	for (;;)
		pause();
}
