#!/usr/bin/env bash
# Metadata at scale: the cost of one UPDATE_AND_CREATE_TOPIC as the topic
# table grows, our release `mqbroker` vs the official Java broker
# (BrokerStartup 5.3.3, -Xms1g -Xmx1g), one after the other, same driver (one
# connection, one create at a time, 8 queues, no name server). Prints p50/p99
# of the last 1,000 creates, RSS and bytes written per create at each size.
# Results and the command go to docs/BENCHMARKS.md ("Metadata at scale").
#
#   scripts/bench-meta.sh [--topics 1000,10000,100000] [--max-secs S]
#                         [--java-version V] [--only ours|java] [--java-heap ARGS]
#
# --max-secs (default 900) caps each broker's run; the output says where it
# stopped. Needs cargo, java and (first run only, for the Java jars) mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java; do
  command -v "$tool" >/dev/null || { echo "bench-meta.sh: '$tool' is required but not installed" >&2; exit 1; }
done
cargo build --release --locked -p broker --bins -p compat-tests --bin bench_meta
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/bench_meta" "$@"
