#!/usr/bin/env bash
# The kernel module /dev/checkpoint: builds it against Debian's 6.1 kernel and runs its tests,
# and the end-to-end tests of the psnc tools with and without it, in a QEMU guest; images move
# between the host's kernel and the guest's (kmod/vm/run-tests.sh). About 3 minutes when the
# psnc tools must be built statically from cold, 40-60 s after that; the first run also
# downloads ~85 MB of Debian packages into /var/cache/psnc-kmod. Exit status: 0 pass, 1 test
# failure, 2 setup error.
set -eu
cd "$(dirname "$0")/../.."
exec timeout --kill-after=30 1800 bash kmod/vm/run-tests.sh
