/*
 * tree MODE: a process tree.
 *   ring     the started process R forks S, which calls setsid (a session leader) and forks:
 *              A  setpgid(0, 0): a background job, leader of its own group, which forks
 *              A2 a member of A's group (setpgid(0, A));
 *              B  in S's group.
 *            Pipes S->A, A->B, B->S each hold unread bytes at capture. R reports "TREE <S>"
 *            and READY; the harness captures S (the tree S, A, A2, B). After go every process
 *            of the tree checks its PID, parent, group and session against the values it
 *            recorded at setup; S, A and B read the bytes buffered in their incoming pipe,
 *            write a new message and read their predecessor's, so each pipe still carries data
 *            after the restore. Every process ticks every millisecond and records when it ran
 *            again after the longest pause it saw ("INFO resumed NAME SECONDS", monotonic).
 *            Each child reports "KID NAME fails=N"; S reports DONE once all three have.
 *   zombie   R forks a child that exits at once and never reaps it.
 *   socket   R forks a child that holds an AF_PACKET socket (an fd kind capture refuses).
 *   sharedfd R opens a file and forks a child: both hold one open file description.
 *   sharedevfd R creates an eventfd (counter 5) and forks a child: both hold the one eventfd.
 *   forker   R forks COUNT children (default 40), one every 5 ms, which idle.
 *   exiter   R forks children that exit after about a millisecond, reaping each (waitpid),
 *            forever: a child exits while the tree is being seized.
 *   fifo     R makes the FIFO REPORT.fifo and forks C, which opens it to read (non-blocking);
 *            R opens it to write and writes 11 bytes nobody reads before the capture. After go
 *            C reads them, exactly once ("PASS C:fifo_bytes_once"); R reports DONE after C.
 *   mixed PATH  R forks a child that execs PATH (the other mode's build of this target) in mode
 *            idle, which only sleeps.
 *   outsidegroup  R forks Y (setpgid(0, 0)), Y forks Z, which joins R's group: captured from Y
 *            ("TREE <Y>"), Z's group leader is outside the image.
 * The children of zombie, socket, sharedfd, sharedevfd and forker die with R (PR_SET_PDEATHSIG).
 * Lines of the tree's processes are prefixed with their name: "PASS A:ppid".
 */
#include "target.h"
#include <signal.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const char *name = "S";
static pid_t my_pid, my_ppid, my_pgid, my_sid;
static int in_fd = -1, out_fd = -1;
static char pre_msg[64];
static double last_tick, longest_gap, resumed_at;

static void record_ids(void)
{
	my_pid = getpid();
	my_ppid = getppid();
	my_pgid = getpgid(0);
	my_sid = getsid(0);
}

static void tick(void)
{
	double now = mono_now();

	if (last_tick > 0 && now - last_tick > longest_gap) {
		longest_gap = now - last_tick;
		resumed_at = now;
	}
	last_tick = now;
}

static void named_check(int ok, const char *what, const char *fmt, long a, long b)
{
	char w[64];

	snprintf(w, sizeof(w), "%s:%s", name, what);
	check(ok, w, fmt, a, b);
}

