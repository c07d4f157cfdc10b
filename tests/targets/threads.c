/*
 * threads: a multithreaded process (issue 4). All at once:
 *   4 workers    each with its own counter, __thread variables, stack pattern and alternate signal
 *                stack (its own buffer and size: each thread's sigaltstack is its own after
 *                restore), and adding to a mutex-protected shared counter; one of them also gets
 *                a pthread_kill after restore
 *   ping, pong   a condition-variable ping-pong that must keep going
 *   futex        a thread in FUTEX_WAIT, woken by main after the go file
 *   sleeper      a thread in a 400 ms nanosleep loop
 *   reader       a thread blocked in read() on an internal pipe that main feeds after the go file
 *   poller       a thread in poll() with a 60 s timeout (restarted through the kernel's restart
 *                block), woken by a byte on its pipe after the go file
 *   ppoller      a thread in ppoll() without a timeout (restarted with ERESTARTNOHAND), likewise
 *   timedfutex   a thread in FUTEX_WAIT with a 60 s timeout, woken by main after the go file
 *   holder       a thread holding an error-checking, a recursive (twice), a robust and a
 *                priority-inheritance mutex across the checkpoint, unlocking them afterwards
 * Every thread checks its gettid() is unchanged; main joins every thread with pthread_join.
 * Restore releases the threads through a SIGSTOP/SIGCONT cycle when that leaves no trace: main
 * checks no stop signal or SIGCONT is pending. Mode "sigcont" installs a SIGCONT handler (the
 * restore must then release the threads without SIGCONT) and checks it never ran. Mode "epoll"
 * adds a thread blocked in epoll_wait() on a pipe, and a second epoll fd (not close-on-exec)
 * watching both ends of that pipe with 64-bit data cookies; after restore it must report both
 * events with their cookies, and still accept EPOLL_CTL_MOD/DEL by the original fd numbers.
 * (Regular files cannot be watched: epoll_ctl refuses them with EPERM.)
 * Build with -pthread.
 */
#include "target.h"
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdatomic.h>

#define WORKERS 4

static atomic_int go;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared_count;
static __thread uint64_t tls_count;
static __thread uint32_t tls_seed = 12345;

struct worker {
	pthread_t thread;
	int index;
	pid_t tid;
	uint64_t count, contributed;
	volatile pid_t kill_seen_tid;
};
static struct worker workers[WORKERS];
/* Each worker's alternate signal stack: its own buffer, 16 KiB plus 4 KiB per index. */
static uint8_t altstacks[WORKERS][16384 + 4096 * WORKERS];
static volatile pid_t usr1_tid;

static void usr1_handler(int sig)
{
	(void)sig;
	usr1_tid = my_gettid();
}

static volatile sig_atomic_t sigcont_runs;

static void cont_handler(int sig)
{
	(void)sig;
	sigcont_runs++;
}

static void check_tid(const char *who, pid_t tid)
{
	char what[64];

	snprintf(what, sizeof(what), "tid_%s", who);
	check(my_gettid() == tid, what, "gettid() %d, was %d", (int)my_gettid(), (int)tid);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t stack_pattern[2048];
	char name[32], what[64];

	stack_t ss = { .ss_sp = altstacks[w->index], .ss_size = 16384 + 4096 * (size_t)w->index };

	w->tid = my_gettid();
	tls_seed = 50 + (uint32_t)w->index;
	fill_pattern(stack_pattern, sizeof(stack_pattern), tls_seed);
	if (sigaltstack(&ss, NULL))
		exit(7);
	while (!atomic_load(&go)) {
		w->count++;
		tls_count++;
		pthread_mutex_lock(&shared_lock);
		shared_count++;
		w->contributed++;
		pthread_mutex_unlock(&shared_lock);
		nap_ms(5);
	}
	snprintf(name, sizeof(name), "worker%d", w->index);
	check_tid(name, w->tid);
	snprintf(what, sizeof(what), "tls_%s", name);
	check(tls_count == w->count && tls_seed == 50 + (uint32_t)w->index, what,
	      "tls count %llu vs %llu, seed %u", (unsigned long long)tls_count,
	      (unsigned long long)w->count, tls_seed);
	snprintf(what, sizeof(what), "stack_%s", name);
	check(check_pattern(stack_pattern, sizeof(stack_pattern), tls_seed) < 0, what,
	      "stack pattern differs");
	memset(&ss, 0, sizeof(ss));
	sigaltstack(NULL, &ss);
	snprintf(what, sizeof(what), "altstack_%s", name);
	check(ss.ss_sp == altstacks[w->index] &&
		      ss.ss_size == 16384 + 4096 * (size_t)w->index && !(ss.ss_flags & SS_DISABLE),
	      what, "sigaltstack %p size %zu flags %d, expected %p size %zu", ss.ss_sp, ss.ss_size,
	      ss.ss_flags, (void *)altstacks[w->index], 16384 + 4096 * (size_t)w->index);
	return w;
}

