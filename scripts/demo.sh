#!/usr/bin/env bash
# Demo of psnc-cr: start a counter, capture it, kill it, restore it, watch it count on.
#
#   scripts/demo.sh          (as root: capture uses ptrace, restore recreates the same PID)
#
# Builds the tools in release mode, compiles a tiny C counter that prints an incrementing number
# every 0.5 s to a log file, captures it with psnc-capture --kill, restores it with psnc-restore,
# and prints the log lines around the checkpoint. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-$(pwd)/target}
bin=$target_dir/release
work=$(mktemp -d "${TMPDIR:-/tmp}/psnc-demo.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building psnc-capture and psnc-restore (release)"
cargo build --release -q -p psnc-capture -p psnc-restore

cat > "$work/counter.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void)
{
	struct timespec half = { 0, 500000000L };
	unsigned long n = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		printf("count %lu\n", ++n);
		nanosleep(&half, NULL);
	}
}
C
cc -O1 -o "$work/counter" "$work/counter.c"

step "starting the counter (prints every 0.5 s to $work/log)"
# Only stdin/stdout/stderr: a descriptor inherited from whatever started this script (a build
# tool's jobserver pipe, say) would be state with its other end outside the image.
(
	for fd in $(ls "/proc/$BASHPID/fd"); do
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$work/counter"
) >> "$work/log" 2>&1 < /dev/null &
pid=$!
sleep 3
tail -n 2 "$work/log"

step "psnc-capture $pid -o $work/counter.img --kill"
# bash reports a killed background job on its own stderr: keep that quiet while the tool talks.
exec 3>&2 2>/dev/null
if ! "$bin/psnc-capture" "$pid" -o "$work/counter.img" --kill 2>&3; then
	exec 2>&3
	echo "demo: psnc-capture failed (is capture implemented yet? see issue 3)" >&2
	exit 1
fi
wait "$pid" || true
exec 2>&3 3>&-
last=$(tail -n 1 "$work/log")
echo "killed; last line before the checkpoint: $last"
ls -l "$work/counter.img"
sleep 1.5
echo "1.5 s later the log still ends with: $(tail -n 1 "$work/log")"

step "psnc-restore $work/counter.img"
# Its stdout goes to a file, not a pipe: nothing may hold a pipe of ours open.
if ! "$bin/psnc-restore" "$work/counter.img" > "$work/restore.out"; then
	echo "demo: psnc-restore failed (is restore implemented yet? see issue 3)" >&2
	exit 1
fi
pid=$(tail -n 1 "$work/restore.out")
echo "restored as PID $pid"
sleep 3

step "the log around the checkpoint"
awk -v last="$last" '
	{ line[NR] = $0 } $0 == last { at = NR }
	END { for (i = at - 3; i <= at + 4 && i <= NR; i++) if (i > 0)
		printf "  %s%s\n", line[i], i == at ? "   <- captured here, then killed and restored" : "" }
' "$work/log"
echo "  ..."
echo "  now: $(tail -n 1 "$work/log")"
kill -9 "$pid"
pid=
step "done: the counter went on from where it stopped"
