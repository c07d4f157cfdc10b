/* Round-trip target for psnc-restore's own tests: sets up state, counts until SIGUSR2, then
 * checks that the state survived and reports "ok COUNTER" (or what broke) in DIR/report. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static volatile int go_code;

static void on_usr2(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    go_code = si->si_code;
    go = 1;
}

static char report_path[4096];

static void report(const char *msg, unsigned long counter) {
    FILE *f = fopen(report_path, "w");
    if (!f) exit(3);
    fprintf(f, "%s %lu\n", msg, counter);
    fclose(f);
    exit(strcmp(msg, "ok") == 0 ? 0 : 1);
}

int main(int argc, char **argv) {
    char path[4096];
    if (argc < 2) return 2;
    syscall(SYS_close_range, 3, ~0U, 0); /* nothing inherited from the test harness */
    snprintf(report_path, sizeof report_path, "%s/report", argv[1]);

    size_t heap_len = 1 << 20;
    unsigned char *heap = malloc(heap_len);
    for (size_t i = 0; i < heap_len; i++) heap[i] = (unsigned char)(i * 7 + 1);

    size_t page = 4096, big_len = 64 * page;
    unsigned char *big = mmap(NULL, big_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < big_len; i += page) big[i] = (unsigned char)(i / page + 3);
    mprotect(big + 16 * page, 4 * page, PROT_NONE);
    munmap(big + 40 * page, 4 * page);

    snprintf(path, sizeof path, "%s/data", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (write(fd, "0123456789", 10) != 10) return 2;
    lseek(fd, 4, SEEK_SET);

    int p[2];
    if (pipe(p) || write(p[1], "hello", 5) != 5) return 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, NULL);
    kill(getpid(), SIGUSR1);
    pid_t pid = getpid();

    timer_t timer;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN + 2;
    sev.sigev_value.sival_int = 77;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer)) return 2;
    struct itimerspec its = {.it_interval = {500, 0}, .it_value = {1000, 0}};
    if (timer_settime(timer, 0, &its, NULL)) return 2;

    snprintf(path, sizeof path, "%s/counter", argv[1]);
    int cfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    snprintf(path, sizeof path, "%s/ready", argv[1]);
    close(open(path, O_WRONLY | O_CREAT, 0644));

    unsigned long counter = 0;
    char buf[64];
    while (!go) {
        counter++;
        int n = snprintf(buf, sizeof buf, "%lu\n", counter);
        if (pwrite(cfd, buf, n, 0) != n) report("counter-write", counter);
        usleep(2000);
    }

    if (getpid() != pid) report("pid-changed", counter);
    if (go_code != SI_USER) report("sigusr2-si_code", counter);
    for (size_t i = 0; i < heap_len; i++)
        if (heap[i] != (unsigned char)(i * 7 + 1)) report("heap", counter);
    for (size_t i = 0; i < big_len; i += page) {
        if (i >= 16 * page && i < 20 * page) continue;
        if (i >= 40 * page && i < 44 * page) continue;
        if (big[i] != (unsigned char)(i / page + 3)) report("big-mapping", counter);
    }
    if (mprotect(big + 40 * page, page, PROT_READ) == 0) report("hole-mapped", counter);
    char r[8] = {0};
    if (read(fd, r, 3) != 3 || memcmp(r, "456", 3)) report("file-offset", counter);
    memset(r, 0, sizeof r);
    if (read(p[0], r, 5) != 5 || memcmp(r, "hello", 5)) report("pipe", counter);
    sigset_t pend;
    sigpending(&pend);
    if (!sigismember(&pend, SIGUSR1)) report("pending-sigusr1", counter);
    struct itimerspec cur;
    if (timer_gettime(timer, &cur)) report("posix-timer-gone", counter);
    if (cur.it_interval.tv_sec != 500 || cur.it_value.tv_sec < 900 || cur.it_value.tv_sec > 1000)
        report("posix-timer-setting", counter);
    report("ok", counter);
    return 0;
}
