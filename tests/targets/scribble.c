/*
 * scribble: a process that writes its memory all the time, also while it is captured (issue 11:
 * pre-copy). After a restore it checks that its memory is exactly what it was at the instant
 * of the stop, page by page.
 *
 *   scribble REPORT MIB [RATE [vmas]]
 *
 * A writer thread writes generation g = 1, 2, 3, ... into page hash(g) of a MIB MiB region
 * (every 32-bit word of the page, then the counter `done` = g), RATE pages per millisecond
 * (default 20; 0 = as fast as it can). The state at any instant is therefore a function of
 * `done` alone: page p holds the largest g <= done with hash(g) = p (0 if none). The page being
 * written when the process stops is completed by the same thread after the restore, before it
 * counts it.
 *
 * With `vmas`, the writer also changes a side region of 64 pages every few batches, in turn:
 * fills it with the generation, drops it with MADV_DONTNEED (it reads as zeros), moves it with
 * mremap between two fixed places (the moved VMA is a new one to the kernel), and after the
 * restore checks that it is where and what it was at the stop (PASS scribble_side).
 *
 * The writer pauses for good the first time it sees that its parent changed (getppid(): the
 * restored process is not the child of the test any more), so few pages are written after the
 * restore that could hide a page the image got wrong. After the go file: PASS scribble_memory
 * when every page is the replay of 1..done, PASS scribble_ran (the writer ran after the
 * restore... or the capture without --kill), PASS scribble_untracked (no "uw" VmFlags left in
 * /proc/self/smaps: the pre-copy's write tracking is gone) and PASS scribble_fds (the fd table
 * is what it was at start: the tool's userfaultfd left none behind).
 */
#include "target.h"
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define PAGE 4096u
#define WORDS (PAGE / 4)

static uint32_t *region;
static uint32_t npages;
static long rate;
static pid_t parent;
/* Generations completed (the page of `done` is fully written). */
static _Atomic uint32_t done;
/* 1 once the writer saw a new parent and stopped writing. */
static atomic_int paused;
/* Generations completed when the writer paused. */
static _Atomic uint32_t at_pause;
/* Set by main to pause the writer when the process was not restored. */
static atomic_int stop_req;
/* The side region (mode vmas): its two places, where it is, and what every word holds. */
#define SIDE_PAGES 64
static char *side_slot[2];
static int side_vmas;
static _Atomic int side_at;
static _Atomic uint32_t side_gen;
static _Atomic uint32_t side_step;

/* One change of the side region, then the state that describes it. */
static void side_change(uint32_t g)
{
	size_t len = (size_t)SIDE_PAGES * PAGE;
	int at = atomic_load(&side_at);
	uint32_t *p = (uint32_t *)side_slot[at];

	switch (atomic_load(&side_step) % 3) {
	case 0:
		for (size_t w = 0; w < len / 4; w++)
			((volatile uint32_t *)p)[w] = g;
		atomic_store(&side_gen, g);
		break;
	case 1:
		madvise(p, len, MADV_DONTNEED);
		atomic_store(&side_gen, 0);
		break;
	case 2:
		if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, side_slot[1 - at]) ==
		    MAP_FAILED) {
			report("FAIL scribble_side: mremap: %s", strerror(errno));
			break;
		}
		atomic_store(&side_at, 1 - at);
		break;
	}
	atomic_fetch_add(&side_step, 1);
}

static uint32_t page_of(uint32_t g)
{
	uint32_t h = g * 2654435761u;

	h ^= h >> 16;
	return h % npages;
}

static void *writer(void *arg)
{
	(void)arg;
	for (;;) {
		long n = rate > 0 ? rate : 4096;

		for (long i = 0; i < n; i++) {
			uint32_t g = atomic_load(&done) + 1;
			uint32_t *p = region + (size_t)page_of(g) * WORDS;

			for (unsigned w = 0; w < WORDS; w++)
				((volatile uint32_t *)p)[w] = g;
			atomic_store(&done, g);
		}
		if (side_vmas && atomic_load(&done) % 8 < (uint32_t)n)
			side_change(atomic_load(&done));
		if (getppid() != parent || atomic_load(&stop_req)) {
			atomic_store(&at_pause, atomic_load(&done));
			atomic_store(&paused, 1);
			return NULL;
		}
		if (rate > 0)
			nap_ms(1);
	}
}

