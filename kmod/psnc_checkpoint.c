// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/checkpoint: read-only kernel state of a ptrace-stopped thread, for
 * psnc-capture
 *
 * User space can read most of a stopped process through ptrace and /proc.
 * What it cannot read without running system calls inside the target
 * (rt_sigaction, sigaltstack, getitimer, timer_gettime, brk(0), prctl
 * getters, the compat get_robust_list) is served
 * here, so that a capture never executes anything in the target. The ABI
 * is include/uapi/psnc_checkpoint.h; README.md describes it.
 *
 * Access. ptrace_may_access() is not exported, so the module asks for
 * more than ptrace does: the caller has CAP_SYS_PTRACE, is the thread that
 * ptrace-attached to the target, and the target sits in a ptrace stop. A
 * thread in a ptrace stop runs no user code and cannot leave the stop
 * without its siglock being taken (ptrace_resume, the SIGKILL wake-up and
 * __ptrace_unlink all hold it), so every check and every read of
 * per-thread state happens in one siglock section, copied into a kernel
 * buffer; copy_to_user (which may fault and sleep) comes after the unlock.
 *
 * Lifetime. The task is pinned by get_pid_task() for the whole call; its
 * sighand_struct is not (__exit_signal() detaches it), which is why the
 * siglock is taken the way lock_task_sighand() takes it, and a NULL
 * sighand means the thread is exiting: -ESRCH. The mm is pinned with
 * get_task_mm(). fops.owner keeps the module loaded while a file is open,
 * and nothing outlives a call, so rmmod works whenever no file is open.
 *
 * Kernel symbols used (all exported by 6.1, checked against Module.symvers
 * by kmod/vm/run-tests.sh): misc_register, misc_deregister, find_get_pid,
 * get_pid_task, put_pid, __put_task_struct, capable, get_task_mm, mmput,
 * down_read_killable, up_read, __hrtimer_get_remaining, hrtimer_active,
 * hrtimer_resolution,
 * ktime_get, ktime_get_with_offset, compat_ptr_ioctl, noop_llseek,
 * nonseekable_open, _copy_from_user, _copy_to_user, kmalloc/kfree,
 * snprintf, the RCU and spinlock primitives.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/cred.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/kallsyms.h>
#include <linux/math64.h>
#include <linux/miscdevice.h>
#include <linux/mm_types.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/posix-timers.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/restart_block.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/signal.h>
#include <linux/signal_types.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#include "psnc_checkpoint.h"

#define PSNC_CP_MODULE_VERSION "0.3.0"

#define PSNC_CP_FEATURES (PSNC_CP_FEAT_SIGACTIONS | PSNC_CP_FEAT_SIGALTSTACK | \
			  PSNC_CP_FEAT_ITIMERS | PSNC_CP_FEAT_TASK_MISC | \
			  PSNC_CP_FEAT_RESTART_SLEEP | PSNC_CP_FEAT_TASK_MISC2 | \
			  PSNC_CP_FEAT_POSIX_TIMERS)

/* Everything of an argument struct after its header: what the module writes. */
#define CP_BODY(kbuf) ((char *)(kbuf) + sizeof(struct psnc_cp_header))
#define CP_BODY_LEN(kbuf) (sizeof(*(kbuf)) - sizeof(struct psnc_cp_header))

/*
 * The per-thread restart state read under the siglock; classified after the
 * unlock, because resolving the restart function's name takes a while.
 */
struct cp_restart_raw {
	bool pending;
	long (*fn)(struct restart_block *restart);
	clockid_t clockid;
	u64 expires;
};

/* The state GET_TASK_MISC reads under the siglock. */
struct cp_misc_raw {
	struct psnc_cp_task_misc out;
	struct cp_restart_raw restart;
};

