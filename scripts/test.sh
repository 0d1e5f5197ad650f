#!/usr/bin/env bash
# Runs every test: unit and property tests, golden vectors, and the
# compatibility suite (official Java 4.9.8/5.3.3 clients, mqadmin and the Go
# client against our release binaries). Maven artifacts and Go modules are
# downloaded on first use and cached in ~/.m2 and the Go module cache.
#
#   scripts/test.sh               everything; the compat-tests binaries run two
#                                 at a time (TEST_JOBS=<n> to change, 1 = one
#                                 after the other), each in its own port range
#   scripts/test.sh <cargo args>  plain `cargo test --release --workspace <args>`
#
# Logs of the compat-tests binaries: target/test-logs/<name>.log; a summary line
# per binary as it ends, the full log of every failed one at the end.
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
# One build for binaries, tests and examples (which `cargo test` compiles too): one
# feature resolution (dev-dependencies included) for all, so the `cargo test`
# runs below compile nothing again.
cargo build --release --locked --workspace --bins --tests --examples
failed=0
if [ $# -gt 0 ]; then
  cargo test --release --locked --workspace --no-fail-fast "$@" || failed=1
else
  # Always --workspace: selecting fewer packages changes the feature resolution
  # (dev-dependencies) and compiles everything again.
  cargo test --release --locked --workspace --exclude compat-tests --no-fail-fast || failed=1
  # compat-tests has no doc tests; once one appears (a code block in a doc
  # comment of its library, not text/sh/...), all doc tests run again with it.
  if find compat-tests/src -name '*.rs' -not -path '*/src/bin/*' -print0 | xargs -0 awk '
      FNR == 1 { open = 0 }
      /^[ \t]*\/\/[\/!][ \t]*```/ {
        if (open) { open = 0; next }
        open = 1
        if ($0 !~ /```[ \t]*(text|sh|bash|console|json|toml|ini|properties|xml|java|go|yaml|ignore)/) found = 1
      }
      END { exit !found }'; then
    cargo test --release --locked --workspace --doc || failed=1
  fi

  # The compat-tests binaries: longest first, TEST_JOBS at a time.
  jobs=${TEST_JOBS:-2}
  logs="$PWD/target/test-logs"
  rm -rf "$logs" && mkdir -p "$logs"
  # Maven and the Go driver once, before binaries that share their folders run.
  for v in 4.9.8 5.3.3; do bash compat-tests/java/prepare.sh "$v"; done
  bash compat-tests/java-grpc/prepare.sh 5.0.8
  bash compat-tests/go/build.sh target/compat-go
  # The RocketMQ 5 gRPC clients: Go (golang/v5) and Node (rocketmq-client-nodejs).
  bash compat-tests/go-grpc/build.sh target/compat-go-grpc
  (cd compat-tests/node-grpc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  # Seconds each binary took in a sequential run on 2 cores (unknown: 60); only the order.
  estimate() {
    case "$1" in
      controller_mixed_group) echo 324 ;; controller_mqadmin) echo 176 ;;
      grpc_java_client) echo 190 ;; proxy_remoting) echo 60 ;;
      dledger_broker_java) echo 152 ;; controller_mixed_brokers) echo 117 ;;
      namesrv_side_by_side) echo 103 ;; ha_master_slave) echo 89 ;;
      dledger_group_restart) echo 81 ;; controller_java_brokers) echo 80 ;;
      delay_and_transactions) echo 76 ;; store_swap_java) echo 74 ;;
      grpc_go_node_clients) echo 110 ;; metrics_prometheus) echo 78 ;;
      metrics_admin_live) echo 63 ;; register_compressed) echo 58 ;;
      pop_consume) echo 66 ;; acl_v2) echo 103 ;; acl_v1) echo 58 ;;
      meta_swap_java) echo 38 ;; metrics_replication) echo 12 ;;
      filter_trace_compress) echo 72 ;; controller_our_brokers) echo 71 ;;
      dledger_failover) echo 65 ;; controller_fault_rounds) echo 64 ;;
      mqadmin_matrix) echo 61 ;; dledger_java_group) echo 57 ;;
      ha_consumer_failover | query_by_key | broker_scenarios) echo 51 ;;
      slice | ha_master_slave_java4) echo 42 ;; namesrv_liveness) echo 40 ;;
      java_broker_our_namesrv) echo 36 ;; go_scenarios) echo 31 ;;
      dledger_processes) echo 25 ;; controller_broker_java_controller) echo 13 ;;
      sync_flush_kill) echo 9 ;; dledger_store_java) echo 7 ;;
      compat_tests | bench_* | ordered_failure | java_decodes_our_frames) echo 2 ;;
      *) echo 60 ;;
    esac
  }
  # "<estimate> <name> <executable>" per test executable of compat-tests.
  list=$(cargo test --release --locked --workspace --no-run --message-format=json 2>/dev/null |
    grep '"reason":"compiler-artifact"' | grep '"package_id":"[^"]*/compat-tests#' |
    grep '"profile":{[^}]*"test":true' | grep '"executable":"/' |
    sed -E 's/.*"target":\{[^}]*"name":"([^"]*)".*"executable":"([^"]*)".*/\1 \2/' |
    while read -r name exe; do echo "$(estimate "$name") $name $exe"; done | sort -k1,1nr -k2,2)
  [ -n "$list" ] || { echo "test.sh: no compat-tests binaries found" >&2; exit 1; }
  total=$(wc -l <<<"$list")
  echo "test.sh: running $total compat-tests binaries, $jobs at a time (logs in $logs/)"
  # Port ranges below the kernel's ephemeral ports (32768+), one per slot.
  span=$(( 12000 / jobs ))
  declare -A slot_name=() slot_start=()
  pass=() fail=()
  reap() {  # slot $1 has ended: summary line, slot freed
    local s=$1 name=${slot_name[$1]} rc secs result tag
    rc=$(cat "$logs/$name.rc")
    secs=$(( $(date +%s) - slot_start[$s] ))
    result=$(grep -h '^test result:' "$logs/$name.log" | tail -1 | sed 's/; finished in.*//' || true)
    if [ "$rc" = 0 ]; then pass+=("$name"); tag=ok; else fail+=("$name"); tag=FAILED; fi
    printf 'test.sh: %-6s %4ds  %-36s %s\n' "$tag" "$secs" "$name" "${result:-exit $rc}"
    unset "slot_name[$s]"
  }
  reap_ended() {  # after `wait -n`; 127 there: no child left, so none can still write its .rc
    local s
    for s in "${!slot_name[@]}"; do
      [ "${1:-0}" = 127 ] && [ ! -f "$logs/${slot_name[$s]}.rc" ] && echo "killed" >"$logs/${slot_name[$s]}.rc"
      [ -f "$logs/${slot_name[$s]}.rc" ] && reap "$s"
    done
    return 0
  }
  while read -r _ name exe; do
    while [ "${#slot_name[@]}" -ge "$jobs" ]; do
      r=0
      [ "${#slot_name[@]}" -ge "$jobs" ] && { wait -n || r=$?; }
      reap_ended "$r"
    done
    for (( s = 0; s < jobs; s++ )); do [ -z "${slot_name[$s]:-}" ] && break; done
    slot_name[$s]=$name
    slot_start[$s]=$(date +%s)
    ports="$(( 20000 + s * span ))-$(( 20000 + (s + 1) * span - 1 ))"
    (
      rc=0
      cd compat-tests && CARGO_MANIFEST_DIR="$PWD" MQ_TEST_PORTS="$ports" "$exe" || rc=$?
      echo "$rc" >"$logs/$name.rc"
    ) >"$logs/$name.log" 2>&1 &
  done <<<"$list"
  while [ "${#slot_name[@]}" -gt 0 ]; do
    r=0
    wait -n || r=$?
    reap_ended "$r"
  done
  for name in "${fail[@]}"; do
    echo
    echo "==================== compat-tests $name FAILED: $logs/$name.log ===================="
    cat "$logs/$name.log"
  done
  echo "test.sh: compat-tests: ${#pass[@]} binaries passed, ${#fail[@]} failed${fail:+: ${fail[*]}}"
  [ "${#fail[@]}" = 0 ] || failed=1
fi
# The disk-full store test needs a small filesystem; as root we can mount one.
small=$(mktemp -d)
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=300k tmpfs "$small" 2>/dev/null; then
  trap 'umount "$small"; rmdir "$small"' EXIT
  # --workspace, not -p store: the same feature resolution as the build above, so nothing recompiles.
  STORE_SMALL_FS="$small" cargo test --release --locked --workspace --test store -- --ignored || failed=1
else
  rmdir "$small"
  echo "test.sh: disk-full store test NOT run (it needs root to mount a 300 KiB tmpfs)"
fi
if [ "$failed" != 0 ]; then
  echo "test.sh: FAILED after $(( $(date +%s) - start ))s (see above)" >&2
  exit 1
fi
echo "test.sh: all tests passed in $(( $(date +%s) - start ))s"
