/*
 * sharedfd: open file descriptions shared between fds and between processes (issue 9).
 *
 *   sharedfd REPORT dup     one process: fds 3 = open(REPORT.dup, O_WRONLY|O_CREAT|O_TRUNC)
 *                           with "12345" written and O_APPEND set, 4 = dup(3), 20 =
 *                           fcntl(3, F_DUPFD_CLOEXEC, 20): one description; fd 5, a separate open
 *                           of the same file at offset 2. After go: the offset and O_APPEND are
 *                           shared, F_SETFL(O_NONBLOCK) on fd 4 shows on 3 and 20, a write
 *                           through 20 moves 3 and 4, fd 5 keeps its own offset and flags, and
 *                           close-on-exec stays per fd.
 *   sharedfd REPORT fork    R creates, then forks C, which inherits them: fd 3 REPORT.shared
 *                           (O_RDWR, "AB" written by R), fd 4 the FIFO REPORT.fifo (O_RDWR), fd 5
 *                           an eventfd (counter 5), fd 6 an epoll instance with R's watch on the
 *                           eventfd. C then writes "cd" through fd 3 (both offsets move to 4) and
 *                           adds a watch on the FIFO (fd 4) to the shared epoll instance. After
 *                           go, C checks its offset, writes "ef", puts "fifo-msg" into the FIFO
 *                           and adds 3 to the eventfd, then reports KID; R checks that its
 *                           offset moved to 6, that its epoll fd reports the FIFO (C's watch)
 *                           and the eventfd, reads the FIFO's bytes and the counter 8.
 *   sharedfd REPORT epollchild  R creates an epoll instance (fd 3) and forks C, which adds a
 *                           watch on an eventfd of its own (fd 4, which R does not have) to the
 *                           shared instance. After go C adds 1 to its eventfd and R's epoll fd
 *                           must report C's watch.
 *   sharedfd REPORT epollclash  the same, but R holds another file (/dev/null) at fd 4: the
 *                           refusal case (restore adds the watch in R, the first process of the
 *                           instance with an fd 4, where fd 4 is another file).
 * C dies with R (PR_SET_PDEATHSIG). C's lines are prefixed "C:", R's "R:".
 */
#include "target.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

static long offset(int fd)
{
	return (long)lseek(fd, 0, SEEK_CUR);
}

static void must(int ok)
{
	if (!ok)
		exit(3);
}

static void dup_mode(void)
{
	char path[4200], buf[64];
	int a, b, c, d, fl;

	snprintf(path, sizeof(path), "%s.dup", report_path);
	a = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	must(a == 3);
	must(write(a, "12345", 5) == 5);
	must(fcntl(a, F_SETFL, O_APPEND) == 0);
	must(dup2(a, 4) == 4);
	must(fcntl(a, F_DUPFD_CLOEXEC, 20) == 20);
	d = open(path, O_RDONLY);
	must(d == 5);
	must(lseek(d, 2, SEEK_SET) == 2);
	b = 4;
	c = 20;
	report_ready();
	wait_for_go();

	check(offset(a) == 5 && offset(b) == 5 && offset(c) == 5, "dup_offset",
	      "offsets %ld %ld %ld, want 5", offset(a), offset(b), offset(c));
	fl = fcntl(b, F_GETFL);
	check((fl & O_APPEND) && (fcntl(c, F_GETFL) & O_APPEND), "dup_append",
	      "fd 4 flags %#o, fd 20 flags %#o", fl, fcntl(c, F_GETFL));
	must(fcntl(b, F_SETFL, fl | O_NONBLOCK) == 0);
	check((fcntl(a, F_GETFL) & O_NONBLOCK) && (fcntl(c, F_GETFL) & O_NONBLOCK), "dup_setfl_shared",
	      "after F_SETFL on fd 4: fd 3 %#o, fd 20 %#o", fcntl(a, F_GETFL), fcntl(c, F_GETFL));
	check(!(fcntl(d, F_GETFL) & (O_NONBLOCK | O_APPEND)), "separate_open_flags",
	      "fd 5 flags %#o", fcntl(d, F_GETFL));
	must(write(c, "67", 2) == 2);
	check(offset(a) == 7 && offset(b) == 7, "dup_write_moves_all", "offsets %ld %ld, want 7",
	      offset(a), offset(b));
	check(offset(d) == 2, "separate_open_offset", "fd 5 at %ld, want 2", offset(d));
	check(fcntl(c, F_GETFD) == FD_CLOEXEC && fcntl(a, F_GETFD) == 0 && fcntl(b, F_GETFD) == 0,
	      "cloexec_per_fd", "FD flags %d %d %d", fcntl(a, F_GETFD), fcntl(b, F_GETFD),
	      fcntl(c, F_GETFD));
	memset(buf, 0, sizeof(buf));
	check(pread(d, buf, sizeof(buf) - 1, 0) == 7 && !strcmp(buf, "1234567"), "dup_contents",
	      "file holds \"%s\"", buf);
	done_and_idle();
}