/* ---- condvar ping-pong ---- */
static pthread_mutex_t pp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cond = PTHREAD_COND_INITIALIZER;
static int pp_turn;
static uint64_t pp_rounds;

static void *pingpong_main(void *arg)
{
	int me = (int)(intptr_t)arg;
	pid_t tid = my_gettid();

	for (;;) {
		pthread_mutex_lock(&pp_lock);
		while (pp_turn != me && !atomic_load(&go))
			pthread_cond_wait(&pp_cond, &pp_lock);
		if (atomic_load(&go)) {
			pthread_mutex_unlock(&pp_lock);
			break;
		}
		pp_turn = !me;
		pp_rounds++;
		pthread_cond_broadcast(&pp_cond);
		pthread_mutex_unlock(&pp_lock);
		nap_ms(2);
	}
	check_tid(me ? "pong" : "ping", tid);
	return arg;
}

/* ---- futex ---- */
static uint32_t futex_word;

static void *futex_main(void *arg)
{
	pid_t tid = my_gettid();
	long r;

	do {
		r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	} while (__atomic_load_n(&futex_word, __ATOMIC_SEQ_CST) == 0 &&
		 (r == 0 || errno == EINTR || errno == EAGAIN));
	check(__atomic_load_n(&futex_word, __ATOMIC_SEQ_CST) == 1, "futex_wake",
	      "woke with word %u: %s", futex_word, r < 0 ? strerror(errno) : "ok");
	check_tid("futex", tid);
	return arg;
}

