/* IPv4/IPv6 sockets (issue 10).
 *
 *   inet REPORT listen       a TCP listener on 127.0.0.1 (SO_REUSEADDR, SO_KEEPALIVE,
 *                            TCP_NODELAY, TCP_KEEPIDLE 77, SO_RCVBUF 65536, backlog 13), one on
 *                            [::1] (IPV6_V6ONLY, O_NONBLOCK), two UDP sockets on 127.0.0.1
 *                            connected to each other. Reports "INFO port4 N", "INFO fd4 FD" and
 *                            "INFO port6 N".
 *                            After go: checks options and names, exchanges a datagram each way,
 *                            then accepts one client on each listener (the test connects), reads
 *                            "ping" and answers "pong".
 *   inet REPORT established  a listener and a connection to it, accepted: the refusal.
 *   inet REPORT backlog      a listener with one connection not accepted: the refusal.
 *   inet REPORT udpqueued    a UDP socket holding a datagram nobody read: the refusal.
 *   inet REPORT prefork      one listener shared by the parent and 2 children, each serving
 *                            "served PID\n" to every client; reports "INFO port4 N".
 *   inet REPORT loopback     connections with both ends in the tree (a listener on 127.0.0.1
 *                            and 2 connections to it): the first with both ends in the root, the
 *                            second accepted by a child; each end holds bytes the other sent.
 *                            After go (the test restores with --tcp-established): each end reads
 *                            its queued bytes, then one more message each way.
 *   inet REPORT stream HOST PORT
 *                            an established connection to a listener outside the tree (the
 *                            test) at HOST:PORT (127.0.0.1 or ::1), TCP_NODELAY and SO_KEEPALIVE
 *                            set, O_NONBLOCK. It writes the byte stream pat(i, 1) until the
 *                            kernel takes no more (its send queue full, the peer not reading),
 *                            reports "INFO sent N", then READY; it reads nothing before go, so
 *                            what the peer sends stays in its receive queue.
 *                            After go: names, options, TCP_INFO (state, negotiated options,
 *                            window scales, MSS) as they were; then it sends up to STREAM_TOTAL
 *                            bytes and shuts its side down, and reads the peer's stream pat(i, 2)
 *                            to its end, checking every byte ("INFO received N"): nothing lost,
 *                            duplicated or reordered, no reset.
 */
#include "target.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <netdb.h>

static int port_of(int s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(s, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int opt(int s, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(s, level, name, &v, &len);
	return v;
}

static void set(int s, int level, int name, int v)
{
	if (setsockopt(s, level, name, &v, sizeof(v)) < 0) {
		perror("setsockopt");
		exit(1);
	}
}

static int tcp4(int backlog)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, backlog) < 0) {
		perror("tcp4");
		exit(1);
	}
	return s;
}

static int udp4(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("udp4");
		exit(1);
	}
	return s;
}

static void connect4(int s, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
}

/* Accepts one client on s within 20 s, reads "ping", answers "pong". */
static void serve_ping(int s, const char *what)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	char buf[8] = { 0 };
	int c;

	if (poll(&p, 1, 20000) != 1) {
		check(0, what, "no client within 20 s");
		return;
	}
	c = accept(s, NULL, NULL);
	if (c < 0) {
		check(0, what, "accept: %s", strerror(errno));
		return;
	}
	fcntl(c, F_SETFL, 0);
	check(read(c, buf, 4) == 4 && !memcmp(buf, "ping", 4), what, "read %.4s", buf);
	check(write(c, "pong", 4) == 4, what, "write");
	close(c);
}