static int read_exact(int fd, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* The checks of one process of the ring, after go. */
static void verify_self(void)
{
	char buf[64], post[64];
	size_t len;

	named_check(getpid() == my_pid, "pid", "pid %ld, expected %ld", (long)getpid(), (long)my_pid);
	/* The root's parent is outside the image: restore documents that its ppid changes. */
	if (strcmp(name, "S"))
		named_check(getppid() == my_ppid, "ppid", "ppid %ld, expected %ld",
			    (long)getppid(), (long)my_ppid);
	named_check(getpgid(0) == my_pgid, "pgid", "pgid %ld, expected %ld", (long)getpgid(0),
		    (long)my_pgid);
	named_check(getsid(0) == my_sid, "sid", "sid %ld, expected %ld", (long)getsid(0),
		    (long)my_sid);
	report("INFO resumed %s %.6f gap %.3f", name, resumed_at, longest_gap);
	if (in_fd < 0)
		return;
	/* The predecessor's message, buffered at capture. */
	len = strlen(pre_msg);
	memset(buf, 0, sizeof(buf));
	named_check(read_exact(in_fd, buf, len) == 0 && strcmp(buf, pre_msg) == 0, "buffered_bytes",
		    "read %ld bytes, expected %ld", (long)strlen(buf), (long)len);
	/* Both ends still work: a new message through each pipe. */
	snprintf(post, sizeof(post), "post-from-%s.", name);
	named_check(write(out_fd, post, strlen(post)) == (ssize_t)strlen(post), "pipe_write",
		    "write failed (%ld, %ld)", (long)errno, 0L);
	memset(buf, 0, sizeof(buf));
	named_check(read_exact(in_fd, buf, strlen("post-from-X.")) == 0 &&
			    strncmp(buf, "post-from-", 10) == 0,
		    "pipe_read", "read failed (%ld, %ld)", (long)errno, 0L);
}

/* A child's life after setup: tick until go, check, report, idle. */
__attribute__((noreturn)) static void child_loop(void)
{
	char line[64];

	report("UP %s %d", name, (int)getpid());
	while (!go_requested()) {
		for (int i = 0; i < 10; i++) {
			tick();
			nap_ms(1);
		}
	}
	verify_self();
	snprintf(line, sizeof(line), "KID %s fails=%d", name, fail_count);
	report("%s", line);
	for (;;)
		nap_ms(1000);
}

/* Makes `fd` hold `msg` unread. */
static void put(int fd, const char *msg)
{
	if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
		exit(4);
}

__attribute__((noreturn)) static void session_leader(void)
{
	int sa[2], ab[2], bs[2];
	pid_t a, b;

	if (setsid() < 0)
		exit(5);
	if (pipe(sa) || pipe(ab) || pipe(bs))
		exit(6);
	a = fork();
	if (a == 0) {
		name = "A";
		setpgid(0, 0);
		close(sa[1]);
		close(ab[0]);
		close(bs[0]);
		close(bs[1]);
		in_fd = sa[0];
		out_fd = ab[1];
		put(out_fd, "pre-from-A.");
		snprintf(pre_msg, sizeof(pre_msg), "pre-from-S.");
		if (fork() == 0) {
			name = "A2";
			setpgid(0, getppid());
			close(in_fd);
			close(out_fd);
			in_fd = out_fd = -1;
			record_ids();
			child_loop();
		}
		record_ids();
		child_loop();
	}
	setpgid(a, a); /* no race with A's own call */
	b = fork();
	if (b == 0) {
		name = "B";
		close(sa[0]);
		close(sa[1]);
		close(ab[1]);
		close(bs[0]);
		in_fd = ab[0];
		out_fd = bs[1];
		put(out_fd, "pre-from-B.");
		snprintf(pre_msg, sizeof(pre_msg), "pre-from-A.");
		record_ids();
		child_loop();
	}
	close(sa[0]);
	close(ab[0]);
	close(ab[1]);
	close(bs[1]);
	in_fd = bs[0];
	out_fd = sa[1];
	put(out_fd, "pre-from-S.");
	snprintf(pre_msg, sizeof(pre_msg), "pre-from-B.");
	record_ids();
	while (report_count("UP ") < 3)
		nap_ms(5);
	/* A2 must be in A's group before the capture. */
	report("TREE %d", (int)getpid());
	while (!go_requested()) {
		for (int i = 0; i < 10; i++) {
			tick();
			nap_ms(1);
		}
	}
	verify_self();
	for (int i = 0; i < 1000 && report_count("KID ") < 3; i++)
		nap_ms(10);
	check(report_count("KID ") == 3, "S:children_reported", "%d of 3 children reported",
	      report_count("KID "));
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "ring";
	/* An unwritable report (the harness's exec probe) exits before any child exists. */
	{
		int fd = open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			_exit(90);
		close(fd);
	}
	/* R reaps nothing: children of R that exit vanish at once (zombie mode aside). */
	if (!strcmp(mode, "ring")) {
		pid_t s;

		signal(SIGCHLD, SIG_IGN);
		s = fork();
		if (s == 0)
			session_leader();
		while (report_count("TREE ") < 1)
			nap_ms(5);
		report_ready();
		for (;;)
			nap_ms(1000);
	}
	if (!strcmp(mode, "zombie")) {
		if (fork() == 0)
			_exit(7);
		/* Until the child is a zombie. */
		nap_ms(50);
	} else if (!strcmp(mode, "socket")) {
		if (fork() == 0) {
			int s = socket(AF_PACKET, SOCK_DGRAM, 0);

			prctl(PR_SET_PDEATHSIG, SIGKILL);

			(void)s;
			for (;;)
				nap_ms(1000);
		}
	} else if (!strcmp(mode, "sharedfd")) {
		char path[4200];
		int fd;

		snprintf(path, sizeof(path), "%s.shared", report_path);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, "x", 1) != 1)
			exit(3);
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				nap_ms(1000);
		}
	} else if (!strcmp(mode, "sharedevfd")) {
		if (eventfd(5, 0) < 0)
			exit(3);
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				nap_ms(1000);
		}
	} else if (!strcmp(mode, "fifo")) {
		char path[4200];
		int w;

		snprintf(path, sizeof(path), "%s.fifo", report_path);
		if (mkfifo(path, 0600))
			exit(3);
		if (fork() == 0) {
			char buf[64];
			ssize_t n, more;
			int r = open(path, O_RDONLY | O_NONBLOCK);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			name = "C";
			report("UP C %d", (int)getpid());
			wait_for_go();
			memset(buf, 0, sizeof(buf));
			n = read(r, buf, sizeof(buf) - 1);
			more = read(r, buf + (n > 0 ? n : 0), 1);
			check(n == 11 && !strcmp(buf, "fifo-bytes.") && more < 0 && errno == EAGAIN,
			      "C:fifo_bytes_once", "read %zd bytes \"%s\", then %zd", n, buf, more);
			report("KID C fails=%d", fail_count);
			for (;;)
				nap_ms(1000);
		}
		while (report_count("UP C") < 1)
			nap_ms(5);
		w = open(path, O_WRONLY);
		put(w, "fifo-bytes.");
		report_ready();
		wait_for_go();
		for (int i = 0; i < 1000 && report_count("KID ") < 1; i++)
			nap_ms(10);
		check(report_count("KID ") == 1, "R:child_reported", "%d of 1", report_count("KID "));
		done_and_idle();
	} else if (!strcmp(mode, "idle")) {
		for (;;)
			nap_ms(1000);
	} else if (!strcmp(mode, "mixed")) {
		if (argc < 4)
			return 2;
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			execl(argv[3], argv[3], report_path, "idle", (char *)NULL);
			_exit(8);
		}
	} else if (!strcmp(mode, "exiter")) {
		report_ready();
		for (;;) {
			pid_t c = fork();

			if (c == 0) {
				nap_ms(1);
				_exit(0);
			}
			waitpid(c, NULL, 0);
		}
	} else if (!strcmp(mode, "outsidegroup")) {
		pid_t r = getpid(), y = fork();

		if (y == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			setpgid(0, 0);
			if (fork() == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				setpgid(0, r);
				report("UP Z %d", (int)getpid());
				for (;;)
					nap_ms(1000);
			}
			for (;;)
				nap_ms(1000);
		}
		while (report_count("UP Z") < 1)
			nap_ms(5);
		report("TREE %d", (int)y);
	} else if (!strcmp(mode, "forker")) {
		int count = argc > 3 ? atoi(argv[3]) : 40;

		signal(SIGCHLD, SIG_IGN);
		report_ready();
		for (int i = 0; i < count; i++) {
			if (fork() == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				for (;;)
					nap_ms(1000);
			}
			nap_ms(5);
		}
		for (;;)
			nap_ms(1000);
	} else {
		fprintf(stderr, "tree: unknown mode %s\n", mode);
		return 2;
	}
	/* Give the child time to set up. */
	nap_ms(100);
	report_ready();
	for (;;)
		nap_ms(1000);
}
