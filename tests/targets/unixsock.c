/*
 * unixsock MODE [ARGS]: unix sockets (issue 10).
 *   pair     R and its child C share socketpairs across the fork: a stream pair (fd 10) and a
 *            seqpacket pair (fd 11), each holding messages queued both ways at capture; R alone
 *            holds a datagram pair (fds 12, 13; 3 datagrams queued in 12, 12 non-blocking with
 *            SO_RCVBUF set, 13 with SO_PASSCRED) and a stream pair whose write side 15 was shut
 *            down after its last bytes (fd 14), and a seqpacket socket whose peer sent "bye"
 *            and closed (fd 22). After go each side reads what was queued for it
 *            (boundaries kept), then R and C exchange a new message each way.
 *   listen   a stream listener on REPORT.sock (mode 0640, backlog 5, fd 16), a seqpacket one
 *            in the abstract namespace (@psnc-unixsock-PID, backlog 3, fd 17), and a datagram
 *            socket bound to REPORT.gone then unlinked (fd 18). After go a new client connects
 *            to each listener and is accepted; the gone path stays absent.
 *   outside PATH [EXPECT]  fd 5 connected to a listener at PATH outside the tree. With EXPECT
 *            `closed` or `inherit` also fd 6, a datagram socket connected to PATH.dgram (bound
 *            outside, as /dev/log is) that sent "log1", and stdout a unix socket from the test
 *            that got "before\n". After go: "ping\n" on fd 5 gets "pong\n" (the restore
 *            connected it to PATH again), "log2" goes out on fd 6, and a write on stdout fails
 *            with EPIPE (`closed`: its peer was outside and unnamed) or goes through
 *            (`inherit`: the restore handed it a new peer). Without EXPECT (`live`): only the
 *            refusals' check that fd 5 still sends.
 *   oneway   a datagram socket bound to REPORT.dsock (fd 5) and one connected to it (fd 6),
 *            not connected back (capture refuses).
 *   rights   a stream pair on fds 5 and 6 with fd 0 in flight (SCM_RIGHTS) in 5 (refused).
 *   shared   R makes a stream pair (fds 10, 20) and forks C; both keep both ends, so each fd
 *            is one socket held by two processes. C sends "c1" on 20 and R "r1" on 10 before
 *            the capture. After go C sends "c2" on 20 and reports KID; R must read "c1c2" on 10
 *            (C's bytes, old and new, through the one socket), "r1" on 20, find C's fds the
 *            same sockets as its own (/proc/C/fd), and nothing else queued.
 */
#include "target.h"
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static void at(int fd, int n)
{
	if (fd < 0 || dup2(fd, n) != n)
		_exit(3);
	if (fd != n)
		close(fd);
}

static void pair_at(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type, 0, sv) < 0)
		_exit(3);
	/* Out of the way first, so dup2 never closes the other end. */
	at(fcntl(sv[0], F_DUPFD, 100), 200);
	at(fcntl(sv[1], F_DUPFD, 100), 201);
	close(sv[0]);
	close(sv[1]);
	at(200, a);
	at(201, b);
}

static void send_all(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
		_exit(4);
}

