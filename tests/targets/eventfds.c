/*
 * eventfds: an event loop on eventfds, timerfds, a signalfd and an inotify instance, all in one
 * epoll instance (issue 9). Its tmp dir is the report's directory.
 *   eventfds  fd 10: semaphore, non-blocking, counter 7; fd 11: counter 10^12
 *   timerfds  fd 12: CLOCK_MONOTONIC, every 100 ms, never read before the go file (its ticks
 *             pile up); fd 13: CLOCK_MONOTONIC one-shot in 5 s; fd 14: CLOCK_REALTIME absolute
 *             (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) 4 s after the start, non-blocking;
 *             fd 15: CLOCK_BOOTTIME in 1 h, then every 30 min; fd 16: a 1 ms one-shot that has
 *             expired once, unread
 *   signalfd  fd 17: SIGUSR1 and SIGRTMIN+1 (blocked), SFD_NONBLOCK | SFD_CLOEXEC
 *   inotify   fd 18 (IN_NONBLOCK): wd 1 IN_CREATE on DIR/watched, wd 3 IN_MODIFY on
 *             DIR/watched-file (wd 2 was added and removed: a gap)
 *   epoll     fd 19 watching all of them
 * Until the go file, the loop polls the one-shot timers (fd 13, fd 14) to note when they fire
 * and measures its longest pause, which includes the capture/restore gap. After it: the
 * counters, the ticks and times of the timers (a relative timer resumes with the time it had
 * left, so it fires one gap late; an absolute one keeps its expiry), signals sent now arrive
 * through the signalfd, new inotify events carry the same wds, the next wd is 4.
 */
#include "target.h"
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

static double real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void at(int fd, int want)
{
	if (fd != want) {
		if (dup2(fd, want) < 0)
			exit(3);
		close(fd);
	}
}

static int fdinfo_has(int fd, const char *line)
{
	char path[64], buf[4096];
	int f;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, line) != NULL;
}

/* Non-blocking read of a timerfd or eventfd counter: 0 when nothing is there. */
static uint64_t take(int fd)
{
	uint64_t v = 0;
	struct pollfd p = { fd, POLLIN, 0 };

	if (poll(&p, 1, 0) != 1 || read(fd, &v, 8) != 8)
		return 0;
	return v;
}

/* Waits up to ms for fd to be readable through the epoll instance; returns the ready fd or -1. */
static int wait_event(int ep, int fd, int ms)
{
	struct epoll_event ev[8];
	double end = mono_now() + ms / 1000.0;

	for (;;) {
		int left = (int)((end - mono_now()) * 1000);
		int n = epoll_wait(ep, ev, 8, left > 0 ? left : 0);

		for (int i = 0; i < n; i++)
			if ((int)ev[i].data.u64 == fd)
				return fd;
		if (left <= 0)
			return -1;
	}
}

