/*
 * external: fds whose other end is outside the process, as a process started from a pipeline or
 * by a supervisor has them (issue 9).
 *
 *   external REPORT eof                 fd 0 is a pipe from an outside writer holding IN_BYTES,
 *                                       fd 1 a pipe to an outside reader holding the OUT_BYTES it
 *                                       wrote; SIGPIPE ignored. After restore without flags both
 *                                       writer and reader are gone: fd 0 yields IN_BYTES, then
 *                                       EOF; fd 1 still holds OUT_BYTES and a write fails with
 *                                       EPIPE.
 *   external REPORT inherit             the same fds; after restore with --inherit-fd for both,
 *                                       fd 0 yields exactly NEW_IN (then EOF) from a new writer,
 *                                       and NEW_OUT written to fd 1 reaches a new reader.
 *   external REPORT fifo IN OUT         FIFO IN open for reading (its writer outside wrote
 *                                       IN_BYTES), FIFO OUT open for writing (OUT_BYTES written,
 *                                       its reader outside). Both peers gone at restore: IN
 *                                       yields IN_BYTES then EOF, OUT holds OUT_BYTES, EPIPE.
 *   external REPORT fifo-live IN OUT    the same, but the outside peers kept both FIFOs open
 *                                       across the restore: the bytes are there once, IN yields
 *                                       IN_BYTES and MORE_IN (written after the restore) then
 *                                       EOF, and NEW_OUT written to OUT reaches the reader.
 *
 * The harness writes IN_BYTES itself; the target writes OUT_BYTES before READY.
 */
#include "target.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>

#define IN_BYTES "psnc-stdin-bytes-unread-at-capture\n"
#define OUT_BYTES "psnc-stdout-bytes\n"
#define NEW_IN "psnc-new-input\n"
#define NEW_OUT "psnc-new-output\n"
#define MORE_IN "psnc-more-input\n"

static int fd_in = -1, fd_out = -1;

static int buffered(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return -1;
	return n;
}

/* Reads fd until EOF into buf (at most len-1 bytes, NUL-terminated); returns the byte count, or
 * -1 when no EOF came within 10 s (the test must not hang on a peer that never closes). */
static ssize_t read_to_eof(int fd, char *buf, size_t len)
{
	size_t total = 0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			return -1;
		n = read(fd, buf + total, len - 1 - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		total += (size_t)n;
		if (total == len - 1)
			break;
	}
	buf[total] = 0;
	return (ssize_t)total;
}

static int write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	return write(fd, s, len) == (ssize_t)len ? 0 : -1;
}

static void check_kinds(void)
{
	struct stat a, b;
	int ok = fstat(fd_in, &a) == 0 && fstat(fd_out, &b) == 0 && S_ISFIFO(a.st_mode) &&
		 S_ISFIFO(b.st_mode);

	check(ok, "fd_kinds", "fd %d or fd %d is not a pipe or FIFO", fd_in, fd_out);
	check((fcntl(fd_in, F_GETFL) & O_ACCMODE) == O_RDONLY &&
		      (fcntl(fd_out, F_GETFL) & O_ACCMODE) == O_WRONLY,
	      "fd_modes", "fd %d flags %#x, fd %d flags %#x", fd_in, fcntl(fd_in, F_GETFL), fd_out,
	      fcntl(fd_out, F_GETFL));
}

/* The peers are gone: the buffered bytes, then EOF; the write end holds its bytes, EPIPE. */
static void verify_gone(void)
{
	char buf[4096];
	ssize_t n;
	int avail;

	check_kinds();
	avail = buffered(fd_in);
	check(avail == (int)strlen(IN_BYTES), "in_buffered", "%d bytes buffered, expected %zu",
	      avail, strlen(IN_BYTES));
	n = read_to_eof(fd_in, buf, sizeof(buf));
	check(n >= 0, "in_eof", "no EOF within 10 s");
	check(n >= 0 && !strcmp(buf, IN_BYTES), "in_bytes", "read %zd bytes: %.60s", n,
	      n >= 0 ? buf : "");
	avail = buffered(fd_out);
	check(avail == (int)strlen(OUT_BYTES), "out_buffered", "%d bytes buffered, expected %zu",
	      avail, strlen(OUT_BYTES));
	errno = 0;
	n = write(fd_out, "x", 1);
	check(n < 0 && errno == EPIPE, "out_epipe", "write returned %zd, errno %d", n, errno);
}

/* New peers handed in with --inherit-fd: only their bytes, and our writes reach them. */
static void verify_inherited(void)
{
	char buf[4096];
	ssize_t n;

	check_kinds();
	n = read_to_eof(fd_in, buf, sizeof(buf));
	check(n >= 0 && !strcmp(buf, NEW_IN), "in_new_bytes", "read %zd bytes: %.60s", n,
	      n >= 0 ? buf : "");
	check(write_all(fd_out, NEW_OUT) == 0, "out_write", "write: %s", strerror(errno));
}

/* The outside peers kept the FIFOs open: the bytes are there once, and the FIFOs still work. */
static void verify_live(void)
{
	char buf[4096];
	ssize_t n;
	int avail;

	check_kinds();
	avail = buffered(fd_in);
	check(avail == (int)(strlen(IN_BYTES) + strlen(MORE_IN)), "in_buffered_once",
	      "%d bytes buffered, expected %zu", avail, strlen(IN_BYTES) + strlen(MORE_IN));
	n = read_to_eof(fd_in, buf, sizeof(buf));
	check(n >= 0 && !strcmp(buf, IN_BYTES MORE_IN), "in_bytes", "read %zd bytes: %.80s", n,
	      n >= 0 ? buf : "");
	avail = buffered(fd_out);
	check(avail == (int)strlen(OUT_BYTES), "out_buffered_once",
	      "%d bytes buffered, expected %zu", avail, strlen(OUT_BYTES));
	check(write_all(fd_out, NEW_OUT) == 0, "out_write", "write: %s", strerror(errno));
}

/* Opens a FIFO without waiting for the harness's end (already open), then makes it blocking. */
static int open_fifo(const char *path, int mode)
{
	int fd = open(path, mode | O_NONBLOCK);

	if (fd < 0) {
		report("FAIL setup: open %s: %s", path, strerror(errno));
		exit(1);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int main(int argc, char **argv)
{
	const char *mode;
	int fifo;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "eof";
	fifo = !strcmp(mode, "fifo") || !strcmp(mode, "fifo-live");
	if (fifo) {
		if (argc < 5) {
			report("FAIL setup: %s needs IN and OUT", mode);
			return 1;
		}
		fd_in = open_fifo(argv[3], O_RDONLY);
		fd_out = open_fifo(argv[4], O_WRONLY);
	} else {
		fd_in = 0;
		fd_out = 1;
	}
	/* EPIPE is what the checks look at; the restore's message says SIGPIPE is ignored. */
	signal(SIGPIPE, SIG_IGN);
	if (write_all(fd_out, OUT_BYTES) < 0) {
		report("FAIL setup: write to fd %d: %s", fd_out, strerror(errno));
		return 1;
	}
	report_ready();
	wait_for_go();
	if (!strcmp(mode, "inherit"))
		verify_inherited();
	else if (!strcmp(mode, "fifo-live"))
		verify_live();
	else
		verify_gone();
	done_and_idle();
}
