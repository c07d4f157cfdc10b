/*
 * memory MODE: known byte patterns in one kind of memory each.
 *   heap          malloc'd blocks (brk heap and an mmap'd block); brk value; the heap still grows
 *   stack         patterns in 48 nested stack frames, checked while unwinding
 *   bss           a written half and an untouched (zero) half of a .bss array; a modified .data array
 *   anon_holes    a 64 MiB anonymous mapping: written chunks, unmapped holes, untouched chunks
 *                 (zero, and still not resident), chunks with only their first and last page written
 *   guard         data under PROT_NONE pages, and an untouched PROT_NONE guard region that faults
 *   file_private  MAP_PRIVATE file mapping with dirtied (COWed) pages; the file stays unchanged
 *   file_shared   MAP_SHARED file mapping written through; mapping and file stay one
 *   all           every mode above but stack
 *   fill MIB      MIB MiB of anonymous memory, every word non-zero (for benchmarks and for the
 *                 test that kills the capture tool while it reads memory)
 * File modes keep their file at REPORT.MODE.data.
 */
#include "target.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define MIB (1024UL * 1024UL)

/* ---- heap ---- */
#define HEAP_BLOCKS 12
static uint8_t *heap_block[HEAP_BLOCKS];
static size_t heap_len[HEAP_BLOCKS];
static void *heap_brk;

static void heap_setup(void)
{
	for (int i = 0; i < HEAP_BLOCKS; i++) {
		heap_len[i] = i == HEAP_BLOCKS - 1 ? 3 * MIB : (size_t)(17 + i * 977);
		heap_block[i] = malloc(heap_len[i]);
		if (!heap_block[i])
			exit(3);
		fill_pattern(heap_block[i], heap_len[i], 100 + (uint32_t)i);
	}
	heap_brk = sbrk(0);
}

static void heap_verify(void)
{
	long bad = -1;
	int which = -1;
	uint8_t *grow;

	for (int i = 0; i < HEAP_BLOCKS && bad < 0; i++) {
		bad = check_pattern(heap_block[i], heap_len[i], 100 + (uint32_t)i);
		which = i;
	}
	check(bad < 0, "heap_blocks", "block %d (%zu bytes) differs at offset %ld", which,
	      heap_len[which], bad);
	check(sbrk(0) == heap_brk, "heap_brk", "brk %p, expected %p", sbrk(0), heap_brk);
	grow = sbrk(64 * PAGE);
	if (grow == (void *)-1) {
		check(0, "heap_grow", "sbrk(+256 KiB) failed: %s", strerror(errno));
		return;
	}
	fill_pattern(grow, 64 * PAGE, 7);
	check(grow == heap_brk && check_pattern(grow, 64 * PAGE, 7) < 0, "heap_grow",
	      "sbrk returned %p, expected %p", (void *)grow, heap_brk);
	sbrk(-(intptr_t)(64 * PAGE));
	{
		void *p = malloc(5000);

		check(p != NULL, "heap_malloc", "malloc after restore failed");
		free(p);
	}
}

/* ---- stack ---- */
#define STACK_DEPTH 48

static int stack_frame(int depth, uintptr_t *deepest_sp)
{
	volatile uint8_t local[1000];
	int bad = 0;

	fill_pattern((void *)local, sizeof(local), 200 + (uint32_t)depth);
	if (depth + 1 < STACK_DEPTH) {
		bad = stack_frame(depth + 1, deepest_sp);
	} else {
		*deepest_sp = (uintptr_t)&local[0];
		report_ready();
		wait_for_go();
	}
	if (check_pattern((void *)local, sizeof(local), 200 + (uint32_t)depth) >= 0 && !bad)
		bad = depth + 1;
	return bad;
}

static void stack_run(void)
{
	uintptr_t sp = 0;
	int bad = stack_frame(0, &sp);

	check(bad == 0, "stack_frames", "frame %d of %d differs", bad - 1, STACK_DEPTH);
}

/* ---- bss / data ---- */
static uint8_t bss_area[2 * MIB];
static uint32_t data_area[1024] = { 1, 2, 3, 4 };

static void bss_setup(void)
{
	fill_pattern(bss_area, MIB, 300);
	for (int i = 0; i < 1024; i++)
		data_area[i] = data_area[i] * 7 + (uint32_t)i;
}

