/* Capture-side test target: one open fd of each supported kind.
 *
 * usage: fds DIR
 * fd 3: pipe read end, fd 4: pipe write end (10 bytes buffered, never read),
 * fd 5: DIR/append.txt with O_APPEND at offset 6, fd 6: DIR/gone.txt (deleted, "deleted contents"),
 * fd 7: /dev/null, fd 8: DIR itself.
 * Prints "ready", then "pipe N" every 10 ms with N = bytes buffered (FIONREAD, which does not
 * consume them), so a test sees that capture left the pipe as it was. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void at(int fd, int want) {
	if (fd != want) {
		dup2(fd, want);
		close(fd);
	}
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	char path[4096];
	int p[2];
	if (pipe(p))
		return 1;
	at(p[0], 3);
	at(p[1], 4);
	if (write(4, "hello pipe", 10) != 10)
		return 1;

	snprintf(path, sizeof path, "%s/append.txt", argv[1]);
	int a = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
	if (write(a, "line1\n", 6) != 6)
		return 1;
	at(a, 5);

	snprintf(path, sizeof path, "%s/gone.txt", argv[1]);
	int g = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (write(g, "deleted contents", 16) != 16)
		return 1;
	unlink(path);
	at(g, 6);

	at(open("/dev/null", O_RDONLY), 7);
	at(open(argv[1], O_RDONLY | O_DIRECTORY), 8);

	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int n = -1;
		ioctl(3, FIONREAD, &n);
		printf("pipe %d\n", n);
		fflush(stdout);
		usleep(10000);
	}
}