/* Reads exactly len bytes (a stream) within 5 s; returns the count read. */
static size_t read_n(int fd, char *buf, size_t len)
{
	size_t got = 0;
	double end = mono_now() + 5;

	while (got < len && mono_now() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* One message within 5 s (a seqpacket or datagram); returns its length or -1. */
static ssize_t read_msg(int fd, char *buf, size_t len)
{
	struct pollfd p = { fd, POLLIN, 0 };

	if (poll(&p, 1, 5000) <= 0)
		return -1;
	return recv(fd, buf, len, MSG_DONTWAIT);
}

static void check_stream(int fd, const char *want, const char *what)
{
	char buf[256] = { 0 };
	size_t n = read_n(fd, buf, strlen(want));

	check(n == strlen(want) && !memcmp(buf, want, n), what, "read %zu bytes '%.*s', want '%s'",
	      n, (int)n, buf, want);
}

static void check_msgs(int fd, const char **want, int count, const char *what)
{
	char buf[256];
	int i;

	for (i = 0; i < count; i++) {
		ssize_t n = read_msg(fd, buf, sizeof(buf));

		if (n != (ssize_t)strlen(want[i]) || memcmp(buf, want[i], (size_t)n)) {
			check(0, what, "message %d: %zd bytes '%.*s', want '%s'", i, n,
			      (int)(n > 0 ? n : 0), buf, want[i]);
			return;
		}
	}
	check(1, what, "%s", "");
}

static const char *to_parent_seq[] = { "c1", "c333" };
static const char *to_child_seq[] = { "p1", "p22" };
static const char *datagrams[] = { "d1", "dd2", "ddd3" };

static void pair_mode(void)
{
	char child_done[4200];
	int rcvbuf = 0, v = 0;
	socklen_t len = sizeof(v);
	pid_t c;

	snprintf(child_done, sizeof(child_done), "%s.child", report_path);
	pair_at(SOCK_STREAM, 10, 20);
	pair_at(SOCK_SEQPACKET, 11, 21);
	c = fork();
	if (c < 0)
		_exit(3);
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(10);
		close(11);
		at(20, 10);
		at(21, 11);
		send_all(10, "pong-from-child");
		send_all(11, to_parent_seq[0]);
		send_all(11, to_parent_seq[1]);
		report("UP C %d", (int)getpid());
		wait_for_go();
		check_stream(10, "ping-from-parent-1ping-from-parent-2", "child_stream_queue");
		check_msgs(11, to_child_seq, 2, "child_seqpacket_queue");
		check_stream(10, "new-from-parent", "child_stream_new");
		send_all(10, "new-from-child");
		send_all(11, "seq-new-from-child");
		close(open(child_done, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
		for (;;)
			nap_ms(1000);
	}
	close(20);
	close(21);
	send_all(10, "ping-from-parent-1");
	send_all(10, "ping-from-parent-2");
	send_all(11, to_child_seq[0]);
	send_all(11, to_child_seq[1]);

	pair_at(SOCK_DGRAM, 12, 13);
	for (v = 0; v < 3; v++)
		send_all(13, datagrams[v]);
	fcntl(12, F_SETFL, fcntl(12, F_GETFL) | O_NONBLOCK);
	v = 100000;
	setsockopt(12, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	getsockopt(12, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
	v = 1;
	setsockopt(13, SOL_SOCKET, SO_PASSCRED, &v, sizeof(v));

	pair_at(SOCK_STREAM, 14, 15);
	send_all(15, "last bytes");
	shutdown(15, SHUT_WR);

	pair_at(SOCK_SEQPACKET, 22, 23);
	send_all(23, "bye");
	close(23);

	/* Until C has queued its messages. */
	for (;;) {
		int q10 = 0, q11 = 0;

		ioctl(10, FIONREAD, &q10);
		ioctl(11, FIONREAD, &q11);
		if (q10 == 15 && q11 == 6)
			break;
		nap_ms(5);
	}
	report_ready();
	wait_for_go();

	check_stream(10, "pong-from-child", "parent_stream_queue");
	check_msgs(11, to_parent_seq, 2, "parent_seqpacket_queue");
	check_msgs(12, datagrams, 3, "dgram_queue_boundaries");
	{
		char b;

		check(recv(12, &b, 1, 0) < 0 && errno == EAGAIN, "dgram_nonblock",
		      "an empty non-blocking recv did not fail with EAGAIN (errno %d)", errno);
		send_all(13, "fresh");
		check(read_msg(12, (char[8]){ 0 }, 8) == 5, "dgram_new", "no new datagram");
	}
	len = sizeof(v);
	getsockopt(12, SOL_SOCKET, SO_RCVBUF, &v, &len);
	check(v == rcvbuf, "dgram_rcvbuf", "SO_RCVBUF %d, was %d", v, rcvbuf);
	len = sizeof(v);
	getsockopt(13, SOL_SOCKET, SO_PASSCRED, &v, &len);
	check(v == 1, "dgram_passcred", "SO_PASSCRED %d", v);
	{
		char buf[32] = { 0 };
		size_t n = read_n(14, buf, 10);
		ssize_t eof = recv(14, buf, sizeof(buf), MSG_DONTWAIT);

		check(n == 10 && !memcmp(buf, "last bytes", 10) && eof == 0, "shutdown_eof",
		      "read %zu bytes then %zd", n, eof);
		check(send(15, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "shutdown_epipe",
		      "a write to the shut-down side did not fail with EPIPE (errno %d)", errno);
	}
	{
		const char *want[] = { "bye" };
		char b;

		check_msgs(22, want, 1, "peer_closed_queue");
		check(recv(22, &b, 1, MSG_DONTWAIT) == 0, "peer_closed_eof",
		      "no EOF after the closed peer's message");
	}
	send_all(10, "new-from-parent");
	check_stream(10, "new-from-child", "parent_stream_new");
	{
		const char *want[] = { "seq-new-from-child" };

		check_msgs(11, want, 1, "parent_seqpacket_new");
	}
	{
		double end = mono_now() + 5;

		while (access(child_done, F_OK) && mono_now() < end)
			nap_ms(10);
	}
	check(!access(child_done, F_OK), "child_done", "the child did not finish its checks");
	done_and_idle();
}

static socklen_t sun_of(struct sockaddr_un *sa, const char *name, int abstract)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	strncpy(sa->sun_path + abstract, name, sizeof(sa->sun_path) - 2);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract + strlen(name));
}

/* A new client of type `type` connects to `sa` and sends "hi"; `lfd` accepts and reads it. */
static void check_client(int lfd, int type, struct sockaddr_un *sa, socklen_t len, const char *what)
{
	int c = socket(AF_UNIX, type, 0), a;
	char buf[4] = { 0 };

	if (c < 0 || connect(c, (struct sockaddr *)sa, len) < 0) {
		check(0, what, "connect: %s", strerror(errno));
		return;
	}
	send_all(c, "hi");
	a = accept(lfd, NULL, NULL);
	check(a >= 0 && read_n(a, buf, 2) == 2 && !strcmp(buf, "hi"), what, "accept %d, read '%s'",
	      a, buf);
	close(c);
	if (a >= 0)
		close(a);
}

static void listen_mode(void)
{
	char path[4200], gone[4200], abs_name[64];
	struct sockaddr_un sa;
	socklen_t len;
	struct stat st;

	snprintf(path, sizeof(path), "%s.sock", report_path);
	snprintf(gone, sizeof(gone), "%s.gone", report_path);
	snprintf(abs_name, sizeof(abs_name), "psnc-unixsock-%d", (int)getpid());
	unlink(path);
	at(socket(AF_UNIX, SOCK_STREAM, 0), 16);
	len = sun_of(&sa, path, 0);
	if (bind(16, (struct sockaddr *)&sa, len) < 0 || chmod(path, 0640) < 0 || listen(16, 5) < 0)
		_exit(5);
	at(socket(AF_UNIX, SOCK_SEQPACKET, 0), 17);
	len = sun_of(&sa, abs_name, 1);
	if (bind(17, (struct sockaddr *)&sa, len) < 0 || listen(17, 3) < 0)
		_exit(5);
	at(socket(AF_UNIX, SOCK_DGRAM, 0), 18);
	len = sun_of(&sa, gone, 0);
	if (bind(18, (struct sockaddr *)&sa, len) < 0 || unlink(gone) < 0)
		_exit(5);
	report_ready();
	wait_for_go();

	check(!stat(path, &st) && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640, "path_file",
	      "%s: mode %o", path, (unsigned)st.st_mode);
	len = sun_of(&sa, path, 0);
	check_client(16, SOCK_STREAM, &sa, len, "path_listener");
	len = sun_of(&sa, abs_name, 1);
	check_client(17, SOCK_SEQPACKET, &sa, len, "abstract_listener");
	{
		struct sockaddr_un got;
		socklen_t glen = sizeof(got);

		memset(&got, 0, sizeof(got));
		check(access(gone, F_OK) < 0 && !getsockname(18, (struct sockaddr *)&got, &glen) &&
			      !strcmp(got.sun_path, gone),
		      "unlinked_name", "%s exists again or the name is '%s'", gone, got.sun_path);
	}
	done_and_idle();
}

static void shared_mode(void)
{
	char path[64], extra[16];
	struct stat mine, kids;
	pid_t c;
	int same = 1;

	pair_at(SOCK_STREAM, 10, 20);
	c = fork();
	if (c < 0)
		_exit(3);
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		send_all(20, "c1");
		report("UP C %d", (int)getpid());
		wait_for_go();
		send_all(20, "c2");
		report("KID C");
		for (;;)
			nap_ms(1000);
	}
	while (!report_count("UP C"))
		nap_ms(5);
	send_all(10, "r1");
	report_ready();
	wait_for_go();
	for (int i = 0; i < 1000 && !report_count("KID C"); i++)
		nap_ms(5);
	check_stream(10, "c1c2", "shared_child_bytes_reach_parent");
	check_stream(20, "r1", "shared_parent_bytes_queued_once");
	check(recv(10, extra, sizeof(extra), MSG_DONTWAIT) < 0 &&
		      recv(20, extra, sizeof(extra), MSG_DONTWAIT) < 0,
	      "shared_nothing_else_queued", "more bytes queued than were sent");
	for (int fd = 10; fd <= 20; fd += 10) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)c, fd);
		same &= fstat(fd, &mine) == 0 && stat(path, &kids) == 0 && mine.st_ino == kids.st_ino;
	}
	check(same, "shared_one_socket_per_fd", "the child's fds 10/20 are other sockets");
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "pair";
	if (!strcmp(mode, "pair")) {
		pair_mode();
	} else if (!strcmp(mode, "listen")) {
		listen_mode();
	} else if (!strcmp(mode, "shared")) {
		shared_mode();
	} else if (!strcmp(mode, "outside") && argc > 3) {
		const char *expect = argc > 4 ? argv[4] : "live";
		char dpath[4200], buf[16] = { 0 };
		struct sockaddr_un sa, da;
		socklen_t len = sun_of(&sa, argv[3], 0), dlen;
		struct pollfd pfd = { 5, POLLIN, 0 };
		ssize_t n = -1;

		snprintf(dpath, sizeof(dpath), "%s.dgram", argv[3]);
		dlen = sun_of(&da, dpath, 0);
		signal(SIGPIPE, SIG_IGN);
		at(socket(AF_UNIX, SOCK_STREAM, 0), 5);
		if (connect(5, (struct sockaddr *)&sa, len) < 0)
			_exit(5);
		if (strcmp(expect, "live")) {
			at(socket(AF_UNIX, SOCK_DGRAM, 0), 6);
			if (connect(6, (struct sockaddr *)&da, dlen) < 0 || send(6, "log1", 4, 0) != 4)
				_exit(6);
			if (write(1, "before\n", 7) != 7)
				_exit(7);
		}
		report_ready();
		wait_for_go();
		if (!strcmp(expect, "live")) {
			check(send(5, "z", 1, MSG_NOSIGNAL) == 1, "outside_still_connected", "send: %s",
			      strerror(errno));
			done_and_idle();
		}
		if (send(5, "ping\n", 5, MSG_NOSIGNAL) == 5 && poll(&pfd, 1, 10000) == 1)
			n = recv(5, buf, sizeof(buf) - 1, 0);
		check(n == 5 && !strcmp(buf, "pong\n"), "outside_reconnected",
		      "got %zd bytes \"%s\": %s", n, buf, strerror(errno));
		check(send(6, "log2", 4, 0) == 4, "outside_dgram_reconnected", "send: %s",
		      strerror(errno));
		if (!strcmp(expect, "closed")) {
			errno = 0;
			n = write(1, "x", 1);
			check(n < 0 && errno == EPIPE, "stdout_peer_gone", "write %zd: %s", n,
			      strerror(errno));
		} else {
			check(write(1, "after\n", 6) == 6, "stdout_inherited", "write: %s",
			      strerror(errno));
		}
		done_and_idle();
	} else if (!strcmp(mode, "oneway")) {
		char path[4200];
		struct sockaddr_un sa;
		socklen_t len;

		snprintf(path, sizeof(path), "%s.dsock", report_path);
		len = sun_of(&sa, path, 0);
		at(socket(AF_UNIX, SOCK_DGRAM, 0), 5);
		at(socket(AF_UNIX, SOCK_DGRAM, 0), 6);
		if (bind(5, (struct sockaddr *)&sa, len) < 0 ||
		    connect(6, (struct sockaddr *)&sa, len) < 0)
			_exit(5);
		report_ready();
		wait_for_go();
		check(send(6, "o", 1, 0) == 1 && read_msg(5, (char[4]){ 0 }, 4) == 1,
		      "oneway_still_works", "send or recv: %s", strerror(errno));
		done_and_idle();
	} else if (!strcmp(mode, "rights")) {
		char byte = 'r', buf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr m = { 0 };
		struct cmsghdr *c;
		int zero = 0, got = -1;

		pair_at(SOCK_STREAM, 5, 6);
		memset(buf, 0, sizeof(buf));
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = buf;
		m.msg_controllen = sizeof(buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &zero, sizeof(int));
		if (sendmsg(6, &m, 0) != 1)
			_exit(5);
		report_ready();
		wait_for_go();
		byte = 0;
		memset(buf, 0, sizeof(buf));
		m.msg_controllen = sizeof(buf);
		if (recvmsg(5, &m, MSG_DONTWAIT) == 1 && (c = CMSG_FIRSTHDR(&m)) &&
		    c->cmsg_type == SCM_RIGHTS)
			memcpy(&got, CMSG_DATA(c), sizeof(int));
		check(byte == 'r' && got >= 0 && fcntl(got, F_GETFD) >= 0, "rights_still_queued",
		      "byte '%c', fd %d", byte, got);
		done_and_idle();
	}
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
