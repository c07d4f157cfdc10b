/*
 * limit: the physical limits a capture and a restore are compared with, measured in the same run.
 *
 *   limit read PID ADDR LEN OUT   process_vm_readv LEN bytes at ADDR of PID, in 4 MiB pieces, each
 *                                 written to OUT; then fsync. Prints seconds.
 *   limit fill IN LEN             mmap LEN bytes of fresh anonymous memory and read IN into it.
 *                                 Prints seconds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PIECE (4UL << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int do_read(pid_t pid, unsigned long addr, unsigned long len, const char *out)
{
	char *buf = aligned_alloc(4096, PIECE);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	double t0;

	if (!buf || fd < 0) {
		perror("limit read");
		return 1;
	}
	memset(buf, 1, PIECE);
	t0 = now();
	for (unsigned long off = 0; off < len; off += PIECE) {
		unsigned long n = len - off < PIECE ? len - off : PIECE;
		struct iovec local = { buf, n }, remote = { (void *)(addr + off), n };

		if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)n ||
		    write(fd, buf, n) != (ssize_t)n) {
			perror("limit read");
			return 1;
		}
	}
	fsync(fd);
	printf("%.6f\n", now() - t0);
	close(fd);
	return 0;
}

static int do_fill(const char *in, unsigned long len)
{
	int fd = open(in, O_RDONLY);
	char *mem;
	double t0;
	unsigned long off = 0;

	if (fd < 0) {
		perror("limit fill");
		return 1;
	}
	t0 = now();
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("limit fill");
		return 1;
	}
	while (off < len) {
		ssize_t n = read(fd, mem + off, len - off < PIECE ? len - off : PIECE);

		if (n <= 0) {
			perror("limit fill: short file");
			return 1;
		}
		off += (unsigned long)n;
	}
	printf("%.6f\n", now() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "read"))
		return do_read(atoi(argv[2]), strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0),
			       argv[5]);
	if (argc == 4 && !strcmp(argv[1], "fill"))
		return do_fill(argv[2], strtoul(argv[3], NULL, 0));
	fprintf(stderr, "usage: limit read PID ADDR LEN OUT | limit fill IN LEN\n");
	return 2;
}
