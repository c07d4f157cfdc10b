/*
 * aio: native AIO contexts (io_setup, raw syscalls, no libaio) across a checkpoint (issue 9).
 * fd 10 is DIR/data (the report's directory), 64 KiB whose byte i is (i * 7 + i / 4096) & 0xff.
 *   idle     one context (io_setup(8)) with no events; after the go file: the ring is at the
 *            same id with a sane header, a pread of 4096 bytes at 8192 through it completes with
 *            the file's bytes, io_destroy works (and a second one fails with EINVAL)
 *   pending  one context whose ring has wrapped: nr - 27 reads submitted and reaped, then 30
 *            more submitted and 25 reaped, so head is near the end, tail near the start and 5
 *            completed events wait; after the go file the ring still says so, io_getevents
 *            returns those 5 (data 26..30, res 512, their buffers hold the file's bytes), then
 *            a new read works, then nothing is left
 *   two      the pending context of above and an idle io_setup(1000) one (a 16-page ring);
 *            both checked
 *   badring  one context whose ring head the program overwrites with nr + 5 (a ring the
 *            kernel never produces): capture must refuse it and leave the ring as it was
 *   inflight one context with a request in flight: an IOCB_CMD_POLL for POLLIN on an inotify
 *            instance (fd 11) watching DIR/data for IN_OPEN. The capture itself completes it: it
 *            opens fd 10 to read its file, after it has read the ring and before it reads the
 *            ring again, so it must refuse; after the go file the poll's event is there
 */
#include "target.h"
#include <linux/aio_abi.h>
#include <poll.h>
#include <sys/inotify.h>

#define FILE_SIZE (64 * 1024)
#define SMALL 512

static int data_fd = 10;
static unsigned char bufs[40][SMALL];
static unsigned char big[4096];

static unsigned char file_byte(long i)
{
	return (unsigned char)((i * 7 + i / 4096) & 0xff);
}

static long io_setup(unsigned n, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, n, ctx);
}

static long io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
	return syscall(SYS_io_submit, ctx, n, iocbs);
}

static long io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev, int secs)
{
	struct timespec ts = { secs, 0 };

	return syscall(SYS_io_getevents, ctx, min, max, ev, &ts);
}

static long io_destroy(aio_context_t ctx)
{
	return syscall(SYS_io_destroy, ctx);
}

/* The ring header of fs/aio.c. */
struct aio_ring {
	unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length;
};

static struct aio_ring *ring_of(aio_context_t ctx)
{
	return (struct aio_ring *)(uintptr_t)ctx;
}

