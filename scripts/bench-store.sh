#!/usr/bin/env bash
# Store append benchmark: in-process puts of 1 KiB messages through
# store::MessageStore with ASYNC_FLUSH (one writer) and SYNC_FLUSH (group
# commit, many writers), against a plain sequential write + fsync of the same
# size in the same folder, measured in the same run. Results and the command
# go to docs/BENCHMARKS.md.
#
#   scripts/bench-store.sh [DIR] [MIB] [SYNC_THREADS]
#
# DIR (default target/bench-store) must be on the disk to measure (not tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "bench-store.sh: 'cargo' is required but not installed" >&2; exit 1; }
exec cargo run --release --locked -p store --example append_bench -- "$@"
