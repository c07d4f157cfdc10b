/*
 * libpsnc.so: a shared library for the "library renamed away, executable deleted" test. It keeps
 * state in its own .data/.bss, so the restored process needs this library's pages, not the file.
 */
#include <stdint.h>

static uint32_t lib_state[4096];
uint32_t lib_calls = 7;

void psnc_lib_fill(uint32_t seed)
{
	for (uint32_t i = 0; i < 4096; i++)
		lib_state[i] = seed * 2654435761u + i;
	lib_calls++;
}

/* Returns 1 when the state still holds what psnc_lib_fill(seed) put there. */
int psnc_lib_check(uint32_t seed)
{
	lib_calls++;
	for (uint32_t i = 0; i < 4096; i++)
		if (lib_state[i] != seed * 2654435761u + i)
			return 0;
	return 1;
}

uint32_t psnc_lib_magic(void)
{
	return 0x5053u;
}
