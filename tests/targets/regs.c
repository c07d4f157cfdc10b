/*
 * regs MODE: known values kept in vector registers across the checkpoint.
 *   sse     xmm0-15 (xmm0-7 in the i386 build)
 *   avx     ymm0-15
 *   avx512  zmm0-31 and k0-7 (needs AVX-512F and BW; reports "SKIP avx512" without them)
 * The registers are loaded once by hand-written assembly that then never leaves it: it stores all
 * of them to a scratch buffer and compares that with the expected values, 500 times in a row, then
 * sleeps 1 ms and looks for the go file, both with raw system calls (which keep vector registers),
 * and starts over. A checkpoint therefore hits the target either in user code or inside nanosleep
 * with the values live in registers. It returns on the go file (all checks passed) or on the first
 * mismatch, with the registers dumped to the scratch buffer for the report.
 */
#include "target.h"

/* 64 bytes per vector register (zmm size), then 8 bytes per mask register. */
#define VREGS 32
#define AREA (VREGS * 64 + 8 * 8)

#ifdef __x86_64__
#define SEQ16 "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"
#define SEQ32 SEQ16 ",16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31"

/* long loop(const void *expected, void *scratch, const char *go_path, uint64_t *checks) */
#define LOOP_FN(name, load, store, cmplen)                                      \
	".text\n.globl " name "\n.type " name ",@function\n" name ":\n"            \
	"push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"       \
	"push $1000000\npush $0\n" /* struct timespec {0, 1 ms} at (%rsp) */       \
	"mov %rdi,%r12\nmov %rsi,%r13\nmov %rdx,%r14\nmov %rcx,%rbx\n"             \
	load                                                                      \
	"1: mov $500,%r15d\n"                                                      \
	"2:\n" store                                                               \
	"mov %r12,%rsi\nmov %r13,%rdi\nmov $" cmplen ",%ecx\nrepe cmpsb\njne 8f\n" \
	"incq (%rbx)\ndec %r15d\njnz 2b\n"                                         \
	"mov %rsp,%rdi\nxor %esi,%esi\nmov $35,%eax\nsyscall\n"  /* nanosleep */   \
	"mov %r14,%rdi\nxor %esi,%esi\nmov $21,%eax\nsyscall\n"  /* access */      \
	"test %rax,%rax\njnz 1b\nxor %eax,%eax\njmp 9f\n"                          \
	"8: mov $1,%eax\n"                                                         \
	"9: add $16,%rsp\npop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\n" \
	"vzeroupper\nret\n.size " name ",.-" name "\n"

__asm__(LOOP_FN("regs_loop_sse",
		".irp i," SEQ16 "\nmovdqu \\i*64(%r12),%xmm\\i\n.endr\n",
		".irp i," SEQ16 "\nmovdqu %xmm\\i,\\i*64(%r13)\n.endr\n",
		"1024"));
__asm__(LOOP_FN("regs_loop_avx",
		".irp i," SEQ16 "\nvmovdqu \\i*64(%r12),%ymm\\i\n.endr\n",
		".irp i," SEQ16 "\nvmovdqu %ymm\\i,\\i*64(%r13)\n.endr\n",
		"1024"));
__asm__(LOOP_FN("regs_loop_avx512",
		".irp i," SEQ32 "\nvmovdqu64 \\i*64(%r12),%zmm\\i\n.endr\n"
		".irp i,0,1,2,3,4,5,6,7\nkmovq 2048+\\i*8(%r12),%k\\i\n.endr\n",
		".irp i," SEQ32 "\nvmovdqu64 %zmm\\i,\\i*64(%r13)\n.endr\n"
		".irp i,0,1,2,3,4,5,6,7\nkmovq %k\\i,2048+\\i*8(%r13)\n.endr\n",
		"2112"));
