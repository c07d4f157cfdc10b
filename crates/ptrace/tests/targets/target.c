/* Test target for psnc-ptrace: sets up state that the tests read from outside, then sleeps.
 *
 * Prints one "ready ..." line with the values it set, then nanosleep()s for argv[1] ms without
 * retrying on EINTR, and prints "slept ret=R errno=E ms=M". A SIGUSR1 handler prints
 * "usr1 pid=P code=C" with the siginfo it got. Built for x86_64 and with -m32 for i386. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char altstack[65536];

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	char buf[96];
	int n = snprintf(buf, sizeof buf, "usr1 pid=%d code=%d\n", (int)si->si_pid, si->si_code);
	(void)sig;
	(void)uc;
	write(1, buf, n);
}

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 1000;
	struct sigaction sa;
	stack_t ss;
	struct itimerval it;
	sigset_t block;
	int p[2];
	union sigval v;
	unsigned gs = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGUSR1, &sa, NULL))
		return 10;

	ss.ss_sp = altstack;
	ss.ss_size = sizeof altstack;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		return 11;

	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = 1000;
	it.it_interval.tv_sec = 500;
	if (setitimer(ITIMER_VIRTUAL, &it, NULL))
		return 12;
	if (prctl(PR_SET_PDEATHSIG, SIGHUP))
		return 13;

	/* A thread-directed SIGUSR2 and a process-wide SIGRTMIN+1 with a value, both blocked. */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	sigaddset(&block, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &block, NULL))
		return 14;
	if (syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR2))
		return 15;
	v.sival_int = 7;
	if (sigqueue(getpid(), SIGRTMIN + 1, v))
		return 16;

	/* A page with a pattern, then made PROT_NONE; a read-write page with a pattern. */
	char *none = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (none == MAP_FAILED || rw == MAP_FAILED)
		return 17;
	memset(none, 0x5a, 4096);
	memset(rw, 0xa5, 4096);
	if (mprotect(none, 4096, PROT_NONE))
		return 18;

	if (pipe(p) || write(p[1], "pipedata", 8) != 8)
		return 19;

	/* A POSIX timer that never fires during a test. */
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	struct itimerspec its = { { 3, 500 }, { 1000, 0 } };
	timer_t timer;
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) || timer_settime(timer, 0, &its, NULL))
		return 20;

#if defined(__i386__)
	__asm__ volatile("movl %%gs, %0" : "=r"(gs));
#endif
	/* Make malloc set up its arena first, so that the break printed is the final one. */
	free(malloc(64));
	char line[512];
	int n = snprintf(line, sizeof line, "ready handler=%lx altsp=%lx altsize=%lx brk=%lx prot_none=%lx rw=%lx pipe_rd=%d gs=%x timer=%lx\n",
	       (unsigned long)(uintptr_t)on_usr1, (unsigned long)(uintptr_t)altstack,
	       (unsigned long)sizeof altstack, (unsigned long)(uintptr_t)sbrk(0),
	       (unsigned long)(uintptr_t)none, (unsigned long)(uintptr_t)rw, p[0], gs,
	       (unsigned long)(uintptr_t)timer);
	write(1, line, n);

	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret = nanosleep(&req, NULL);
	int err = ret ? errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	n = snprintf(line, sizeof line, "slept ret=%d errno=%d ms=%ld\n", ret, err, el);
	write(1, line, n);
	return 0;
}
