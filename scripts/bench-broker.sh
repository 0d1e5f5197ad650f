#!/usr/bin/env bash
# Broker benchmark: the official Java broker (BrokerStartup 5.3.3 + NamesrvStartup via
# compat-tests/java/reference-cluster.sh), our release mqnamesrv + mqbroker with the same
# settings, and the echo ceiling (remoting/examples/echo_broker.rs), in turn, on free
# loopback ports, all driven by compat.BenchProducer / compat.BenchConsumer on the
# official Java client; one table with ratios. --dledger: 3-broker DLedger groups, ours
# vs Java, send TPS/latency and failover (compat.BenchFailover). The benchmark itself is
# compat-tests/src/bin/bench_broker/main.rs (flags, defaults and output described there);
# results and the command go to docs/BENCHMARKS.md.
#
#   scripts/bench-broker.sh [--duration SECS] [--warmup SECS] [--threads 4,16,64]
#                           [--size BYTES] [--consume N] [--consume-mode push|push-batch|pull|pull-direct] [--settle SECS]
#                           [--only java,ours,echo] [--java-version V] [--keep DIR]
#   scripts/bench-broker.sh --dledger [--duration SECS] [--warmup SECS] [--threads 8,64]
#                           [--size BYTES] [--only java,ours] [--keep DIR]
#
# BENCH_BINS=<dir> runs the servers from <dir> (mqbroker, mqnamesrv, examples/echo_broker)
# instead of this tree's target/release (they are not built then): A/B runs of two builds.
# Needs cargo, java (17) and mvn (first run: the 5.3.3 jars from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "bench-broker.sh: '$tool' is required but not installed" >&2; exit 1; }
done
if [ -z "${BENCH_BINS:-}" ]; then # (given builds are run as they are, no build here)
  cargo build --release --locked -p nameserver -p broker --bins
  cargo build --release --locked -p remoting --example echo_broker
fi
cargo build --release --locked -p compat-tests --bin bench_broker
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/bench_broker" "$@"
