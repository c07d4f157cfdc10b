/*
 * tree: the process-tree benchmark target of issue 9: a root and NPROCS-1 children (flat), each
 * holding MIB MiB of non-zero private anonymous memory of its own pattern, and all of them
 * mapping one SHARED_MIB MiB region of MAP_SHARED|MAP_ANONYMOUS memory that the root fills
 * before it forks. Same protocol as the test targets (tests/README.md).
 *
 *   tree REPORT NPROCS MIB [SHARED_MIB]
 *
 * Each child appends "UP <index>" once its memory is filled; the root reports READY when all
 * are up. After the go file every process checks its own memory and appends
 * "PASS fill <index>" or "FAIL fill <index>: ..." (the shared region is checked by every
 * process: a restore that gave each process its own copy still passes this check, so the root
 * then also writes one word that each child must see: "PASS shared <index>"); the root reports DONE once every process has
 * reported. The root is a session and group leader (the harness starts it with setsid), so the
 * harness ends the whole tree with one kill of the group, before and after a restore.
 * Build: cc -O2 -I tests/targets -o tree bench/tree.c
 */
#include "target.h"
#include <signal.h>
#include <sys/mman.h>

static uint64_t word(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1 + (seed << 40)) * 0x9E3779B97F4A7C15ull;

	return x ^ (x >> 29) ^ 0x5a5a5a5a5a5a5a5aull;
}

static int count_lines(const char *prefix)
{
	char buf[1 << 16];
	int fd = open(report_path, O_RDONLY | O_CLOEXEC), n = 0;
	size_t len = strlen(prefix), have = 0;
	ssize_t r;

	if (fd < 0)
		return 0;
	/* Lines are short; a window that carries over a partial line is enough. */
	while ((r = read(fd, buf + have, sizeof(buf) - have - 1)) > 0) {
		char *p = buf, *nl;

		have += (size_t)r;
		buf[have] = 0;
		while ((nl = strchr(p, '\n'))) {
			if (!strncmp(p, prefix, len))
				n++;
			p = nl + 1;
		}
		have = (size_t)(buf + have - p);
		memmove(buf, p, have);
	}
	close(fd);
	return n;
}

/* The shared region (NULL without one) and its length in words; the last word is the flag the
 * root sets after restore to show that the processes still share one object. */
static volatile uint64_t *shared;
static size_t shared_words;

/* Fills, waits for go, checks, reports; never returns. */
static void run(int index, size_t words, int root, int nprocs)
{
	uint64_t *mem = NULL;
	size_t i;

	if (words) {
		mem = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		if (mem == MAP_FAILED)
			_exit(4);
		for (i = 0; i < words; i++)
			mem[i] = word(i, (uint64_t)index);
	}
	if (root) {
		while (count_lines("UP ") < nprocs - 1)
			nap_ms(5);
		report_ready();
	} else {
		report("UP %d", index);
	}
	wait_for_go();
	for (i = 0; i < words; i++)
		if (mem[i] != word(i, (uint64_t)index))
			break;
	if (i < words) {
		report("FAIL fill %d: word %zu differs", index, i);
	} else {
		for (i = 0; i + 1 < shared_words; i++)
			if (shared[i] != word(i, 0xfffff))
				break;
		if (i + 1 < shared_words)
			report("FAIL fill %d: shared word %zu differs", index, i);
		else
			report("PASS fill %d", index);
	}
	if (shared) {
		if (root) {
			shared[shared_words - 1] = 1;
		} else {
			for (i = 0; i < 2000 && shared[shared_words - 1] != 1; i++)
				nap_ms(5);
			if (shared[shared_words - 1] == 1)
				report("PASS shared %d", index);
			else
				report("FAIL shared %d: the root's write is not seen", index);
		}
	}
	if (root) {
		while (count_lines("PASS fill ") + count_lines("FAIL fill ") < nprocs ||
		       (shared && count_lines("PASS shared ") + count_lines("FAIL shared ") <
					  nprocs - 1))
			nap_ms(5);
		report("DONE");
	}
	for (;;)
		nap_ms(1000);
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 1;
	size_t mib = argc > 3 ? (size_t)atol(argv[3]) : 0;
	size_t shared_mib = argc > 4 ? (size_t)atol(argv[4]) : 0;

	target_init(argc, argv);
	if (n < 1 || n > 4096)
		return 2;
	if (shared_mib) {
		shared_words = shared_mib << 17;
		shared = mmap(NULL, shared_words * 8, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shared == MAP_FAILED)
			return 4;
		for (size_t i = 0; i + 1 < shared_words; i++)
			shared[i] = word(i, 0xfffff);
		shared[shared_words - 1] = 0;
	}
	for (int k = 1; k < n; k++) {
		pid_t c = fork();

		if (c < 0)
			return 3;
		if (c == 0)
			run(k, mib << 17, 0, n);
	}
	run(0, mib << 17, 1, n);
}
