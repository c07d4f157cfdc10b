/*
 * fds: a process with N fds on one file (the per-fd costs of issue 11).
 * Same protocol as the test targets (tests/README.md).
 *
 *   fds REPORT N
 *
 * Opens REPORT.data N times, each at its own offset (its index), every third close-on-exec,
 * then closes every seventh again, so the table has gaps. After the go file it reports:
 *   PASS fd_offsets   every open fd has its offset
 *   PASS fd_cloexec   every open fd has its close-on-exec flag
 *   PASS fd_gaps      every closed fd is still closed
 * RLIMIT_NOFILE is raised to its hard limit first; N must stay below it.
 * Used by tests/tests/files.rs (many_fds) and by bench/bench.py --fds.
 */
#include "target.h"
#include <sys/resource.h>

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 1000, bad_off = -1, bad_cloexec = -1, bad_gap = -1;
	static int fds[1 << 20];
	char path[4200];
	struct rlimit rl;
	int f;

	target_init(argc, argv);
	if (n < 1 || n > (1 << 20))
		return 2;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	snprintf(path, sizeof(path), "%s.data", argv[1]);
	f = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f < 0 || ftruncate(f, 1 << 20))
		return 3;
	close(f);
	for (long i = 0; i < n; i++) {
		fds[i] = open(path, O_RDWR | (i % 3 == 0 ? O_CLOEXEC : 0));
		if (fds[i] < 0)
			return 4;
		lseek(fds[i], i, SEEK_SET);
	}
	for (long i = 0; i < n; i += 7)
		close(fds[i]);
	report_ready();
	wait_for_go();

	for (long i = 0; i < n; i++) {
		int fl = fcntl(fds[i], F_GETFD);

		if (i % 7 == 0) {
			if (fl != -1 && bad_gap < 0)
				bad_gap = fds[i];
			continue;
		}
		if (lseek(fds[i], 0, SEEK_CUR) != i && bad_off < 0)
			bad_off = fds[i];
		if (fl < 0 || (!!(fl & FD_CLOEXEC) != (i % 3 == 0)))
			if (bad_cloexec < 0)
				bad_cloexec = fds[i];
	}
	check(bad_off < 0, "fd_offsets", "fd %ld has another offset", bad_off);
	check(bad_cloexec < 0, "fd_cloexec", "fd %ld has another close-on-exec flag", bad_cloexec);
	check(bad_gap < 0, "fd_gaps", "fd %ld, closed at capture, is open", bad_gap);
	done_and_idle();
}
