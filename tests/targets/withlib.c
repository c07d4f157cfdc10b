/*
 * withlib: linked against libpsnc.so (found through rpath $ORIGIN). The harness renames the library
 * and deletes the executable between capture and restore; the restored process must still run
 * the library's code and keep its state.
 */
#include "target.h"
#include <stdint.h>

void psnc_lib_fill(uint32_t seed);
int psnc_lib_check(uint32_t seed);
uint32_t psnc_lib_magic(void);
extern uint32_t lib_calls;

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n;

	target_init(argc, argv);
	psnc_lib_fill(99);
	report_ready();
	wait_for_go();
	check(psnc_lib_check(99), "lib_state", "the library's state differs");
	check(psnc_lib_magic() == 0x5053u, "lib_code", "library code returned %#x",
	      psnc_lib_magic());
	check(lib_calls == 9, "lib_data", "lib_calls %u, expected 9", lib_calls);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	report("INFO exe %s", self);
	done_and_idle();
}
