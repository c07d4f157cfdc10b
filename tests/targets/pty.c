/*
 * pty: a pseudo-terminal pair inside the tree (see tests/README.md).
 *
 *   pty REPORT
 *
 * The parent P opens /dev/ptmx, makes its settings (echo, ICRNL and OPOST off, VINTR = ^G, a
 * 37x101 window) and forks C, which starts a session (setsid), makes the slave its controlling
 * terminal (TIOCSCTTY), puts it on fds 0, 1 and 2, forks G (a member of its session and group,
 * which inherits the terminal, holding no fd on it) and loops: each line read from the terminal
 * is written back uppercased; the line "check" makes C check its own state (its session,
 * /dev/tty, tcgetpgrp, its pts name), asks G through a pipe to open /dev/tty and check
 * tcgetpgrp on it, and answer "CHECKED <fails>". P keeps only the master. After go P
 * checks the termios and the window size through the master, sends lines and reads the
 * answers, asks C to check, and reports DONE with C's failures added to its own. P also holds a
 * second master, never unlocked and in packet mode, with no slave open: it checks both after go.
 *
 *   pty REPORT noslave      C keeps the terminal as its controlling one but closes every fd on
 *                           the slave (fds 0-2 are /dev/null): the capture refusal
 *   pty REPORT member       C keeps the master too and forks M, a member of its session with
 *                           the master and the terminal: M captured alone is the refusal of a
 *                           controlling terminal whose session leader is not in the image
 *
 * In both, the process named by the "REFUSED <pid> <pts>" line checks that /dev/tty still
 * opens after go and reports DONE; the others idle.
 */
#include "target.h"

#include <ctype.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static char slave_name[64];

/* The report so far (for the refusal modes' handshake), NUL-terminated. */
static const char *report_text(void)
{
	static char text[4096];
	int fd = open(report_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? 0 : read(fd, text, sizeof(text) - 1);

	if (fd >= 0)
		close(fd);
	text[n > 0 ? n : 0] = 0;
	return text;
}
/* C -> G: "check"; G -> C: 0 when G's checks passed, else 1. */
static int to_member[2], from_member[2];

/* Reads from fd until a newline or timeout_ms pass; returns the bytes read (NUL-terminated). */
static int read_line(int fd, char *buf, int size, int timeout_ms)
{
	int n = 0;
	double end = mono_now() + timeout_ms / 1000.0;

	while (n < size - 1) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)((end - mono_now()) * 1000);

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t r = read(fd, buf + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return n;
}

static void write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void child_checks(void)
{
	int fd;

	check(getsid(0) == getpid(), "pty_child_session_leader", "sid %d, pid %d", (int)getsid(0),
	      (int)getpid());
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	check(fd >= 0, "pty_dev_tty_opens", "open(/dev/tty): %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	check(tcgetpgrp(0) == getpgrp(), "pty_foreground_group", "tcgetpgrp %d, pgrp %d",
	      (int)tcgetpgrp(0), (int)getpgrp());
	{
		char *name = ttyname(0);

		report("INFO pty slave was %s, is %s", slave_name, name ? name : "(none)");
	}
	{
		char c = 'c', r = 1;

		check(write(to_member[1], &c, 1) == 1 && read(from_member[0], &r, 1) == 1 && r == 0,
		      "pty_member_dev_tty", "the session member's /dev/tty check answered %d", r);
	}
}

/* G: a member of C's session without an fd on the terminal; /dev/tty is its inherited one. */
__attribute__((noreturn)) static void member_loop(void)
{
	for (;;) {
		char c, r = 1;
		int fd;

		if (read(to_member[0], &c, 1) != 1) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			r = tcgetpgrp(fd) == getpgrp() ? 0 : 1;
			close(fd);
		}
		if (write(from_member[1], &r, 1) != 1)
			_exit(0);
	}
}

__attribute__((noreturn)) static void child_loop(void)
{
	char line[256];

	for (;;) {
		int n = read_line(0, line, sizeof(line), 1000);

		if (n == 0)
			continue;
		if (strcmp(line, "check\n") == 0) {
			char answer[64];
			int before = fail_count;

			child_checks();
			snprintf(answer, sizeof(answer), "CHECKED %d\n", fail_count - before);
			write_all(1, answer);
			continue;
		}
		for (int i = 0; i < n; i++)
			line[i] = (char)toupper((unsigned char)line[i]);
		write_all(1, line);
	}
}

