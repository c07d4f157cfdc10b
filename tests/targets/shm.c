/*
 * Shared memory (issue 9): MAP_SHARED|MAP_ANONYMOUS memory shared over fork, or left by sharers
 * that exited.
 *
 *   shm REPORT counter     P and two children C1, C2 add to one counter in shared anonymous
 *                          memory under a process-shared robust mutex, each also counting its
 *                          own updates. After the go file each process checks that the counter
 *                          is the sum of all updates (none lost: one object), that it goes on,
 *                          that its own count survived, and that it sees a mark each of the
 *                          others writes after the restore. Children report through the shared
 *                          memory; P reports DONE with everyone's fails.
 *   shm REPORT big MIB     P maps MIB MiB shared, fills it with a pattern and forks C, which
 *                          checks it too: two processes, one object, stored once. After the go
 *                          file C writes a byte that P must see.
 *   shm REPORT orphan      P maps 4 pages shared; a child fills them and exits (reaped); P
 *                          unmaps the first page, so the object is bigger than any mapping and
 *                          P's VMA starts at offset 4096. P checks the three pages it maps, and
 *                          that a fresh MAP_SHARED mapping still works.
 *   shm REPORT sysv        System V shared memory: a segment with a key (3 pages + 100 bytes,
 *                          mode 0640) attached twice, the second attachment's middle page made
 *                          read-only (three VMAs); a private segment filled, attached read-write
 *                          with its first page unmapped and read-only, then marked for removal.
 *                          P forks C, which inherits them all. After the go file C writes to
 *                          both; P checks the ids, keys, sizes, modes, SHM_DEST, the attach
 *                          count, the contents, the protections, C's writes, and that a new
 *                          shmat sees the same memory; then P removes the keyed segment.
 *   shm REPORT memfd       P makes a memfd "psnc-buf" of 3 pages holding a pattern, maps it
 *                          shared, seals it F_SEAL_GROW|F_SEAL_SHRINK, closes the fd and forks
 *                          C. After the go file C writes a byte P must see; P checks the
 *                          pattern, and through /proc/self/map_files (root) the seals and that
 *                          growing and shrinking still fail with EPERM while a write works.
 */
#include "target.h"

#include <pthread.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define NPROC 3

struct shared {
	pthread_mutex_t lock;
	uint64_t counter;
	uint64_t per[NPROC];
	uint32_t mark[NPROC];
	uint32_t done[NPROC];
	int32_t fails[NPROC];
	uint32_t go;
};

static struct shared *sh;
static const char *names[NPROC] = { "P", "C1", "C2" };
/* Private: what this process counted before the go file (restored from its own memory). */
static uint64_t mine;

static void add_one(int me)
{
	int r = pthread_mutex_lock(&sh->lock);

	if (r == EOWNERDEAD)
		pthread_mutex_consistent(&sh->lock);
	sh->counter++;
	sh->per[me]++;
	mine++;
	pthread_mutex_unlock(&sh->lock);
}

static void counter_checks(int me)
{
	char what[64];
	uint64_t c0, c1, sum;
	double t0;
	int seen;

	/* Each process also watches the go file, so the first one to see it tells the others. */
	while (!sh->go && !go_requested()) {
		add_one(me);
		nap_ms(2);
	}
	sh->go = 1;
	pthread_mutex_lock(&sh->lock);
	c0 = sh->counter;
	sum = sh->per[0] + sh->per[1] + sh->per[2];
	snprintf(what, sizeof(what), "%s:counter_is_sum", names[me]);
	check(c0 == sum, what, "counter %llu, updates %llu", (unsigned long long)c0,
	      (unsigned long long)sum);
	snprintf(what, sizeof(what), "%s:own_count", names[me]);
	check(sh->per[me] == mine, what, "shared %llu, private %llu",
	      (unsigned long long)sh->per[me], (unsigned long long)mine);
	pthread_mutex_unlock(&sh->lock);
	snprintf(what, sizeof(what), "%s:counted_before", names[me]);
	check(mine > 0, what, "no update before the go file");

	/* The counter goes on: the others keep adding (and so does this process). */
	t0 = mono_now();
	do {
		add_one(me);
		nap_ms(2);
		c1 = sh->counter;
	} while (c1 < c0 + 3 * NPROC && mono_now() - t0 < 10);
	snprintf(what, sizeof(what), "%s:counter_goes_on", names[me]);
	check(c1 >= c0 + 3 * NPROC, what, "%llu then %llu", (unsigned long long)c0,
	      (unsigned long long)c1);

	/* Every process sees a write of every other one made after the restore. */
	__atomic_store_n(&sh->mark[me], 0x5a000000u | (uint32_t)getpid(), __ATOMIC_SEQ_CST);
	t0 = mono_now();
	do {
		seen = 0;
		for (int i = 0; i < NPROC; i++)
			seen += __atomic_load_n(&sh->mark[i], __ATOMIC_SEQ_CST) >> 24 == 0x5a;
		if (seen == NPROC)
			break;
		nap_ms(2);
	} while (mono_now() - t0 < 10);
	snprintf(what, sizeof(what), "%s:sees_the_others", names[me]);
	check(seen == NPROC, what, "%d of %d marks seen", seen, NPROC);
}

