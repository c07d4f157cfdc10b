/*
 * unsupported MODE: state capture refuses until its issue lands (issue 3 asks for a clear error
 * naming the fd or mapping, and the target left running and unchanged).
 *   socket   a UNIX socket pair on fds 5 and 6
 *   io_uring     an io_uring instance on fd 5 (io_uring_setup)
 *   perf_event   a software perf event counting this process on fd 5
 *   userfaultfd  a userfaultfd on fd 5
 *   fanotify     a fanotify instance on fd 5
 *   memfd    a memfd on fd 5
 *   shm      a MAP_SHARED|MAP_ANONYMOUS mapping ("/dev/zero (deleted)")
 *   seccomp  a seccomp filter (allows everything)
 * Its checks after the go file: a counter kept running and its object still works.
 */
#include "target.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

static volatile uint64_t ticks;

int main(int argc, char **argv)
{
	const char *mode;
	uint8_t *shm = NULL;
	int ok = 1;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "socket";
	if (!strcmp(mode, "socket")) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return 3;
		dup2(sv[0], 5);
		dup2(sv[1], 6);
		close(sv[0]);
		close(sv[1]);
	} else if (!strcmp(mode, "io_uring") || !strcmp(mode, "perf_event") ||
		   !strcmp(mode, "userfaultfd") || !strcmp(mode, "fanotify")) {
		int fd = -1;

		if (!strcmp(mode, "io_uring")) {
			struct io_uring_params p;

			memset(&p, 0, sizeof(p));
			fd = (int)syscall(SYS_io_uring_setup, 4, &p);
		} else if (!strcmp(mode, "perf_event")) {
			struct perf_event_attr a;

			memset(&a, 0, sizeof(a));
			a.type = PERF_TYPE_SOFTWARE;
			a.size = sizeof(a);
			a.config = PERF_COUNT_SW_TASK_CLOCK;
			fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
		} else if (!strcmp(mode, "userfaultfd")) {
			fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
		} else {
			fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
		}
		if (fd < 0) {
			report("FAIL %s: creating it: %s", mode, strerror(errno));
			done_and_idle();
		}
		dup2(fd, 5);
		close(fd);
	} else if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("psnc-test", 0);

		dup2(fd, 5);
		close(fd);
	} else if (!strcmp(mode, "shm")) {
		shm = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			return 3;
		fill_pattern(shm, 65536, 77);
	} else if (!strcmp(mode, "seccomp")) {
		struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		struct sock_fprog prog = { 1, &allow };

		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			return 3;
	} else {
		report("FAIL unsupported: unknown mode %s", mode);
		done_and_idle();
	}
	report_ready();
	while (!go_requested()) {
		ticks++;
		nap_ms(10);
	}
	if (!strcmp(mode, "socket")) {
		char c = 0;

		ok = write(5, "s", 1) == 1 && read(6, &c, 1) == 1 && c == 's';
	} else if (!strcmp(mode, "memfd")) {
		ok = write(5, "m", 1) == 1;
	} else if (!strcmp(mode, "shm")) {
		ok = check_pattern(shm, 65536, 77) < 0;
	} else if (strcmp(mode, "seccomp")) {
		ok = fcntl(5, F_GETFD) >= 0; /* still open */
	}
	check(ok && ticks > 0, mode, "object broken or counter stuck (%llu ticks)",
	      (unsigned long long)ticks);
	done_and_idle();
}
