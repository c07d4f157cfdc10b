/*
 * unsupported MODE: state capture refuses until its issue lands (issue 3 asks for a clear error
 * naming the fd or mapping, and the target left running and unchanged).
 *   socket   an AF_PACKET socket on fd 5 (unix sockets are captured since issue 10)
 *   packet   an AF_PACKET SOCK_RAW socket for every ethertype (ETH_P_ALL) on fd 5
 *   raw4     an AF_INET SOCK_RAW socket for ICMP on fd 5
 *   raw6     an AF_INET6 SOCK_RAW socket for ICMPv6 on fd 5
 *   io_uring     an io_uring instance on fd 5 (io_uring_setup)
 *   perf_event   a software perf event counting this process on fd 5
 *   userfaultfd  a userfaultfd on fd 5
 *   fanotify     a fanotify instance on fd 5
 *   memfd    a hugetlbfs memfd (MFD_HUGETLB) on fd 5
 *   sysv     an attached System V shared memory segment of an IPC namespace of its own
 *            (unshare(CLONE_NEWIPC)): its identifier means nothing in the tool's namespace
 *   seccomp  a seccomp filter (allows everything)
 * Its checks after the go file: a counter kept running and its object still works.
 */
#include "target.h"

#include <sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

static volatile uint64_t ticks;

int main(int argc, char **argv)
{
	const char *mode;
	uint8_t *shm = NULL;
	int ok = 1;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "socket";
	if (!strcmp(mode, "socket")) {
		int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		if (s < 0 || dup2(s, 5) != 5)
			return 3;
		close(s);
	} else if (!strcmp(mode, "packet") || !strcmp(mode, "raw4") || !strcmp(mode, "raw6")) {
		int s;

		if (!strcmp(mode, "packet"))
			s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		else if (!strcmp(mode, "raw4"))
			s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		else
			s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
		if (s < 0) {
			report("FAIL %s: creating it: %s", mode, strerror(errno));
			done_and_idle();
		}
		dup2(s, 5);
		close(s);
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
		int fd = memfd_create("psnc-test", MFD_HUGETLB);

		dup2(fd, 5);
		close(fd);
	} else if (!strcmp(mode, "sysv")) {
		int id = unshare(CLONE_NEWIPC) ? -1 : shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);

		shm = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
		if (shm == (void *)-1)
			return 3;
		/* Removed at once: the segment lives on while attached, and never leaks. */
		shmctl(id, IPC_RMID, NULL);
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
	if (!strcmp(mode, "sysv")) {
		ok = check_pattern(shm, 65536, 77) < 0;
	} else if (strcmp(mode, "seccomp")) {
		ok = fcntl(5, F_GETFD) >= 0; /* still open */
	}
	check(ok && ticks > 0, mode, "object broken or counter stuck (%llu ticks)",
	      (unsigned long long)ticks);
	done_and_idle();
}
