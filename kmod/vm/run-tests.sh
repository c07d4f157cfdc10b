#!/usr/bin/env bash
# Builds /dev/checkpoint against Debian's 6.1 kernel and tests it in a QEMU guest.
#
# This host cannot load modules, so everything module-related runs in a guest booted from
# Debian's kernel with a busybox initramfs (see /work/shared/notes/KMOD-VM.md, or the README).
# Idempotent: what is already there (host packages, the extracted kernel) is reused.
#
#   1. host packages: qemu-system-x86 busybox-static cpio kmod build-essential gcc-multilib
#   2. Debian's kernel image, headers, headers-common and kbuild at a pinned version:
#      apt-get download + dpkg-deb -x into $CACHE (never installed on the host)
#   3. the module, with W=1 (any warning fails), and a check of every symbol it imports
#      against that kernel's Module.symvers
#   4. the uapi layout: kmod/tests/layout.c for x86_64 and i386 against the Rust mirror
#      (crates/ptrace/src/kmod/uapi.rs)
#   5. static test binaries: cptest for x86_64 and i386, the self-verifying targets counter and
#      signals of tests/targets and capture's state and threads targets (x86_64 and i386), and
#      the psnc tools
#   6. an image captured on this host (a static counter), for the guest to refuse
#   7. an initramfs (busybox + kmod/vm/init.sh as /init), booted with QEMU (TCG; KVM only
#      where the CPU has hardware virtualization), always under a timeout; in the guest the
#      module tests, then capture/kill/restore with --kmod always and never, the same stopped
#      process captured both ways (identical images), and an image for the host, which comes
#      out base64-encoded on the second serial port
#   8. the guest's image restored here: refused, with the reason named
#   9. the guest's verdict line becomes the exit status: 0 pass, 1 test failure, 2 setup error
#
# Environment: PSNC_KMOD_CACHE (default /var/cache/psnc-kmod), PSNC_KMOD_KPKG_VERSION and
# PSNC_KMOD_KABI (the pin), PSNC_KMOD_GUEST_TIMEOUT (seconds, default 420), PSNC_KMOD_RUST=0
# (skip the Rust tools and the end-to-end tests), PSNC_KMOD_CARGO_TARGET_DIR,
# PSNC_KMOD_ACCEL=tcg|kvm|auto, PSNC_KMOD_TCG_CPU (default max,pku=off).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kmod=$(dirname "$here")
repo=$(dirname "$kmod")

# The pin: Debian bookworm-security's 6.1 kernel. Image and headers must share the ABI string.
kpkg_version=${PSNC_KMOD_KPKG_VERSION:-6.1.192-2}
kabi=${PSNC_KMOD_KABI:-6.1.0-56}
cache=${PSNC_KMOD_CACHE:-/var/cache/psnc-kmod}
guest_timeout=${PSNC_KMOD_GUEST_TIMEOUT:-420}
accel=${PSNC_KMOD_ACCEL:-auto}
# TCG's "max" CPU without PKU and without the instruction-set flags TCG emulates but this host
# lacks (on an Intel host TCG still offers AMD's mmxext and sse4a): so the guest's flags are a
# subset of the host's, and the host refuses a guest image for its vdso, the check after the
# CPU's (the guest still lacks the host's AVX-512, so the other direction fails on the CPU).
default_tcg_cpu() {
	local cpu="max,pku=off" host_flags f
	host_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
	for f in mmxext sse4a 3dnowprefetch xop fma4 tbm clzero; do
		case "$host_flags" in *" $f "*) ;; *) cpu="$cpu,-$f" ;; esac
	done
	echo "$cpu"
}
tcg_cpu=${PSNC_KMOD_TCG_CPU:-$(default_tcg_cpu)}
cargo_target=${PSNC_KMOD_CARGO_TARGET_DIR:-$repo/target/kmod-static}

t_start=$(date +%s)
say() { printf '[kmod-vm %3ss] %s\n' "$(($(date +%s) - t_start))" "$*"; }
die() { say "SETUP ERROR: $*" >&2; exit 2; }