static void mode_listen(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int l4, l6, u1, u2, p4, p6, pu1, pu2;
	char buf[16] = { 0 };

	l4 = socket(AF_INET, SOCK_STREAM, 0);
	set(l4, SOL_SOCKET, SO_REUSEADDR, 1);
	set(l4, SOL_SOCKET, SO_KEEPALIVE, 1);
	set(l4, IPPROTO_TCP, TCP_NODELAY, 1);
	set(l4, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	set(l4, SOL_SOCKET, SO_RCVBUF, 65536);
	{
		struct sockaddr_in a = { .sin_family = AF_INET };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(l4, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l4, 13) < 0)
			exit(1);
	}
	l6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
	set(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	set(l6, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(l6, (struct sockaddr *)&a6, sizeof(a6)) < 0 || listen(l6, 5) < 0)
		exit(1);
	u1 = udp4();
	u2 = udp4();
	connect4(u1, port_of(u2));
	connect4(u2, port_of(u1));
	p4 = port_of(l4);
	p6 = port_of(l6);
	pu1 = port_of(u1);
	pu2 = port_of(u2);
	report("INFO port4 %d", p4);
	report("INFO fd4 %d", l4);
	report("INFO port6 %d", p6);
	report_ready();
	wait_for_go();

	check(port_of(l4) == p4, "tcp4 port", "%d", port_of(l4));
	check(opt(l4, SOL_SOCKET, SO_ACCEPTCONN) == 1, "tcp4 listening", "not");
	check(opt(l4, SOL_SOCKET, SO_REUSEADDR) == 1, "tcp4 SO_REUSEADDR", "off");
	check(opt(l4, SOL_SOCKET, SO_KEEPALIVE) == 1, "tcp4 SO_KEEPALIVE", "off");
	check(opt(l4, IPPROTO_TCP, TCP_NODELAY) == 1, "tcp4 TCP_NODELAY", "off");
	check(opt(l4, IPPROTO_TCP, TCP_KEEPIDLE) == 77, "tcp4 TCP_KEEPIDLE", "%d",
	      opt(l4, IPPROTO_TCP, TCP_KEEPIDLE));
	check(opt(l4, SOL_SOCKET, SO_RCVBUF) == 131072, "tcp4 SO_RCVBUF", "%d",
	      opt(l4, SOL_SOCKET, SO_RCVBUF));
	check(port_of(l6) == p6, "tcp6 port", "%d", port_of(l6));
	check(opt(l6, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "tcp6 IPV6_V6ONLY", "off");
	check(opt(l6, SOL_SOCKET, SO_REUSEADDR) == 1, "tcp6 SO_REUSEADDR", "off");
	check((fcntl(l6, F_GETFL) & O_NONBLOCK) != 0, "tcp6 O_NONBLOCK", "off");
	check(opt(l6, SOL_SOCKET, SO_KEEPALIVE) == 0, "tcp6 SO_KEEPALIVE", "on");
	check(port_of(u1) == pu1 && port_of(u2) == pu2, "udp ports", "%d %d", port_of(u1),
	      port_of(u2));
	check(send(u1, "one", 3, 0) == 3 && recv(u2, buf, sizeof(buf), 0) == 3 &&
		      !memcmp(buf, "one", 3), "udp u1 -> u2", "%s", strerror(errno));
	check(send(u2, "two", 3, 0) == 3 && recv(u1, buf, sizeof(buf), 0) == 3 &&
		      !memcmp(buf, "two", 3), "udp u2 -> u1", "%s", strerror(errno));
	serve_ping(l4, "tcp4 client served");
	serve_ping(l6, "tcp6 client served");
	done_and_idle();
}

static void mode_established(void)
{
	int l = tcp4(4), c = socket(AF_INET, SOCK_STREAM, 0), a;

	connect4(c, port_of(l));
	a = accept(l, NULL, NULL);
	report("INFO ports %d %d %d", port_of(l), port_of(c), a >= 0 ? port_of(a) : -1);
	report("INFO fd %d", c);
	report_ready();
	wait_for_go();
	check(write(c, "x", 1) == 1 && read(a, &(char){ 0 }, 1) == 1, "connection works", "%s",
	      strerror(errno));
	done_and_idle();
}

static void mode_backlog(void)
{
	int l = tcp4(4), c = socket(AF_INET, SOCK_STREAM, 0);

	connect4(c, port_of(l));
	report("INFO port4 %d", port_of(l));
	report("INFO fd %d", l);
	report_ready();
	wait_for_go();
	check(accept(l, NULL, NULL) >= 0, "connection accepted", "%s", strerror(errno));
	done_and_idle();
}

static void mode_udpqueued(void)
{
	int u1 = udp4(), u2 = udp4();
	char buf[8] = { 0 };

	connect4(u1, port_of(u2));
	if (send(u1, "hello", 5, 0) != 5)
		exit(1);
	report("INFO port4 %d", port_of(u2));
	report("INFO fd %d", u2);
	report_ready();
	wait_for_go();
	check(recv(u2, buf, sizeof(buf), MSG_DONTWAIT) == 5 && !memcmp(buf, "hello", 5),
	      "datagram still queued", "%s", strerror(errno));
	done_and_idle();
}

__attribute__((noreturn)) static void serve_forever(int l)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "served %d\n", (int)getpid());

	for (;;) {
		struct pollfd p = { .fd = l, .events = POLLIN };
		int c;

		if (poll(&p, 1, 10) == 1 && (c = accept(l, NULL, NULL)) >= 0) {
			if (write(c, line, n) != n)
				report("FAIL write %d", (int)getpid());
			close(c);
		}
	}
}

