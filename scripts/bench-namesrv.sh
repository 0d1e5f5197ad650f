#!/usr/bin/env bash
# Name server benchmark: our release `mqnamesrv` vs the official Java name
# server (NamesrvStartup 5.3.3, -Xms256m -Xmx256m) on loopback, same load
# generator for both (GET_ROUTEINFO_BY_TOPIC; one thread, pre-encoded frames,
# batched writes, its own CPU per request reported), printed side by side with
# ratios. Results and the command go to docs/BENCHMARKS.md.
#
#   scripts/bench-namesrv.sh [--duration SECS] [--warmup SECS] [--conns C]
#                            [--inflight P] [--topics N] [--settle SECS] [--rounds R]
#                            [--per-write N] [--java-version V] [--only ours|java]
#
# Needs cargo, java and (first run only, for the Java jars) mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java; do
  command -v "$tool" >/dev/null || { echo "bench-namesrv.sh: '$tool' is required but not installed" >&2; exit 1; }
done
cargo build --release --locked -p nameserver --bins -p compat-tests --bin bench_namesrv
target="${CARGO_TARGET_DIR:-target}"
MQ_BIN_DIR="${MQ_BIN_DIR:-$target/release}" exec "$target/release/bench_namesrv" "$@"
