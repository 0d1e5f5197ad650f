#!/usr/bin/env bash
# Runs every test: unit and property tests, golden vectors, and the
# compatibility suite (official Java 4.9.8/5.3.3 clients, mqadmin and the Go
# client against our release binaries). Maven artifacts and Go modules are
# downloaded on first use and cached in ~/.m2 and the Go module cache.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
for tool in cargo java mvn go; do
  command -v "$tool" >/dev/null || { echo "test.sh: '$tool' is required but not installed" >&2; exit 1; }
done
# Java brokers refuse every write once the disk holding their store (here under
# TMPDIR) is more than 90 % used; the compatibility tests then fail for that reason only.
used=$(df -P "${TMPDIR:-/tmp}" | awk 'NR == 2 { sub("%", "", $5); print $5 }')
if [ "${used:-0}" -ge 90 ]; then
  echo "test.sh: WARNING: ${TMPDIR:-/tmp} is on a disk ${used}% full; Java brokers refuse writes above 90%" >&2
fi
# compat-tests/tests/metrics_prometheus.rs scrapes with a real Prometheus
# server: Debian's package, installed when missing and we are root.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; } >/dev/null 2>&1 ||
    echo "test.sh: WARNING: could not install prometheus; metrics_prometheus will fail" >&2
fi
cargo build --release --locked --bins
cargo test --release --locked --workspace --no-fail-fast "$@"
# The disk-full store test needs a small filesystem; as root we can mount one.
small=$(mktemp -d)
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=300k tmpfs "$small" 2>/dev/null; then
  trap 'umount "$small"; rmdir "$small"' EXIT
  STORE_SMALL_FS="$small" cargo test --release --locked -p store --test store -- --ignored
else
  rmdir "$small"
  echo "test.sh: disk-full store test NOT run (it needs root to mount a 300 KiB tmpfs)"
fi
echo "test.sh: all tests passed in $(( $(date +%s) - start ))s"
