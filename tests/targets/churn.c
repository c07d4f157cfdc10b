/*
 * churn: a process whose threads appear and exit continuously (issue 4: the seize loop must
 * refuse it cleanly, within a bounded number of rounds, and leave it running).
 *
 *   churn REPORT [CHAINS]
 *
 * CHAINS (default 4) relay chains: each thread of a chain creates its successor (detached) and
 * exits at once, so the set of TIDs is never the same twice. main counts the threads created.
 * After the go file: PASS churn_alive when the chains still create threads (nothing of the
 * process was left stopped or broken by a refused capture), and PASS churn_tid_main.
 */
#include "target.h"
#include <pthread.h>
#include <stdatomic.h>

static atomic_ulong created;
static atomic_ulong create_failed;

static void *relay(void *arg)
{
	pthread_attr_t a;
	pthread_t next;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	/* Retry: creation fails with EAGAIN while too many exiting threads hold their stacks. */
	while (pthread_create(&next, &a, relay, arg) != 0) {
		atomic_fetch_add(&create_failed, 1);
		nap_ms(1);
	}
	atomic_fetch_add(&created, 1);
	pthread_attr_destroy(&a);
	return NULL;
}

int main(int argc, char **argv)
{
	int chains = argc > 2 ? atoi(argv[2]) : 4;
	pid_t main_tid = my_gettid();
	unsigned long before;
	pthread_t t;

	target_init(argc, argv);
	if (chains < 1 || chains > 64)
		chains = 4;
	for (int i = 0; i < chains; i++)
		if (pthread_create(&t, NULL, relay, NULL) == 0)
			pthread_detach(t);
	while (atomic_load(&created) < 100)
		nap_ms(1);
	report_ready();
	wait_for_go();

	before = atomic_load(&created);
	nap_ms(200);
	check(atomic_load(&created) > before + 10, "churn_alive",
	      "%lu threads created in 200 ms", atomic_load(&created) - before);
	check(my_gettid() == main_tid && main_tid == getpid(), "churn_tid_main",
	      "gettid() %d, was %d", (int)my_gettid(), (int)main_tid);
	done_and_idle();
}