/* ---- nanosleep ---- */
static void *sleeper_main(void *arg)
{
	pid_t tid = my_gettid();
	int rounds = 0;

	while (!atomic_load(&go)) {
		struct timespec ts = { 0, 400000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		rounds++;
	}
	check(rounds > 0, "sleeper_rounds", "never slept");
	check_tid("sleeper", tid);
	return arg;
}

/* ---- read ---- */
static int rpipe[2];

static void *reader_main(void *arg)
{
	pid_t tid = my_gettid();
	char buf[16];
	ssize_t n;

	while ((n = read(rpipe[0], buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	check(n == 5 && !memcmp(buf, "wake!", 5), "reader_read", "read %zd bytes", n);
	check_tid("reader", tid);
	return arg;
}

/* ---- poll, ppoll ---- */
static int ppipe[2], qpipe[2];

static void *poller_main(void *arg)
{
	struct pollfd pfd = { .fd = ppipe[0], .events = POLLIN };
	pid_t tid = my_gettid();
	int n;

	while ((n = poll(&pfd, 1, 60000)) < 0 && errno == EINTR)
		;
	check(n == 1 && (pfd.revents & POLLIN), "poll_woken", "poll returned %d, revents %#x: %s", n,
	      pfd.revents, n < 0 ? strerror(errno) : "timeout or no POLLIN");
	check_tid("poller", tid);
	return arg;
}

static void *ppoller_main(void *arg)
{
	struct pollfd pfd = { .fd = qpipe[0], .events = POLLIN };
	pid_t tid = my_gettid();
	sigset_t none;
	int n;

	sigemptyset(&none);
	while ((n = ppoll(&pfd, 1, NULL, &none)) < 0 && errno == EINTR)
		;
	check(n == 1 && (pfd.revents & POLLIN), "ppoll_woken", "ppoll returned %d, revents %#x: %s",
	      n, pfd.revents, n < 0 ? strerror(errno) : "no POLLIN");
	check_tid("ppoller", tid);
	return arg;
}

/* ---- epoll_wait (mode "epoll") ---- */
static int epipe[2], epfd = -1, epfd2 = -1;
#define COOKIE_IN 0x1122334455667788ULL
#define COOKIE_OUT 0xfedcba9800000003ULL

/* The second epoll fd's interest list came back: both events with their cookies. */
static void check_epoll2(void)
{
	struct epoll_event evs[4], ev = { .events = EPOLLIN };
	int n, in = 0, out = 0;

	n = epoll_wait(epfd2, evs, 4, 1000);
	for (int i = 0; i < n; i++) {
		in |= evs[i].data.u64 == COOKIE_IN && (evs[i].events & EPOLLIN);
		out |= evs[i].data.u64 == COOKIE_OUT && (evs[i].events & EPOLLOUT);
	}
	check(n == 2 && in && out, "epoll_watches", "epoll_wait on the second epoll fd returned %d (in %d, out %d)",
	      n, in, out);
	/* The watches are keyed by the restored fd numbers. */
	check(epoll_ctl(epfd2, EPOLL_CTL_MOD, epipe[0], &ev) == 0 &&
	      epoll_ctl(epfd2, EPOLL_CTL_DEL, epipe[1], NULL) == 0,
	      "epoll_ctl_by_fd", "EPOLL_CTL_MOD/DEL by the original fd numbers: %s", strerror(errno));
	check((fcntl(epfd, F_GETFD) & FD_CLOEXEC) && !(fcntl(epfd2, F_GETFD) & FD_CLOEXEC),
	      "epoll_cloexec", "close-on-exec flags of the epoll fds changed");
}

static void *epoller_main(void *arg)
{
	struct epoll_event ev;
	pid_t tid = my_gettid();
	int n;

	while ((n = epoll_wait(epfd, &ev, 1, -1)) < 0 && errno == EINTR)
		;
	check(n == 1 && ev.data.fd == epipe[0], "epoll_woken", "epoll_wait returned %d: %s", n,
	      n < 0 ? strerror(errno) : "wrong event");
	check_tid("epoller", tid);
	return arg;
}

/* ---- futex wait with a timeout ---- */
static uint32_t timed_word;

static void *timedfutex_main(void *arg)
{
	struct timespec ts = { 60, 0 };
	pid_t tid = my_gettid();
	long r;

	do {
		r = syscall(SYS_futex, &timed_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	} while (__atomic_load_n(&timed_word, __ATOMIC_SEQ_CST) == 0 &&
		 (r == 0 || errno == EINTR || errno == EAGAIN));
	check(__atomic_load_n(&timed_word, __ATOMIC_SEQ_CST) == 1 && (r == 0 || errno == EAGAIN),
	      "futex_timed_wake", "woke with word %u: %s", timed_word,
	      r < 0 ? strerror(errno) : "ok");
	check_tid("timedfutex", tid);
	return arg;
}

/* ---- mutex kinds held across the checkpoint ---- */
static pthread_mutex_t m_errcheck, m_recursive, m_robust, m_pi;
static pthread_barrier_t held;

static void init_mutex(pthread_mutex_t *m, int type, int robust, int protocol)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, type);
	if (robust)
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (protocol)
		pthread_mutexattr_setprotocol(&a, protocol);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

static void *holder_main(void *arg)
{
	pid_t tid = my_gettid();
	int r1, r2, r3, r4, r5;

	pthread_mutex_lock(&m_errcheck);
	pthread_mutex_lock(&m_recursive);
	pthread_mutex_lock(&m_recursive);
	pthread_mutex_lock(&m_robust);
	pthread_mutex_lock(&m_pi);
	pthread_barrier_wait(&held);
	while (!atomic_load(&go))
		nap_ms(10);
	r1 = pthread_mutex_unlock(&m_errcheck);
	r2 = pthread_mutex_unlock(&m_recursive);
	r3 = pthread_mutex_unlock(&m_recursive);
	r4 = pthread_mutex_unlock(&m_robust);
	r5 = pthread_mutex_unlock(&m_pi);
	check(r1 == 0, "mutex_errorcheck_unlock", "unlock: %s", strerror(r1));
	check(r2 == 0 && r3 == 0, "mutex_recursive_unlock", "unlock: %s / %s", strerror(r2),
	      strerror(r3));
	check(r4 == 0, "mutex_robust_unlock", "unlock: %s", strerror(r4));
	check(r5 == 0, "mutex_pi_unlock", "unlock: %s", strerror(r5));
	check_tid("holder", tid);
	return arg;
}

static void check_free(pthread_mutex_t *m, const char *what)
{
	int r = pthread_mutex_trylock(m);

	check(r == 0, what, "trylock after the holder unlocked: %s", strerror(r));
	if (r == 0)
		pthread_mutex_unlock(m);
}

int main(int argc, char **argv)
{
	pthread_t ping, pong, fut, sleeper, reader, holder, poller, ppoller, tfut, epoller;
	struct sigaction sa = { .sa_handler = usr1_handler };
	pid_t main_tid = my_gettid();
	uint64_t rounds_at_go, total = 0;
	void *ret;
	int ok;

	int sigcont_mode = argc > 2 && !strcmp(argv[2], "sigcont");
	int epoll_mode = argc > 2 && !strcmp(argv[2], "epoll");
	sigset_t pending;

	target_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (sigcont_mode) {
		struct sigaction ca = { .sa_handler = cont_handler };

		sigemptyset(&ca.sa_mask);
		sigaction(SIGCONT, &ca, NULL);
	}
	if (pipe(rpipe) < 0 || pipe(ppipe) < 0 || pipe(qpipe) < 0)
		return 3;
	init_mutex(&m_errcheck, PTHREAD_MUTEX_ERRORCHECK, 0, 0);
	init_mutex(&m_recursive, PTHREAD_MUTEX_RECURSIVE, 0, 0);
	init_mutex(&m_robust, PTHREAD_MUTEX_NORMAL, 1, 0);
	init_mutex(&m_pi, PTHREAD_MUTEX_NORMAL, 0, PTHREAD_PRIO_INHERIT);
	pthread_barrier_init(&held, NULL, 2);
	for (int i = 0; i < WORKERS; i++) {
		workers[i].index = i;
		pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
	}
	pthread_create(&ping, NULL, pingpong_main, (void *)0);
	pthread_create(&pong, NULL, pingpong_main, (void *)1);
	pthread_create(&fut, NULL, futex_main, NULL);
	pthread_create(&sleeper, NULL, sleeper_main, NULL);
	pthread_create(&reader, NULL, reader_main, NULL);
	pthread_create(&holder, NULL, holder_main, NULL);
	pthread_create(&poller, NULL, poller_main, NULL);
	pthread_create(&ppoller, NULL, ppoller_main, NULL);
	pthread_create(&tfut, NULL, timedfutex_main, NULL);
	if (epoll_mode) {
		struct epoll_event ev = { .events = EPOLLIN };

		epfd = epoll_create1(EPOLL_CLOEXEC);
		if (epfd < 0 || pipe(epipe) < 0)
			return 3;
		ev.data.fd = epipe[0];
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, epipe[0], &ev) < 0)
			return 3;
		epfd2 = epoll_create1(0);
		ev.events = EPOLLIN;
		ev.data.u64 = COOKIE_IN;
		if (epfd2 < 0 || epoll_ctl(epfd2, EPOLL_CTL_ADD, epipe[0], &ev) < 0)
			return 3;
		ev.events = EPOLLOUT | EPOLLET;
		ev.data.u64 = COOKIE_OUT;
		if (epoll_ctl(epfd2, EPOLL_CTL_ADD, epipe[1], &ev) < 0)
			return 3;
		pthread_create(&epoller, NULL, epoller_main, NULL);
	}
	pthread_barrier_wait(&held);
	nap_ms(50);
	report_ready();
	wait_for_go();

	check(my_gettid() == main_tid && main_tid == getpid(), "tid_main", "gettid() %d, was %d",
	      (int)my_gettid(), (int)main_tid);
	sigpending(&pending);
	check(!sigismember(&pending, SIGCONT) && !sigismember(&pending, SIGTSTP) &&
		      !sigismember(&pending, SIGTTIN) && !sigismember(&pending, SIGTTOU),
	      "no_stray_job_signals", "SIGCONT %d, SIGTSTP %d pending",
	      sigismember(&pending, SIGCONT), sigismember(&pending, SIGTSTP));
	if (sigcont_mode)
		check(sigcont_runs == 0, "sigcont_handler_not_run", "the SIGCONT handler ran %d times",
		      (int)sigcont_runs);
	/* The ping-pong must still be moving before everyone is told to stop. */
	pthread_mutex_lock(&pp_lock);
	rounds_at_go = pp_rounds;
	pthread_mutex_unlock(&pp_lock);
	nap_ms(100);
	pthread_mutex_lock(&pp_lock);
	check(pp_rounds > rounds_at_go, "condvar_pingpong", "stuck at %llu rounds",
	      (unsigned long long)pp_rounds);
	pthread_mutex_unlock(&pp_lock);
	/* pthread_kill reaches the right thread (glibc uses the TID it stored at creation). */
	usr1_tid = 0;
	ok = pthread_kill(workers[2].thread, SIGUSR1) == 0;
	for (int i = 0; i < 100 && !usr1_tid; i++)
		nap_ms(10);
	check(ok && usr1_tid == workers[2].tid, "pthread_kill", "signal ran in tid %d, expected %d",
	      (int)usr1_tid, (int)workers[2].tid);

	atomic_store(&go, 1);
	pthread_mutex_lock(&pp_lock);
	pthread_cond_broadcast(&pp_cond);
	pthread_mutex_unlock(&pp_lock);
	__atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	if (write(rpipe[1], "wake!", 5) != 5)
		check(0, "reader_feed", "write to the internal pipe failed");
	if (write(ppipe[1], "p", 1) != 1 || write(qpipe[1], "q", 1) != 1)
		check(0, "poll_feed", "write to a poll pipe failed");
	if (epoll_mode && write(epipe[1], "e", 1) != 1)
		check(0, "epoll_feed", "write to the epoll pipe failed");
	__atomic_store_n(&timed_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &timed_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);

	ok = 1;
	for (int i = 0; i < WORKERS; i++) {
		ok &= pthread_join(workers[i].thread, &ret) == 0 && ret == &workers[i];
		total += workers[i].contributed;
	}
	ok &= pthread_join(ping, &ret) == 0 && ret == (void *)0;
	ok &= pthread_join(pong, &ret) == 0 && ret == (void *)1;
	ok &= pthread_join(fut, NULL) == 0;
	ok &= pthread_join(sleeper, NULL) == 0;
	ok &= pthread_join(reader, NULL) == 0;
	ok &= pthread_join(holder, NULL) == 0;
	ok &= pthread_join(poller, NULL) == 0;
	ok &= pthread_join(ppoller, NULL) == 0;
	ok &= pthread_join(tfut, NULL) == 0;
	if (epoll_mode) {
		ok &= pthread_join(epoller, NULL) == 0;
		check_epoll2();
	}
	check(ok, "pthread_join", "a join failed or returned the wrong value");
	check(total == shared_count, "mutex_shared_counter", "shared %llu, sum of parts %llu",
	      (unsigned long long)shared_count, (unsigned long long)total);
	check_free(&m_errcheck, "mutex_errorcheck_free");
	check_free(&m_recursive, "mutex_recursive_free");
	check_free(&m_robust, "mutex_robust_free");
	check_free(&m_pi, "mutex_pi_free");
	done_and_idle();
}
