#!/usr/bin/env bash
# Instructions the broker executes per sent message with metrics off and on, counted by
# valgrind's callgrind (deterministic where CPU time on a shared 2-core machine is not).
#
#   scripts/callgrind-metrics.sh [--messages N] [--rounds R] [--keep DIR]
#
# Per round and mode (off, then metricsExporterType=PROM on 127.0.0.1, nothing scraping):
# our mqnamesrv, our mqbroker under `valgrind --tool=callgrind --instr-atstart=no`, a
# warm-up `compat.StoreDriver produce` of 200 messages (topic auto-created, client routes
# cached, broker threads started), then instrumentation on, N single sends (StoreDriver
# produce, one Java client, ~3 KiB bodies), instrumentation off, a dump; the dump's Ir
# total divided by N is the broker's instructions per message (client start-up requests
# included, the same in both modes). Defaults: 3000 messages, 1 round.
# BENCH_BINS=<dir> measures another build's mqbroker/mqnamesrv (else target/release).
# Needs valgrind and the 5.3.3 Java drivers (compat-tests/java/prepare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
n=3000 rounds=1 keep=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { sed -n '4p' "$0" | sed 's/^# *//' >&2; exit 2; }
  case "$1" in
    --messages) n="$2" ;;
    --rounds) rounds="$2" ;;
    --keep) keep="$2" ;;
    *) sed -n '4p' "$0" | sed 's/^# *//' >&2; exit 2 ;;
  esac
  shift 2
done
command -v valgrind >/dev/null || { echo "callgrind-metrics.sh: valgrind is required" >&2; exit 1; }
bins="${BENCH_BINS:-${CARGO_TARGET_DIR:-target}/release}"
bins="$(cd "$bins" && pwd)"
java_dir="compat-tests/java/target/5.3.3"
[ -d "$java_dir/classes" ] || bash compat-tests/java/prepare.sh 5.3.3 >/dev/null
java_dir="$(cd "$java_dir" && pwd)"
work="${keep:-$(mktemp -d "${TMPDIR:-/tmp}/rmq-callgrind-XXXXXX")}"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port, pid, seconds
  for _ in $(seq 1 $(($3 * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
produce() { # ns, topic, count, log
  java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Duser.home="$work" -Drocketmq.client.logRoot="$work/logs" -Drocketmq.client.logLevel=WARN \
    -cp "$java_dir/classes:$java_dir/lib/*" compat.StoreDriver produce "$1" "$2" "$3" 0 >"$4" 2>&1
}

one() { # mode (off|on), round -> prints Ir per message
  local mode="$1" d="$work/$1-$2"
  rm -rf "$d" && mkdir -p "$d"
  local nsp bp mp
  nsp="$(free_port)"
  printf 'listenPort=%s\nbindAddress=127.0.0.1\nkvConfigPath=%s/kv.json\n' "$nsp" "$d" >"$d/ns.conf"
  HOME="$d" "$bins/mqnamesrv" -c "$d/ns.conf" >"$d/ns.log" 2>&1 &
  local ns_pid=$!
  pids+=("$ns_pid")
  wait_port "$nsp" "$ns_pid" 20 || { echo "mqnamesrv did not start" >&2; exit 1; }
  bp="$(free_port)"
  mp="$(free_port)"
  {
    printf 'brokerClusterName=CgCluster\nbrokerName=cg\nbrokerId=0\nnamesrvAddr=127.0.0.1:%s\n' "$nsp"
    printf 'listenPort=%s\nhaListenPort=%s\nbindAddress=127.0.0.1\nbrokerIP1=127.0.0.1\n' "$bp" "$((bp + 1))"
    printf 'storePathRootDir=%s/store\nflushDiskType=ASYNC_FLUSH\nautoCreateTopicEnable=true\n' "$d"
    printf 'mappedFileSizeCommitLog=67108864\n'
    if [ "$mode" = on ]; then
      printf 'metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=%s\n' "$mp"
    fi
  } >"$d/broker.conf"
  HOME="$d" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/cg.out" \
    "$bins/mqbroker" -c "$d/broker.conf" >"$d/broker.log" 2>&1 &
  local b_pid=$!
  pids+=("$b_pid")
  wait_port "$bp" "$b_pid" 300 || { echo "mqbroker did not start" >&2; tail "$d/broker.log" >&2; exit 1; }
  # Registered with the name server and warmed up (topic created, routes known).
  local ok=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if produce "127.0.0.1:$nsp" CgTopic 200 "$d/warm.out"; then ok=1; break; fi
    sleep 2
  done
  [ -n "$ok" ] || { echo "warm-up failed" >&2; cat "$d/warm.out" >&2; exit 1; }
  callgrind_control -i on "$b_pid" >/dev/null
  produce "127.0.0.1:$nsp" CgTopic "$n" "$d/send.out" || { cat "$d/send.out" >&2; exit 1; }
  callgrind_control -i off "$b_pid" >/dev/null
  callgrind_control -d "$b_pid" >/dev/null
  kill "$b_pid" "$ns_pid" 2>/dev/null || true
  wait "$b_pid" 2>/dev/null || true
  wait "$ns_pid" 2>/dev/null || true
  # The dump with the collected part (the largest total of the dumps).
  local ir
  ir="$(for f in "$d"/cg.out*; do sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$f"; done |
    sort -n | tail -1)"
  awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.0f\n", ir / n }'
}

echo "| round | off Ir/msg | on Ir/msg | on/off |"
echo "|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  off="$(one off "$r")"
  on="$(one on "$r")"
  awk -v r="$r" -v a="$off" -v b="$on" 'BEGIN { printf "| %d | %d | %d | %.4f |\n", r, a, b, b / a }'
done