int main(int argc, char **argv)
{
	char dir[4096], wdir[4200], wfile[4200], gap[4200], path[4400];
	double t0, r0, fired13 = 0, fired14 = 0, prev, gap_start = 0, gap_len = 0;
	struct itimerspec its;
	sigset_t mask;
	int ep, wd1, wd2, wd3;
	char *slash;

	target_init(argc, argv);
	strcpy(dir, report_path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	snprintf(wdir, sizeof(wdir), "%s/watched", dir);
	snprintf(wfile, sizeof(wfile), "%s/watched-file", dir);
	snprintf(gap, sizeof(gap), "%s/gap-file", dir);
	mkdir(wdir, 0755);
	close(open(wfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(open(gap, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));

	at(eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK), 10);
	{
		uint64_t two = 2, big = 1000000000000ull;

		if (write(10, &two, 8) != 8)
			return 3;
		at(eventfd(0, 0), 11);
		if (write(11, &big, 8) != 8)
			return 3;
	}

	t0 = mono_now();
	r0 = real_now();
	at(timerfd_create(CLOCK_MONOTONIC, 0), 12);
	its = (struct itimerspec){ { 0, 100000000 }, { 0, 100000000 } };
	timerfd_settime(12, 0, &its, NULL);
	at(timerfd_create(CLOCK_MONOTONIC, 0), 13);
	its = (struct itimerspec){ { 0, 0 }, { 5, 0 } };
	timerfd_settime(13, 0, &its, NULL);
	at(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 14);
	{
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		its = (struct itimerspec){ { 0, 0 }, { now.tv_sec + 4, now.tv_nsec } };
		r0 = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	}
	timerfd_settime(14, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL);
	at(timerfd_create(CLOCK_BOOTTIME, 0), 15);
	its = (struct itimerspec){ .it_value = { 3600, 0 }, .it_interval = { 1800, 0 } };
	timerfd_settime(15, 0, &its, NULL);
	at(timerfd_create(CLOCK_MONOTONIC, 0), 16);
	its = (struct itimerspec){ { 0, 0 }, { 0, 1000000 } };
	timerfd_settime(16, 0, &its, NULL);

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	at(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC), 17);
	fcntl(17, F_SETFD, FD_CLOEXEC); /* dup2 cleared it */

	at(inotify_init1(IN_NONBLOCK), 18);
	wd1 = inotify_add_watch(18, wdir, IN_CREATE);
	wd2 = inotify_add_watch(18, gap, IN_MODIFY);
	wd3 = inotify_add_watch(18, wfile, IN_MODIFY);
	inotify_rm_watch(18, wd2);
	{
		char buf[4096];

		while (read(18, buf, sizeof(buf)) > 0)
			; /* the IN_IGNORED of wd 2 */
	}

	at(epoll_create1(0), 19);
	for (int fd = 10; fd <= 18; fd++) {
		struct epoll_event ev = { EPOLLIN, { .u64 = (uint64_t)fd } };

		epoll_ctl(19, EPOLL_CTL_ADD, fd, &ev);
	}
	ep = 19;
	nap_ms(20); /* fd 16 expires */
	{
		report_ready();
		prev = mono_now();
		while (!go_requested()) {
			double now;

			if (!fired13 && take(13))
				fired13 = mono_now();
			if (!fired14 && take(14))
				fired14 = real_now();
			nap_ms(10);
			now = mono_now();
			if (now - prev > gap_len) {
				gap_len = now - prev;
				gap_start = prev;
			}
			prev = now;
		}
		report("INFO longest pause %.3f s at +%.3f s", gap_len, gap_start - t0);

		/* eventfds */
		{
			int n = 0;

			while (take(10) == 1)
				n++;
			check(n == 7, "eventfd_semaphore", "%d reads of 1, want 7", n);
			check(fcntl(10, F_GETFL) & O_NONBLOCK, "eventfd_nonblock", "no O_NONBLOCK");
			check(fdinfo_has(10, "eventfd-semaphore: 1"), "eventfd_semaphore_flag", "fdinfo");
			uint64_t v = take(11);

			check(v == 1000000000000ull, "eventfd_counter", "%llu", (unsigned long long)v);
		}

		/* timerfds */
		{
			/* Every 100 ms except during the pause (the timer resumed with the time it had
			 * left); the restored timer may start counting a little before the process runs. */
			double want12 = (mono_now() - t0 - gap_len) / 0.1;
			uint64_t v = take(12);

			check(v + 2 >= want12 && v <= want12 + 5, "timerfd_ticks_kept",
			      "%llu unread expirations, want about %.1f", (unsigned long long)v, want12);
			double a, b;

			if (wait_event(ep, 12, 1000) == 12 && take(12) > 0) {
				a = mono_now();
				if (wait_event(ep, 12, 1000) == 12 && take(12) > 0) {
					b = mono_now();
					check(b - a > 0.05 && b - a < 0.2, "timerfd_periodic", "period %.3f s", b - a);
				} else
					check(0, "timerfd_periodic", "no second expiry");
			} else
				check(0, "timerfd_periodic", "no expiry within 1 s");

			if (!fired14 && wait_event(ep, 14, 10000) == 14 && take(14))
				fired14 = real_now();
			/* Absolute: at its expiry, or at once after the restore when that passed. */
			double late = fired14 - (r0 + 4);

			check(fired14 && late > -0.05 && (late < 0.3 || (gap_len > late - 0.5 && late < gap_len + 0.5)),
			      "timerfd_absolute", "fired %.3f s after its expiry (pause %.3f s)", late, gap_len);
			if (!fired13 && wait_event(ep, 13, 10000) == 13 && take(13))
				fired13 = mono_now();
			/* Relative: fires 5 s after the start, plus the pause if the pause came first. */
			double want13 = t0 + 5 + (gap_start < t0 + 5 ? gap_len : 0);

			check(fired13 && fired13 - want13 > -0.6 && fired13 - want13 < 0.6,
			      "timerfd_relative", "fired at +%.3f s, want +%.3f s (pause %.3f s)",
			      fired13 - t0, want13 - t0, gap_len);

			check(fdinfo_has(14, "settime flags: 03") && fdinfo_has(14, "clockid: 0"),
			      "timerfd_cancel_on_set", "fdinfo of fd 14 lacks the flags");
			check(fcntl(14, F_GETFL) & O_NONBLOCK, "timerfd_nonblock", "no O_NONBLOCK");

			struct itimerspec cur;

			timerfd_gettime(15, &cur);
			double left = cur.it_value.tv_sec + cur.it_value.tv_nsec / 1e9;
			double spent = mono_now() - t0;

			check(fdinfo_has(15, "clockid: 7") && cur.it_interval.tv_sec == 1800 &&
				      cur.it_interval.tv_nsec == 0 && left <= 3600 - spent + gap_len + 1 &&
				      left > 3600 - spent - 1,
			      "timerfd_boottime", "%.3f s left after %.3f s, interval %lld", left, spent,
			      (long long)cur.it_interval.tv_sec);
			v = take(16);
			check(v == 1, "timerfd_unread_tick", "%llu", (unsigned long long)v);
		}

		/* signalfd */
		{
			struct signalfd_siginfo si[2];
			union sigval sv = { .sival_int = 42 };
			ssize_t n;

			check((fcntl(17, F_GETFL) & O_NONBLOCK) && (fcntl(17, F_GETFD) & FD_CLOEXEC),
			      "signalfd_flags", "flags lost");
			kill(getpid(), SIGUSR1);
			sigqueue(getpid(), SIGRTMIN + 1, sv);
			if (wait_event(ep, 17, 1000) != 17)
				check(0, "signalfd", "not readable");
			else {
				n = read(17, si, sizeof(si));
				check(n == 2 * (ssize_t)sizeof(si[0]) && si[0].ssi_signo == SIGUSR1 &&
					      si[1].ssi_signo == (uint32_t)SIGRTMIN + 1 && si[1].ssi_int == 42,
				      "signalfd", "read %zd bytes, signals %u %u", n, si[0].ssi_signo,
				      si[1].ssi_signo);
			}
		}

		/* inotify */
		{
			char buf[4096] __attribute__((aligned(8)));
			struct inotify_event *e = (struct inotify_event *)buf;
			ssize_t n;
			int fd;

			check(wd1 == 1 && wd3 == 3, "inotify_setup", "wds %d %d", wd1, wd3);
			snprintf(path, sizeof(path), "%s/new", wdir);
			close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
			n = wait_event(ep, 18, 1000) == 18 ? read(18, buf, sizeof(buf)) : -1;
			check(n > 0 && e->wd == wd1 && (e->mask & IN_CREATE) && !strcmp(e->name, "new"),
			      "inotify_dir", "%zd bytes, wd %d mask %#x", n, n > 0 ? e->wd : 0,
			      n > 0 ? e->mask : 0);
			fd = open(wfile, O_WRONLY | O_CLOEXEC);
			if (write(fd, "x", 1) != 1)
				check(0, "inotify_file", "write");
			close(fd);
			n = wait_event(ep, 18, 1000) == 18 ? read(18, buf, sizeof(buf)) : -1;
			check(n > 0 && e->wd == wd3 && (e->mask & IN_MODIFY), "inotify_file",
			      "%zd bytes, wd %d mask %#x", n, n > 0 ? e->wd : 0, n > 0 ? e->mask : 0);
			int wd4 = inotify_add_watch(18, gap, IN_MODIFY);

			check(wd4 == 4, "inotify_next_wd", "%d", wd4);
			check(fcntl(18, F_GETFL) & O_NONBLOCK, "inotify_nonblock", "no O_NONBLOCK");
		}
	}
	done_and_idle();
}