# ---- 1. host packages -------------------------------------------------------------------------
host_packages() {
	local pkgs=(qemu-system-x86 busybox-static cpio kmod build-essential gcc-multilib) missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "not root; install by hand: ${missing[*]}"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 300 apt-get update -q >/dev/null || die "apt-get update failed"
	timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

# ---- 2. the kernel ----------------------------------------------------------------------------
set_kernel_paths() {
	kroot=$cache/root-$kpkg_version
	kver=$kabi-amd64
	kdir=$kroot/usr/src/linux-headers-$kver
	vmlinuz=$kroot/boot/vmlinuz-$kver
}
set_kernel_paths

# Downloads and extracts the kernel into $kroot unless it is there. Runs under $cache/.lock, so
# concurrent runs do not extract over each other.
fetch_kernel() {
	local want_pkgs
	if [ -e "$kroot/.complete" ]; then
		return 0
	fi
	want_pkgs=(
		"linux-image-$kver=$kpkg_version"
		"linux-headers-$kver=$kpkg_version"
		"linux-headers-$kabi-common=$kpkg_version"
		"linux-kbuild-6.1=$kpkg_version"
	)
	mkdir -p "$cache/debs"
	say "downloading Debian kernel $kver ($kpkg_version)"
	if ! (cd "$cache/debs" && timeout 600 apt-get download -q -o APT::Sandbox::User=root \
		"${want_pkgs[@]}" >/dev/null); then
		# Try once more after refreshing the lists, then explain how to move the pin.
		timeout 300 apt-get update -q >/dev/null || true
		if ! (cd "$cache/debs" && timeout 600 apt-get download -q -o APT::Sandbox::User=root \
			"${want_pkgs[@]}" >/dev/null); then
			# Debian keeps only the newest security build, so a pin goes stale. Follow
			# linux-image-amd64's candidate instead of failing, and say so loudly.
			local v a
			v=$(apt-cache policy linux-image-amd64 | awk '/Candidate:/ {print $2}')
			a=$(apt-cache show "linux-image-amd64=$v" 2>/dev/null |
				sed -n 's/^Depends:.*linux-image-\([0-9.]*-[0-9]*\)-amd64.*/\1/p' | head -1)
			case "$v:$a" in
			6.1.*:6.1.*) ;;
			*) die "cannot download the pinned kernel $kver=$kpkg_version and \
linux-image-amd64's candidate ($v, ABI $a) is not a 6.1 kernel. Move the pin: \
PSNC_KMOD_KPKG_VERSION=V PSNC_KMOD_KABI=A, then update the defaults in kmod/vm/run-tests.sh." ;;
			esac
			say "WARNING: pinned kernel $kpkg_version is gone from the archive; using the \
current $v (ABI $a). Update the pin in kmod/vm/run-tests.sh."
			kpkg_version=$v kabi=$a
			set_kernel_paths
			[ -e "$kroot/.complete" ] && return 0
			want_pkgs=(
				"linux-image-$kver=$kpkg_version"
				"linux-headers-$kver=$kpkg_version"
				"linux-headers-$kabi-common=$kpkg_version"
				"linux-kbuild-6.1=$kpkg_version"
			)
			(cd "$cache/debs" && timeout 600 apt-get download -q -o APT::Sandbox::User=root \
				"${want_pkgs[@]}" >/dev/null) || die "cannot download kernel $kver=$kpkg_version"
		fi
	fi
	rm -rf "$kroot.tmp"
	mkdir -p "$kroot.tmp"
	local deb
	for deb in "$cache/debs/linux-image-${kver}_${kpkg_version}"_*.deb \
		"$cache/debs/linux-headers-${kver}_${kpkg_version}"_*.deb \
		"$cache/debs/linux-headers-${kabi}-common_${kpkg_version}"_*.deb \
		"$cache/debs/linux-kbuild-6.1_${kpkg_version}"_*.deb; do
		[ -e "$deb" ] || die "missing download $deb"
		dpkg-deb -x "$deb" "$kroot.tmp"
	done
	# The guest loads only our module: drop the kernel's own (~450 MB).
	rm -rf "$kroot.tmp/lib/modules/$kver/kernel"
	# The arch headers' Makefile includes the common tree by absolute path; point it at the
	# extracted copy. The scripts/ and tools/ links are relative and resolve inside the copy.
	sed -i "s#^include /usr/src/#include $kroot/usr/src/#" \
		"$kroot.tmp/usr/src/linux-headers-$kver/Makefile"
	rm -rf "$kroot"
	mv "$kroot.tmp" "$kroot"
	touch "$kroot/.complete"
}