#define SSE_REGS 16
#else
/* i386: xmm0-7; cdecl arguments on the stack; int $0x80 (nanosleep 162, access 33). */
__asm__(".text\n.globl regs_loop_sse\n.type regs_loop_sse,@function\nregs_loop_sse:\n"
	"push %ebp\npush %ebx\npush %esi\npush %edi\npush $1000000\npush $0\n"
	/* args: expected 28(%esp), scratch 32, go_path 36, checks 40 */
	"mov 28(%esp),%ebp\n"
	".irp i,0,1,2,3,4,5,6,7\nmovdqu \\i*64(%ebp),%xmm\\i\n.endr\n"
	"1: mov $500,%edx\n"
	"2: mov 32(%esp),%edi\n"
	".irp i,0,1,2,3,4,5,6,7\nmovdqu %xmm\\i,\\i*64(%edi)\n.endr\n"
	"mov %ebp,%esi\nmov $512,%ecx\nrepe cmpsb\njne 8f\n"
	"mov 40(%esp),%eax\naddl $1,(%eax)\nadcl $0,4(%eax)\ndec %edx\njnz 2b\n"
	"mov %esp,%ebx\nxor %ecx,%ecx\nmov $162,%eax\nint $0x80\n"
	"mov 36(%esp),%ebx\nxor %ecx,%ecx\nmov $33,%eax\nint $0x80\n"
	"test %eax,%eax\njnz 1b\nxor %eax,%eax\njmp 9f\n"
	"8: mov $1,%eax\n"
	"9: add $8,%esp\npop %edi\npop %esi\npop %ebx\npop %ebp\nret\n"
	".size regs_loop_sse,.-regs_loop_sse\n");
#define SSE_REGS 8
#endif

long regs_loop_sse(const void *expected, void *scratch, const char *go, uint64_t *checks);
#ifdef __x86_64__
long regs_loop_avx(const void *expected, void *scratch, const char *go, uint64_t *checks);
long regs_loop_avx512(const void *expected, void *scratch, const char *go, uint64_t *checks);
#endif

static uint8_t expected[AREA] __attribute__((aligned(64)));
static uint8_t scratch[AREA] __attribute__((aligned(64)));
static uint64_t checks;

int main(int argc, char **argv)
{
	const char *mode;
	long (*loop)(const void *, void *, const char *, uint64_t *) = regs_loop_sse;
	int nregs = SSE_REGS, width = 16, kregs = 0;
	long r;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "sse";
	__builtin_cpu_init();
#ifdef __x86_64__
	if (!strcmp(mode, "avx")) {
		if (!__builtin_cpu_supports("avx")) {
			report("SKIP avx: the CPU lacks AVX");
			report_ready();
			done_and_idle();
		}
		loop = regs_loop_avx;
		width = 32;
	} else if (!strcmp(mode, "avx512")) {
		if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
			report("SKIP avx512: the CPU lacks AVX-512F/BW");
			report_ready();
			done_and_idle();
		}
		loop = regs_loop_avx512;
		width = 64;
		nregs = 32;
		kregs = 8;
	} else if (strcmp(mode, "sse")) {
		report("FAIL regs: unknown mode %s", mode);
		done_and_idle();
	}
#else
	if (strcmp(mode, "sse")) {
		report("FAIL regs: mode %s needs the x86_64 build", mode);
		done_and_idle();
	}
#endif
	fill_pattern(expected, sizeof(expected), 4000);
	/* The loop compares whole 64-byte slots: bytes beyond the register width match anyway. */
	memcpy(scratch, expected, sizeof(scratch));
	report_ready();
	r = loop(expected, scratch, go_path, &checks);
	if (r == 0) {
		check(checks > 0, mode, "no check ran");
	} else {
		for (int i = 0; i < nregs; i++)
			for (int b = 0; b < width; b++)
				if (scratch[i * 64 + b] != expected[i * 64 + b]) {
					check(0, mode, "register %d byte %d is %#x, expected %#x", i,
					      b, scratch[i * 64 + b], expected[i * 64 + b]);
					i = nregs;
					break;
				}
		for (int k = 0; k < kregs && fail_count == 0; k++)
			if (memcmp(scratch + 2048 + k * 8, expected + 2048 + k * 8, 8))
				check(0, mode, "mask register k%d differs", k);
		if (fail_count == 0)
			check(0, mode, "mismatch reported, none found in the dump");
	}
	report("INFO checks %llu", (unsigned long long)checks);
	done_and_idle();
}