/*
 * lock_task_sighand() is an inline around __lock_task_sighand(), which 6.1
 * does not export. This is the same loop: sighand_struct is
 * SLAB_TYPESAFE_BY_RCU, so under rcu_read_lock() the object behind
 * task->sighand keeps a valid siglock even if it is freed and reused, and
 * once the lock is held a re-read tells whether it is still the task's.
 * NULL: the task went through __exit_signal().
 */
static struct sighand_struct *cp_lock_sighand(struct task_struct *task,
					      unsigned long *flags)
{
	struct sighand_struct *sighand;

	rcu_read_lock();
	for (;;) {
		sighand = rcu_dereference(task->sighand);
		if (!sighand)
			break;
		spin_lock_irqsave(&sighand->siglock, *flags);
		if (likely(sighand == rcu_access_pointer(task->sighand)))
			break;
		spin_unlock_irqrestore(&sighand->siglock, *flags);
	}
	rcu_read_unlock();
	return sighand;
}

/*
 * Copies the header in and checks it. @size is the size of the command's
 * struct; @has_tid says whether the command takes a thread.
 */
static int cp_read_header(const void __user *uarg, u32 size, bool has_tid,
			  struct psnc_cp_header *hdr)
{
	if (copy_from_user(hdr, uarg, sizeof(*hdr)))
		return -EFAULT;
	if (hdr->version != PSNC_CP_HEADER_V1 || hdr->size != size ||
	    hdr->flags != 0 || hdr->reserved != 0)
		return -EINVAL;
	if (has_tid ? hdr->tid <= 0 : hdr->tid != 0)
		return -EINVAL;
	return 0;
}

/* Writes everything after the header back to the caller. */
static int cp_copy_body_out(void __user *uarg, const void *body, size_t len)
{
	if (copy_to_user((char __user *)uarg + sizeof(struct psnc_cp_header),
			 body, len))
		return -EFAULT;
	return 0;
}

/*
 * Looks up @tid in the caller's PID namespace and returns it referenced
 * (put_task_struct() when done), or NULL.
 */
static struct task_struct *cp_get_task(pid_t tid)
{
	struct task_struct *task;
	struct pid *pid;

	pid = find_get_pid(tid);
	if (!pid)
		return NULL;
	task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	return task;
}

/* Called with the target's siglock held: may the caller read @task now? */
static int cp_check_access_locked(struct task_struct *task)
{
	bool is_tracer;

	rcu_read_lock();
	is_tracer = ptrace_parent(task) == current;
	rcu_read_unlock();
	if (!is_tracer)
		return -EPERM;
	if (!task_is_traced(task))
		return -EBUSY;
	return 0;
}

/*
 * Runs @fill(task, sighand, out) for the thread @tid with its siglock held,
 * after the access checks. @out is a kernel buffer.
 */
static int cp_with_stopped_task(pid_t tid,
				void (*fill)(struct task_struct *task,
					     struct sighand_struct *sighand,
					     void *out),
				void *out, struct task_struct **taskp)
{
	struct sighand_struct *sighand;
	struct task_struct *task;
	unsigned long flags;
	int ret;

	if (!capable(CAP_SYS_PTRACE))
		return -EPERM;
	task = cp_get_task(tid);
	if (!task)
		return -ESRCH;
	sighand = cp_lock_sighand(task, &flags);
	if (!sighand) {
		ret = -ESRCH;
		goto out_put;
	}
	ret = cp_check_access_locked(task);
	if (!ret)
		fill(task, sighand, out);
	spin_unlock_irqrestore(&sighand->siglock, flags);
	if (!ret && taskp) {
		*taskp = task;
		return 0;
	}
out_put:
	put_task_struct(task);
	return ret;
}

/* ---- PSNC_CP_GET_VERSION ---- */