static void mode_prefork(void)
{
	int l = tcp4(16), i;

	fcntl(l, F_SETFL, O_NONBLOCK);
	for (i = 0; i < 2; i++) {
		pid_t c = fork();

		if (c == 0) {
			serve_forever(l);
		}
		report("INFO child %d", (int)c);
	}
	report("INFO port4 %d", port_of(l));
	report_ready();
	wait_for_go();
	check(opt(l, SOL_SOCKET, SO_ACCEPTCONN) == 1, "shared listener listening", "not");
	report_done();
	serve_forever(l);
}

/* Reads exactly the string want from s within 10 s. */
static int expect_str(int s, const char *want)
{
	char buf[64];
	size_t got = 0, len = strlen(want);
	struct pollfd p = { .fd = s, .events = POLLIN };

	while (got < len && poll(&p, 1, 10000) == 1) {
		ssize_t n = read(s, buf + got, len - got);

		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return got == len && !memcmp(buf, want, len);
}

static int say(int s, const char *m)
{
	return write(s, m, strlen(m)) == (ssize_t)strlen(m);
}

static void mode_loopback(void)
{
	int l = tcp4(4), c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
	int a1, a2;
	pid_t kid;

	connect4(c1, port_of(l));
	a1 = accept(l, NULL, NULL);
	connect4(c2, port_of(l));
	a2 = accept(l, NULL, NULL);
	if (a1 < 0 || a2 < 0 || !say(c1, "c1>a1") || !say(a1, "a1>c1") || !say(c2, "c2>a2") ||
	    !say(a2, "a2>c2"))
		exit(1);
	kid = fork();
	if (kid == 0) {
		close(c1);
		close(a1);
		close(c2);
		wait_for_go();
		if (expect_str(a2, "c2>a2") && say(a2, "a2 again") && expect_str(a2, "c2 again"))
			report("KID ok");
		else
			report("KID FAIL %s", strerror(errno));
		for (;;)
			pause();
	}
	close(a2);
	report("INFO child %d", (int)kid);
	report_ready();
	wait_for_go();
	check(expect_str(c1, "a1>c1") && expect_str(a1, "c1>a1"), "queued bytes, both ends here",
	      "%s", strerror(errno));
	check(say(c1, "c1 again") && expect_str(a1, "c1 again") && say(a1, "a1 again") &&
		      expect_str(c1, "a1 again"),
	      "new messages, both ends here", "%s", strerror(errno));
	check(expect_str(c2, "a2>c2"), "queued bytes, other end in the child", "%s",
	      strerror(errno));
	check(say(c2, "c2 again") && expect_str(c2, "a2 again"), "new messages with the child",
	      "%s", strerror(errno));
	for (int i = 0; i < 1000 && !report_count("KID "); i++)
		usleep(10000);
	check(report_count("KID ok") == 1, "child's end", "no KID ok");
	done_and_idle();
}

/* Byte i of a direction's stream: not periodic within any buffer size, so a lost, repeated or
 * reordered run shows. */
static unsigned char pat(uint64_t i, unsigned seed)
{
	return (unsigned char)((i + seed) * 131 + (i >> 9) + (i >> 17));
}

#define STREAM_TOTAL (32u << 20)

static struct tcp_info tcp_info_of(int s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		memset(&ti, 0xff, sizeof(ti));
	return ti;
}

static int same_name(int s, int peer, const struct sockaddr_storage *was, socklen_t was_len)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int r = peer ? getpeername(s, (struct sockaddr *)&ss, &len)
		     : getsockname(s, (struct sockaddr *)&ss, &len);

	return r == 0 && len == was_len && !memcmp(&ss, was, len);
}

