/* Test target for psnc-ptrace: NTHREADS threads each blocked in nanosleep(argv[1] ms), plus
 * the main thread in pthread_join. Prints "ready" once all threads run, then one line per thread
 * "t<i> ret=R errno=E ms=M tid_ok=1" and "done". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 4

static long ms;
static pthread_barrier_t bar;
static char lines[NTHREADS][128];

static void *run(void *arg)
{
	long i = (long)arg;
	pid_t tid = syscall(SYS_gettid);
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, t0, t1;

	pthread_barrier_wait(&bar);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret = nanosleep(&req, NULL);
	int err = ret ? errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	snprintf(lines[i], sizeof lines[i], "t%ld ret=%d errno=%d ms=%ld tid_ok=%d\n", i, ret, err, el,
		 tid == (pid_t)syscall(SYS_gettid));
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];

	ms = argc > 1 ? atol(argv[1]) : 1000;
	pthread_barrier_init(&bar, NULL, NTHREADS + 1);
	for (long i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, run, (void *)i))
			return 10;
	pthread_barrier_wait(&bar);
	write(1, "ready\n", 6);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		fputs(lines[i], stdout);
	puts("done");
	return 0;
}
