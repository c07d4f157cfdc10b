/* Capture-side test target: the main thread and three others, each counting in its own slot.
 * Prints "ready", then "count N ok" every 10 ms while every thread keeps counting. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static volatile unsigned long slots[3];

static void *run(void *arg) {
	volatile unsigned long *slot = arg;
	for (;;) {
		(*slot)++;
		usleep(1000);
	}
	return NULL;
}

int main(void) {
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, run, (void *)&slots[i]);
	printf("ready\n");
	fflush(stdout);
	unsigned long last[3] = {0};
	for (unsigned long n = 1;; n++) {
		usleep(10000);
		int ok = 1;
		for (int i = 0; i < 3; i++) {
			ok = ok && slots[i] >= last[i];
			last[i] = slots[i];
		}
		printf("count %lu %s\n", n, ok ? "ok" : "BAD");
		fflush(stdout);
	}
}
