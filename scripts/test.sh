#!/usr/bin/env bash
# The single test command of psnc-cr (CI runs it through .ci/run, as root, on a fresh clone).
#
#   1. installs what the tests need (apt-get, only when something is missing)
#   2. cargo build --workspace --bins   (the end-to-end tests run the real tool binaries)
#   3. every scripts/test.d/*.sh, in name order (extra test steps; each must exit 0)
#   4. cargo test --workspace --no-fail-fast
#   5. a summary: cargo's "test result" lines and the status of every step
# Exits non-zero when any step fails. Honors CARGO_TARGET_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/psnc-test.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT
failed=()
steps=()

note() { printf '\n==> %s\n' "$*"; }

# ---- 1. packages ----------------------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have cc || missing+=(gcc)
have make || missing+=(make)
if have cc && ! echo 'int main(void){return 0;}' | cc -m32 -x c - -o "$log_dir/m32" 2>/dev/null; then
	missing+=(gcc-multilib)
fi
have python3 || missing+=(python3)
have setpriv || missing+=(util-linux)
have mount || missing+=(mount)
have bash || missing+=(bash)
if [ ${#missing[@]} -gt 0 ]; then
	note "installing: ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" \
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
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "all tests passed"