static void bss_verify(void)
{
	long bad = check_pattern(bss_area, MIB, 300);
	size_t nz = 0;
	int data_ok = 1;

	check(bad < 0, "bss_written", "differs at offset %ld", bad);
	for (size_t i = MIB; i < 2 * MIB; i++)
		nz += bss_area[i] != 0;
	check(nz == 0, "bss_zero", "%zu non-zero bytes in the untouched half", nz);
	for (int i = 0; i < 1024; i++) {
		uint32_t init = i < 4 ? (uint32_t)i + 1 : 0;

		data_ok &= data_area[i] == init * 7 + (uint32_t)i;
	}
	check(data_ok, "data_modified", ".data array differs");
}

/* ---- anonymous mapping with holes ---- */
#define ANON_CHUNKS 64
static uint8_t *anon;

static void anon_setup(void)
{
	anon = mmap(NULL, ANON_CHUNKS * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (anon == MAP_FAILED)
		exit(3);
	/* With THP "always", touching one page could fault in a 2 MiB page over untouched chunks. */
	{
		char thp[128] = "";
		int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			if (read(fd, thp, sizeof(thp) - 1) < 0)
				thp[0] = 0;
			close(fd);
		}
		if (strstr(thp, "[always]"))
			madvise(anon, ANON_CHUNKS * MIB, MADV_NOHUGEPAGE);
	}
	for (int i = 0; i < ANON_CHUNKS; i++) {
		uint8_t *c = anon + i * MIB;

		switch (i % 4) {
		case 0:
			fill_pattern(c, MIB, 400 + (uint32_t)i);
			break;
		case 1:
			munmap(c, MIB);
			break;
		case 2:
			break;
		case 3:
			fill_pattern(c, PAGE, 400 + (uint32_t)i);
			fill_pattern(c + MIB - PAGE, PAGE, 500 + (uint32_t)i);
			break;
		}
	}
}

static void anon_verify(void)
{
	int bad_chunk = -1, hole_bad = -1, zero_bad = -1, resident_bad = -1;
	unsigned char vec[MIB / PAGE];

	for (int i = 0; i < ANON_CHUNKS; i++) {
		uint8_t *c = anon + i * MIB;
		int r;

		switch (i % 4) {
		case 0:
			if (check_pattern(c, MIB, 400 + (uint32_t)i) >= 0 && bad_chunk < 0)
				bad_chunk = i;
			break;
		case 1:
			r = mincore(c, MIB, vec);
			if (!(r < 0 && errno == ENOMEM) && hole_bad < 0)
				hole_bad = i;
			break;
		case 2:
			if (mincore(c, MIB, vec) == 0) {
				for (size_t p = 0; p < MIB / PAGE; p++)
					if ((vec[p] & 1) && resident_bad < 0)
						resident_bad = i;
			}
			for (size_t b = 0; b < MIB; b += 64)
				if (c[b] && zero_bad < 0)
					zero_bad = i;
			break;
		case 3:
			if ((check_pattern(c, PAGE, 400 + (uint32_t)i) >= 0 ||
			     check_pattern(c + MIB - PAGE, PAGE, 500 + (uint32_t)i) >= 0) &&
			    bad_chunk < 0)
				bad_chunk = i;
			for (size_t b = PAGE; b < MIB - PAGE; b += 64)
				if (c[b] && zero_bad < 0)
					zero_bad = i;
			break;
		}
	}
	check(bad_chunk < 0, "anon_written", "chunk %d differs", bad_chunk);
	check(hole_bad < 0, "anon_holes", "chunk %d should be unmapped", hole_bad);
	check(resident_bad < 0, "anon_untouched_not_resident",
	      "chunk %d has resident pages that were never touched", resident_bad);
	check(zero_bad < 0, "anon_untouched_zero", "chunk %d has non-zero bytes", zero_bad);
}

/* ---- PROT_NONE ---- */
static uint8_t *guard_data;	/* 16 pages: 0-5 rw, 6-9 PROT_NONE holding data, 10-15 rw */
static uint8_t *guard_region;	/* 8 untouched PROT_NONE pages */
static sigjmp_buf fault_jmp;

static void segv_handler(int sig)
{
	(void)sig;
	siglongjmp(fault_jmp, 1);
}

