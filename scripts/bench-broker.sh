#!/usr/bin/env bash
# Broker benchmark: the official Java broker (BrokerStartup 5.3.3 + NamesrvStartup, started
# by compat-tests/java/reference-cluster.sh: -Xms1g -Xmx1g, ASYNC_FLUSH, 64 MiB commit-log
# segments, brokerIP1=127.0.0.1), our release mqnamesrv + mqbroker with the same settings,
# and the echo ceiling (remoting/examples/echo_broker.rs behind our mqnamesrv: answers
# every send with a canned SUCCESS, stores nothing), in turn, on free loopback ports.
# Same load generator for all three: compat.BenchProducer / compat.BenchConsumer on the
# official Java client (compat-tests/java). Prints one table with ratios; results and the
# command go to docs/BENCHMARKS.md.
#
#   scripts/bench-broker.sh [--duration SECS] [--warmup SECS] [--threads 4,16,64]
#                           [--size BYTES] [--consume N] [--consume-mode push|push-batch|pull|pull-direct] [--settle SECS]
#                           [--only java,ours,echo] [--java-version V] [--keep DIR]
#   scripts/bench-broker.sh --dledger [--duration SECS] [--warmup SECS] [--threads 8,64]
#                           [--size BYTES] [--only java,ours] [--keep DIR]
#
# --dledger: a 3-broker DLedger group of ours vs 3 Java 5.3.3 brokers in DLedger mode
# (enableDLegerCommitLog, -Xms512m -Xmx512m, 64 MiB segments, brokerIP1=127.0.0.1), each
# group behind our mqnamesrv: send TPS and latency with compat.BenchProducer (default
# threads 8,64), then the failover time with compat.BenchFailover (SIGKILL the master ->
# first acknowledged send, client route poll 100 ms).
#
# Defaults: 20 s per thread count after a 10 s warm-up (at the largest count), 1 KiB
# bodies, 200000 messages for the consume test (0: none; push consumer; see compat.BenchConsumer for the
# modes), 3 s settle before idle RSS, Java 5.3.3.
# BENCH_BINS=<dir> runs the servers from <dir> (mqbroker, mqnamesrv, examples/echo_broker)
# instead of this tree's target/release (nothing is built then): A/B runs of two builds.
# Needs cargo, java (17) and mvn (first run: the 5.3.3 jars from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

duration=20 warmup=10 threads=4,16,64 size=1024 consume=200000 settle=3 consume_mode=push
only=java,ours,echo ver=5.3.3 keep="" dledger=no threads_set=no only_set=no
usage() {
  sed -n '11,15p' "$0" | sed 's/^# *//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  if [ "$1" = --dledger ]; then
    dledger=yes
    shift
    continue
  fi
  [ $# -ge 2 ] || usage
  case "$1" in
    --duration) duration="$2" ;;
    --warmup) warmup="$2" ;;
    --threads) threads="$2" threads_set=yes ;;
    --size) size="$2" ;;
    --consume) consume="$2" ;;
    --consume-mode) consume_mode="$2" ;;
    --settle) settle="$2" ;;
    --only) only="$2" only_set=yes ;;
    --java-version) ver="$2" ;;
    --keep) keep="$2" ;;
    *) usage ;;
  esac
  shift 2
done
if [ "$dledger" = yes ]; then
  [ "$threads_set" = yes ] || threads=8,64
  [ "$only_set" = yes ] || only=java,ours
  ver=5.3.3
fi
for tool in cargo java mvn awk; do
  command -v "$tool" >/dev/null || { echo "bench-broker.sh: '$tool' is required but not installed" >&2; exit 1; }
done

log() { echo "[bench] $*" >&2; }

# ------------------------------------------------------------------ build
target="${CARGO_TARGET_DIR:-target}"
bins="${BENCH_BINS:-$root/$target/release}" # BENCH_BINS: compare other builds (A/B)
if [ -z "${BENCH_BINS:-}" ]; then # (given builds are run as they are, no build here)
  cargo build --release --locked -p nameserver -p broker --bins
  cargo build --release --locked -p remoting --example echo_broker