static void fork_mode(void)
{
	char path[4200], fifo[4200], buf[64];
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 55 }, got[8];
	uint64_t n;
	int f, q, e, ep, k, seen_fifo = 0, seen_efd = 0;

	snprintf(path, sizeof(path), "%s.shared", report_path);
	snprintf(fifo, sizeof(fifo), "%s.fifo", report_path);
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	must(f == 3 && write(f, "AB", 2) == 2);
	must(mkfifo(fifo, 0600) == 0);
	q = open(fifo, O_RDWR | O_NONBLOCK);
	must(q == 4);
	e = eventfd(5, EFD_NONBLOCK);
	must(e == 5);
	ep = epoll_create1(0);
	must(ep == 6);
	must(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0);
	if (fork() == 0) {
		struct epoll_event cev = { .events = EPOLLIN, .data.u64 = 44 };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		must(write(f, "cd", 2) == 2);
		must(epoll_ctl(ep, EPOLL_CTL_ADD, q, &cev) == 0);
		report("UP C %d", (int)getpid());
		wait_for_go();
		check(offset(f) == 4, "C:file_offset", "at %ld, want 4", offset(f));
		must(write(f, "ef", 2) == 2);
		must(write(q, "fifo-msg", 8) == 8);
		n = 3;
		must(write(e, &n, 8) == 8);
		report("KID C fails=%d", fail_count);
		for (;;)
			nap_ms(1000);
	}
	while (report_count("UP C") < 1)
		nap_ms(5);
	check(offset(f) == 4, "R:offset_before", "at %ld, want 4", offset(f));
	report_ready();
	wait_for_go();
	for (int i = 0; i < 1000 && report_count("KID ") < 1; i++)
		nap_ms(10);
	check(report_count("KID ") == 1, "R:child_reported", "%d of 1", report_count("KID "));
	check(offset(f) == 6, "R:file_offset_shared", "at %ld, want 6", offset(f));
	memset(buf, 0, sizeof(buf));
	check(pread(f, buf, sizeof(buf) - 1, 0) == 6 && !strcmp(buf, "ABcdef"), "R:file_contents",
	      "file holds \"%s\"", buf);
	k = epoll_wait(ep, got, 8, 1000);
	for (int i = 0; i < k; i++) {
		seen_fifo += got[i].data.u64 == 44;
		seen_efd += got[i].data.u64 == 55;
	}
	check(seen_fifo == 1 && seen_efd == 1, "R:epoll_shared",
	      "%d events: fifo (C's watch) %d, eventfd %d", k, seen_fifo, seen_efd);
	memset(buf, 0, sizeof(buf));
	check(read(q, buf, sizeof(buf) - 1) == 8 && !strcmp(buf, "fifo-msg"), "R:fifo_shared",
	      "read \"%s\"", buf);
	n = 0;
	check(read(e, &n, 8) == 8 && n == 8, "R:eventfd_shared", "counter %llu, want 8",
	      (unsigned long long)n);
	done_and_idle();
}

static void epollchild_mode(int clash)
{
	struct epoll_event got[4];
	int ep = epoll_create1(0), k;

	must(ep == 3);
	if (fork() == 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
		uint64_t one = 1;
		int e = eventfd(0, 0);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		must(e == 4 && epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0);
		report("UP C %d", (int)getpid());
		wait_for_go();
		must(write(e, &one, 8) == 8);
		report("KID C fails=%d", fail_count);
		for (;;)
			nap_ms(1000);
	}
	while (report_count("UP C") < 1)
		nap_ms(5);
	if (clash)
		must(open("/dev/null", O_RDONLY) == 4);
	report_ready();
	wait_for_go();
	for (int i = 0; i < 1000 && report_count("KID ") < 1; i++)
		nap_ms(10);
	k = epoll_wait(ep, got, 4, 1000);
	check(k == 1 && got[0].data.u64 == 77, "R:child_watch", "%d events, first data %llu", k,
	      k > 0 ? (unsigned long long)got[0].data.u64 : 0ULL);
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "dup";
	/* The fds below are numbered from 3: nothing else may be open. */
	for (int fd = 3; fd < 64; fd++)
		close(fd);
	if (!strcmp(mode, "dup"))
		dup_mode();
	if (!strcmp(mode, "fork"))
		fork_mode();
	if (!strcmp(mode, "epollchild"))
		epollchild_mode(0);
	if (!strcmp(mode, "epollclash"))
		epollchild_mode(1);
	fprintf(stderr, "sharedfd: unknown mode %s\n", mode);
	return 2;
}
