#!/bin/sh
# Fuzzes the image reader for a bounded time (default 60 s; PSNC_FUZZ_SECONDS overrides).
#
# Seeds: the example images of spec/examples/ and the golden images of every released version.
# Needs the nightly toolchain (libFuzzer, sanitizers); installs cargo-fuzz when it is missing.
# Without nightly the run is skipped outside CI (a SKIP line in $PSNC_SKIP_LOG, which
# scripts/test.sh counts) and fails in CI (CI set, not "false"/"0", or PSNC_REQUIRE_ALL=1), like
# every skip of psnc-testkit. A crash fails the script; cargo-fuzz prints the input it saved
# under fuzz/artifacts/reader/ and the command to replay it.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${PSNC_FUZZ_SECONDS:-60}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    case "${CI:-}" in '' | false | 0) fatal=${PSNC_REQUIRE_ALL:-} ;; *) fatal=1 ;; esac
    if [ "$fatal" = 1 ]; then
        echo "30-fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
        exit 1
    fi
    line="SKIP 30-fuzz: no nightly toolchain (rustup toolchain install nightly)"
    echo "$line; CI must have it"
    if [ -n "${PSNC_SKIP_LOG:-}" ]; then echo "$line" >>"$PSNC_SKIP_LOG"; fi
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "30-fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# Its own target dir: nightly sanitizer builds share nothing with the workspace's. Under the
# caller's CARGO_TARGET_DIR when one is set, else fuzz/target; PSNC_FUZZ_TARGET_DIR overrides.
if [ -n "${PSNC_FUZZ_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="$PSNC_FUZZ_TARGET_DIR"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
else
    export CARGO_TARGET_DIR="$root/fuzz/target"
fi
corpus="$root/fuzz/corpus/reader"
mkdir -p "$corpus"
for seed in "$root"/spec/examples/*.psnc "$root"/crates/format/tests/golden/*/*.psnc; do
    [ -f "$seed" ] && cp -f "$seed" "$corpus/seed-$(basename "$(dirname "$seed")")-$(basename "$seed")"
done

cd "$root/fuzz"
# LeakSanitizer: suppress glibc's thread-local destructor list, freed only at exit (lsan.supp).
export LSAN_OPTIONS="suppressions=$root/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
echo "30-fuzz: fuzzing the image reader for ${secs}s"
exec cargo +nightly fuzz run reader "$corpus" -- \
    -max_total_time="$secs" -dict="$root/fuzz/reader.dict" -max_len=65536 -timeout=10 \
    -print_final_stats=1
