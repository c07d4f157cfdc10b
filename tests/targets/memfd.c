/*
 * Memfd fds (issue 9): open memfds, mapped or not, each with its own offset and flags.
 *
 *   memfd REPORT mapped    A memfd "psnc-fdbuf" of 2 pages + 100 bytes written through the fd,
 *                          mapped shared (3 pages), sealed F_SEAL_SEAL|F_SEAL_GROW, the fd kept
 *                          open O_RDWR at offset 1234, and a second description of it (reopened
 *                          through /proc/self/fd, O_RDONLY, close-on-exec) at offset 77. After
 *                          the go file it checks the size, both offsets and access modes, the
 *                          seals (still enforced), the contents through the mapping, that a
 *                          pwrite through the fd is seen through the mapping, and that fd,
 *                          second fd and mapping are one file.
 *   memfd REPORT unmapped  A memfd "psnc-only" (created without MFD_ALLOW_SEALING, so sealed
 *                          F_SEAL_SEAL) holding 5000 bytes of pattern, truncated up to 20000
 *                          bytes (a sparse tail), never mapped, at offset 4321. It checks size,
 *                          offset, seals, contents, the zero tail, and a write and read back.
 *   memfd REPORT forked    R creates a memfd "psnc-forked" (1 page of pattern, sealed
 *                          F_SEAL_SHRINK|F_SEAL_GROW), maps it shared, sets the offset to 100 and
 *                          forks C, which inherits the fd (one description) and the mapping.
 *                          After the go file C writes "kid" through the mapping and "cw" through
 *                          the fd, then reports KID; R checks that the shared offset moved to 102,
 *                          that it sees C's bytes through its mapping and its fd, that C's fd is
 *                          the same file as its own (/proc/C/fd), and the seals. C dies with R
 *                          (PR_SET_PDEATHSIG); its lines are prefixed "C:", R's "forked:".
 */
#include "target.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif

#define MAPPED_SIZE (2 * 4096 + 100)

static int mode_mapped(void)
{
	int fd = memfd_create("psnc-fdbuf", MFD_ALLOW_SEALING);
	static uint8_t buf[MAPPED_SIZE];
	char path[64], link[128];
	volatile uint8_t *p;
	struct stat s1, s2, s3;
	long bad;
	int fd2, seals, r, e, ok;
	ssize_t n;

	if (fd < 0)
		return 3;
	fill_pattern(buf, sizeof(buf), 41);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return 3;
	p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 3;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_GROW))
		return 4;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fd2 = open(path, O_RDONLY | O_CLOEXEC);
	if (fd2 < 0 || lseek(fd, 1234, SEEK_SET) != 1234 || lseek(fd2, 77, SEEK_SET) != 77)
		return 4;
	report("FDS %d %d", fd, fd2);
	report_ready();
	wait_for_go();

	ok = fstat(fd, &s1) == 0;
	check(ok && s1.st_size == MAPPED_SIZE, "mapped:size", "%lld", ok ? (long long)s1.st_size : -1LL);
	check(lseek(fd, 0, SEEK_CUR) == 1234, "mapped:offset", "%lld",
	      (long long)lseek(fd, 0, SEEK_CUR));
	check(lseek(fd2, 0, SEEK_CUR) == 77, "mapped:second_offset", "%lld",
	      (long long)lseek(fd2, 0, SEEK_CUR));
	check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "mapped:rdwr", "%#x", fcntl(fd, F_GETFL));
	check((fcntl(fd2, F_GETFL) & O_ACCMODE) == O_RDONLY && fcntl(fd2, F_GETFD) == FD_CLOEXEC &&
		      fcntl(fd, F_GETFD) == 0,
	      "mapped:second_rdonly_cloexec", "fl %#x fd %d/%d", fcntl(fd2, F_GETFL),
	      fcntl(fd2, F_GETFD), fcntl(fd, F_GETFD));
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	check(!strcmp(link, "/memfd:psnc-fdbuf (deleted)"), "mapped:name", "%s", link);
	seals = fcntl(fd, F_GET_SEALS);
	check(seals == (F_SEAL_SEAL | F_SEAL_GROW), "mapped:seals", "%#x", seals);
	r = ftruncate(fd, 4 * 4096), e = errno;
	check(r < 0 && e == EPERM, "mapped:grow_refused", "%d (%s)", r, strerror(e));
	r = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), e = errno;
	check(r < 0 && e == EPERM, "mapped:sealed_seals", "%d (%s)", r, strerror(e));
	bad = check_pattern((const void *)p, MAPPED_SIZE, 41);
	check(bad < 0 && p[MAPPED_SIZE] == 0, "mapped:contents", "first mismatch at %ld", bad);
	check(pwrite(fd, "psnc", 4, 10) == 4 && !memcmp((const void *)(p + 10), "psnc", 4),
	      "mapped:pwrite_seen_in_mapping", "%.4s", (const char *)(p + 10));
	p[20] = 'Z';
	check(pread(fd2, buf, 1, 20) == 1 && buf[0] == 'Z', "mapped:mapping_seen_by_fd", "%#x", buf[0]);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + 3 * 4096);
	ok = fstat(fd2, &s2) == 0 && stat(path, &s3) == 0;
	check(ok && s1.st_ino == s2.st_ino && s1.st_ino == s3.st_ino && s1.st_dev == s3.st_dev,
	      "mapped:one_file", "inodes %lu %lu %lu", (unsigned long)s1.st_ino,
	      (unsigned long)s2.st_ino, (unsigned long)s3.st_ino);
	done_and_idle();
	return 0;
}

