/*
 * sockets: the socket benchmark target of issue 10: one process holding N idle connections,
 * both ends of each in the process, each with a few bytes queued in both directions. Same
 * protocol as the test targets (tests/README.md).
 *
 *   sockets REPORT unix N     N AF_UNIX stream socketpairs between the root R and its child C
 *                             (a server and its worker): R keeps end a of each, C end b (sent
 *                             over SCM_RIGHTS as each pair is made, so neither process ever
 *                             holds more than N + a few fds: 10,000 pairs fit where the hard
 *                             RLIMIT_NOFILE is 20,000 and CAP_SYS_RESOURCE is missing)
 *   sockets REPORT tcp N      N established TCP connections over 127.0.0.1, both ends in R (a
 *                             listener on an ephemeral port, N connects, N accepts; the
 *                             listener stays open)
 *
 * Before READY each connection's end a holds "a<i>" queued for b and b "b<i>" for a. After the
 * go file each end reads its queue back; then b answers "back" and a reads it (tcp: and a sends
 * "again" that b reads). R reports "PASS sockets" (C its own "KID ok" first) or a FAIL line, then
 * DONE. The soft file-descriptor limit is raised as far as the hard one allows. C dies with R.
 * Build: cc -O2 -I tests/targets -o sockets bench/sockets.c
 */
#include "target.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

static int *ends;

static void must(int ok, const char *what)
{
	if (!ok) {
		report("FAIL setup: %s: %s", what, strerror(errno));
		exit(3);
	}
}

static void tcp_pairs(int n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	must(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 128) == 0 &&
		     getsockname(l, (struct sockaddr *)&sa, &len) == 0,
	     "listener");
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);

		must(c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
		ends[2 * i] = c;
		ends[2 * i + 1] = accept(l, NULL, NULL);
		must(ends[2 * i + 1] >= 0, "accept");
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(ends[2 * i + 1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

/* Reads exactly len bytes from fd (blocking, 10 s at most); returns whether they match. */
static int expect(int fd, const char *want)
{
	char buf[64];
	size_t got = 0, len = strlen(want);
	double end = mono_now() + 10;

	while (got < len && mono_now() < end) {
		ssize_t r = recv(fd, buf + got, len - got, MSG_DONTWAIT);

		if (r > 0)
			got += (size_t)r;
		else if (r == 0 || (errno != EAGAIN && errno != EINTR))
			return 0;
		else
			nap_ms(1);
	}
	return got == len && !memcmp(buf, want, len);
}

static int send_str(int fd, const char *s)
{
	return send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s);
}

static void send_fd(int over, int fd)
{
	char c = 'f', ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	must(sendmsg(over, &mh, 0) == 1, "sendmsg SCM_RIGHTS");
}

static int recv_fd(int over)
{
	char c, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	int fd;

	must(recvmsg(over, &mh, 0) == 1, "recvmsg SCM_RIGHTS");
	cm = CMSG_FIRSTHDR(&mh);
	must(cm && cm->cmsg_type == SCM_RIGHTS, "no fd received");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The unix mode: R keeps the a ends, C gets the b ends. Returns in R only. */
static void unix_pairs(int n)
{
	int ctl[2], sv[2];
	char m[32];
	pid_t c;

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) == 0, "control pair");
	c = fork();
	must(c >= 0, "fork");
	if (c == 0) {
		int bad = -1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ctl[0]);
		for (int i = 0; i < n; i++)
			ends[2 * i + 1] = recv_fd(ctl[1]);
		close(ctl[1]);
		report("UP C %d", (int)getpid());
		wait_for_go();
		for (int i = 0; i < n && bad < 0; i++) {
			snprintf(m, sizeof(m), "a%d", i);
			if (!expect(ends[2 * i + 1], m) || !send_str(ends[2 * i + 1], "back"))
				bad = i;
		}
		if (bad < 0)
			report("KID ok");
		else
			report("KID FAIL: connection %d of %d", bad, n);
		for (;;)
			nap_ms(1000);
	}
	close(ctl[1]);
	for (int i = 0; i < n; i++) {
		must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
		snprintf(m, sizeof(m), "a%d", i);
		must(send_str(sv[0], m), "send a");
		snprintf(m, sizeof(m), "b%d", i);
		must(send_str(sv[1], m), "send b");
		send_fd(ctl[0], sv[1]);
		close(sv[1]);
		ends[2 * i] = sv[0];
	}
	close(ctl[0]);
	while (!report_count("UP C"))
		nap_ms(5);
}

int main(int argc, char **argv)
{
	const char *mode;
	struct rlimit rl;
	char m[32];
	int n, bad = -1;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "unix";
	n = argc > 3 ? atoi(argv[3]) : 1000;
	must(n > 0, "N");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ends = calloc((size_t)n * 2, sizeof(int));
	must(ends != NULL, "calloc");
	if (!strcmp(mode, "tcp")) {
		tcp_pairs(n);
		for (int i = 0; i < n; i++) {
			snprintf(m, sizeof(m), "a%d", i);
			must(send_str(ends[2 * i], m), "send a");
			snprintf(m, sizeof(m), "b%d", i);
			must(send_str(ends[2 * i + 1], m), "send b");
		}
	} else {
		unix_pairs(n);
	}
	report_ready();
	wait_for_go();
	for (int i = 0; i < n && bad < 0; i++) {
		int a = ends[2 * i], b = ends[2 * i + 1], ok;

		snprintf(m, sizeof(m), "b%d", i);
		ok = expect(a, m);
		if (!strcmp(mode, "tcp")) {
			snprintf(m, sizeof(m), "a%d", i);
			ok = ok && expect(b, m) && send_str(b, "back") && send_str(a, "again") &&
			     expect(b, "again");
		}
		ok = ok && expect(a, "back");
		if (!ok)
			bad = i;
	}
	if (strcmp(mode, "tcp")) {
		for (int i = 0; i < 2000 && !report_count("KID "); i++)
			nap_ms(5);
		check(report_count("KID ok") == 1, "child", "the child did not report KID ok");
	}
	check(bad < 0, "sockets", "connection %d of %d lost its bytes or no longer works", bad, n);
	done_and_idle();
	return 0;
}
