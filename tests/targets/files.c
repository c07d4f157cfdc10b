/*
 * files MODE: open file descriptors.
 *   offset   a regular file open O_RDWR at offset 12345 (fd 7 by dup2); offset, flags, contents
 *   append   a file open O_WRONLY|O_APPEND; the flag survives and writes still land at the end
 *   deleted  a file written and unlinked while open; contents, nlink 0, "(deleted)" link
 *   pipe     a pipe (both ends in the target) holding 3000 unread bytes
 *   all      every mode above
 * Files live at REPORT.MODE.data.
 */
#include "target.h"
#include <sys/ioctl.h>

#define IS(m) (all || !strcmp(mode, m))

#define FLEN 65536

static char path_of[4][4200];
static int fd_offset = -1, fd_append = -1, fd_deleted = -1, pipe_fds[2] = { -1, -1 };
static int append_flags;

static int open_data(int which, const char *mode, int flags)
{
	uint8_t buf[FLEN];
	int fd;

	snprintf(path_of[which], sizeof(path_of[which]), "%s.%s.data", report_path, mode);
	fd = open(path_of[which], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		exit(3);
	fill_pattern(buf, sizeof(buf), 10 + (uint32_t)which);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		exit(3);
	close(fd);
	fd = open(path_of[which], flags);
	if (fd < 0)
		exit(3);
	return fd;
}

static void offset_setup(void)
{
	int fd = open_data(0, "offset", O_RDWR);

	/* A fixed, non-lowest fd number, to check numbers survive. */
	fd_offset = dup2(fd, 7);
	close(fd);
	lseek(fd_offset, 12345, SEEK_SET);
}

static void offset_verify(void)
{
	off_t pos = lseek(fd_offset, 0, SEEK_CUR);
	int fl = fcntl(fd_offset, F_GETFL);
	uint8_t buf[100];
	int ok = 1;

	check(pos == 12345, "file_offset", "offset %lld, expected 12345", (long long)pos);
	check(fl >= 0 && (fl & O_ACCMODE) == O_RDWR && !(fl & O_APPEND), "file_flags",
	      "flags %#x", fl);
	check(read(fd_offset, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "file_read",
	      "read failed: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(buf); i++)
		ok &= buf[i] == pattern_byte(10, 12345 + i);
	check(ok, "file_contents", "bytes at 12345 differ");
	check(fcntl(7, F_GETFD) == 0, "file_fd_number", "fd 7 missing or close-on-exec");
}

static void append_setup(void)
{
	fd_append = open_data(1, "append", O_WRONLY | O_APPEND | O_CLOEXEC);
	lseek(fd_append, 100, SEEK_SET);
	append_flags = fcntl(fd_append, F_GETFL);
}

static void append_verify(void)
{
	int fl = fcntl(fd_append, F_GETFL);
	struct stat st;
	const char tail[] = "appended-after-restore";

	check(fl == append_flags, "append_flags", "flags %#x, expected %#x", fl, append_flags);
	check(fcntl(fd_append, F_GETFD) == FD_CLOEXEC, "append_cloexec", "FD_CLOEXEC lost");
	if (write(fd_append, tail, sizeof(tail)) != (ssize_t)sizeof(tail)) {
		check(0, "append_write", "write failed: %s", strerror(errno));
		return;
	}
	fstat(fd_append, &st);
	check(st.st_size == FLEN + (off_t)sizeof(tail), "append_write",
	      "size %lld after append, expected %lld", (long long)st.st_size,
	      (long long)(FLEN + sizeof(tail)));
}

static void deleted_setup(void)
{
	fd_deleted = open_data(2, "deleted", O_RDWR);
	unlink(path_of[2]);
	lseek(fd_deleted, 999, SEEK_SET);
}

static void deleted_verify(void)
{
	static uint8_t buf[FLEN];
	char link[64], target[4300];
	struct stat st = { 0 };
	ssize_t n;

	check(fstat(fd_deleted, &st) == 0 && st.st_nlink == 0 && st.st_size == FLEN,
	      "deleted_stat", "nlink %lu size %lld", (unsigned long)st.st_nlink,
	      (long long)st.st_size);
	n = pread(fd_deleted, buf, sizeof(buf), 0);
	check(n == FLEN && check_pattern(buf, FLEN, 12) < 0, "deleted_contents",
	      "read %zd bytes, contents differ", n);
	check(lseek(fd_deleted, 0, SEEK_CUR) == 999, "deleted_offset", "offset %lld",
	      (long long)lseek(fd_deleted, 0, SEEK_CUR));
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd_deleted);
	n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = 0;
	check(n > 10 && strstr(target, " (deleted)") != NULL, "deleted_link", "link is '%s'",
	      target);
	check(access(path_of[2], F_OK) != 0, "deleted_not_recreated",
	      "%s exists again", path_of[2]);
}

#define PIPE_BYTES 3000

static void pipe_setup(void)
{
	uint8_t buf[PIPE_BYTES];

	if (pipe(pipe_fds) < 0)
		exit(3);
	fill_pattern(buf, sizeof(buf), 20);
	if (write(pipe_fds[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		exit(3);
}

static void pipe_verify(void)
{
	uint8_t buf[PIPE_BYTES + 100];
	ssize_t n, total = 0;
	int avail = -1;

	ioctl(pipe_fds[0], FIONREAD, &avail);
	check(avail == PIPE_BYTES, "pipe_buffered", "%d bytes buffered, expected %d", avail,
	      PIPE_BYTES);
	fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
	while ((n = read(pipe_fds[0], buf + total, sizeof(buf) - (size_t)total)) > 0)
		total += n;
	check(total == PIPE_BYTES && check_pattern(buf, PIPE_BYTES, 20) < 0, "pipe_contents",
	      "read %zd bytes", total);
	check(write(pipe_fds[1], "x", 1) == 1 && read(pipe_fds[0], buf, 10) == 1 && buf[0] == 'x',
	      "pipe_still_connected", "the two ends are no longer one pipe");
}

int main(int argc, char **argv)
{
	const char *mode;
	int all;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "all";
	all = !strcmp(mode, "all");
	if (IS("offset"))
		offset_setup();
	if (IS("append"))
		append_setup();
	if (IS("deleted"))
		deleted_setup();
	if (IS("pipe"))
		pipe_setup();
	report_ready();
	wait_for_go();
	if (IS("offset"))
		offset_verify();
	if (IS("append"))
		append_verify();
	if (IS("deleted"))
		deleted_verify();
	if (IS("pipe"))
		pipe_verify();
	done_and_idle();
}
