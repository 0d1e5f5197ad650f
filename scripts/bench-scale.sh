#!/usr/bin/env bash
# Scale benchmark (issue 25): registration of brokers with many topics
# (compressed body, time, size), name server RSS, GET_ROUTEINFO_BY_TOPIC
# p50/p99 and GET_ALL_TOPIC_LIST time at 1k vs 100k topics per broker x 10
# brokers, and the broker CPU of 10k heartbeating clients; our release
# binaries vs the official Java 5.3.3 name server and broker, same driver.
# Results and the command go to docs/BENCHMARKS.md ("Scale: registration,
# routes, heartbeats").
#
#   scripts/bench-scale.sh [--topics N] [--small N] [--brokers B] [--clients C]
#                          [--groups G] [--hb-interval S] [--hb-secs S] [--only ours|java]
#
# Needs cargo, java and (first run only, for the Java jars) mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java; do
  command -v "$tool" >/dev/null || { echo "bench-scale.sh: '$tool' is required but not installed" >&2; exit 1; }
done
cargo build --release --locked -p broker -p nameserver --bins -p compat-tests --bin bench_scale
bash compat-tests/java/prepare.sh 5.3.3 >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
target="${CARGO_TARGET_DIR:-target}"
MQ_BIN_DIR="${MQ_BIN_DIR:-$target/release}" exec "$target/release/bench_scale" "$@"
