#!/usr/bin/env bash
# Cold backlog benchmark (issue 25): a consumer catching up on a backlog whose commit-log
# pages were evicted from the page cache, our release mqbroker vs the Java 5.3.3 broker
# (both behind our mqnamesrv), next to the disk's sequential read speed of the same files
# (dd iflag=direct), with the p50/p99 of a second, hot reader's pulls meanwhile. The
# benchmark itself is compat-tests/src/bin/bench_backlog.rs (method described there);
# results and the command go to docs/BENCHMARKS.md ("Cold backlog").
#
#   scripts/bench-backlog.sh [--size-mib 2048] [--body 4000] [--mode pull-direct|pull|push]
#                            [--only ours,java] [--keep DIR]
#
# BENCH_BINS=<dir> runs mqbroker/mqnamesrv from <dir> (not built then). Needs cargo, java
# (17), mvn (first run), python3, fincore (util-linux), dd, and about twice --size-mib of
# free disk (one broker's data at a time; deleted at the end unless --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java mvn python3 fincore dd; do
  command -v "$tool" >/dev/null || { echo "bench-backlog.sh: '$tool' is required but not installed" >&2; exit 1; }
done
if [ -z "${BENCH_BINS:-}" ]; then
  cargo build --release --locked -p nameserver -p broker --bins
fi
cargo build --release --locked -p compat-tests --bin bench_backlog
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/bench_backlog" "$@"
