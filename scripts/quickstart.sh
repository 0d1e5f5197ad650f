#!/usr/bin/env bash
# Starts a single-node cluster in the foreground: mqnamesrv on 127.0.0.1:9876
# and mqbroker on 10911, data under ./data. Ctrl-C stops both.
# Point clients at it with NAMESRV_ADDR=127.0.0.1:9876.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
mkdir -p data
target/release/mqnamesrv -c conf/namesrv.properties &
ns=$!
trap 'kill $ns ${broker:-} 2>/dev/null; wait' EXIT INT TERM
# The broker registers on start; give the name server its port first.
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/9876) 2>/dev/null && break
  sleep 0.1
done
target/release/mqbroker -c conf/broker.conf &
broker=$!
wait -n