static int mode_unmapped(void)
{
	int fd = memfd_create("psnc-only", 0);
	static uint8_t buf[20000];
	struct stat st;
	long bad;
	int seals, ok, i, zeros = 1;

	if (fd < 0)
		return 3;
	fill_pattern(buf, 5000, 17);
	if (write(fd, buf, 5000) != 5000 || ftruncate(fd, 20000) || lseek(fd, 4321, SEEK_SET) != 4321)
		return 3;
	report("FDS %d", fd);
	report_ready();
	wait_for_go();

	ok = fstat(fd, &st) == 0;
	check(ok && st.st_size == 20000, "unmapped:size", "%lld", ok ? (long long)st.st_size : -1LL);
	check(lseek(fd, 0, SEEK_CUR) == 4321, "unmapped:offset", "%lld",
	      (long long)lseek(fd, 0, SEEK_CUR));
	seals = fcntl(fd, F_GET_SEALS);
	check(seals == F_SEAL_SEAL, "unmapped:seals", "%#x", seals);
	memset(buf, 0xee, sizeof(buf));
	ok = pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf);
	bad = check_pattern(buf, 5000, 17);
	for (i = 5000; i < 20000; i++)
		zeros &= buf[i] == 0;
	check(ok && bad < 0, "unmapped:contents", "read %d, first mismatch at %ld", ok, bad);
	check(ok && zeros, "unmapped:zero_tail", "nonzero byte after 5000");
	check(write(fd, "after", 5) == 5 && pread(fd, buf, 5, 4321) == 5 && !memcmp(buf, "after", 5),
	      "unmapped:write", "%.5s", (const char *)buf);
	done_and_idle();
	return 0;
}

static int mode_forked(void)
{
	int fd = memfd_create("psnc-forked", MFD_ALLOW_SEALING);
	static uint8_t buf[4096];
	char path[64], got[8];
	volatile uint8_t *p;
	struct stat mine, kids;
	pid_t kid;
	long bad;
	int seals, ok;

	if (fd < 0)
		return 3;
	fill_pattern(buf, sizeof(buf), 23);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return 3;
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) ||
	    lseek(fd, 100, SEEK_SET) != 100)
		return 4;
	kid = fork();
	if (kid < 0)
		return 5;
	if (kid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		report("UP C %d", (int)getpid());
		wait_for_go();
		memcpy((void *)p, "kid", 3);
		check(write(fd, "cw", 2) == 2, "C:write", "%s", strerror(errno));
		report("KID C fails=%d", fail_count);
		for (;;)
			nap_ms(1000);
	}
	while (report_count("UP C") < 1)
		nap_ms(5);
	report("FDS %d", fd);
	report_ready();
	wait_for_go();
	for (int i = 0; i < 1000 && report_count("KID ") < 1; i++)
		nap_ms(10);
	check(report_count("KID ") == 1, "forked:child_reported", "%d of 1", report_count("KID "));
	check(lseek(fd, 0, SEEK_CUR) == 102, "forked:offset_shared", "at %lld, want 102",
	      (long long)lseek(fd, 0, SEEK_CUR));
	check(!memcmp((const void *)p, "kid", 3), "forked:mapping_shared", "%.3s",
	      (const char *)p);
	memset(got, 0, sizeof(got));
	check(pread(fd, got, 3, 0) == 3 && !strcmp(got, "kid") && pread(fd, got, 2, 100) == 2 &&
		      !memcmp(got, "cw", 2),
	      "forked:fd_sees_child", "%.3s", got);
	fill_pattern(buf, sizeof(buf), 23);
	memcpy(buf, "kid", 3);
	memcpy(buf + 100, "cw", 2);
	bad = -1;
	for (long i = 0; i < 4096 && bad < 0; i++)
		if (p[i] != buf[i])
			bad = i;
	check(bad < 0, "forked:contents", "first mismatch at %ld", bad);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)kid, fd);
	ok = fstat(fd, &mine) == 0 && stat(path, &kids) == 0;
	check(ok && mine.st_ino == kids.st_ino && mine.st_dev == kids.st_dev, "forked:one_file",
	      "inodes %lu %lu", (unsigned long)mine.st_ino, ok ? (unsigned long)kids.st_ino : 0UL);
	seals = fcntl(fd, F_GET_SEALS);
	check(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "forked:seals", "%#x", seals);
	done_and_idle();
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "mapped";
	if (!strcmp(mode, "mapped"))
		return mode_mapped();
	if (!strcmp(mode, "unmapped"))
		return mode_unmapped();
	if (!strcmp(mode, "forked"))
		return mode_forked();
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