/* The refusal modes' process: after go, /dev/tty still opens (nothing was changed). */
__attribute__((noreturn)) static void refused_loop(void)
{
	int fd;

	wait_for_go();
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	check(fd >= 0, "pty_dev_tty_untouched", "open(/dev/tty): %s", strerror(errno));
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	struct termios t;
	struct winsize ws = { .ws_row = 37, .ws_col = 101 };
	int master, slave;
	pid_t child;
	char buf[256];

	target_init(argc, argv);
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master) || !ptsname(master))
		return 3;
	snprintf(slave_name, sizeof(slave_name), "%s", ptsname(master));
	if (tcgetattr(master, &t))
		return 4;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_iflag &= ~(tcflag_t)ICRNL;
	t.c_oflag &= ~(tcflag_t)OPOST;
	t.c_cc[VINTR] = 0x07;
	if (tcsetattr(master, TCSANOW, &t) || ioctl(master, TIOCSWINSZ, &ws))
		return 5;
	child = fork();
	if (child < 0)
		return 6;
	if (child == 0) {
		if (strcmp(mode, "member") != 0)
			close(master);
		if (setsid() < 0) {
			report("FAIL pty_setup: setsid: %s", strerror(errno));
			_exit(7);
		}
		slave = open(slave_name, O_RDWR | O_NOCTTY);
		if (slave < 0 || ioctl(slave, TIOCSCTTY, 0)) {
			report("FAIL pty_setup: %s %s: %s", slave < 0 ? "open" : "TIOCSCTTY",
			       slave_name, strerror(errno));
			_exit(8);
		}
		if (strcmp(mode, "noslave") == 0 || strcmp(mode, "member") == 0) {
			int null = open("/dev/null", O_RDWR);
			pid_t m = 0;

			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			close(null);
			close(slave);
			if (strcmp(mode, "member") == 0 && (m = fork()) == 0)
				refused_loop();
			report("REFUSED %d %s", m ? (int)m : (int)getpid(), slave_name);
			if (m)
				for (;;)
					nap_ms(1000);
			refused_loop();
		}
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		if (slave > 2)
			close(slave);
		if (pipe(to_member) || pipe(from_member))
			_exit(10);
		if (fork() == 0) {
			close(0);
			close(1);
			close(2);
			member_loop();
		}
		child_loop();
	}
	if (*mode) {
		/* The refusal modes: READY once the process to capture says who it is (or the
		 * child's end, with its status, when it could not set itself up). */
		while (!strstr(report_text(), "REFUSED ")) {
			int status;

			if (waitpid(child, &status, WNOHANG) == child) {
				report("FAIL pty_setup: child %d ended before REFUSED (status %#x)",
				       (int)child, status);
				return 12;
			}
			nap_ms(10);
		}
		report_ready();
		for (;;)
			nap_ms(1000);
	}
	int locked = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	int on = 1;

	if (locked < 0 || ioctl(locked, TIOCPKT, &on))
		return 11;
	/* The child answers once it runs its loop. */
	write_all(master, "ping\n");
	if (read_line(master, buf, sizeof(buf), 5000) == 0 || strcmp(buf, "PING\n") != 0)
		return 9;
	report_ready();
	wait_for_go();

	{
		struct termios now;
		struct winsize w;

		check(tcgetattr(master, &now) == 0 && !(now.c_lflag & ECHO) &&
			      !(now.c_iflag & ICRNL) && !(now.c_oflag & OPOST) &&
			      now.c_cc[VINTR] == 0x07 && (now.c_lflag & ICANON),
		      "pty_termios", "lflag %#x iflag %#x oflag %#x VINTR %#x", now.c_lflag,
		      now.c_iflag, now.c_oflag, now.c_cc[VINTR]);
		check(ioctl(master, TIOCGWINSZ, &w) == 0 && w.ws_row == 37 && w.ws_col == 101,
		      "pty_winsize", "%ux%u", w.ws_row, w.ws_col);
	}
	{
		int lck = -1, pkt = -1;

		check(ioctl(locked, TIOCGPTLCK, &lck) == 0 && ioctl(locked, TIOCGPKT, &pkt) == 0 &&
			      lck == 1 && pkt == 1,
		      "pty_locked_packet", "TIOCGPTLCK %d, TIOCGPKT %d", lck, pkt);
	}
	{
		static const char *const lines[] = { "hello\n", "restored pty\n" };
		static const char *const want[] = { "HELLO\n", "RESTORED PTY\n" };
		int ok = 1;

		for (int i = 0; i < 2 && ok; i++) {
			write_all(master, lines[i]);
			read_line(master, buf, sizeof(buf), 5000);
			ok = strcmp(buf, want[i]) == 0;
		}
		check(ok, "pty_echo_through_master", "answer %s", buf);
	}
	{
		int child_fails = -1;

		write_all(master, "check\n");
		read_line(master, buf, sizeof(buf), 5000);
		check(sscanf(buf, "CHECKED %d", &child_fails) == 1, "pty_child_checked", "answer %s",
		      buf);
		if (child_fails > 0)
			fail_count += child_fails;
	}
	done_and_idle();
}
