/*
 * Shared protocol of the self-verifying targets (see tests/README.md).
 *
 *   target REPORT [MODE [ARGS...]]
 *
 * A target sets up the state its test is about, appends "READY <pid>" to REPORT and then runs or
 * blocks. When the file REPORT.go appears (polled, so no signal disturbs the state under test) it
 * checks every piece of that state, appends one "PASS <what>" or "FAIL <what>: <detail>" line per
 * check, then "DONE", and keeps running until the harness kills it. Each report line is written
 * with its own open(O_APPEND)/write/close, so the report file is never an open fd of the target at
 * capture time.
 */
#ifndef PSNC_TARGET_H
#define PSNC_TARGET_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char report_path[4096];
static char go_path[4096 + 8];
static int fail_count;

/* Appends one line to the report file; async-signal-safe (no stdio, no malloc). */
static __attribute__((unused)) void report_raw(const char *line, size_t len)
{
	int fd = open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		_exit(90);
	while (len > 0) {
		ssize_t n = write(fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(91);
		line += n;
		len -= (size_t)n;
	}
	close(fd);
}

/* Appends one formatted line (a newline is added). Not async-signal-safe. */
__attribute__((format(printf, 1, 2)))
static __attribute__((unused)) void report(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	report_raw(line, (size_t)n);
}

/* Records a check: PASS when ok, else FAIL with the formatted detail. */
__attribute__((format(printf, 3, 4)))
static __attribute__((unused)) void check(int ok, const char *what, const char *fmt, ...)
{
	char detail[768];
	va_list ap;

	if (ok) {
		report("PASS %s", what);
		return;
	}
	fail_count++;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	report("FAIL %s: %s", what, detail);
}

/* Parses argv[1] (the report path), or $PSNC_REPORT when argv[1] is missing. */
static __attribute__((unused)) void target_init(int argc, char **argv)
{
	const char *p = argc > 1 ? argv[1] : getenv("PSNC_REPORT");

	if (!p || strlen(p) >= sizeof(report_path)) {
		fprintf(stderr, "usage: %s REPORT [MODE [ARGS...]]\n", argv[0]);
		exit(2);
	}
	strcpy(report_path, p);
	snprintf(go_path, sizeof(go_path), "%s.go", report_path);
}

/* How many lines of the report file start with `prefix` (the lines other processes of a
 * multi-process target appended). Not async-signal-safe (stdio). */
static __attribute__((unused)) int report_count(const char *prefix)
{
	FILE *f = fopen(report_path, "r");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return n;
}

static __attribute__((unused)) void report_ready(void)
{
	report("READY %d", (int)getpid());
}

static __attribute__((unused)) void report_done(void)
{
	report("DONE fails=%d", fail_count);
}

static __attribute__((unused)) int go_requested(void)
{
	return access(go_path, F_OK) == 0;
}

/* Sleeps ms milliseconds once; an interruption just shortens the nap. */
static __attribute__((unused)) void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Polls for the go file every 10 ms. */
static __attribute__((unused)) void wait_for_go(void)
{
	while (!go_requested())
		nap_ms(10);
}

/* After the checks: report DONE and idle until killed. */
__attribute__((noreturn))
static __attribute__((unused)) void done_and_idle(void)
{
	report_done();
	for (;;)
		nap_ms(1000);
}

static __attribute__((unused)) double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic byte pattern: depends on a seed and the offset. */
static __attribute__((unused)) uint8_t pattern_byte(uint32_t seed, uint64_t off)
{
	uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32 | seed);

	x ^= x >> 29;
	return (uint8_t)(x ^ (x >> 8) ^ seed);
}

static __attribute__((unused)) void fill_pattern(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(seed, i);
}

/* Returns the offset of the first mismatch, or -1 when the buffer holds the pattern. */
static __attribute__((unused)) long check_pattern(const void *buf, size_t len, uint32_t seed)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(seed, i))
			return (long)i;
	return -1;
}

static __attribute__((unused)) pid_t my_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

#endif