/* Returns the permissions of the mapping holding addr, from /proc/self/maps. */
static void maps_perms(const void *addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	strcpy(perms, "????");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && (uintptr_t)addr >= lo &&
		    (uintptr_t)addr < hi) {
			strcpy(perms, p);
			break;
		}
	}
	fclose(f);
}

static int faults_on_read(volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = segv_handler }, old;
	int faulted = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(fault_jmp, 1) == 0)
		(void)*p;
	else
		faulted = 1;
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

static void guard_setup(void)
{
	guard_data = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	guard_region = mmap(NULL, 8 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_data == MAP_FAILED || guard_region == MAP_FAILED)
		exit(3);
	fill_pattern(guard_data, 16 * PAGE, 600);
	mprotect(guard_data + 6 * PAGE, 4 * PAGE, PROT_NONE);
}

static void guard_verify(void)
{
	char p1[5], p2[5], p3[5];
	long bad;

	maps_perms(guard_data + 6 * PAGE, p1);
	maps_perms(guard_region, p2);
	maps_perms(guard_data, p3);
	check(!strcmp(p1, "---p") && !strcmp(p2, "---p") && !strcmp(p3, "rw-p"), "guard_prot",
	      "data under guard %s, guard region %s, rw part %s", p1, p2, p3);
	check(faults_on_read(guard_data + 7 * PAGE) && faults_on_read(guard_region + PAGE),
	      "guard_faults", "a PROT_NONE page could be read");
	mprotect(guard_data + 6 * PAGE, 4 * PAGE, PROT_READ);
	bad = check_pattern(guard_data, 16 * PAGE, 600);
	mprotect(guard_data + 6 * PAGE, 4 * PAGE, PROT_NONE);
	check(bad < 0, "guard_data", "differs at offset %ld", bad);
}

/* ---- file mappings ---- */
static uint8_t *fmap[2];
static int ffd[2];
static char fpath[2][4200];
#define FPAGES 16