static int mode_counter(void)
{
	pthread_mutexattr_t a;
	pid_t kids[2];

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 3;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&sh->lock, &a);
	for (int i = 1; i < NPROC; i++) {
		kids[i - 1] = fork();
		if (kids[i - 1] < 0)
			return 4;
		if (kids[i - 1] == 0) {
			counter_checks(i);
			sh->fails[i] = fail_count;
			__atomic_store_n(&sh->done[i], 1, __ATOMIC_SEQ_CST);
			for (;;)
				nap_ms(1000);
		}
	}
	/* Every process has counted before READY: the capture sees a running counter. */
	while (sh->per[1] == 0 || sh->per[2] == 0)
		add_one(0), nap_ms(2);
	report("KIDS %d %d", (int)kids[0], (int)kids[1]);
	report_ready();
	counter_checks(0);
	for (double t0 = mono_now(); mono_now() - t0 < 20;) {
		if (sh->done[1] && sh->done[2])
			break;
		nap_ms(5);
	}
	check(sh->done[1] && sh->done[2], "P:children_done", "C1 %u C2 %u", sh->done[1],
	      sh->done[2]);
	fail_count += sh->fails[1] + sh->fails[2];
	done_and_idle();
}

static int mode_big(long mib)
{
	size_t len = (size_t)mib << 20;
	volatile uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				   -1, 0);
	struct shared *flags;
	pid_t kid;
	long bad;

	flags = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || flags == MAP_FAILED)
		return 3;
	fill_pattern((void *)p, len, 42);
	kid = fork();
	if (kid < 0)
		return 4;
	if (kid == 0) {
		while (!go_requested())
			nap_ms(10);
		bad = check_pattern((const void *)p, len, 42);
		flags->fails[1] = bad >= 0;
		flags->counter = (uint64_t)bad;
		p[len - 1] = 0xa5;
		__atomic_store_n(&flags->done[1], 1, __ATOMIC_SEQ_CST);
		for (;;)
			nap_ms(1000);
	}
	report("KIDS %d", (int)kid);
	report_ready();
	wait_for_go();
	bad = check_pattern((const void *)p, len - 1, 42);
	check(bad < 0, "P:pattern", "first mismatch at %ld", bad);
	for (double t0 = mono_now(); mono_now() - t0 < 20 && !flags->done[1];)
		nap_ms(5);
	check(flags->done[1] && !flags->fails[1], "C:pattern", "done %u, first mismatch at %lld",
	      flags->done[1], (long long)flags->counter);
	check(p[len - 1] == 0xa5, "P:sees_child_write", "last byte %#x", p[len - 1]);
	done_and_idle();
}

static int mode_orphan(void)
{
	uint8_t *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
			  0);
	uint8_t *q, want;
	pid_t kid;
	int st;
	long bad;

	if (p == MAP_FAILED)
		return 3;
	kid = fork();
	if (kid < 0)
		return 4;
	if (kid == 0) {
		fill_pattern(p, 4 * 4096, 7);
		_exit(0);
	}
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st))
		return 5;
	munmap(p, 4096);
	p += 4096;
	report("MAPPED %p", (void *)p);
	report_ready();
	wait_for_go();
	bad = -1;
	for (size_t i = 0; i < 3 * 4096; i++)
		if (p[i] != pattern_byte(7, i + 4096)) {
			bad = (long)i;
			break;
		}
	check(bad < 0, "orphan:contents", "first mismatch at offset %ld", bad);
	want = (uint8_t)~pattern_byte(7, 4096);
	p[0] = want;
	check(p[0] == want, "orphan:writable", "%#x", p[0]);
	q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	check(q != MAP_FAILED && q[0] == 0, "orphan:new_mapping", "mmap %p", (void *)q);
	done_and_idle();
}

