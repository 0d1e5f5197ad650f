#!/usr/bin/env bash
# DLedger benchmark: a 3-node group of our release `dledger server` vs 3 Java
# DLedger 0.3.1.2 servers (compat.DLedgerWire server on the RocketMQ 5.3.3
# classpath, -Xms1g -Xmx1g G1) on loopback, same client (APPEND frames from
# the `dledger` crate), alternating rounds: append throughput, p50/p99/p99.9,
# server CPU per append, RSS; then SIGKILL of the leader -> first acknowledged
# append (failover), each side with its own default timers, plus Java with our
# timers. Results and the command go to docs/BENCHMARKS.md.
#
#   scripts/bench-dledger.sh [--duration SECS] [--warmup SECS] [--conns C]
#                            [--inflight P] [--body BYTES] [--rounds R]
#                            [--failovers F] [--settle SECS] [--java-version V]
#                            [--java-heap SIZE] [--only ours|java]
#                            [--no-java-our-timers]
#
# Needs cargo, java and (first run only, for the Java jars) mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java; do
  command -v "$tool" >/dev/null || { echo "bench-dledger.sh: '$tool' is required but not installed" >&2; exit 1; }
done
cargo build --release --locked -p dledger --bins -p compat-tests --bin bench_dledger
target="${CARGO_TARGET_DIR:-target}"
MQ_BIN_DIR="${MQ_BIN_DIR:-$target/release}" exec "$target/release/bench_dledger" "$@"