/* The fds of this process, as a sorted list of numbers in `out`; returns how many. */
static int list_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);

		if (fd == dirfd(d) || n >= max)
			continue;
		out[n++] = fd;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* Number of "uw" VmFlags entries in /proc/self/smaps. */
static int tracked_vmas(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " uw"))
			n++;
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	long mib = argc > 2 ? atol(argv[2]) : 64;
	int fds_before[256], fds_after[256], nb, na;
	pthread_t t;

	target_init(argc, argv);
	rate = argc > 3 ? atol(argv[3]) : 20;
	side_vmas = argc > 4 && strcmp(argv[4], "vmas") == 0;
	if (side_vmas) {
		/* Two places 64 pages apart inside a reservation, the region at the first. */
		size_t len = (size_t)SIDE_PAGES * PAGE;
		char *r = mmap(NULL, 3 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		side_slot[0] = r;
		side_slot[1] = r + 2 * len;
		if (r == MAP_FAILED ||
		    mmap(r, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) == MAP_FAILED) {
			report("FAIL scribble_setup: side mmap: %s", strerror(errno));
			done_and_idle();
		}
	}
	if (mib < 1)
		mib = 1;
	npages = (uint32_t)(mib * 256);
	region = mmap(NULL, (size_t)npages * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		report("FAIL scribble_setup: mmap: %s", strerror(errno));
		done_and_idle();
	}
	/* Every page present from the start, holding generation 0. */
	memset(region, 0, (size_t)npages * PAGE);
	parent = getppid();
	nb = list_fds(fds_before, 256);
	if (pthread_create(&t, NULL, writer, NULL) != 0) {
		report("FAIL scribble_setup: pthread_create");
		done_and_idle();
	}
	while (atomic_load(&done) < 1000)
		nap_ms(1);
	report("INFO pages %u rate %ld", npages, rate);
	report_ready();
	wait_for_go();

	/* After a restore the writer pauses on its own (new parent); after a capture that left
	 * the process running it is still writing, which it must (the capture stopped it only
	 * briefly), and is paused here. */
	uint32_t seen = atomic_load(&done);
	nap_ms(100);
	int restored = atomic_load(&paused);

	check(restored || atomic_load(&done) > seen, "scribble_ran",
	      "%u generations in 100 ms and not paused by a restore", atomic_load(&done) - seen);
	atomic_store(&stop_req, 1);
	pthread_join(t, NULL);
	uint32_t final = atomic_load(&at_pause);

	report("INFO restored %d", restored);

	uint32_t *expect = calloc(npages, sizeof(uint32_t));
	long bad = 0;
	uint32_t first_bad = 0, got = 0, want = 0;

	for (uint32_t g = 1; g <= final; g++)
		expect[page_of(g)] = g;
	for (uint32_t p = 0; p < npages; p++) {
		const uint32_t *w = region + (size_t)p * WORDS;

		for (unsigned i = 0; i < WORDS; i++)
			if (w[i] != expect[p]) {
				if (bad == 0) {
					first_bad = p;
					got = w[i];
					want = expect[p];
				}
				bad++;
				break;
			}
	}
	if (side_vmas) {
		const uint32_t *p = (const uint32_t *)side_slot[atomic_load(&side_at)];
		uint32_t want_side = atomic_load(&side_gen);
		long side_bad = 0;

		for (size_t w = 0; w < (size_t)SIDE_PAGES * PAGE / 4; w++)
			side_bad += p[w] != want_side;
		check(side_bad == 0, "scribble_side",
		      "%ld words of the side region at place %d differ from %u (step %u)", side_bad,
		      atomic_load(&side_at), want_side, atomic_load(&side_step));
	}
	check(bad == 0, "scribble_memory",
	      "%ld of %u pages differ from the replay of %u generations; first: page %u holds %u, expected %u",
	      bad, npages, final, first_bad, got, want);
	report("INFO generations %u", final);
	int uw = tracked_vmas();

	check(uw == 0, "scribble_untracked", "%d VMAs still write-tracked (uw)", uw);
	na = list_fds(fds_after, 256);
	int same = na == nb;

	for (int i = 0; same && i < na; i++)
		same = fds_before[i] == fds_after[i];
	check(same, "scribble_fds", "%d fds at start, %d now", nb, na);
	done_and_idle();
}