static void make_file(const char *dir)
{
	static unsigned char b[FILE_SIZE];
	char path[4200];
	int fd;

	for (long i = 0; i < FILE_SIZE; i++)
		b[i] = file_byte(i);
	snprintf(path, sizeof(path), "%s/data", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
		exit(3);
	if (fd != data_fd) {
		if (dup2(fd, data_fd) < 0)
			exit(3);
		close(fd);
	}
}

/* Submits reads of SMALL bytes with data first..first+n-1 into bufs[data % 40] at offset
 * data * 1000; returns 0 when every one was accepted. */
static int submit_small(aio_context_t ctx, unsigned first, unsigned n)
{
	static struct iocb cbs[64];
	struct iocb *ptrs[64];

	for (unsigned i = 0; i < n; i++) {
		unsigned d = first + i;

		memset(&cbs[i], 0, sizeof(cbs[i]));
		cbs[i].aio_data = d;
		cbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
		cbs[i].aio_fildes = (unsigned)data_fd;
		cbs[i].aio_buf = (uint64_t)(uintptr_t)bufs[d % 40];
		cbs[i].aio_nbytes = SMALL;
		cbs[i].aio_offset = (int64_t)d * 1000;
		ptrs[i] = &cbs[i];
	}
	return io_submit(ctx, n, ptrs) == (long)n ? 0 : -1;
}

static int reap(aio_context_t ctx, long n)
{
	struct io_event ev[64];

	return io_getevents(ctx, n, n, ev, 5) == n ? 0 : -1;
}

static int buf_ok(unsigned d)
{
	for (long i = 0; i < SMALL; i++)
		if (bufs[d % 40][i] != file_byte((long)d * 1000 + i))
			return 0;
	return 1;
}

/* A wrapped ring with 5 completed events (data 26..30) waiting. */
static aio_context_t setup_pending(void)
{
	aio_context_t ctx = 0;
	unsigned nr, done = 0;

	if (io_setup(8, &ctx) != 0)
		exit(4);
	nr = ring_of(ctx)->nr;
	/* Move head and tail to nr - 27 in batches that never fill the ring. */
	while (done < nr - 27) {
		unsigned n = nr - 27 - done > 40 ? 40 : nr - 27 - done;

		if (submit_small(ctx, 100, n) || reap(ctx, n))
			exit(5);
		done += n;
	}
	if (submit_small(ctx, 1, 30) || reap(ctx, 25))
		exit(6);
	return ctx;
}

static void check_ring(const char *what, aio_context_t ctx, unsigned nr, unsigned head, unsigned tail)
{
	struct aio_ring *r = ring_of(ctx);

	check(r->magic == 0xa10a10a1 && r->compat_features == 1 && r->incompat_features == 0 &&
		      r->header_length == 32 && r->nr == nr && r->head == head && r->tail == tail,
	      what, "magic %#x features %u/%u header %u nr %u head %u tail %u (want nr %u head %u tail %u)",
	      r->magic, r->compat_features, r->incompat_features, r->header_length, r->nr, r->head,
	      r->tail, nr, head, tail);
}

/* A new read of 4096 bytes at 8192 through ctx, then io_destroy. */
static void check_new_read_and_destroy(const char *p, aio_context_t ctx)
{
	struct iocb cb, *ptr = &cb;
	struct io_event ev;
	char what[64];
	long r;
	int ok = 1;

	memset(&cb, 0, sizeof(cb));
	memset(big, 0, sizeof(big));
	cb.aio_data = 0xfeed;
	cb.aio_lio_opcode = IOCB_CMD_PREAD;
	cb.aio_fildes = (unsigned)data_fd;
	cb.aio_buf = (uint64_t)(uintptr_t)big;
	cb.aio_nbytes = sizeof(big);
	cb.aio_offset = 8192;
	r = io_submit(ctx, 1, &ptr);
	snprintf(what, sizeof(what), "%s_submit", p);
	check(r == 1, what, "io_submit returned %ld (errno %d)", r, errno);
	r = io_getevents(ctx, 1, 1, &ev, 5);
	for (long i = 0; i < (long)sizeof(big); i++)
		ok &= big[i] == file_byte(8192 + i);
	snprintf(what, sizeof(what), "%s_new_read", p);
	check(r == 1 && ev.data == 0xfeed && ev.obj == (uint64_t)(uintptr_t)&cb && ev.res == 4096 && ok,
	      what, "io_getevents %ld: data %#llx res %lld, bytes %s", r, (unsigned long long)ev.data,
	      (long long)ev.res, ok ? "right" : "wrong");
	r = io_getevents(ctx, 0, 1, &ev, 0);
	snprintf(what, sizeof(what), "%s_nothing_left", p);
	check(r == 0, what, "io_getevents returned %ld more", r);
	r = io_destroy(ctx);
	snprintf(what, sizeof(what), "%s_destroy", p);
	check(r == 0, what, "io_destroy returned %ld (errno %d)", r, errno);
	r = io_destroy(ctx);
	snprintf(what, sizeof(what), "%s_destroyed", p);
	check(r == -1 && errno == EINVAL, what, "a second io_destroy returned %ld (errno %d)", r, errno);
}

static void check_pending(const char *p, aio_context_t ctx, unsigned nr)
{
	struct io_event ev[8];
	char what[64];
	long r;
	int ok;

	snprintf(what, sizeof(what), "%s_ring", p);
	check_ring(what, ctx, nr, nr - 2, 3);
	r = io_getevents(ctx, 5, 8, ev, 5);
	ok = r == 5;
	for (long i = 0; ok && i < 5; i++)
		ok = ev[i].data == (uint64_t)(26 + i) && ev[i].res == SMALL && buf_ok(26 + (unsigned)i);
	snprintf(what, sizeof(what), "%s_completed_events", p);
	check(ok, what, "io_getevents returned %ld, first data %llu res %lld", r,
	      r > 0 ? (unsigned long long)ev[0].data : 0ULL, r > 0 ? (long long)ev[0].res : 0LL);
	check_new_read_and_destroy(p, ctx);
}

int main(int argc, char **argv)
{
	const char *mode;
	char dir[4096];
	aio_context_t a = 0, b = 0;
	unsigned nr_a = 0, nr_b = 0;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "idle";
	snprintf(dir, sizeof(dir), "%s", report_path);
	*strrchr(dir, '/') = 0;
	make_file(dir);

	if (!strcmp(mode, "idle")) {
		if (io_setup(8, &a) != 0)
			exit(4);
		nr_a = ring_of(a)->nr;
	} else if (!strcmp(mode, "pending") || !strcmp(mode, "two")) {
		a = setup_pending();
		nr_a = ring_of(a)->nr;
		if (!strcmp(mode, "two")) {
			if (io_setup(1000, &b) != 0)
				exit(4);
			nr_b = ring_of(b)->nr;
		}
	} else if (!strcmp(mode, "inflight")) {
		static struct iocb cb;
		struct iocb *ptr = &cb;
		char path[4200];
		int in = inotify_init1(IN_NONBLOCK);

		snprintf(path, sizeof(path), "%s/data", dir);
		if (in < 0 || dup2(in, 11) < 0 || inotify_add_watch(11, path, IN_OPEN) < 0)
			exit(7);
		close(in);
		if (io_setup(8, &a) != 0)
			exit(4);
		nr_a = ring_of(a)->nr;
		memset(&cb, 0, sizeof(cb));
		cb.aio_data = 0x9011;
		cb.aio_lio_opcode = IOCB_CMD_POLL;
		cb.aio_fildes = 11;
		cb.aio_buf = POLLIN;
		if (io_submit(a, 1, &ptr) != 1)
			exit(8);
	} else if (!strcmp(mode, "badring")) {
		if (io_setup(8, &a) != 0)
			exit(4);
		nr_a = ring_of(a)->nr;
		ring_of(a)->head = nr_a + 5;
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	report("INFO ctx %#llx nr %u ctx2 %#llx nr %u", (unsigned long long)a, nr_a,
	       (unsigned long long)b, nr_b);
	report_ready();
	while (!go_requested())
		nap_ms(10);

	if (!strcmp(mode, "idle")) {
		check_ring("idle_ring", a, nr_a, 0, 0);
		check_new_read_and_destroy("idle", a);
	} else if (!strcmp(mode, "pending")) {
		check_pending("pending", a, nr_a);
	} else if (!strcmp(mode, "two")) {
		check_pending("pending", a, nr_a);
		check_ring("big_ring", b, nr_b, 0, 0);
		check(nr_b == 2047, "big_ring_size", "nr %u", nr_b);
		check_new_read_and_destroy("big", b);
	} else if (!strcmp(mode, "inflight")) {
		struct io_event ev;
		long r = io_getevents(a, 1, 1, &ev, 5);

		check(r == 1 && ev.data == 0x9011 && (ev.res & POLLIN), "inflight_completed",
		      "io_getevents %ld: data %#llx res %#llx", r, (unsigned long long)ev.data,
		      (unsigned long long)ev.res);
	} else if (!strcmp(mode, "badring")) {
		check(ring_of(a)->head == nr_a + 5, "badring_untouched", "head %u", ring_of(a)->head);
	}
	report_done();
	for (;;)
		nap_ms(1000);
}
