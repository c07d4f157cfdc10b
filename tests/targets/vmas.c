/*
 * vmas: a process with N extra one-page VMAs (the per-VMA costs of issue 11).
 * Same protocol as the test targets (tests/README.md).
 *
 *   vmas REPORT N
 *
 * One anonymous region of N pages, every page written with its own pattern, then every other
 * page made read-only, so the kernel keeps N VMAs apart (smaps shows each). After the go file it
 * reports:
 *   PASS vma_pages   every page holds its pattern
 *   PASS vma_count   /proc/self/maps has exactly N VMAs in the region
 *   PASS vma_prots   each is one page with its protection (the writable ones written again)
 * Used by tests/tests/memory.rs (many_vmas) and by bench/bench.py --vmas.
 */
#include "target.h"
#include <sys/mman.h>

#define PAGE 4096UL

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 1000, bad = -1, lines = 0, wrong = -1;
	uint8_t *mem;
	char buf[4096];
	FILE *maps;

	target_init(argc, argv);
	if (n < 1 || n > 1000000)
		return 2;
	mem = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mem == MAP_FAILED)
		return 3;
	for (long i = 0; i < n; i++)
		fill_pattern(mem + i * PAGE, PAGE, (uint32_t)i);
	for (long i = 1; i < n; i += 2)
		if (mprotect(mem + i * PAGE, PAGE, PROT_READ))
			return 4;
	report_ready();
	wait_for_go();

	for (long i = 0; i < n && bad < 0; i++)
		if (check_pattern(mem + i * PAGE, PAGE, (uint32_t)i) >= 0)
			bad = i;
	check(bad < 0, "vma_pages", "page %ld differs", bad);
	for (long i = 0; i < n; i += 2)
		mem[i * PAGE] ^= 1;
	maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(buf, sizeof(buf), maps)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(buf, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		if (s < (unsigned long)mem || s >= (unsigned long)(mem + n * PAGE))
			continue;
		lines++;
		if (wrong < 0 && (e - s != PAGE ||
				  strcmp(perms, ((s - (unsigned long)mem) / PAGE) % 2 ? "r--p" : "rw-p")))
			wrong = (long)((s - (unsigned long)mem) / PAGE);
	}
	if (maps)
		fclose(maps);
	check(lines == n, "vma_count", "%ld maps lines for the %ld VMAs", lines, n);
	check(wrong < 0, "vma_prots", "the VMA of page %ld has another size or protection", wrong);
	done_and_idle();
}
