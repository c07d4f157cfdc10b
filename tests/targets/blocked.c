/*
 * blocked MODE: a target blocked in a system call at the checkpoint.
 *   nanosleep SECS  one nanosleep of SECS seconds (on EINTR it sleeps the remainder), then checks
 *                   that at least SECS seconds passed and reports; needs no go file
 *   read [FD]       a blocking read() on FD (default 0, a pipe the harness feeds after restore,
 *                   through --inherit-fd); retried on EINTR; checks the bytes and the fd kind
 * After reporting, both idle like every target.
 */
#include "target.h"

#define WAKEUP "psnc-wakeup\n"

static void run_nanosleep(double secs)
{
	struct timespec req = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) }, rem;
	double t0 = mono_now(), elapsed;
	int eintr = 0, r;

	report_ready();
	while ((r = nanosleep(&req, &rem)) < 0 && errno == EINTR) {
		eintr++;
		req = rem;
	}
	elapsed = mono_now() - t0;
	check(r == 0, "nanosleep_result", "nanosleep failed: %s (errno %d)", strerror(errno),
	      errno);
	check(elapsed >= secs - 0.001, "nanosleep_duration", "woke after %.3f s of %.3f s",
	      elapsed, secs);
	report("INFO elapsed %.3f eintr %d", elapsed, eintr);
}

static void run_read(int fd)
{
	char buf[64];
	struct stat st;
	ssize_t n;
	int eintr = 0;

	report_ready();
	while ((n = read(fd, buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
		eintr++;
	if (n < 0) {
		check(0, "pipe_read", "read failed: %s (errno %d)", strerror(errno), errno);
		return;
	}
	buf[n] = 0;
	check(!strcmp(buf, WAKEUP), "pipe_read", "read %zd bytes '%s'", n, buf);
	check(fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode), "pipe_read_fd_kind",
	      "fd %d is not a pipe", fd);
	report("INFO eintr %d", eintr);
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "nanosleep";
	if (!strcmp(mode, "nanosleep"))
		run_nanosleep(argc > 3 ? atof(argv[3]) : 3.0);
	else if (!strcmp(mode, "read"))
		run_read(argc > 3 ? atoi(argv[3]) : 0);
	else
		report("FAIL blocked: unknown mode %s", mode);
	done_and_idle();
}