static long cp_get_version(void __user *uarg)
{
	struct psnc_cp_version kbuf;
	int ret;

	ret = cp_read_header(uarg, sizeof(kbuf), false, &kbuf.hdr);
	if (ret)
		return ret;
	memset(CP_BODY(&kbuf), 0, CP_BODY_LEN(&kbuf));
	kbuf.abi_version = PSNC_CP_ABI_VERSION;
	kbuf.features = PSNC_CP_FEATURES;
	strscpy(kbuf.module_version, PSNC_CP_MODULE_VERSION,
		sizeof(kbuf.module_version));
	return cp_copy_body_out(uarg, CP_BODY(&kbuf), CP_BODY_LEN(&kbuf));
}

/* ---- PSNC_CP_GET_SIGACTIONS ---- */

static void cp_fill_sigactions(struct task_struct *task,
			       struct sighand_struct *sighand, void *out)
{
	struct psnc_cp_sigactions *kbuf = out;
	int i;

	BUILD_BUG_ON(_NSIG != PSNC_CP_NSIG);
	BUILD_BUG_ON(_NSIG_WORDS != 1);

	kbuf->nr = PSNC_CP_NSIG;
	for (i = 0; i < PSNC_CP_NSIG; i++) {
		const struct sigaction *sa = &sighand->action[i].sa;

		kbuf->act[i].handler = (unsigned long)sa->sa_handler;
		/* As do_sigaction() reports it: kernel-internal bits cleared. */
		kbuf->act[i].flags = sa->sa_flags & UAPI_SA_FLAGS;
		kbuf->act[i].restorer = (unsigned long)sa->sa_restorer;
		kbuf->act[i].mask = sa->sa_mask.sig[0];
	}
}

/*
 * A command whose struct is too large for the stack (the sigaction table, the timer list):
 * allocate it zeroed, fill it under the siglock, then copy the body out.
 */
static long cp_get_large(void __user *uarg, u32 size,
			 void (*fill)(struct task_struct *task,
				      struct sighand_struct *sighand, void *out))
{
	struct psnc_cp_header hdr;
	void *kbuf;
	long ret;

	ret = cp_read_header(uarg, size, true, &hdr);
	if (ret)
		return ret;
	kbuf = kzalloc(size, GFP_KERNEL);
	if (!kbuf)
		return -ENOMEM;
	ret = cp_with_stopped_task(hdr.tid, fill, kbuf, NULL);
	if (!ret)
		ret = cp_copy_body_out(uarg, (char *)kbuf + sizeof(hdr),
				       size - sizeof(hdr));
	kfree(kbuf);
	return ret;
}

static long cp_get_sigactions(void __user *uarg)
{
	/* 2 KiB. */
	return cp_get_large(uarg, sizeof(struct psnc_cp_sigactions),
			    cp_fill_sigactions);
}

/* ---- PSNC_CP_GET_SIGALTSTACK ---- */

static void cp_fill_sigaltstack(struct task_struct *task,
				struct sighand_struct *sighand, void *out)
{
	struct psnc_cp_sigaltstack *kbuf = out;
	unsigned long sp = user_stack_pointer(task_pt_regs(task));
	u32 flags;

	/*
	 * do_sigaltstack() with the thread's own user stack pointer:
	 * sas_ss_flags(sp) | (sas_ss_flags & SS_FLAG_BITS), written out for
	 * another task (the helpers in sched/signal.h read current).
	 */
	if (!task->sas_ss_size)
		flags = SS_DISABLE;
	else if (!(task->sas_ss_flags & SS_AUTODISARM) &&
		 sp > task->sas_ss_sp && sp - task->sas_ss_sp <= task->sas_ss_size)
		flags = SS_ONSTACK;
	else
		flags = 0;
	kbuf->sp = task->sas_ss_sp;
	kbuf->size = task->sas_ss_size;
	kbuf->flags = flags | (task->sas_ss_flags & SS_FLAG_BITS);
}

static long cp_get_sigaltstack(void __user *uarg)
{
	struct psnc_cp_sigaltstack kbuf;
	long ret;

	ret = cp_read_header(uarg, sizeof(kbuf), true, &kbuf.hdr);
	if (ret)
		return ret;
	memset(CP_BODY(&kbuf), 0, CP_BODY_LEN(&kbuf));
	ret = cp_with_stopped_task(kbuf.hdr.tid, cp_fill_sigaltstack, &kbuf, NULL);
	if (ret)
		return ret;
	return cp_copy_body_out(uarg, CP_BODY(&kbuf), CP_BODY_LEN(&kbuf));
}

