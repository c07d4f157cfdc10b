#!/usr/bin/env bash
# The independent Python reader (spec/reader/) against the example and golden images, and the
# hex walkthrough of spec/FORMAT.md against the example bytes. Python 3 standard library only.
set -eu
cd "$(dirname "$0")/../.."
exec python3 -m unittest discover -s spec/reader -v
