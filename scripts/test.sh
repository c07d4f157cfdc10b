#!/usr/bin/env bash
# The single test command of psnc-cr (CI runs it through .ci/run, as root, on a fresh clone).
#
#   1. installs what the tests need (apt-get, only when something is missing; it waits for the
#      apt/dpkg locks when another apt-get runs)
#   2. cargo build --workspace --bins   (the end-to-end tests run the real tool binaries)
#   3. every scripts/test.d/*.sh, in name order (extra test steps; each must exit 0)
#   4. cargo test --workspace --no-fail-fast
#   5. a summary: cargo's "test result" lines, the status of every step, and how many checks
#      were skipped and why (each skip appends "SKIP <what>: <why>" to $PSNC_SKIP_LOG)
# Exits non-zero when any step fails, and in CI (CI set, not "false"/"0", or PSNC_REQUIRE_ALL=1)
# also when any check was skipped. Honors CARGO_TARGET_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/psnc-test.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT
failed=()
steps=()
# Every skipped check appends one line here (psnc-testkit, and the test.d steps).
export PSNC_SKIP_LOG="$log_dir/skips.log"
: >"$PSNC_SKIP_LOG"

note() { printf '\n==> %s\n' "$*"; }

# Whether skips are failures: the same rule as psnc_testkit::skips_are_fatal.
skips_fatal() {
	case "${CI:-}" in '' | false | 0) [ "${PSNC_REQUIRE_ALL:-}" = 1 ] ;; *) true ;; esac
}

# apt-get that waits (up to 10 minutes) for another apt-get or dpkg instead of failing: dpkg's
# lock through DPkg::Lock::Timeout, the lists lock of `update` by retrying.
apt_get() {
	local deadline=$((SECONDS + 600)) out rc
	while :; do
		out=$(apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1) && return 0
		rc=$?
		if [ $SECONDS -lt $deadline ] &&
			grep -qE 'Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock' <<<"$out"; then
			echo "apt-get $1: waiting for another apt-get or dpkg to finish" >&2
			sleep 5
			continue
		fi
		printf '%s\n' "$out" >&2
		return $rc
	done
}

# ---- 1. packages ----------------------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have cc || missing+=(gcc)
have make || missing+=(make)
if have cc && ! echo 'int main(void){return 0;}' | cc -m32 -x c - -o "$log_dir/m32" 2>/dev/null; then
	missing+=(gcc-multilib)
fi
have readelf || missing+=(binutils)
have file || missing+=(file)
# The syscall-number tests compare with the kernel's uapi headers.
for h in unistd_32.h unistd_64.h; do
	[ -e "/usr/include/x86_64-linux-gnu/asm/$h" ] || [ -e "/usr/include/asm/$h" ] ||
		{ missing+=(linux-libc-dev); break; }
done
have python3 || missing+=(python3)
have tmux || missing+=(tmux)
have nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# nft: psnc-capture --tcp-established locks the connections with it (the tcp_established tests).
have nft || [ -x /usr/sbin/nft ] || missing+=(nftables)
# PostgreSQL for the servers test; no cluster of its own started by the package's postinst.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! have psql; then
	missing+=(postgresql postgresql-client)
	if [ "$(id -u)" = 0 ] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
fi
have setpriv || missing+=(util-linux)
have mount || missing+=(mount)
have bash || missing+=(bash)
if [ ${#missing[@]} -gt 0 ]; then
	note "installing: ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt_get update -q && apt_get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
			|| { echo "apt-get install failed" >&2; failed+=("apt-get install ${missing[*]}"); }
	else
		echo "not root: install ${missing[*]} by hand (the tests that need them will fail)" >&2
	fi
fi

# ---- 2. build ---------------------------------------------------------------------------------
note "cargo build --workspace --bins"
if cargo build --workspace --bins; then
	steps+=("build: ok")
else
	steps+=("build: FAILED")
	failed+=("cargo build")
fi

# ---- 3. extra test steps (other parts of the project add theirs here) -----------------------
# Each scripts/test.d/NN-name.sh runs from the repository root with bash; non-zero = failure.
for step in "$root"/scripts/test.d/*.sh; do
	[ -e "$step" ] || continue
	name=$(basename "$step")
	note "test step $name"
	if bash "$step"; then
		steps+=("$name: ok")
	else
		steps+=("$name: FAILED")
		failed+=("$name")
	fi
done

# ---- 4. cargo test ----------------------------------------------------------------------------
note "cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$log_dir/cargo-test.log"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
	steps+=("cargo test: ok")
else
	steps+=("cargo test: FAILED")
	failed+=("cargo test")
fi

# ---- 5. summary -------------------------------------------------------------------------------
note "summary"
grep -E '^\s+Running |^\s+Doc-tests |^test result:|^error: test failed|^error: [0-9]+ targets? failed' \
	"$log_dir/cargo-test.log" | sed 's/^ *//'
printf '%s\n' "${steps[@]}"
skipped=$(grep -c '^SKIP ' "$PSNC_SKIP_LOG")
if [ "$skipped" -gt 0 ]; then
	echo "skipped: $skipped checks, by reason:"
	# "SKIP <what>: <why>": <why> is everything after the first ": ".
	while IFS= read -r line; do
		rest=${line#SKIP }
		printf '%s\n' "${rest#*: }"
	done < <(grep '^SKIP ' "$PSNC_SKIP_LOG") | sort | uniq -c | sort -rn |
		while read -r n why; do printf '  %4d  %s\n' "$n" "$why"; done
	if skips_fatal; then
		failed+=("$skipped skipped checks (CI runs every check: install what they name)")
	fi
else
	echo "skipped: none"
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "all tests passed"