/* ---- PSNC_CP_GET_ITIMERS ---- */

/* get_cpu_itimer() of kernel/time/itimer.c, siglock held by the caller. */
static void cp_cpu_itimer(struct signal_struct *sig, int clock,
			  struct psnc_cp_itimer *out)
{
	const struct cpu_itimer *it = &sig->it[clock];
	u64 val = it->expires;

	if (val) {
		/* thread_group_sample_cputime(): the group's running sums. */
		const struct task_cputime_atomic *at = &sig->cputimer.cputime_atomic;
		u64 utime = atomic64_read(&at->utime);
		u64 stime = atomic64_read(&at->stime);
		u64 now = clock == CPUCLOCK_PROF ? utime + stime : utime;

		val = val < now ? TICK_NSEC : val - now;
	}
	out->value_ns = val;
	out->interval_ns = it->incr;
}

static void cp_fill_itimers(struct task_struct *task,
			    struct sighand_struct *sighand, void *out)
{
	struct psnc_cp_itimers *kbuf = out;
	struct signal_struct *sig = task->signal;
	ktime_t rem;

	/* itimer_get_remtime() of kernel/time/itimer.c. */
	rem = __hrtimer_get_remaining(&sig->real_timer, true);
	if (hrtimer_active(&sig->real_timer))
		kbuf->timer[PSNC_CP_ITIMER_REAL].value_ns =
			rem <= 0 ? NSEC_PER_USEC : ktime_to_ns(rem);
	else
		kbuf->timer[PSNC_CP_ITIMER_REAL].value_ns = 0;
	kbuf->timer[PSNC_CP_ITIMER_REAL].interval_ns = ktime_to_ns(sig->it_real_incr);
	cp_cpu_itimer(sig, CPUCLOCK_VIRT, &kbuf->timer[PSNC_CP_ITIMER_VIRTUAL]);
	cp_cpu_itimer(sig, CPUCLOCK_PROF, &kbuf->timer[PSNC_CP_ITIMER_PROF]);
}

static long cp_get_itimers(void __user *uarg)
{
	struct psnc_cp_itimers kbuf;
	long ret;

	/* The uapi indices are setitimer(2)'s. */
	static_assert(ITIMER_REAL == PSNC_CP_ITIMER_REAL);
	static_assert(ITIMER_VIRTUAL == PSNC_CP_ITIMER_VIRTUAL);
	static_assert(ITIMER_PROF == PSNC_CP_ITIMER_PROF);

	ret = cp_read_header(uarg, sizeof(kbuf), true, &kbuf.hdr);
	if (ret)
		return ret;
	memset(CP_BODY(&kbuf), 0, CP_BODY_LEN(&kbuf));
	ret = cp_with_stopped_task(kbuf.hdr.tid, cp_fill_itimers, &kbuf, NULL);
	if (ret)
		return ret;
	return cp_copy_body_out(uarg, CP_BODY(&kbuf), CP_BODY_LEN(&kbuf));
}

/* ---- PSNC_CP_GET_TASK_MISC ---- */

static void cp_fill_task_misc(struct task_struct *task,
			      struct sighand_struct *sighand, void *out)
{
	struct cp_misc_raw *raw = out;
	const struct pt_regs *regs = task_pt_regs(task);

	raw->out.clear_child_tid = (unsigned long)task->clear_child_tid;
	raw->out.pdeathsig = task->pdeath_signal;
	raw->out.child_subreaper = task->signal->is_child_subreaper;