# ---- 3. the module ----------------------------------------------------------------------------
build_module() {
	local out=$build/kmod log=$build/kmod-build.log sym unexported=0
	rm -rf "$out"
	mkdir -p "$out"
	cp -r "$kmod/Kbuild" "$kmod/Makefile" "$kmod/psnc_checkpoint.c" "$kmod/include" "$out/"
	if ! make -C "$out" KDIR="$kdir" W=1 >"$log" 2>&1; then
		cat "$log"
		die "module build failed"
	fi
	if grep -E 'warning:|error:' "$log"; then
		die "module build with W=1 is not clean (above)"
	fi
	# Every imported symbol must be exported by that kernel.
	for sym in $(nm -u "$out/psnc_checkpoint.ko" | awk '{print $2}'); do
		if ! grep -qP "^0x[0-9a-f]+\t\Q$sym\E\t" "$kdir/Module.symvers"; then
			say "symbol $sym is not exported by $kver"
			unexported=1
		fi
	done
	[ "$unexported" = 0 ] || die "the module imports symbols $kver does not export"
	say "module built, W=1 clean, $(nm -u "$out/psnc_checkpoint.ko" | wc -l) imported symbols all in Module.symvers"
}

# ---- 4. uapi layout ---------------------------------------------------------------------------
check_layout() {
	cc -Wall -Wextra -I"$kmod/include/uapi" -o "$build/layout64" "$kmod/tests/layout.c"
	cc -m32 -Wall -Wextra -I"$kmod/include/uapi" -o "$build/layout32" "$kmod/tests/layout.c"
	"$build/layout64" >"$build/layout64.txt"
	"$build/layout32" >"$build/layout32.txt"
	diff -u "$build/layout64.txt" "$build/layout32.txt" ||
		{ say "FAIL: i386 and x86_64 see different layouts"; return 1; }
	if command -v cargo >/dev/null; then
		# The Rust mirror's own tests build and diff the same table.
		(cd "$repo" && CARGO_TARGET_DIR=$cargo_target timeout 600 cargo test -q \
			-p psnc-ptrace --lib kmod::) >"$build/uapi_mirror_test.log" 2>&1 ||
			{ cat "$build/uapi_mirror_test.log"; say "FAIL: psnc_ptrace::kmod tests"; return 1; }
		say "uapi layout: x86_64 = i386 = crates/ptrace/src/kmod/uapi.rs"
	else
		say "uapi layout: x86_64 = i386 (no cargo: the Rust mirror not compared)"
	fi
}

# ---- 5. static binaries -----------------------------------------------------------------------
build_tests() {
	local m
	for m in 64 32; do
		cc -m$m -static -O2 -Wall -Wextra -Werror -pthread -I"$kmod/include/uapi" \
			-o "$build/initramfs/cptest$m" "$kmod/tests/cptest.c" ||
			die "cptest -m$m does not build"
	done
}

# The self-verifying targets of the end-to-end suite, static (the initramfs has no libc).
build_targets() {
	local t m
	mkdir -p "$build/initramfs/t"
	for t in counter signals; do
		for m in 64 32; do
			cc -m$m -static -O2 -s -Wall -Wextra -Werror -I"$repo/tests/targets" \
				-o "$build/initramfs/t/$t$m" "$repo/tests/targets/$t.c" ||
				die "tests/targets/$t.c -m$m does not build statically"
		done
	done
	# Capture's own targets: state (pdeathsig, subreaper, no_new_privs, a POSIX timer, ...)
	# and threads (four threads).
	for t in state threads; do
		for m in 64 32; do
			cc -m$m -static -O2 -s -Wall -Wextra -Werror -pthread \
				-o "$build/initramfs/t/$t$m" "$repo/crates/capture/tests/targets/$t.c" ||
				die "crates/capture/tests/targets/$t.c -m$m does not build statically"
		done
	done
}

