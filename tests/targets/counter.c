/*
 * counter: increments a counter every 20 ms and appends "N" to REPORT.ticks (open, write, close
 * each time). The harness checks the ticks run on without a gap or a restart across the
 * checkpoint; the target checks its copies of the counter (global, stack, heap) agree.
 */
#include "target.h"

static volatile uint64_t global_count;

int main(int argc, char **argv)
{
	char ticks_path[4200];
	volatile uint64_t stack_count = 0;
	volatile uint64_t *heap_count;

	target_init(argc, argv);
	snprintf(ticks_path, sizeof(ticks_path), "%s.ticks", report_path);
	heap_count = malloc(sizeof(*heap_count));
	if (!heap_count)
		return 1;
	*heap_count = 0;
	report_ready();
	for (;;) {
		char line[32];
		int fd, n;

		global_count++;
		stack_count++;
		*heap_count += 1;
		n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)global_count);
		fd = open(ticks_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (write(fd, line, (size_t)n) != n)
				report("FAIL counter: short write of tick %llu",
				       (unsigned long long)global_count);
			close(fd);
		}
		if (go_requested())
			break;
		nap_ms(20);
	}
	check(global_count == stack_count && stack_count == *heap_count, "counter",
	      "global %llu stack %llu heap %llu", (unsigned long long)global_count,
	      (unsigned long long)stack_count, (unsigned long long)*heap_count);
	report("INFO count %llu", (unsigned long long)global_count);
	done_and_idle();
}
