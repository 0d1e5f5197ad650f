#!/usr/bin/env bash
# Master/slave replication benchmark: one master + one slave of our release
# mqbroker against the same pair of official Java 5.3.3 brokers (BrokerStartup,
# -Xms1g -Xmx1g G1), each pair behind our mqnamesrv on free loopback ports, the
# same load generator (compat.BenchProducer on the official Java client):
# SYNC_MASTER (inSyncReplicas=2) send TPS and p50/p99 per thread count,
# ASYNC_MASTER replication lag (GET_BROKER_HA_STATUS polled on the master, bytes
# and ms behind), and the catch-up of a new empty slave from a filled master
# (MB/s and % of the disk's sequential write speed). One table with ratios. The
# benchmark itself is compat-tests/src/bin/bench_ha/main.rs (flags, defaults and
# method described there); results and the command go to docs/BENCHMARKS.md.
#
#   scripts/bench-ha.sh [--only ours|java] [--threads 16,64] [--duration SECS]
#                       [--warmup SECS] [--lag-duration SECS] [--size BYTES]
#                       [--catchup-gib G] [--poll-ms MS] [--java-version V]
#                       [--keep DIR]
#
# BENCH_BINS=<dir> runs mqbroker and mqnamesrv from <dir> (not built then).
# Needs cargo, java (17) and mvn (first run: the 5.3.3 jars from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "bench-ha.sh: '$tool' is required but not installed" >&2; exit 1; }
done
if [ -z "${BENCH_BINS:-}" ]; then
  cargo build --release --locked -p nameserver -p broker --bins
fi
cargo build --release --locked -p compat-tests --bin bench_ha
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/bench_ha" "$@"
