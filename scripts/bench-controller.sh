#!/usr/bin/env bash
# Controller mode (RIP-44) benchmark: 3 of our controllers (inside 3 of our
# mqnamesrv, enableControllerInNamesrv=true) + 3 of our mqbroker in one
# broker set, against 3 official Java 5.3.3 ControllerStartup + a Java
# NamesrvStartup + 3 Java BrokerStartup, each at its own defaults, with
# allAckInSyncStateSet=true. The official Java client drives both: send TPS
# (compat.BenchProducer) and master SIGKILL / SIGSTOP -> first acknowledged
# send (compat.BenchFailover, route poll 100 ms, 1 s send timeout). One
# table with ratios and the goals. The benchmark itself is
# compat-tests/src/bin/bench_controller/main.rs (flags, defaults, method);
# results and the command go to docs/BENCHMARKS.md.
#
#   scripts/bench-controller.sh [--only ours|java] [--threads 16,64]
#                               [--duration SECS] [--warmup SECS] [--size BYTES]
#                               [--rounds R] [--failover-timeout SECS]
#                               [--java-version V] [--keep DIR]
#
# MQ_BIN_DIR=<dir> runs mqbroker and mqnamesrv from <dir> (not built then).
# Needs cargo, java (17) and mvn (first run: the 5.3.3 jars from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "bench-controller.sh: '$tool' is required but not installed" >&2; exit 1; }
done
if [ -z "${MQ_BIN_DIR:-}" ]; then
  cargo build --release --locked -p nameserver -p broker --bins
fi
cargo build --release --locked -p compat-tests --bin bench_controller
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/bench_controller" "$@"