# The psnc tools, statically linked. Without them (PSNC_KMOD_RUST=0, no cargo) only the module
# tests run; a tool that does not build is a setup error.
rust=0
build_rust() {
	[ "${PSNC_KMOD_RUST:-1}" = 1 ] || { say "Rust tools skipped (PSNC_KMOD_RUST=0)"; return 0; }
	command -v cargo >/dev/null || { say "Rust tools skipped: no cargo"; return 0; }
	# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, which
	# cannot be linked statically. One package at a time: a broken one leaves the others in.
	local triple=x86_64-unknown-linux-gnu b built=() broken=()
	for b in psnc-capture psnc-restore psnc-imgtool; do
		if (cd "$repo" && CARGO_TARGET_DIR=$cargo_target \
			RUSTFLAGS='-C target-feature=+crt-static' timeout 900 cargo build -q \
			--release --target $triple -p "$b" --bin "$b") >>"$build/cargo.log" 2>&1 &&
			[ -x "$cargo_target/$triple/release/$b" ]; then
			objcopy --strip-debug "$cargo_target/$triple/release/$b" "$build/initramfs/$b"
			built+=("$b")
		else
			broken+=("$b")
		fi
	done
	if [ ${#broken[@]} -ne 0 ]; then
		tail -n 30 "$build/cargo.log"
		die "the psnc tools do not build statically: ${broken[*]}"
	fi
	tools=$cargo_target/$triple/release
	rust=1
	say "Rust tools built statically: ${built[*]}"
}

# Runs "$@" in the background with only stdin/stdout/stderr open (/dev/null): an inherited
# descriptor, e.g. a pipe of the caller, would become part of a captured image.
spawn_clean() {
	(
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		exec "$@"
	) </dev/null >/dev/null 2>&1 &
	spawned=$!
	# Not a job of this shell: bash would report its SIGKILL (capture --kill) on stderr.
	disown "$spawned"
}

# An image of a static counter captured on this host, for the guest to refuse.
host_image() {
	local dir=$build/host i
	mkdir -p "$dir"
	cp "$build/initramfs/t/counter64" "$dir/counter64"
	spawn_clean "$dir/counter64" "$dir/report"
	for i in $(seq 100); do
		grep -q "^READY $spawned\$" "$dir/report" 2>/dev/null && break
		sleep 0.05
	done
	if ! "$tools/psnc-capture" "$spawned" -o "$build/initramfs/host.img" --kill \
		>"$dir/capture.log" 2>&1; then
		cat "$dir/capture.log"
		kill -9 "$spawned" 2>/dev/null
		die "cannot capture a counter on this host"
	fi
	cp "$build/initramfs/host.img" "$build/host.img"
	say "host image: $(stat -c %s "$build/host.img") bytes (counter64, kernel $(uname -r))"
}

# The guest's image on this host: it must be refused with the reason named (the vdso of
# Debian's 6.1 differs from this kernel's). Prints what else differs between the two images.
host_cross() {
	local log=$1 want got rc
	want=$(grep -a 'PSNC-GUEST-IMAGE' "$log" | tr -d '\r' | sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' | tail -n 1)
	[ -n "$want" ] || { say "FAIL: the guest sent no image"; return 1; }
	tr -d '\r' <"$build/ttyS1.out" | base64 -d | gzip -d >"$build/guest.img" ||
		{ say "FAIL: cannot decode the guest image from ttyS1"; return 1; }
	got=$(sha256sum <"$build/guest.img" | cut -d' ' -f1)
	[ "$got" = "$want" ] || { say "FAIL: guest image sha256 $got, the guest says $want"; return 1; }
	"$tools/psnc-imgtool" verify "$build/guest.img" >/dev/null ||
		{ say "FAIL: the guest image does not verify here"; return 1; }
	say "guest image: $(stat -c %s "$build/guest.img") bytes, sha256 matches, verifies"
	# The same static counter captured on both kernels: what is left after the fields that
	# differ between any two processes is what the kernels (and CPUs) make different.
	say "what differs between the host's and the guest's counter image (informational):"
	"$tools/psnc-imgtool" diff --ignore=memory,created_ns,capture_cmdline,capture_uid,\
capture_gid,hostname,cpu_flags,file,exe,files,regs,xsave,pid,tid,ppid,pgid,sid,cwd,rlimits,\
cmdline,start,end,mm,fs_base,clear_child_tid,robust_list,rseq,actions,creds \
		"$build/host.img" "$build/guest.img" 2>&1 | head -n 60 | sed 's/^/    /'
	rc=0
	"$tools/psnc-restore" "$build/guest.img" >"$build/guest-restore.out" 2>"$build/guest-restore.err" || rc=$?
	say "psnc-restore guest.img here: exit $rc: $(cat "$build/guest-restore.err")"
	if [ "$rc" = 0 ]; then
		kill -9 "$(cat "$build/guest-restore.out")" 2>/dev/null
		say "FAIL: the guest image was restored on kernel $(uname -r); its vdso should differ"
		return 1
	fi
	if grep -q 'the image needs CPU features this CPU lacks' "$build/guest-restore.err"; then
		say "FAIL: refused for CPU features before the vdso check; pick a guest CPU whose" \
			"flags this host has (PSNC_KMOD_TCG_CPU, now $tcg_cpu)"
		return 1
	fi
	[ "$rc" = 69 ] && grep -q "the image's \[vdso\] at .* differs from this kernel's" "$build/guest-restore.err" ||
		{ say "FAIL: not the expected vdso refusal"; return 1; }
}

# ---- 6. initramfs and boot --------------------------------------------------------------------
pack_initramfs() {
	local d=$build/initramfs
	mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/tmp"
	cp /bin/busybox "$d/bin/busybox"
	cp "$here/init.sh" "$d/init"
	chmod 755 "$d/init"
	cp "$build/kmod/psnc_checkpoint.ko" "$d/"
	if [ "$rust" != 1 ]; then
		rm -rf "$d/t" "$d/host.img"
	fi
	(cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$build/initramfs.cpio"
	say "initramfs $(($(stat -c %s "$build/initramfs.cpio") / 1024)) KiB"
}

# KVM here is a paravirtual device that cannot boot Debian's kernel: use it only when the CPU
# has hardware virtualization and it is asked for or auto-detected.
pick_accel() {
	case $accel in
	tcg) echo "-accel tcg -cpu $tcg_cpu" ;;
	kvm) echo "-accel kvm -cpu host" ;;
	auto)
		if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
			echo "-accel kvm -cpu host"
		else
			echo "-accel tcg -cpu $tcg_cpu"
		fi
		;;
	*) die "PSNC_KMOD_ACCEL must be tcg, kvm or auto" ;;
	esac
}