static int mode_memfd(void)
{
	size_t len = 3 * 4096;
	int fd = memfd_create("psnc-buf", MFD_ALLOW_SEALING);
	volatile uint8_t *p;
	char path[128];
	pid_t kid;
	long bad;
	int seals, r1, e1, r2, e2;

	if (fd < 0 || ftruncate(fd, (off_t)len))
		return 3;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 3;
	fill_pattern((void *)p, len, 99);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK))
		return 4;
	close(fd);
	kid = fork();
	if (kid < 0)
		return 4;
	if (kid == 0) {
		wait_for_go();
		p[len - 1] = 0xa5;
		for (;;)
			nap_ms(1000);
	}
	report("KIDS %d", (int)kid);
	report_ready();
	wait_for_go();
	bad = check_pattern((const void *)p, len - 1, 99);
	check(bad < 0, "memfd:pattern", "first mismatch at %ld", bad);
	for (double t0 = mono_now(); mono_now() - t0 < 20 && p[len - 1] != 0xa5;)
		nap_ms(5);
	check(p[len - 1] == 0xa5, "memfd:sees_child_write", "last byte %#x", p[len - 1]);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + len);
	fd = open(path, O_RDWR);
	check(fd >= 0, "memfd:reopen", "%s: %s", path, strerror(errno));
	seals = fcntl(fd, F_GET_SEALS);
	check(seals == (F_SEAL_GROW | F_SEAL_SHRINK), "memfd:seals", "%#x", seals);
	r1 = ftruncate(fd, (off_t)len * 2), e1 = errno;
	r2 = ftruncate(fd, 4096), e2 = errno;
	check(r1 < 0 && e1 == EPERM && r2 < 0 && e2 == EPERM, "memfd:seals_enforced",
	      "grow %d (%s), shrink %d (%s)", r1, strerror(e1), r2, strerror(e2));
	check(pwrite(fd, "w", 1, 5) == 1 && p[5] == 'w', "memfd:write", "%#x", p[5]);
	done_and_idle();
}

/* The protection maps shows for the VMA starting at `p`, e.g. "rw-s"; "" when none starts there. */
static const char *perms_at(const void *p)
{
	static char perms[8];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long start, end;

	perms[0] = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3 && start == (unsigned long)p)
			break;
		else
			perms[0] = 0;
	if (f)
		fclose(f);
	return perms;
}

