#!/usr/bin/env bash
# The kernel module /dev/checkpoint: builds it against Debian's 6.1 kernel and runs its tests in
# a QEMU guest (kmod/vm/run-tests.sh). About 2 minutes when the psnc tools must be built
# statically from cold, 20 s after that; the first run also downloads ~85 MB of Debian packages
# into /var/cache/psnc-kmod. Exit status: 0 pass, 1 test failure, 2 setup error.
set -eu
cd "$(dirname "$0")/../.."
exec timeout --kill-after=30 1800 bash kmod/vm/run-tests.sh