boot_guest() {
	local opts=$1 log=$2
	# shellcheck disable=SC2086 # $opts is a list of options
	rm -f "$build/ttyS1.out"
	timeout --kill-after=10 "$guest_timeout" qemu-system-x86_64 $opts -m 1024 -smp 2 \
		-display none -monitor none -serial stdio -serial "file:$build/ttyS1.out" -no-reboot \
		-kernel "$vmlinuz" -initrd "$build/initramfs.cpio" \
		-append 'console=ttyS0 panic=-1 quiet loglevel=4' >"$log" 2>&1 || true
}

main() {
	command -v timeout >/dev/null || die "no timeout(1)"
	host_packages
	if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
		die "cannot write $cache (run as root, or set PSNC_KMOD_CACHE)"
	fi
	exec 9>"$cache/.lock"
	flock 9
	fetch_kernel
	flock -u 9
	build=$(mktemp -d "${TMPDIR:-/tmp}/psnc-kmod-vm.XXXXXX")
	# Kept after a failure, for its logs.
	trap 'if [ "$?" = 0 ]; then rm -rf "$build"; else echo "work dir kept: $build" >&2; fi' EXIT
	mkdir -p "$build/initramfs"
	say "kernel $kver ($kpkg_version) from $kroot; work dir $build"
	build_module
	local layout_ok=1
	check_layout || layout_ok=0
	build_tests
	build_targets
	build_rust
	[ "$rust" = 1 ] && host_image
	pack_initramfs

	local opts log=$build/guest.log
	opts=$(pick_accel)
	say "booting the guest ($opts, timeout ${guest_timeout}s)"
	local t0
	t0=$(date +%s)
	boot_guest "$opts" "$log"
	if [[ $opts == *kvm* ]] && ! grep -aq 'PSNC-GUEST:' "$log"; then
		say "KVM did not boot the guest; falling back to TCG"
		opts="-accel tcg -cpu $tcg_cpu"
		boot_guest "$opts" "$log"
	fi
	say "guest ran $(($(date +%s) - t0)) s"
	# The BIOS writes escape codes into the log: grep -a, and show only the guest's own part.
	sed -n '/PSNC-GUEST:/,$p' "$log" | tr -d '\r' | grep -av '^\s*$' || true
	local verdict
	verdict=$(grep -a 'PSNC-KMOD-VERDICT:' "$log" | tr -d '\r' | tail -n 1 || true)
	if [ -z "$verdict" ]; then
		say "no verdict from the guest (timeout or crash); last lines of the console:"
		tail -n 40 "$log" | tr -d '\r'
		exit 1
	fi
	say "${verdict#*PSNC-KMOD-}"
	local cross_ok=1
	if [ "$rust" = 1 ]; then
		host_cross "$log" || cross_ok=0
	fi
	if [[ $verdict == *"VERDICT: PASS "* ]] && [ "$layout_ok" = 1 ] && [ "$cross_ok" = 1 ]; then
		say "PASS (total $(($(date +%s) - t_start)) s)"
		exit 0
	fi
	say "FAIL"
	exit 1
}

main "$@"
