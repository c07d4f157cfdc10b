/* Capture-side test target: holds one resource capture refuses, chosen by argv[1]:
 * socket, io_uring, shm (shared anonymous mapping), memfd, seccomp (filter mode).
 * Prints "ready <fd or address>" and sleeps. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "socket")) {
		int sv[2];
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		printf("ready %d\n", sv[0]);
	} else if (!strcmp(mode, "io_uring")) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		printf("ready %ld\n", syscall(SYS_io_uring_setup, 4, &p));
	} else if (!strcmp(mode, "shm")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		*(char *)p = 1;
		printf("ready %p\n", p);
	} else if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("buf", 0);
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