fi
clk_tck="$(getconf CLK_TCK)"
work="${keep:-$(mktemp -d "${TMPDIR:-/tmp}/rmq-bench-broker-XXXXXX")}"
mkdir -p "$work"

# The drivers, snapshotted into the work dir: a test run elsewhere may re-run prepare.sh
# (which replaces target/<version>/lib) while the benchmark is going.
jdir="$work/drivers"
for attempt in 1 2 3; do
  bash compat-tests/java/prepare.sh "$ver"
  rm -rf "$jdir"
  mkdir -p "$jdir"
  src="$root/compat-tests/java/target/$ver"
  if cp -r "$src/classes" "$src/lib" "$src/home" "$jdir/" 2>/dev/null \
     && [ -f "$jdir/classes/compat/BenchProducer.class" ] \
     && ls "$jdir/lib/rocketmq-client-$ver.jar" "$jdir/lib/rocketmq-tools-$ver.jar" >/dev/null 2>&1; then
    break
  fi
  [ "$attempt" -lt 3 ] || { echo "bench-broker.sh: could not snapshot the Java drivers" >&2; exit 1; }
  sleep 5
done
cp="$jdir/classes:$jdir/lib/*"
results="$work/results.txt"
: >"$results"

# --------------------------------------------------------------- helpers
now_ms() { local t="${EPOCHREALTIME/./}"; echo $((t / 1000)); }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port p with p-2 (VIP channel), p and p+1 (HA) not listening.
free_block() {
  local p i
  for i in $(seq 1 200); do
    p=$((15000 + RANDOM % 15000))
    if ! listening $((p - 2)) && ! listening "$p" && ! listening $((p + 1)); then
      echo "$p"
      return
    fi
  done
  echo "bench-broker.sh: no free port block" >&2
  exit 1
}

# wait_listen <port> <pid> <what>: polls every 2 ms, 120 s at most.
wait_listen() {
  local deadline=$(($(now_ms) + 120000))
  until listening "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "bench-broker.sh: $3 exited during start-up" >&2; return 1; }
    [ "$(now_ms)" -lt "$deadline" ] || { echo "bench-broker.sh: $3 not listening after 120 s" >&2; return 1; }
    sleep 0.002
  done
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

put() { echo "$1 $2 $3" >>"$results"; }

# RESULT lines of the drivers -> "<server> <kind><threads>_<key> <value>" records.
record() { # <server> <driver output file>
  awk -v s="$1" '$1 == "RESULT" {
      kind = $2; t = ""
      for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "threads") t = kv[2] }
      for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "threads") print s, kind t "_" kv[1], kv[2] }
    }' "$2" >>"$results"
}

java_run() { # <home> <main> args...
  local home="$1" main="$2"
  shift 2
  mkdir -p "$home"
  java -Xms512m -Xmx512m -XX:+UseG1GC -Dbench.clkTck="$clk_tck" -Duser.home="$home" \
    -Drocketmq.home.dir="$jdir/home" -cp "$cp" "$main" "$@"
}

# The Java mqadmin tool (the reference version's jars in $cp).
mqadmin() { # args...
  java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Duser.home="$work/admin" \
    -Drocketmq.home.dir="$jdir/home" -Drocketmq.log.root="$work/admin/logs" -Drocketmq.log.level=WARN \
    -Drmq.logback.configurationFile=rmq.tools.logback.xml -cp "$cp" \
    org.apache.rocketmq.tools.command.MQAdminStartup "$@"
}

update_topic() { # <namesrv> <cluster> <topic>
  # A broker listening may not have registered with the name server yet (the cluster is
  # then unknown): retried for up to 30 s.
  local out attempt
  for attempt in $(seq 1 15); do
    out="$(mqadmin updateTopic -n "$1" -c "$2" -t "$3" -r 8 -w 8 2>&1)"
    grep -q "success" <<<"$out" && return 0
    sleep 2
  done
  echo "bench-broker.sh: updateTopic $3 failed ($attempt attempts):" >&2
  echo "$out" >&2
  return 1
}

