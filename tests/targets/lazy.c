/*
 * lazy: what a process may do to memory a lazy restore has not filled yet (issue 11,
 * psnc-restore --lazy). Each region is left untouched after the restore until its own check:
 *
 *   lazy REPORT
 *
 * Setup: six private anonymous regions of 64 pages, each filled with its own pattern, and one
 * of 16 MiB. After the go file, in this order (each region touched first by its check):
 *   PASS lazy_fork      a child reads region 0, which the parent never touched since the
 *                       restore, and exits 0 when it holds the pattern; then the parent reads it
 *   PASS lazy_dontneed  region 1 dropped with MADV_DONTNEED before any touch reads as zeros
 *                       (not the image's bytes)
 *   PASS lazy_mremap    region 2 moved with mremap before any touch holds the pattern at its
 *                       new place
 *   PASS lazy_munmap    the second half of region 3 unmapped before any touch; the first half
 *                       holds the pattern
 *   PASS lazy_kernel    read() from a pipe into the middle of region 4 (a fault from kernel
 *                       mode) puts the bytes there, and the rest of the page is the pattern
 *   PASS lazy_write     a write to region 5 before any read keeps the rest of the page
 *   PASS lazy_big       the 16 MiB region holds its pattern
 */
#include "target.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096u
#define PAGES 64u
#define LEN ((size_t)PAGES * PAGE)
#define BIG ((size_t)16 << 20)

static uint8_t *region[6];
static uint8_t *big;

static uint8_t *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		report("FAIL lazy_setup: mmap: %s", strerror(errno));
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	target_init(argc, argv);
	for (int i = 0; i < 6; i++) {
		region[i] = map(LEN);
		fill_pattern(region[i], LEN, 100 + i);
	}
	big = map(BIG);
	fill_pattern(big, BIG, 200);
	report_ready();
	wait_for_go();

	/* fork: the child's first touch of region 0 */
	pid_t child = fork();
	if (child == 0)
		_exit(check_pattern(region[0], LEN, 100) == -1 ? 0 : 1);
	int st = 0;
	waitpid(child, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0 && check_pattern(region[0], LEN, 100) == -1,
	      "lazy_fork", "child status %#x, parent's first mismatch at %ld", st,
	      check_pattern(region[0], LEN, 100));

	/* MADV_DONTNEED: zeros */
	madvise(region[1], LEN, MADV_DONTNEED);
	long nz = -1;
	for (size_t i = 0; i < LEN; i++)
		if (region[1][i]) {
			nz = (long)i;
			break;
		}
	check(nz == -1, "lazy_dontneed", "byte %ld is %#x after MADV_DONTNEED", nz,
	      nz >= 0 ? region[1][nz] : 0);

	/* mremap: the contents move */
	uint8_t *dst = map(LEN * 2);
	munmap(dst, LEN * 2);
	uint8_t *moved = mremap(region[2], LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	check(moved == dst && check_pattern(moved, LEN, 102) == -1, "lazy_mremap",
	      "mremap %p, first mismatch at %ld", (void *)moved,
	      moved == dst ? check_pattern(moved, LEN, 102) : -2);

	/* munmap of half */
	munmap(region[3] + LEN / 2, LEN / 2);
	check(check_pattern(region[3], LEN / 2, 103) == -1, "lazy_munmap",
	      "first mismatch at %ld", check_pattern(region[3], LEN / 2, 103));

	/* a fault from kernel mode: read() into an untouched page */
	int p[2];
	uint8_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t at = 5 * PAGE + 100;
	int ok = pipe(p) == 0 && write(p[1], in, sizeof(in)) == (ssize_t)sizeof(in) &&
		 read(p[0], region[4] + at, sizeof(in)) == (ssize_t)sizeof(in);
	int same = ok && memcmp(region[4] + at, in, sizeof(in)) == 0;
	for (size_t i = 5 * PAGE; same && i < 6 * PAGE; i++)
		if ((i < at || i >= at + sizeof(in)) && region[4][i] != pattern_byte(104, i))
			same = 0;
	check(same && check_pattern(region[4], 5 * PAGE, 104) == -1, "lazy_kernel",
	      "read() %s, page %s", ok ? "ok" : strerror(errno), same ? "ok" : "wrong");

	/* a write before any read */
	region[5][3 * PAGE + 7] = 0xAB;
	int wr = region[5][3 * PAGE + 7] == 0xAB;
	for (size_t i = 0; wr && i < LEN; i++)
		if (i != 3 * PAGE + 7 && region[5][i] != pattern_byte(105, i))
			wr = 0;
	check(wr, "lazy_write", "the page around the written byte lost its contents");

	check(check_pattern(big, BIG, 200) == -1, "lazy_big", "first mismatch at %ld",
	      check_pattern(big, BIG, 200));
	done_and_idle();
}