	/*
	 * The restart block means something only while the system call's
	 * return value still says -ERESTART_RESTARTBLOCK: the thread stopped
	 * on its way out of that call, before signal handling rewrote ax.
	 * Only the thread itself writes its restart block, and it is stopped.
	 */
	raw->restart.pending = (long)regs->orig_ax >= 0 &&
			       (long)regs->ax == -ERESTART_RESTARTBLOCK;
	if (raw->restart.pending) {
		raw->restart.fn = task->restart_block.fn;
		raw->restart.clockid = task->restart_block.nanosleep.clockid;
		raw->restart.expires = task->restart_block.nanosleep.expires;
	}
}

/* The current time of an hrtimer clock, or false for another clock. */
static bool cp_clock_now(clockid_t clockid, ktime_t *now)
{
	switch (clockid) {
	case CLOCK_REALTIME:
		*now = ktime_get_real();
		return true;
	case CLOCK_MONOTONIC:
		*now = ktime_get();
		return true;
	case CLOCK_BOOTTIME:
		*now = ktime_get_boottime();
		return true;
	case CLOCK_TAI:
		*now = ktime_get_clocktai();
		return true;
	default:
		return false;
	}
}

/*
 * Classifies a pending restart by its function. The restart functions are
 * static and do_no_restart_syscall() is not exported, so they are told
 * apart by symbol name (CONFIG_KALLSYMS); an unknown name is reported as
 * PSNC_CP_RESTART_OTHER, never guessed.
 */
static void cp_classify_restart(const struct cp_restart_raw *raw,
				struct psnc_cp_task_misc *out)
{
	static const struct {
		const char *name;
		u32 kind;
	} known[] = {
		{ "hrtimer_nanosleep_restart", PSNC_CP_RESTART_NANOSLEEP },
		{ "posix_cpu_nsleep_restart", PSNC_CP_RESTART_CPU_NANOSLEEP },
		{ "futex_wait_restart", PSNC_CP_RESTART_FUTEX_WAIT },
		{ "do_restart_poll", PSNC_CP_RESTART_POLL },
	};
	char name[128];
	ktime_t now;
	size_t i;

	out->restart_kind = PSNC_CP_RESTART_NONE;
	out->restart_clockid = -1;
	out->restart_remaining_ns = 0;
	if (!raw->pending)
		return;

	out->restart_kind = PSNC_CP_RESTART_OTHER;
	snprintf(name, sizeof(name), "%ps", raw->fn);
	for (i = 0; i < ARRAY_SIZE(known); i++) {
		if (!strcmp(name, known[i].name)) {
			out->restart_kind = known[i].kind;
			break;
		}
	}
	if (out->restart_kind != PSNC_CP_RESTART_NANOSLEEP)
		return;
	if (!cp_clock_now(raw->clockid, &now)) {
		out->restart_kind = PSNC_CP_RESTART_OTHER;
		return;
	}
	/* hrtimer_expires_remaining(), as do_nanosleep() computes rmtp. */
	out->restart_clockid = raw->clockid;
	out->restart_remaining_ns =
		(s64)raw->expires > ktime_to_ns(now) ? raw->expires - ktime_to_ns(now) : 0;
}

static long cp_get_task_misc(void __user *uarg)
{
	struct task_struct *task;
	struct cp_misc_raw raw;
	struct mm_struct *mm;
	long ret;

	ret = cp_read_header(uarg, sizeof(raw.out), true, &raw.out.hdr);
	if (ret)
		return ret;
	memset(CP_BODY(&raw.out), 0, CP_BODY_LEN(&raw.out));
	memset(&raw.restart, 0, sizeof(raw.restart));
	ret = cp_with_stopped_task(raw.out.hdr.tid, cp_fill_task_misc, &raw, &task);
	if (ret)
		return ret;

	/*
	 * brk and dumpable belong to the mm, which may sleep to lock. The
	 * thread may have been killed since the unlock: then it has no mm.
	 */
	mm = get_task_mm(task);
	put_task_struct(task);
	if (!mm)
		return -ESRCH;
	ret = mmap_read_lock_killable(mm);
	if (ret) {
		mmput(mm);
		return ret;
	}
	raw.out.brk = mm->brk;
	mmap_read_unlock(mm);
	raw.out.dumpable = get_dumpable(mm);
	mmput(mm);

	cp_classify_restart(&raw.restart, &raw.out);
	return cp_copy_body_out(uarg, CP_BODY(&raw.out), CP_BODY_LEN(&raw.out));
}

