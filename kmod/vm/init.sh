#!/bin/busybox sh
# /init of the test guest: loads /dev/checkpoint, runs the module tests, unloads it, and prints
# one verdict line for kmod/vm/run-tests.sh:
#   PSNC-KMOD-VERDICT: PASS|FAIL steps=N failed=M kernel=RELEASE
# Every step prints PSNC-STEP-PASS/FAIL NAME. The guest powers off in every case.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# CONFIG_DEVTMPFS_MOUNT is off in Debian's kernel: without this /dev/checkpoint never appears.
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp

echo "PSNC-GUEST: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
steps=0
failed=0
step() {
	name=$1
	shift
	steps=$((steps + 1))
	t0=$(cut -d' ' -f1 /proc/uptime)
	if "$@"; then
		echo "PSNC-STEP-PASS $name ($(cut -d' ' -f1 /proc/uptime) s uptime, began $t0)"
	else
		failed=$((failed + 1))
		echo "PSNC-STEP-FAIL $name"
	fi
}

# Only messages from here on count for the oops check.
dmesg -c >/dev/null

devnode_ok() {
	[ -c /dev/checkpoint ] && [ "$(stat -c %a:%u /dev/checkpoint)" = "600:0" ]
}
busy_while_open() {
	# An open file pins the module: rmmod must refuse, and work once it is closed.
	( exec 3</dev/checkpoint; ! rmmod psnc_checkpoint 2>/dev/null )
}
dmesg_clean() {
	# The taint messages of an unsigned out-of-tree module are expected; nothing else of
	# these may appear.
	dmesg | grep -v -e 'loading out-of-tree module taints kernel' \
		-e 'module verification failed: signature and/or required key missing' > /tmp/dmesg
	if grep -E 'BUG|WARNING|Oops|general protection|Call Trace|refcount_t|UBSAN|list_(add|del) corruption|psnc_checkpoint: .*(error|fail|cannot)' /tmp/dmesg; then
		return 1
	fi
	return 0
}
rust_smoke() {
	# The static Rust tools start on this kernel (real capture tests come with --kmod).
	for b in /psnc-capture /psnc-restore /psnc-imgtool; do
		[ -x "$b" ] || continue
		"$b" --help >/dev/null || { echo "$b --help failed"; return 1; }
		echo "$b runs"
	done
}

step load insmod /psnc_checkpoint.ko
step devnode devnode_ok
# Each test under its own timeout, so one hang still leaves a verdict.
step cptest-x86_64 timeout 150 /cptest64
step cptest-i386 timeout 150 /cptest32
step x86_64-caller-i386-targets timeout 90 /cptest64 --target-exe /cptest32
step i386-caller-x86_64-targets timeout 90 /cptest32 --target-exe /cptest64
step busy-while-open busy_while_open
step unload rmmod psnc_checkpoint
step devnode-gone test ! -e /dev/checkpoint
step reload-unload sh -c 'insmod /psnc_checkpoint.ko && timeout 150 /cptest64 >/dev/null && rmmod psnc_checkpoint'
if ls /psnc-* >/dev/null 2>&1; then
	step rust-static rust_smoke
fi
step dmesg-clean dmesg_clean

if [ "$failed" -eq 0 ]; then verdict=PASS; else verdict=FAIL; fi
if [ "$failed" -ne 0 ]; then
	echo "---- guest dmesg ----"
	dmesg | tail -n 60
fi
echo "PSNC-KMOD-VERDICT: $verdict steps=$steps failed=$failed kernel=$(uname -r)"
poweroff -f