static int mode_sysv(void)
{
	const size_t size = 3 * 4096 + 100, psize = 4 * 4096;
	key_t key = (key_t)(0x70730000 | (getpid() & 0xffff));
	volatile uint8_t *a, *b, *part, *ro, *c;
	struct shmid_ds ds, pds;
	int id, priv, nattch, pnattch;
	pid_t kid;
	long bad;

	id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0640);
	priv = shmget(IPC_PRIVATE, psize, IPC_CREAT | 0600);
	if (id < 0 || priv < 0)
		return 3;
	a = shmat(id, NULL, 0);
	b = shmat(id, NULL, 0);
	part = shmat(priv, NULL, 0);
	ro = shmat(priv, NULL, SHM_RDONLY);
	if (a == (void *)-1 || b == (void *)-1 || part == (void *)-1 || ro == (void *)-1)
		return 4;
	fill_pattern((void *)a, size, 21);
	fill_pattern((void *)part, psize, 22);
	if (mprotect((void *)(b + 4096), 4096, PROT_READ) || munmap((void *)part, 4096))
		return 5;
	part += 4096;
	if (shmctl(priv, IPC_RMID, NULL))
		return 6;
	kid = fork();
	if (kid < 0)
		return 7;
	if (kid == 0) {
		wait_for_go();
		a[size - 1] = 0xa5;
		part[0] = 0x5a;
		for (;;)
			nap_ms(1000);
	}
	if (shmctl(id, IPC_STAT, &ds) || shmctl(priv, IPC_STAT, &pds))
		return 8;
	nattch = (int)ds.shm_nattch;
	pnattch = (int)pds.shm_nattch;
	report("KIDS %d", (int)kid);
	report("SYSV %d %d %d nattch %d %d", (int)key, id, priv, nattch, pnattch);
	report_ready();
	wait_for_go();

	check(shmget(key, 0, 0) == id, "sysv:same_id_by_key", "shmget(%#x) %d, was %d", (unsigned)key,
	      shmget(key, 0, 0), id);
	memset(&ds, 0, sizeof(ds));
	check(shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_segsz == size &&
		      (ds.shm_perm.mode & 0777) == 0640 && !(ds.shm_perm.mode & SHM_DEST) &&
		      ds.shm_perm.__key == key,
	      "sysv:keyed_stat", "size %zu mode %#o key %#x: %s", (size_t)ds.shm_segsz,
	      (unsigned)ds.shm_perm.mode, (unsigned)ds.shm_perm.__key, strerror(errno));
	check((int)ds.shm_nattch == nattch, "sysv:keyed_nattch", "%d, was %d", (int)ds.shm_nattch,
	      nattch);
	memset(&pds, 0, sizeof(pds));
	check(shmctl(priv, IPC_STAT, &pds) == 0 && pds.shm_segsz == psize &&
		      (pds.shm_perm.mode & 0777) == 0600 && (pds.shm_perm.mode & SHM_DEST) &&
		      pds.shm_perm.__key == IPC_PRIVATE,
	      "sysv:removed_stat", "size %zu mode %#o key %#x: %s", (size_t)pds.shm_segsz,
	      (unsigned)pds.shm_perm.mode, (unsigned)pds.shm_perm.__key, strerror(errno));
	check((int)pds.shm_nattch == pnattch, "sysv:removed_nattch", "%d, was %d",
	      (int)pds.shm_nattch, pnattch);
	bad = check_pattern((const void *)a, size - 1, 21);
	check(bad < 0, "sysv:contents", "first mismatch at %ld", bad);
	bad = check_pattern((const void *)b, size - 1, 21);
	check(bad < 0, "sysv:second_attachment", "first mismatch at %ld", bad);
	bad = -1;
	for (size_t i = 1; i < psize - 4096; i++)
		if (part[i] != pattern_byte(22, i + 4096) || ro[i + 4096] != part[i]) {
			bad = (long)i;
			break;
		}
	check(bad < 0, "sysv:removed_contents", "first mismatch at %ld", bad);
	check(!strcmp(perms_at((void *)a), "rw-s") && !strcmp(perms_at((void *)b), "rw-s") &&
		      !strcmp(perms_at((void *)(b + 4096)), "r--s") &&
		      !strcmp(perms_at((void *)(b + 8192)), "rw-s") &&
		      !strcmp(perms_at((void *)part), "rw-s") && !strcmp(perms_at((void *)ro), "r--s"),
	      "sysv:protections", "a %s, b %s", perms_at((void *)a), perms_at((void *)(b + 4096)));
	for (double t0 = mono_now(); mono_now() - t0 < 20 && (b[size - 1] != 0xa5 || ro[4096] != 0x5a);)
		nap_ms(5);
	check(b[size - 1] == 0xa5 && ro[4096] == 0x5a, "sysv:sees_child_writes", "%#x %#x",
	      b[size - 1], ro[4096]);
	c = shmat(id, NULL, 0);
	check(c != (void *)-1 && c[7] == a[7] && (c[8] = 0x42, a[8] == 0x42), "sysv:new_attach",
	      "shmat: %s", c == (void *)-1 ? strerror(errno) : "contents differ");
	check(shmctl(id, IPC_RMID, NULL) == 0, "sysv:remove", "%s", strerror(errno));
	done_and_idle();
}

int main(int argc, char **argv)
{
	const char *mode;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "counter";
	if (!strcmp(mode, "counter"))
		return mode_counter();
	if (!strcmp(mode, "big"))
		return mode_big(argc > 3 ? atol(argv[3]) : 8);
	if (!strcmp(mode, "orphan"))
		return mode_orphan();
	if (!strcmp(mode, "memfd"))
		return mode_memfd();
	if (!strcmp(mode, "sysv"))
		return mode_sysv();
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