static void mode_stream(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai;
	struct sockaddr_storage me, peer;
	socklen_t me_len = sizeof(me), peer_len = sizeof(peer);
	struct tcp_info before, after;
	uint64_t sent = 0, received = 0, bad_at = UINT64_MAX;
	int s, eof = 0, shut = 0, reset = 0, mss_before, mss_after;
	unsigned char buf[65536];
	struct timespec t0, now;

	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "getaddrinfo %s %s\n", host, port);
		exit(1);
	}
	s = socket(ai->ai_family, SOCK_STREAM, 0);
	if (s < 0 || connect(s, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("connect");
		exit(1);
	}
	freeaddrinfo(ai);
	set(s, IPPROTO_TCP, TCP_NODELAY, 1);
	set(s, SOL_SOCKET, SO_KEEPALIVE, 1);
	fcntl(s, F_SETFL, O_NONBLOCK);
	getsockname(s, (struct sockaddr *)&me, &me_len);
	getpeername(s, (struct sockaddr *)&peer, &peer_len);
	/* Fill the send queue: the peer reads nothing until after the restore. Wait a moment
	 * between EAGAINs so the peer's receive window is full too. */
	for (int quiet = 0; quiet < 5;) {
		ssize_t n;
		size_t i;

		for (i = 0; i < sizeof(buf); i++)
			buf[i] = pat(sent + i, 1);
		n = write(s, buf, sizeof(buf));
		if (n > 0) {
			sent += (uint64_t)n;
			quiet = 0;
		} else if (n < 0 && errno == EAGAIN) {
			quiet++;
			usleep(20000);
		} else {
			perror("write");
			exit(1);
		}
	}
	before = tcp_info_of(s);
	mss_before = opt(s, IPPROTO_TCP, TCP_MAXSEG);
	report("INFO fd %d", s);
	report("INFO sent %llu", (unsigned long long)sent);
	report_ready();
	wait_for_go();

	after = tcp_info_of(s);
	mss_after = opt(s, IPPROTO_TCP, TCP_MAXSEG);
	check(same_name(s, 0, &me, me_len), "local address", "changed");
	check(same_name(s, 1, &peer, peer_len), "peer address", "changed");
	check(opt(s, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY", "off");
	check(opt(s, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE", "off");
	check((fcntl(s, F_GETFL) & O_NONBLOCK) != 0, "O_NONBLOCK", "off");
	check(after.tcpi_state == TCP_ESTABLISHED, "established", "state %d", after.tcpi_state);
	check(after.tcpi_options == before.tcpi_options, "negotiated options", "%#x, was %#x",
	      after.tcpi_options, before.tcpi_options);
	check(after.tcpi_snd_wscale == before.tcpi_snd_wscale &&
		      after.tcpi_rcv_wscale == before.tcpi_rcv_wscale,
	      "window scales", "snd %d rcv %d, were %d %d", after.tcpi_snd_wscale,
	      after.tcpi_rcv_wscale, before.tcpi_snd_wscale, before.tcpi_rcv_wscale);
	/* Shown, not checked: TCP_MAXSEG reads the kernel's mss_cache, derived (bounded by half
	 * the largest window seen) and recomputed by the kernel as the connection goes on; the
	 * MSS clamp itself (what TCP_MAXSEG gives in repair mode) is what capture stores. The
	 * advertised MSS of a repaired socket is the route's, not less the timestamp option's
	 * 12 bytes (TCP_REPAIR_OPTIONS sets tstamp_ok only); it was sent in the SYN and matters
	 * no more. */
	report("INFO TCP_MAXSEG %d, was %d; advmss %u, was %u", mss_after, mss_before,
	       after.tcpi_advmss, before.tcpi_advmss);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!(eof && shut) && !reset && bad_at == UINT64_MAX) {
		struct pollfd p = { .fd = s, .events = POLLIN | (shut ? 0 : POLLOUT) };
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 60)
			break;
		if (poll(&p, 1, 1000) < 1)
			continue;
		if (!shut && (p.revents & POLLOUT)) {
			size_t want = sizeof(buf), i;

			if (STREAM_TOTAL - sent < want)
				want = STREAM_TOTAL - sent;
			for (i = 0; i < want; i++)
				buf[i] = pat(sent + i, 1);
			n = want ? write(s, buf, want) : 0;
			if (n > 0)
				sent += (uint64_t)n;
			else if (n < 0 && errno != EAGAIN)
				reset = errno;
			if (sent == STREAM_TOTAL) {
				shutdown(s, SHUT_WR);
				shut = 1;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(s, buf, sizeof(buf));
			if (n == 0)
				eof = 1;
			else if (n < 0 && errno != EAGAIN)
				reset = errno;
			for (ssize_t i = 0; i < n && bad_at == UINT64_MAX; i++)
				if (buf[i] != pat(received + (uint64_t)i, 2))
					bad_at = received + (uint64_t)i;
			if (n > 0)
				received += (uint64_t)n;
		}
	}
	check(!reset, "no reset", "%s", strerror(reset));
	check(bad_at == UINT64_MAX, "peer's stream intact", "wrong byte at %llu",
	      (unsigned long long)bad_at);
	check(eof, "peer's end seen", "after %llu bytes", (unsigned long long)received);
	check(shut && sent == STREAM_TOTAL, "own stream sent", "%llu bytes",
	      (unsigned long long)sent);
	report("INFO received %llu", (unsigned long long)received);
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "listen";

	target_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "listen"))
		mode_listen();
	else if (!strcmp(mode, "established"))
		mode_established();
	else if (!strcmp(mode, "backlog"))
		mode_backlog();
	else if (!strcmp(mode, "udpqueued"))
		mode_udpqueued();
	else if (!strcmp(mode, "prefork"))
		mode_prefork();
	else if (!strcmp(mode, "loopback"))
		mode_loopback();
	else if (!strcmp(mode, "stream") && argc > 4)
		mode_stream(argv[3], argv[4]);
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