# Our name server on a free port; sets ns_pid, ns_addr.
start_our_namesrv() { # <dir>
  local d="$1" port
  port="$(free_block)"
  mkdir -p "$d"
  printf 'listenPort=%s\nbindAddress=127.0.0.1\nkvConfigPath=%s\n' "$port" "$d/kvConfig.json" >"$d/namesrv.properties"
  HOME="$d" "$bins/mqnamesrv" -c "$d/namesrv.properties" >"$d/namesrv.log" 2>&1 </dev/null &
  ns_pid=$!
  started+=("$ns_pid")
  wait_listen "$port" "$ns_pid" mqnamesrv
  ns_addr="127.0.0.1:$port"
}

stop_pid() { # <pid>: SIGTERM, SIGKILL after 20 s
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

started=()
java_dirs=()
cleanup() {
  local p d
  for p in "${started[@]}"; do stop_pid "$p"; done
  for d in "${java_dirs[@]}"; do bash compat-tests/java/reference-cluster.sh stop "$d" >/dev/null 2>&1 || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

# Measures one running broker: idle RSS, send phases, consume, peak RSS.
measure() { # <server> <pid> <namesrv> <do_consume>
  local s="$1" pid="$2" ns="$3"
  sleep "$settle"
  put "$s" idle_rss_kib "$(status_kib "$pid" VmRSS)"
  log "$s: pid $pid, idle RSS $(status_kib "$pid" VmRSS) KiB; send load ${duration}s x threads $threads (warm-up ${warmup}s)"
  java_run "$work/$s/client" compat.BenchProducer send "$ns" BenchTopic "$pid" "$warmup" "$duration" \
    "$threads" "$size" | tee "$work/$s/send.out" >&2
  record "$s" "$work/$s/send.out"
  if [ "$4" = yes ] && [ "$consume" -gt 0 ]; then
    log "$s: filling BenchConsume with $consume messages"
    java_run "$work/$s/client" compat.BenchProducer fill "$ns" BenchConsume "$consume" "$size" | tee "$work/$s/fill.out" >&2
    log "$s: consuming $consume messages"
    java_run "$work/$s/client" compat.BenchConsumer "$ns" BenchConsume "$consume" "$pid" 300 "$consume_mode" | tee "$work/$s/consume.out" >&2
    record "$s" "$work/$s/consume.out"
  fi
  put "$s" peak_rss_kib "$(status_kib "$pid" VmHWM)"
  put "$s" end_anon_kib "$(status_kib "$pid" RssAnon)"
  put "$s" end_file_kib "$(status_kib "$pid" RssFile)"
}

# ------------------------------------------------------------- servers
run_java() {
  local d="$work/java" bport nsport t0 t1 bpid
  java_dirs+=("$d")
  bport="$(free_block)"
  nsport="$(free_block)"
  mkdir -p "$d"
  log "java: starting NamesrvStartup + BrokerStartup $ver (reference-cluster.sh)"
  REF_NS_PORT="$nsport" REF_BROKER_PORT="$bport" bash compat-tests/java/reference-cluster.sh start "$d" "$ver" >"$d/start.log" 2>&1 &
  local starter=$!
  # The broker is spawned once the name server booted; broker.pid is written right after.
  local deadline=$(($(now_ms) + 180000))
  until [ -s "$d/broker.pid" ]; do
    kill -0 "$starter" 2>/dev/null || { cat "$d/start.log" >&2; return 1; }
    [ "$(now_ms)" -lt "$deadline" ] || { echo "bench-broker.sh: Java broker not spawned" >&2; return 1; }
    sleep 0.002
  done
  t0="$(now_ms)"
  bpid="$(cat "$d/broker.pid")"
  wait_listen "$bport" "$bpid" "Java broker"
  t1="$(now_ms)"
  wait "$starter" || { cat "$d/start.log" >&2; return 1; }
  put java start_ms $((t1 - t0))
  log "java: broker pid $bpid listening after $((t1 - t0)) ms"
  update_topic "127.0.0.1:$nsport" RefCluster BenchTopic
  update_topic "127.0.0.1:$nsport" RefCluster BenchConsume
  measure java "$bpid" "127.0.0.1:$nsport" yes
  bash compat-tests/java/reference-cluster.sh stop "$d" >/dev/null
}

# The broker.conf lines of our broker and of a DLedger group member: our name
# server, loopback ports, the store, async flush, auto-created topics/groups.
broker_conf_base() { # <listen port> <store dir>
  cat <<CONF
namesrvAddr=$ns_addr
listenPort=$1
haListenPort=$(($1 + 1))
bindAddress=127.0.0.1
brokerIP1=127.0.0.1
brokerIP2=127.0.0.1
storePathRootDir=$2
storePathCommitLog=$2/commitlog
mappedFileSizeCommitLog=67108864
flushDiskType=ASYNC_FLUSH
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
cleanFileForciblyEnable=false
CONF
}

run_ours() {
  local d="$work/ours" port t0 t1 bpid
  mkdir -p "$d"
  start_our_namesrv "$d/ns"
  port="$(free_block)"
  cat >"$d/broker.conf" <<CONF
brokerClusterName=BenchCluster
brokerName=bench-broker-a
brokerId=0
$(broker_conf_base "$port" "$d/store")
enablePropertyFilter=true
CONF
  log "ours: starting mqnamesrv + mqbroker"
  t0="$(now_ms)"
  HOME="$d" "$bins/mqbroker" -c "$d/broker.conf" >"$d/broker.log" 2>&1 </dev/null &
  bpid=$!
  started+=("$bpid")
  wait_listen "$port" "$bpid" mqbroker
  t1="$(now_ms)"
  put ours start_ms $((t1 - t0))
  log "ours: broker pid $bpid listening after $((t1 - t0)) ms"
  update_topic "$ns_addr" BenchCluster BenchTopic
  update_topic "$ns_addr" BenchCluster BenchConsume
  measure ours "$bpid" "$ns_addr" yes
  stop_pid "$bpid"
  stop_pid "$ns_pid"
}

run_echo() {
  local d="$work/echo" port t0 t1 epid
  mkdir -p "$d"
  start_our_namesrv "$d/ns"
  port="$(free_block)"
  log "echo: starting echo_broker"
  t0="$(now_ms)"
  "$bins/examples/echo_broker" --namesrv "$ns_addr" --port "$port" --topics BenchTopic,BenchConsume --queues 8 \
    >"$d/echo.log" 2>&1 </dev/null &
  epid=$!
  started+=("$epid")
  wait_listen "$port" "$epid" echo_broker
  t1="$(now_ms)"
  put echo start_ms $((t1 - t0))
  measure echo "$epid" "$ns_addr" no
  stop_pid "$epid"
  stop_pid "$ns_pid"
}

# ------------------------------------------------------- --dledger mode
# The Java 5.3.3 broker jars (target/reference/<ver>/lib, as reference-cluster.sh prepares
# them), snapshotted into the work dir.
java_broker_libs() {
  local out="$root/compat-tests/java/target/reference/$ver"
  if ! ls "$out"/lib/rocketmq-broker-*.jar >/dev/null 2>&1; then
    mkdir -p "$out"
    mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$root/compat-tests/java/reference/pom.xml" \
      -Drmq.version="$ver" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$out/lib" >"$work/reference-prepare.log" 2>&1 \
      || { cat "$work/reference-prepare.log" >&2; return 1; }
  fi
  rm -rf "$work/reflib"
  cp -r "$out/lib" "$work/reflib"
}

update_topic_b() { # <namesrv> <broker addr> <topic>
  local out
  out="$(mqadmin updateTopic -n "$1" -b "$2" -t "$3" -r 8 -w 8 2>&1)"
  grep -q "success" <<<"$out"
}

# The address the name server lists as broker id 0 of <cluster> (empty if none).
master_of() { # <namesrv> <cluster>
  mqadmin clusterList -n "$1" 2>/dev/null \
    | awk -v c="$2" '$1 == c && $3 == "0" { print $4; exit }'
}

# Starts a 3-member DLedger group (kind java|ours) behind our name server; sets
# dl_pids (pid per member), dl_addrs ("addr=pid,..."), dl_master, dl_master_pid.
start_group() { # <kind>
  local kind="$1" d="$work/dl-$1" i peers="" bport lport pid deadline addr
  local -a dports bports
  mkdir -p "$d"
  start_our_namesrv "$d/ns"
  for i in 0 1 2; do
    dports[$i]="$(free_block)"
    bports[$i]="$(free_block)"
    peers="${peers:+$peers;}n$i-127.0.0.1:${dports[$i]}"
  done
  dl_pids=() dl_addrs=""
  for i in 0 1 2; do
    bport="${bports[$i]}"
    mkdir -p "$d/n$i/home/conf"
    cat >"$d/n$i/broker.conf" <<CONF
brokerClusterName=DLedgerBench
brokerName=bench-dl
brokerId=0
$(broker_conf_base "$bport" "$d/n$i/store")
enableDLegerCommitLog=true
dLegerGroup=bench-dl
dLegerPeers=$peers
dLegerSelfId=n$i
CONF
    if [ "$kind" = java ]; then
      cp "$root"/compat-tests/java/conf/logback_*.xml "$d/n$i/home/conf/"
      ROCKETMQ_HOME="$d/n$i/home" java -Xms512m -Xmx512m -XX:MaxDirectMemorySize=512m -XX:+UseG1GC \
        -Duser.home="$d/n$i/home" -Drocketmq.home.dir="$d/n$i/home" -Dfile.encoding=UTF-8 \
        -Drmq.logback.configurationFile=rmq.broker.logback.xml -cp "$work/reflib/*" \
        org.apache.rocketmq.broker.BrokerStartup -c "$d/n$i/broker.conf" >"$d/n$i/broker.out" 2>&1 </dev/null &
    else
      HOME="$d/n$i" "$bins/mqbroker" -c "$d/n$i/broker.conf" >"$d/n$i/broker.log" 2>&1 </dev/null &
    fi
    pid=$!
    started+=("$pid")
    dl_pids+=("$pid")
    dl_addrs="${dl_addrs:+$dl_addrs,}127.0.0.1:$bport=$pid"
  done
  for i in 0 1 2; do
    wait_listen "${bports[$i]}" "${dl_pids[$i]}" "$kind broker n$i"
  done
  # A master elected and registered (broker id 0), then the topic on every member.
  deadline=$(($(now_ms) + 180000))
  dl_master=""
  until [ -n "$dl_master" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "bench-broker.sh: no $kind DLedger master after 180 s" >&2; return 1; }
    sleep 1
    dl_master="$(master_of "$ns_addr" DLedgerBench)"
  done
  for i in 0 1 2; do
    addr="127.0.0.1:${bports[$i]}"
    deadline=$(($(now_ms) + 60000))
    until update_topic_b "$ns_addr" "$addr" BenchTopic; do
      [ "$(now_ms)" -lt "$deadline" ] || { echo "bench-broker.sh: updateTopic on $kind $addr failed" >&2; return 1; }
      sleep 1
    done
  done
  dl_master_pid="$(tr ',' '\n' <<<"$dl_addrs" | awk -F= -v a="$dl_master" '$1 == a { print $2 }')"
  log "$kind: DLedger group up, master $dl_master (pid $dl_master_pid)"
}

stop_group() {
  local p
  for p in "${dl_pids[@]}"; do stop_pid "$p"; done
  stop_pid "$ns_pid"
}

run_dledger() { # <kind>
  local kind="$1"
  start_group "$kind" || { put "$kind" failed 1; stop_group; return 0; }
  java_run "$work/dl-$kind/client" compat.BenchProducer send "$ns_addr" BenchTopic "$dl_master_pid" \
    "$warmup" "$duration" "$threads" "$size" | tee "$work/dl-$kind/send.out" >&2 || true
  record "$kind" "$work/dl-$kind/send.out"
  java_run "$work/dl-$kind/client" compat.BenchFailover "$ns_addr" BenchTopic bench-dl "$dl_addrs" 120 \
    | tee "$work/dl-$kind/failover.out" >&2 || true
  awk -v s="$kind" '$1 == "RESULT" && $2 == "failover" { split($3, kv, "="); print s, "failover_ms", kv[2] }' \
    "$work/dl-$kind/failover.out" >>"$results"
  stop_group
}

# The report's first lines: the machine, when the run started, the load.
report_head() {
  echo
  echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); load generator on the same machine"
  echo "run: $started_at; load average before: $load_before, after: $load_after"
}

if [ "$dledger" = yes ]; then
  [[ ",$only," != *,java,* ]] || java_broker_libs
  load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
  for s in ${only//,/ }; do
    case "$s" in
      java | ours) run_dledger "$s" ;;
      *) usage ;;
    esac
  done
  load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
  report_head
  echo "DLedger groups of 3 on one machine; sync send, ${size}-byte bodies, threads $threads, ${duration}s each after ${warmup}s warm-up"
  echo
  awk -v threads="$threads" -f - "$results" <<'AWK'
{ v[$1, $2] = $3 }
function val(s, k) { return ((s, k) in v) ? v[s, k] + 0 : -1 }
function cell(s, k, fmt) { x = val(s, k); return x < 0 ? "n/a" : sprintf(fmt, x) }
function ratio(a, b) { return (a <= 0 || b <= 0) ? "n/a" : sprintf("%.3g", a / b) }
function row(label, k, fmt) {
  printf "| %-30s | %12s | %12s | %9s |\n", label, cell("java", k, fmt), cell("ours", k, fmt), ratio(val("ours", k), val("java", k))
}
function goal(text, ok, got) { printf "  %-40s %-10s %s\n", text, got, ok ? "MET" : "MISSED" }
BEGIN { n = split(threads, T, ",") }
END {
  if (val("java", "failed") > 0) print "Java DLedger group did not start (see the log above)"
  if (val("ours", "failed") > 0) print "our DLedger group did not start (see the log above)"
  printf "| %-30s | %12s | %12s | %9s |\n", "3-member DLedger group", "Java 5.3.3", "ours", "ours/Java"
  printf "|%s|%s|%s|%s|\n", "--------------------------------", "--------------", "--------------", "-----------"
  for (i = 1; i <= n; i++) {
    t = T[i]
    row("send TPS, " t " threads", "send" t "_tps", "%.0f")
    row("  p50 latency us", "send" t "_p50_us", "%.0f")
    row("  p99 latency us", "send" t "_p99_us", "%.0f")
    row("  master CPU us/msg", "send" t "_cpu_us_per_msg", "%.2f")
    row("  errors", "send" t "_errors", "%.0f")
  }
  row("failover ms (SIGKILL -> ack)", "failover_ms", "%.0f")
  print ""
  print "goals (issue 8):"
  for (i = 1; i <= n; i++) {
    t = T[i]; k = "send" t "_tps"
    if (val("ours", k) > 0 && val("java", k) > 0)
      goal("send TPS >= 3x Java, " t " threads", val("ours", k) >= 3 * val("java", k), ratio(val("ours", k), val("java", k)) "x")
  }
  if (val("ours", "failover_ms") >= 0)
    goal("failover <= 1.5 s", val("ours", "failover_ms") <= 1500, val("ours", "failover_ms") " ms")
}
AWK
  exit 0
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
for s in ${only//,/ }; do
  case "$s" in
    java) run_java ;;
    ours) run_ours ;;
    echo) run_echo ;;
    *) usage ;;
  esac
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
report_head
echo "load: sync send, ${size}-byte bodies, threads $threads, ${duration}s each after ${warmup}s warm-up; consume: $consume messages ($consume_mode consumer)"
echo
awk -v threads="$threads" -f - "$results" <<'AWK'
{ v[$1, $2] = $3; have[$1] = 1 }
function val(s, k) { return ((s, k) in v) ? v[s, k] + 0 : -1 }
function cell(s, k, scale, fmt) { x = val(s, k); return x < 0 ? "n/a" : sprintf(fmt, x / scale) }
function ratio(a, b) { return (a <= 0 || b <= 0) ? "n/a" : sprintf("%.3g", a / b) }
function row(label, k, scale, fmt) {
  printf "| %-34s | %12s | %12s | %12s | %9s | %9s |\n", label, cell("java", k, scale, fmt),
    cell("ours", k, scale, fmt), cell("echo", k, scale, fmt), ratio(val("ours", k), val("java", k)),
    ratio(val("ours", k), val("echo", k))
}
function goal(text, ok, got) { printf "  %-44s %-10s %s\n", text, got, ok ? "MET" : "MISSED" }
BEGIN { n = split(threads, T, ",") }
END {
  printf "| %-34s | %12s | %12s | %12s | %9s | %9s |\n", "", "Java 5.3.3", "ours", "echo", "ours/Java", "ours/echo"
  printf "|%s|%s|%s|%s|%s|%s|\n", "------------------------------------", "--------------", "--------------", "--------------", "-----------", "-----------"
  row("start -> accepting connections ms", "start_ms", 1, "%.0f")
  row("idle RSS MiB", "idle_rss_kib", 1024, "%.1f")
  row("peak RSS (VmHWM) MiB", "peak_rss_kib", 1024, "%.1f")
  row("  at end: RssAnon MiB", "end_anon_kib", 1024, "%.1f")
  row("  at end: RssFile (mapped) MiB", "end_file_kib", 1024, "%.1f")
  for (i = 1; i <= n; i++) {
    t = T[i]
    row("send TPS, " t " threads", "send" t "_tps", 1, "%.0f")
    row("  p50 latency us", "send" t "_p50_us", 1, "%.0f")
    row("  p99 latency us", "send" t "_p99_us", 1, "%.0f")
    row("  p99.9 latency us", "send" t "_p999_us", 1, "%.0f")
    row("  server CPU us/msg", "send" t "_cpu_us_per_msg", 1, "%.2f")
    row("  generator CPU us/msg", "send" t "_gen_cpu_us_per_msg", 1, "%.2f")
    row("  errors", "send" t "_errors", 1, "%.0f")
  }
  row("consume msg/s (first to last msg)", "consume_mps", 1, "%.0f")
  row("  start() -> first message ms", "consume_first_msg_after_ms", 1, "%.0f")
  row("  server CPU us/msg", "consume_cpu_us_per_msg", 1, "%.2f")
  row("  consumer CPU us/msg", "consume_gen_cpu_us_per_msg", 1, "%.2f")
  print ""
  print "ratios are ours / other: above 1 is better for TPS, below 1 for latency, RSS, CPU and start-up"
  print ""
  print "goals (issue 9):"
  for (i = 1; i <= n; i++) {
    t = T[i]; k = "send" t "_tps"
    if (val("ours", k) > 0 && val("java", k) > 0)
      goal("send TPS >= 2x Java, " t " threads", val("ours", k) >= 2 * val("java", k), ratio(val("ours", k), val("java", k)) "x")
    if (val("ours", k) > 0 && val("echo", k) > 0)
      goal("send TPS >= 70% of echo, " t " threads", val("ours", k) >= 0.7 * val("echo", k), sprintf("%.0f%%", 100 * val("ours", k) / val("echo", k)))
    k = "send" t "_p99_us"
    if (val("ours", k) > 0 && val("java", k) > 0)
      goal("p99 <= 0.5x Java, " t " threads", val("ours", k) <= 0.5 * val("java", k), ratio(val("ours", k), val("java", k)) "x")
  }
  k = "consume_mps"
  if (val("ours", k) > 0 && val("java", k) > 0)
    goal("consume TPS >= 2x Java", val("ours", k) >= 2 * val("java", k), ratio(val("ours", k), val("java", k)) "x")
  k = "idle_rss_kib"
  if (val("ours", k) > 0 && val("java", k) > 0)
    goal("idle RSS <= 1/20 of Java", 20 * val("ours", k) <= val("java", k), "1/" sprintf("%.0f", val("java", k) / val("ours", k)))
  k = "start_ms"
  if (val("ours", k) >= 0 && val("java", k) > 0)
    goal("start-up <= 1/20 of Java", 20 * val("ours", k) <= val("java", k), "1/" (val("ours", k) > 0 ? sprintf("%.0f", val("java", k) / val("ours", k)) : "inf"))
}
AWK
