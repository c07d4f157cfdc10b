/*
 * threads: the benchmark target of issue 4, a process with NTHREADS threads (main included) and
 * MIB MiB of non-zero anonymous memory. Same protocol as the test targets (tests/README.md).
 *
 *   threads REPORT NTHREADS MIB
 *
 * Every thread but main loops: sleep until an absolute deadline 10 ms ahead (CLOCK_MONOTONIC,
 * TIMER_ABSTIME), note the time, check its TID. Waking more than 50 ms after the deadline, or
 * starting a turn more than 50 ms after the last one ended, means a checkpoint (or a stall): the
 * thread keeps the moment it ran again after its latest such gap. An absolute sleep interrupted
 * by the checkpoint is re-issued with the same deadline, long past, so it returns at once: the
 * moment measures the release, not the sleep. After the go file main reports:
 *   PASS fill      the memory holds its pattern
 *   PASS tids      every thread kept its TID
 *   INFO spread_us S   max - min of the resume times: how far apart the threads started again
 *                      (the release of the restore plus the scheduler's noise on few CPUs)
 * Build: cc -O2 -pthread -I tests/targets -o threads bench/threads.c
 */
#include "target.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

struct slot {
	pid_t tid;
	atomic_int bad_tid;
	double last, resumed;
} __attribute__((aligned(64)));

static struct slot *slots;
static atomic_int started;

static void *worker(void *arg)
{
	struct slot *s = arg;

	s->tid = my_gettid();
	s->last = mono_now();
	atomic_fetch_add(&started, 1);
	for (;;) {
		double before = mono_now(), deadline = before + 0.010, after;
		struct timespec ts = { (time_t)deadline,
				       (long)((deadline - (double)(time_t)deadline) * 1e9) };

		if (before - s->last > 0.050)
			s->resumed = before;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		after = mono_now();
		if (after - deadline > 0.050)
			s->resumed = after;
		s->last = after;
		if (my_gettid() != s->tid)
			atomic_store(&s->bad_tid, 1);
	}
	return NULL;
}

static uint64_t word(uint64_t i)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;

	return x ^ (x >> 29) ^ 0x5a5a5a5a5a5a5a5aull;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 1;
	size_t mib = argc > 3 ? (size_t)atol(argv[3]) : 0, words = mib << 17;
	double lo = 0, hi = 0;
	uint64_t *mem = NULL;
	int bad = 0, missing = 0;
	size_t i;

	target_init(argc, argv);
	if (n < 1 || n > 4096)
		return 2;
	slots = calloc((size_t)n, sizeof(*slots));
	if (!slots)
		return 3;
	if (mib) {
		mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return 4;
		for (i = 0; i < words; i++)
			mem[i] = word(i);
	}
	for (int k = 1; k < n; k++) {
		pthread_attr_t a;
		pthread_t t;

		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 * 1024);
		if (pthread_create(&t, &a, worker, &slots[k]) != 0)
			return 5;
		pthread_attr_destroy(&a);
	}
	while (atomic_load(&started) < n - 1)
		nap_ms(1);
	nap_ms(100);
	/* Gaps while the threads were starting are not checkpoints. */
	for (int k = 1; k < n; k++)
		slots[k].resumed = 0;
	report("INFO fill %#lx %zu", (unsigned long)(uintptr_t)mem, mib << 20);
	report_ready();
	wait_for_go();

	for (i = 0; i < words; i++)
		if (mem[i] != word(i))
			break;
	check(i == words, "fill", "word %zu differs", i);
	for (int k = 1; k < n; k++) {
		bad |= atomic_load(&slots[k].bad_tid);
		if (slots[k].resumed == 0) {
			missing++;
			continue;
		}
		if (lo == 0 || slots[k].resumed < lo)
			lo = slots[k].resumed;
		if (slots[k].resumed > hi)
			hi = slots[k].resumed;
	}
	check(!bad, "tids", "a thread's gettid() changed");
	if (n > 1)
		report("INFO spread_us %.0f resumed %d of %d", (hi - lo) * 1e6, n - 1 - missing, n - 1);
	done_and_idle();
}
