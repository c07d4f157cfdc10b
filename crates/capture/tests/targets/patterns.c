/* Capture-side test target: memory patterns in known places, and a counter that keeps checking
 * them, so a test can see both what the image holds and that the live process was not disturbed.
 *
 * usage: patterns DATAFILE [BIG_MIB]
 * Prints the addresses of its regions, "ready", then "count N ok|BAD" every 10 ms. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define BIG_PAGES 256

static unsigned char bss_buf[3 * PAGE] __attribute__((aligned(PAGE)));

/* The pattern the tests recompute: byte i of a region with seed s. */
static unsigned char pat(unsigned seed, size_t i) { return (unsigned char)(seed + i * 7 + i / PAGE); }

static void fill(unsigned char *p, size_t len, unsigned seed) {
	for (size_t i = 0; i < len; i++)
		p[i] = pat(seed, i);
}

static int check(const unsigned char *p, size_t len, unsigned seed) {
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(seed, i))
			return 0;
	return 1;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: patterns DATAFILE [BIG_MIB]\n");
		return 2;
	}
	size_t heap_len = 64 * PAGE;
	unsigned char *heap = aligned_alloc(PAGE, heap_len);
	fill(heap, heap_len, 0x11);

	/* 256 pages, only every 4th touched: the others are holes that must not be stored. */
	unsigned char *big = mmap(NULL, BIG_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < BIG_PAGES; i += 4)
		fill(big + (size_t)i * PAGE, PAGE, 0x20 + i);

	/* A guard region holding data, then made PROT_NONE: readable only through /proc/PID/mem. */
	unsigned char *guard = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(guard, PAGE, 0x5a);
	mprotect(guard, 2 * PAGE, PROT_NONE);

	/* A private file mapping: pages 0..3 read (present, file-backed), page 2 dirtied (COW). */
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	unsigned char *fmap = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	volatile unsigned sum = 0;
	for (int i = 0; i < 4; i++)
		sum += fmap[i * PAGE];
	fill(fmap + 2 * PAGE, PAGE, 0xc3);

	fill(bss_buf, sizeof bss_buf, 0x77);

	/* Optional bulk memory, for tests that need a capture that takes a while. */
	size_t bulk_len = argc > 2 ? (size_t)atol(argv[2]) << 20 : 0;
	unsigned char *bulk = NULL;
	if (bulk_len) {
		bulk = mmap(NULL, bulk_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (size_t i = 0; i < bulk_len; i += PAGE)
			memset(bulk + i, (int)(i / PAGE) | 1, PAGE);
	}

	printf("heap %p\nbig %p\nguard %p\nfmap %p\nbss %p\nready\n", (void *)heap, (void *)big, (void *)guard,
	       (void *)fmap, (void *)bss_buf);
	fflush(stdout);

	for (unsigned long n = 1;; n++) {
		int ok = check(heap, heap_len, 0x11) && check(fmap + 2 * PAGE, PAGE, 0xc3) &&
			 check(bss_buf, sizeof bss_buf, 0x77);
		for (int i = 0; i < BIG_PAGES; i += 4)
			ok = ok && check(big + (size_t)i * PAGE, PAGE, 0x20 + i);
		printf("count %lu %s\n", n, ok ? "ok" : "BAD");
		fflush(stdout);
		usleep(10000);
	}
}