static int make_file(int which, const char *mode)
{
	uint8_t buf[FPAGES * PAGE];

	snprintf(fpath[which], sizeof(fpath[which]), "%s.%s.data", report_path, mode);
	ffd[which] = open(fpath[which], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ffd[which] < 0)
		exit(3);
	fill_pattern(buf, sizeof(buf), 700 + (uint32_t)which);
	if (pwrite(ffd[which], buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		exit(3);
	return ffd[which];
}

static void fprivate_setup(void)
{
	int fd = make_file(0, "file_private");

	fmap[0] = mmap(NULL, FPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (fmap[0] == MAP_FAILED)
		exit(3);
	close(fd);
	/* Dirty pages 1, 5 and 6; read page 9 so it is present but clean. */
	fill_pattern(fmap[0] + 1 * PAGE, PAGE, 801);
	fill_pattern(fmap[0] + 5 * PAGE, 2 * PAGE, 805);
	(void)*(volatile uint8_t *)(fmap[0] + 9 * PAGE);
}

static void fprivate_verify(void)
{
	static uint8_t file[FPAGES * PAGE];
	int fd = open(fpath[0], O_RDONLY | O_CLOEXEC);
	int dirty_ok, clean_ok = 1, file_ok;
	char perms[5];

	if (fd < 0 || pread(fd, file, sizeof(file), 0) != (ssize_t)sizeof(file)) {
		check(0, "file_private", "cannot read %s back", fpath[0]);
		return;
	}
	file_ok = check_pattern(file, sizeof(file), 700) < 0;
	dirty_ok = check_pattern(fmap[0] + PAGE, PAGE, 801) < 0 &&
		   check_pattern(fmap[0] + 5 * PAGE, 2 * PAGE, 805) < 0;
	for (int p = 0; p < FPAGES; p++)
		if (p != 1 && p != 5 && p != 6)
			clean_ok &= !memcmp(fmap[0] + p * PAGE, file + p * PAGE, PAGE);
	check(dirty_ok, "file_private_dirty", "dirtied pages lost their contents");
	check(clean_ok, "file_private_clean", "clean pages differ from the file");
	check(file_ok, "file_private_file_unchanged", "the file itself was modified");
	/* Still private: a new write must not reach the file. */
	fmap[0][3 * PAGE] ^= 0xff;
	pread(fd, file, PAGE, 3 * PAGE);
	check(file[0] != fmap[0][3 * PAGE], "file_private_still_private",
	      "a write through the mapping reached the file");
	fmap[0][3 * PAGE] ^= 0xff;
	maps_perms(fmap[0], perms);
	check(!strcmp(perms, "rw-p"), "file_private_prot", "perms %s", perms);
	close(fd);
}

static void fshared_setup(void)
{
	int fd = make_file(1, "file_shared");

	fmap[1] = mmap(NULL, FPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fmap[1] == MAP_FAILED)
		exit(3);
	close(fd);
	fill_pattern(fmap[1] + 2 * PAGE, 2 * PAGE, 902);
}

static void fshared_verify(void)
{
	static uint8_t file[FPAGES * PAGE];
	int fd = open(fpath[1], O_RDWR | O_CLOEXEC);
	uint8_t b = 0x5a;
	char perms[5];

	if (fd < 0 || pread(fd, file, sizeof(file), 0) != (ssize_t)sizeof(file)) {
		check(0, "file_shared", "cannot read %s back", fpath[1]);
		return;
	}
	check(check_pattern(fmap[1] + 2 * PAGE, 2 * PAGE, 902) < 0, "file_shared_written",
	      "pages written through the mapping differ");
	check(!memcmp(fmap[1], file, sizeof(file)), "file_shared_matches_file",
	      "mapping and file differ");
	fmap[1][7 * PAGE + 3] = 0xa5;
	pread(fd, &b, 1, 7 * PAGE + 3);
	check(b == 0xa5, "file_shared_write_reaches_file", "file holds %#x", b);
	b = 0x3c;
	pwrite(fd, &b, 1, 8 * PAGE + 5);
	check(fmap[1][8 * PAGE + 5] == 0x3c, "file_shared_file_reaches_mapping",
	      "mapping holds %#x", fmap[1][8 * PAGE + 5]);
	maps_perms(fmap[1], perms);
	check(!strcmp(perms, "rw-s"), "file_shared_prot", "perms %s", perms);
	close(fd);
}

/* ---- fill: lots of non-zero memory, fast to write and check ---- */
static uint64_t *fill_area;
static size_t fill_words;

static inline uint64_t fill_word(size_t i)
{
	return (i + 1) * 0x9E3779B97F4A7C15ull | 1;
}

static void fill_setup(const char *mib_arg)
{
	size_t len = (size_t)strtoull(mib_arg, NULL, 10) * MIB;

	fill_area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fill_area == MAP_FAILED)
		exit(3);
	fill_words = len / 8;
	for (size_t i = 0; i < fill_words; i++)
		fill_area[i] = fill_word(i);
}

static void fill_verify(void)
{
	size_t bad = (size_t)-1;

	for (size_t i = 0; i < fill_words; i++)
		if (fill_area[i] != fill_word(i)) {
			bad = i;
			break;
		}
	check(bad == (size_t)-1, "fill", "word %zu of %zu differs", bad, fill_words);
}

int main(int argc, char **argv)
{
	const char *mode;
	int all;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "all";
	all = !strcmp(mode, "all");
#define IS(m) (all || !strcmp(mode, m))
	if (!strcmp(mode, "stack")) {
		stack_run();
		done_and_idle();
	}
	if (!strcmp(mode, "fill")) {
		fill_setup(argc > 3 ? argv[3] : "64");
		report("INFO fill %#lx %zu", (unsigned long)(uintptr_t)fill_area, fill_words * 8);
		report_ready();
		wait_for_go();
		fill_verify();
		done_and_idle();
	}
	if (IS("heap"))
		heap_setup();
	if (IS("bss"))
		bss_setup();
	if (IS("anon_holes"))
		anon_setup();
	if (IS("guard"))
		guard_setup();
	if (IS("file_private"))
		fprivate_setup();
	if (IS("file_shared"))
		fshared_setup();
	report_ready();
	wait_for_go();
	if (IS("heap"))
		heap_verify();
	if (IS("bss"))
		bss_verify();
	if (IS("anon_holes"))
		anon_verify();
	if (IS("guard"))
		guard_verify();
	if (IS("file_private"))
		fprivate_verify();
	if (IS("file_shared"))
		fshared_verify();
	done_and_idle();
}
