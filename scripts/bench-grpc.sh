#!/usr/bin/env bash
# gRPC benchmark (issue 22): the official RocketMQ 5 Java client
# (rocketmq-client-java 5.0.8) against our `mqbroker` with its gRPC port
# (enableProxy=true) and against the Java 5.3.3 broker with its proxy in
# local mode, alternating, same driver: send TPS and p50/p99 (1 KiB bodies,
# synchronous sends from --threads threads sharing one Producer), then
# SimpleConsumer receive + ack TPS, broker CPU and RSS; medians and the
# ratios ours / Java against the goals (>= 2x on both rates, p99 <= 0.5x).
# Results and the command go to docs/BENCHMARKS.md ("gRPC").
#
#   scripts/bench-grpc.sh [--count 50000] [--threads 32] [--recv-threads 8]
#                         [--rounds 2] [--java-version 5.3.3] [--only ours|java]
#
# Needs cargo, java and (first run only, for the Java jars) mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "bench-grpc.sh: '$tool' is required but not installed" >&2; exit 1; }
done
cargo build --release --locked --workspace --bins
bash compat-tests/java-grpc/prepare.sh 5.0.8
target="${CARGO_TARGET_DIR:-target}"
MQ_BIN_DIR="${MQ_BIN_DIR:-$target/release}" exec "$target/release/bench_grpc" "$@"
