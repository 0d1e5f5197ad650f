#!/usr/bin/env bash
# Where a server's CPU goes under the send load of scripts/bench-broker.sh: runs one
# send phase against ours (mqbroker) or the echo ceiling, samples the server with
# `perf record -e cpu-clock --call-graph dwarf` in the middle of the phase, and prints
# the samples bucketed by scripts/perf_buckets.py (share and µs per message, from the
# phase's server CPU per message).
#
#   scripts/profile-broker.sh [--only ours|echo] [--threads T] [--seconds S] [--keep DIR]
#
# Defaults: ours, 64 threads, 10 s of samples (the phase runs 5 s warm-up + S + 10 s).
# BENCH_BINS=<dir> profiles another build (as for bench-broker.sh). Needs perf.
set -euo pipefail
cd "$(dirname "$0")/.."
who=ours threads=64 secs=10 keep=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { sed -n '7p' "$0" | sed 's/^# *//' >&2; exit 2; }
  case "$1" in
    --only) who="$2" ;;
    --threads) threads="$2" ;;
    --seconds) secs="$2" ;;
    --keep) keep="$2" ;;
    *) sed -n '7p' "$0" | sed 's/^# *//' >&2; exit 2 ;;
  esac
  shift 2
done
case "$who" in ours | echo) ;; *) echo "profile-broker.sh: --only ours or echo" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "profile-broker.sh: 'perf' is required" >&2; exit 1; }
work="${keep:-$(mktemp -d "${TMPDIR:-/tmp}/rmq-profile-XXXXXX")}"
mkdir -p "$work"
bench_pid=""
cleanup() {
  [ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

warmup=5
scripts/bench-broker.sh --only "$who" --threads "$threads" --duration $((secs + 10)) --warmup "$warmup" \
  --consume 0 >"$work/bench.out" 2>"$work/bench.err" &
bench_pid=$!
# The server's pid, from the line the benchmark logs before the load starts (bounded wait:
# the first run may build and download the Java drivers).
pid=""
for _ in $(seq 1 600); do
  pid="$(sed -n "s/^\[bench\] $who: pid \([0-9]*\), idle RSS.*/\1/p" "$work/bench.err" | head -1)"
  [ -z "$pid" ] || break
  kill -0 "$bench_pid" 2>/dev/null || { cat "$work/bench.err" >&2; exit 1; }
  sleep 1
done
[ -n "$pid" ] || { echo "profile-broker.sh: the benchmark did not start its load" >&2; exit 1; }
# Client start-up, the warm-up and 5 s of the measured phase, then the samples.
sleep $((warmup + 8))
perf record -q -e cpu-clock -F 999 -g --call-graph dwarf -p "$pid" -o "$work/perf.data" -- sleep "$secs" \
  >/dev/null 2>"$work/perf.err"
wait "$bench_pid"
bench_pid=""
row() { awk -F'|' -v r="$1" -v c="$2" 'index($2, r) > 0 { gsub(/ /, "", $c); print $c; exit }' "$work/bench.out"; }
col=4
[ "$who" = ours ] || col=5
us="$(row "server CPU us/msg" $col)"
echo "$who, $threads threads: $(row "send TPS, $threads threads" $col) sends/s, server CPU $us us/msg;" \
  "perf samples of pid $pid over ${secs}s"
perf script -i "$work/perf.data" -F comm,ip,sym 2>/dev/null | python3 scripts/perf_buckets.py "$us"
