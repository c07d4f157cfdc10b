/* Capture-side test target: holds one resource capture refuses, chosen by argv[1]:
 * socket (AF_PACKET), io_uring, sysv (System V shared memory), memfd (on hugetlbfs), seccomp (filter mode).
 * Prints "ready <fd or address>" and sleeps. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "socket")) {
		/* Not AF_UNIX: unix sockets are captured since issue 10. */
		printf("ready %d\n", socket(AF_PACKET, SOCK_DGRAM, 0));
	} else if (!strcmp(mode, "io_uring")) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		printf("ready %ld\n", syscall(SYS_io_uring_setup, 4, &p));
	} else if (!strcmp(mode, "sysv")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		char *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);

		if (p == (void *)-1)
			return 1;
		shmctl(id, IPC_RMID, NULL); /* lives while attached, never leaks */
		*p = 1;
		printf("ready %p\n", (void *)p);
	} else if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("buf", MFD_HUGETLB);
		printf("ready %d\n", fd);
	} else if (!strcmp(mode, "seccomp")) {
		struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
		struct sock_fprog prog = {.len = 1, .filter = allow};
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			return 1;
		printf("ready 0\n");
	} else {
		return 2;
	}
	fflush(stdout);
	for (;;)
		pause();
}
