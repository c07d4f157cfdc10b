/*
 * zombie MODE: children that exited and that their parent R has not reaped yet.
 *   children  R installs a SIGCHLD handler that counts, forks Z1 (_exit(7)), Z2 (killed by
 *             SIGTERM from R) and L (a live child that idles), and waits (waitid WNOWAIT)
 *             until Z1 and Z2 are zombies. After go: no SIGCHLD arrived meanwhile (the restore
 *             made none of its own); waitpid of Z1 by PID gives WEXITSTATUS 7, of Z2 WTERMSIG
 *             SIGTERM without a core; L still runs (WNOHANG finds nothing, kill(L, 0) works),
 *             and is R's child still: killed with SIGUSR1, waitpid reports exactly that.
 *   blocked   as children, with SIGCHLD blocked in R from the start: after go the SIGCHLD of
 *             the zombies is still pending (the image's pending signal, not the restore's),
 *             and the statuses are as above.
 *   leader    R forks G, which makes its own process group and exits with 3, and M, a member
 *             of G's group (setpgid(0, G)), which idles; and S, which starts its own session
 *             and exits with 0. After go: M is in group G and kill(-G, 0) works (the group of
 *             a zombie leader still exists), waitpid of G gives 3 and of S 0, and the group
 *             still exists once G is reaped (M is in it).
 *   deadleader  R forks D, whose main thread calls pthread_exit while another thread idles:
 *             /proc shows D as a zombie, but it is not one (a refusal of psnc-capture).
 *             R reports "DEAD D" and READY; no check.
 * R reports READY once every zombie is one; children die with R (PR_SET_PDEATHSIG).
 */
#include "target.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static volatile sig_atomic_t sigchld_count;

static void on_sigchld(int sig)
{
	(void)sig;
	sigchld_count++;
}

/* A child that idles until killed; it dies with R. */
static pid_t idler(pid_t pgid)
{
	pid_t c = fork();

	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pgid > 0)
			setpgid(0, pgid);
		for (;;)
			nap_ms(1000);
	}
	if (pgid > 0)
		setpgid(c, pgid);
	return c;
}

/* Waits until child c is a zombie, without reaping it. */
static void until_zombie(pid_t c)
{
	siginfo_t si;

	while (waitid(P_PID, c, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
}

static void check_status(pid_t c, const char *what, int want_code, int want_sig)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(c, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (want_sig)
		check(r == c && WIFSIGNALED(st) && WTERMSIG(st) == want_sig && !WCOREDUMP(st), what,
		      "waitpid(%d, WNOHANG) = %d, status %#x (want killed by %d, no core)", (int)c,
		      (int)r, st, want_sig);
	else
		check(r == c && WIFEXITED(st) && WEXITSTATUS(st) == want_code, what,
		      "waitpid(%d, WNOHANG) = %d, status %#x (want exit %d)", (int)c, (int)r, st,
		      want_code);
}

static void children(int blocked)
{
	sigset_t chld;
	struct sigaction sa;
	pid_t z1, z2, l;
	int before, st = 0;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	if (blocked)
		sigprocmask(SIG_BLOCK, &chld, NULL);
	z1 = fork();
	if (z1 == 0)
		_exit(7);
	z2 = fork();
	if (z2 == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	l = idler(0);
	kill(z2, SIGTERM);
	until_zombie(z1);
	until_zombie(z2);
	/* Until the handler has run for every SIGCHLD that will come. */
	nap_ms(50);
	before = sigchld_count;
	report("ZOMBIES %d %d LIVE %d", (int)z1, (int)z2, (int)l);
	report_ready();
	wait_for_go();

	check(sigchld_count == before, "no_new_sigchld", "%d SIGCHLD after the setup's %d",
	      sigchld_count - before, before);
	if (blocked) {
		sigset_t pending;

		sigpending(&pending);
		check(sigismember(&pending, SIGCHLD), "sigchld_pending", "SIGCHLD is not pending");
	}
	check_status(z1, "zombie_exit_status", 7, 0);
	check_status(z2, "zombie_killed_status", 0, SIGTERM);
	check(waitpid(l, &st, WNOHANG) == 0 && kill(l, 0) == 0, "live_child_runs",
	      "waitpid(%d, WNOHANG) found it gone, or kill(%d, 0) failed: %s", (int)l, (int)l,
	      strerror(errno));
	kill(l, SIGUSR1);
	check(waitpid(l, &st, 0) == l && WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1,
	      "live_child_is_ours", "waitpid(%d) status %#x", (int)l, st);
	check(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "no_other_child",
	      "a child is left after reaping all three");
	if (blocked) {
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
		check(sigchld_count > before, "sigchld_delivered", "the pending SIGCHLD never ran");
	}
	done_and_idle();
}

static void leader(void)
{
	pid_t g, m, s;
	int st = 0;

	g = fork();
	if (g == 0) {
		setpgid(0, 0);
		/* Until M is in the group: a group whose only process exits is gone with it. */
		nap_ms(50);
		_exit(3);
	}
	setpgid(g, g);
	m = idler(g);
	s = fork();
	if (s == 0) {
		setsid();
		_exit(0);
	}
	until_zombie(g);
	until_zombie(s);
	report("ZOMBIES %d %d LIVE %d", (int)g, (int)s, (int)m);
	report_ready();
	wait_for_go();

	check(getpgid(m) == g, "member_in_zombie_group", "getpgid(%d) = %d, want %d", (int)m,
	      (int)getpgid(m), (int)g);
	check(kill(-g, 0) == 0, "zombie_group_exists", "kill(-%d, 0): %s", (int)g, strerror(errno));
	check_status(g, "zombie_leader_status", 3, 0);
	check_status(s, "zombie_session_leader_status", 0, 0);
	check(kill(-g, 0) == 0 && getpgid(m) == g, "group_outlives_its_leader",
	      "kill(-%d, 0): %s", (int)g, strerror(errno));
	kill(m, SIGKILL);
	waitpid(m, &st, 0);
	done_and_idle();
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		nap_ms(1000);
	return NULL;
}

static void dead_leader(void)
{
	pid_t d = fork();

	if (d == 0) {
		pthread_t t;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
			_exit(3);
		pthread_exit(NULL);
	}
	/* Until D's leader shows as a zombie. */
	for (;;) {
		char path[64], buf[512], *p;
		int fd, n;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)d);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? 0 : (int)read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'Z')
			break;
		nap_ms(5);
	}
	report("DEAD %d", (int)d);
	report_ready();
	for (;;)
		nap_ms(1000);
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "children";
	if (!strcmp(mode, "children"))
		children(0);
	if (!strcmp(mode, "blocked"))
		children(1);
	if (!strcmp(mode, "leader"))
		leader();
	if (!strcmp(mode, "deadleader"))
		dead_leader();
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