/* ---- PSNC_CP_GET_TASK_MISC2 ---- */

static void cp_fill_task_misc2(struct task_struct *task,
			       struct sighand_struct *sighand, void *out)
{
	struct psnc_cp_task_misc2 *kbuf = out;

	rcu_read_lock();
	kbuf->securebits = __task_cred(task)->securebits;
	rcu_read_unlock();
#if defined(CONFIG_FUTEX) && defined(CONFIG_COMPAT)
	/* Only the thread itself sets it, and it is stopped. */
	kbuf->compat_robust_list = (unsigned long)task->compat_robust_list;
	kbuf->compat_robust_list_len = sizeof(struct compat_robust_list_head);
#endif
}

static long cp_get_task_misc2(void __user *uarg)
{
	struct psnc_cp_task_misc2 kbuf;
	long ret;

	ret = cp_read_header(uarg, sizeof(kbuf), true, &kbuf.hdr);
	if (ret)
		return ret;
	memset(CP_BODY(&kbuf), 0, CP_BODY_LEN(&kbuf));
	ret = cp_with_stopped_task(kbuf.hdr.tid, cp_fill_task_misc2, &kbuf, NULL);
	if (ret)
		return ret;
	return cp_copy_body_out(uarg, CP_BODY(&kbuf), CP_BODY_LEN(&kbuf));
}

/* ---- PSNC_CP_GET_POSIX_TIMERS ---- */

/*
 * common_timer_get() of kernel/time/posix-timers.c for a timer on an
 * hrtimer clock, without changing the timer: that function forwards the
 * expiry of a periodic timer whose signal is still queued (and adds to
 * it_overrun) under it_lock; this computes the same value from the
 * unforwarded expiry. Siglock held by the caller; it_lock is not taken (the
 * expiry callback takes it_lock and then the siglock).
 *
 * Returns false when the value cannot be read consistently: the expiry
 * callback is running on another CPU (it writes it_active and
 * it_requeue_pending under it_lock only, then waits for our siglock).
 */
static bool cp_hrtimer_posix_value(struct k_itimer *timr, u64 *value_ns)
{
	struct hrtimer *timer = &timr->it.real.timer;
	bool sig_none = READ_ONCE(timr->it_sigev_notify) == SIGEV_NONE;
	ktime_t iv = READ_ONCE(timr->it_interval);
	int requeue = READ_ONCE(timr->it_requeue_pending);
	int active = READ_ONCE(timr->it_active);
	ktime_t rem;

	if (hrtimer_callback_running(timer))
		return false;

	*value_ns = 0;
	if (!iv && !active && !sig_none)
		goto out;
	/* common_hrtimer_remaining(): the base's clock, adjusted like it. */
	rem = __hrtimer_get_remaining(timer, true);
	if (iv && ((requeue & REQUEUE_PENDING) || sig_none) && rem <= 0) {
		/* hrtimer_forward(): the first expiry after now. */
		u64 step = max_t(u64, ktime_to_ns(iv), hrtimer_resolution);
		u64 late = -ktime_to_ns(rem);
		u64 into;

		div64_u64_rem(late, step, &into);
		rem = step - into;
	}
	if (rem > 0)
		*value_ns = ktime_to_ns(rem);
	else if (!sig_none)
		*value_ns = 1;	/* expired, signal not yet delivered */
out:
	/* A callback that started meanwhile may have changed what was read. */
	return !hrtimer_callback_running(timer);
}

