/*
 * freeze: the benchmark target for the freeze a capture imposes (issue 11). It holds MIB MiB of
 * non-zero memory, writes about RATE random pages per second into it (one writer thread), and
 * measures, in another thread, the longest gap between two of its wake-ups (it sleeps 200 us
 * each time): a stop of the process shows as a gap of the length of the stop.
 *
 *   freeze REPORT MIB [RATE]
 *
 * Protocol (files next to REPORT, polled by the gap thread):
 *   READY <pid>              written once the memory is filled
 *   REPORT.mark -> MARKED    the longest gap is reset (the capture starts after this)
 *   REPORT.go   -> INFO maxgap_us G   the longest gap since the mark
 *                  INFO fork_us F     how long fork() of this process takes: the time to
 *                                     copy its page tables, the lower bound of a stop that
 *                                     snapshots the memory (the child exits at once)
 *               -> DONE
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char report[4096], mark[4200], go[4200];
static uint8_t *mem;
static size_t len;
static long rate;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void line(const char *fmt, long long v)
{
	char buf[256];
	int fd = open(report, O_WRONLY | O_APPEND | O_CREAT, 0644);
	int n = snprintf(buf, sizeof(buf), fmt, v);

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		_exit(2);
	close(fd);
}

static void *writer(void *arg)
{
	uint64_t x = 88172645463325252ull;
	size_t pages = len / 4096;

	(void)arg;
	for (;;) {
		/* 1 ms of sleep per RATE/1000 pages. */
		long batch = rate / 1000 > 0 ? rate / 1000 : 1;

		for (long i = 0; i < batch; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			mem[(x % pages) * 4096 + (x >> 40) % 4096] = (uint8_t)x | 1;
		}
		struct timespec ts = { 0, rate >= 1000 ? 1000000 : 1000000000 / (rate > 0 ? rate : 1) };

		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct stat st;
	double last, maxgap = 0;
	pthread_t t;

	if (argc < 3)
		return 1;
	snprintf(report, sizeof(report), "%s", argv[1]);
	snprintf(mark, sizeof(mark), "%s.mark", argv[1]);
	snprintf(go, sizeof(go), "%s.go", argv[1]);
	len = (size_t)atol(argv[2]) << 20;
	rate = argc > 3 ? atol(argv[3]) : 1000;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < len; i += 8)
		*(uint64_t *)(mem + i) = i * 0x9e3779b97f4a7c15ull | 1;
	if (pthread_create(&t, NULL, writer, NULL) != 0)
		return 1;
	line("READY %lld\n", getpid());
	last = now();
	for (;;) {
		struct timespec ts = { 0, 200000 };
		double n;

		nanosleep(&ts, NULL);
		n = now();
		if (n - last > maxgap)
			maxgap = n - last;
		last = n;
		if (stat(mark, &st) == 0) {
			unlink(mark);
			maxgap = 0;
			line("MARKED %lld\n", 0);
		}
		if (stat(go, &st) == 0) {
			double f0, f1;
			pid_t c;

			unlink(go);
			line("INFO maxgap_us %lld\n", (long long)(maxgap * 1e6));
			f0 = now();
			c = fork();
			if (c == 0)
				_exit(0);
			f1 = now();
			waitpid(c, NULL, 0);
			line("INFO fork_us %lld\n", (long long)((f1 - f0) * 1e6));
			line("DONE %lld\n", 0);
			last = now();
		}
	}
}