static void cp_fill_posix_timers(struct task_struct *task,
				 struct sighand_struct *sighand, void *out)
{
	struct psnc_cp_posix_timers *kbuf = out;
	struct k_itimer *timr;

	/*
	 * The list changes only under the siglock (timer_create,
	 * timer_delete, exit_itimers), as /proc/PID/timers relies on.
	 */
	list_for_each_entry(timr, &task->signal->posix_timers, list) {
		struct psnc_cp_posix_timer *t;

		if (kbuf->nr == PSNC_CP_MAX_POSIX_TIMERS) {
			kbuf->flags |= PSNC_CP_PTIMERS_MORE;
			break;
		}
		t = &kbuf->timer[kbuf->nr++];
		t->id = timr->it_id;
		t->clockid = timr->it_clock;
		t->sigev_notify = timr->it_sigev_notify;
		t->signo = timr->sigq ? timr->sigq->info.si_signo : 0;
		t->overrun = READ_ONCE(timr->it_overrun);
		t->interval_ns = ktime_to_ns(READ_ONCE(timr->it_interval));
		switch (timr->it_clock) {
		case CLOCK_REALTIME:
		case CLOCK_MONOTONIC:
		case CLOCK_BOOTTIME:
		case CLOCK_TAI:
			if (cp_hrtimer_posix_value(timr, &t->value_ns))
				t->flags |= PSNC_CP_PTIMER_VALUE_KNOWN;
			else
				t->value_ns = 0;
			break;
		default:
			/* CPU-time clocks (it.cpu) and alarm timers. */
			break;
		}
	}
}

static long cp_get_posix_timers(void __user *uarg)
{
	/* 1.5 KiB. */
	return cp_get_large(uarg, sizeof(struct psnc_cp_posix_timers),
			    cp_fill_posix_timers);
}

/* ---- the device ---- */

static long cp_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case PSNC_CP_GET_VERSION:
		return cp_get_version(uarg);
	case PSNC_CP_GET_SIGACTIONS:
		return cp_get_sigactions(uarg);
	case PSNC_CP_GET_SIGALTSTACK:
		return cp_get_sigaltstack(uarg);
	case PSNC_CP_GET_ITIMERS:
		return cp_get_itimers(uarg);
	case PSNC_CP_GET_TASK_MISC:
		return cp_get_task_misc(uarg);
	case PSNC_CP_GET_TASK_MISC2:
		return cp_get_task_misc2(uarg);
	case PSNC_CP_GET_POSIX_TIMERS:
		return cp_get_posix_timers(uarg);
	default:
		return -ENOTTY;
	}
}

static ssize_t cp_read(struct file *file, char __user *buf, size_t len,
		       loff_t *pos)
{
	return -EINVAL;
}

static ssize_t cp_write(struct file *file, const char __user *buf, size_t len,
			loff_t *pos)
{
	return -EINVAL;
}

static int cp_release(struct inode *inode, struct file *file)
{
	return 0;
}

static const struct file_operations cp_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.release = cp_release,
	.read = cp_read,
	.write = cp_write,
	.llseek = noop_llseek,
	.unlocked_ioctl = cp_ioctl,
	/* Every struct has one layout for i386 and x86_64 callers. */
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice cp_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "checkpoint",
	.fops = &cp_fops,
	.mode = 0600,
};

static int __init cp_init(void)
{
	int ret;

	ret = misc_register(&cp_miscdev);
	if (ret) {
		pr_err("cannot register /dev/checkpoint: %d\n", ret);
		return ret;
	}
	pr_info("/dev/checkpoint ready, ABI %d, version %s\n",
		PSNC_CP_ABI_VERSION, PSNC_CP_MODULE_VERSION);
	return 0;
}

static void __exit cp_exit(void)
{
	misc_deregister(&cp_miscdev);
}

module_init(cp_init);
module_exit(cp_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Read-only kernel state of ptrace-stopped threads for checkpointing");
MODULE_VERSION(PSNC_CP_MODULE_VERSION);
