#!/usr/bin/env bash
# Start/stop a reference cluster of the OFFICIAL Java name server + broker (from Maven
# Central) on loopback, to check the Java drivers and mqadmin before they are pointed at
# our server.
#
#   reference-cluster.sh start <dir> [version]   (version default 5.3.3; 4.9.8 also works)
#   reference-cluster.sh stop  <dir>
#
# Name server 127.0.0.1:19876, broker 127.0.0.1:20911 (fast port 20909, HA 20912),
# cluster "RefCluster", broker "ref-broker-a". Everything (store, logs, user.home,
# ROCKETMQ_HOME, pids, stdout) lives under <dir>. Readiness = the "boot success" lines.
# Stop = SIGTERM (broker first), SIGKILL only after 30 s.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NS_PORT="${REF_NS_PORT:-19876}"
BROKER_PORT="${REF_BROKER_PORT:-20911}"
BOOT_TIMEOUT="${REF_BOOT_TIMEOUT:-90}"

usage() {
  echo "usage: $0 start <dir> [version] | stop <dir>" >&2
  exit 2
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for <file> <text> <pidfile> <what>
wait_for() {
  local deadline=$((SECONDS + BOOT_TIMEOUT))
  while ! grep -q "$2" "$1" 2>/dev/null; do
    if ! alive "$3"; then
      echo "reference-cluster: $4 exited during start-up; last output:" >&2
      tail -n 40 "$1" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "reference-cluster: $4 not ready after ${BOOT_TIMEOUT}s; last output:" >&2
      tail -n 40 "$1" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

stop_one() { # <pidfile> <what>
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then
        echo "reference-cluster: $2 (pid $pid) ignored SIGTERM for 30s, killing" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  fi
  rm -f "$pidfile"
}

do_stop() {
  local dir="$1"
  stop_one "$dir/broker.pid" broker
  stop_one "$dir/namesrv.pid" "name server"
}

prepare_libs() { # <version> -> target/reference/<version>/lib
  local ver="$1" out="$here/target/reference/$1"
  local stamp="$out/.prepared" want
  want="$(cat "$here/reference/pom.xml" | sha256sum | cut -d' ' -f1)-$ver"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$out"
  rm -rf "$out/lib"
  if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/reference/pom.xml" \
        -Drmq.version="$ver" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$out/prepare.log" 2>&1; then
    cat "$out/prepare.log" >&2
    echo "reference-cluster: maven failed for RocketMQ $ver" >&2
    return 1
  fi
  echo "$want" >"$stamp"
}

do_start() {
  local dir="$1" ver="$2"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if alive "$dir/namesrv.pid" || alive "$dir/broker.pid"; then
    echo "reference-cluster: already running in $dir (stop it first)" >&2
    return 1
  fi
  prepare_libs "$ver"
  local cp="$here/target/reference/$ver/lib/*"
  local home="$dir/home"
  mkdir -p "$home/conf" "$dir/store"
  cp "$here"/conf/logback_*.xml "$home/conf/"

  # 5.x: bindAddress exists and keeps listeners on loopback; 4.9.x binds the wildcard
  # address (no option) but still advertises brokerIP1.
  local bind="" jdk_opens=""
  case "$ver" in
    4.*)
      jdk_opens="--add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-exports java.base/jdk.internal.ref=ALL-UNNAMED --add-exports java.base/sun.nio.ch=ALL-UNNAMED"
      ;;
    *)
      bind="bindAddress=127.0.0.1"
      ;;
  esac

  cat >"$dir/namesrv.properties" <<PROPS
listenPort=$NS_PORT
$bind
kvConfigPath=$dir/namesrv/kvConfig.json
configStorePath=$dir/namesrv/namesrv.properties
PROPS
  cat >"$dir/broker.properties" <<PROPS
brokerClusterName=RefCluster
brokerName=ref-broker-a
brokerId=0
namesrvAddr=127.0.0.1:$NS_PORT
listenPort=$BROKER_PORT
haListenPort=$((BROKER_PORT + 1))
$bind
brokerIP1=127.0.0.1
brokerIP2=127.0.0.1
storePathRootDir=$dir/store
storePathCommitLog=$dir/store/commitlog
mappedFileSizeCommitLog=67108864
flushDiskType=ASYNC_FLUSH
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
cleanFileForciblyEnable=false
enablePropertyFilter=true
PROPS

  local common=(-XX:+UseG1GC -Duser.home="$home" -Drocketmq.home.dir="$home" -Dfile.encoding=UTF-8)
  # shellcheck disable=SC2086
  ROCKETMQ_HOME="$home" nohup java -Xms256m -Xmx256m -XX:MaxMetaspaceSize=128m $jdk_opens "${common[@]}" \
    -Drmq.logback.configurationFile=rmq.namesrv.logback.xml \
    -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup -c "$dir/namesrv.properties" \
    >"$dir/namesrv.out" 2>&1 </dev/null &
  echo $! >"$dir/namesrv.pid"
  if ! wait_for "$dir/namesrv.out" "The Name Server boot success" "$dir/namesrv.pid" "name server"; then
    do_stop "$dir"
    return 1
  fi

  # shellcheck disable=SC2086
  ROCKETMQ_HOME="$home" nohup java -Xms1g -Xmx1g -XX:MaxDirectMemorySize=1g $jdk_opens "${common[@]}" \
    -Drmq.logback.configurationFile=rmq.broker.logback.xml \
    -cp "$cp" org.apache.rocketmq.broker.BrokerStartup -c "$dir/broker.properties" \
    >"$dir/broker.out" 2>&1 </dev/null &
  echo $! >"$dir/broker.pid"
  if ! wait_for "$dir/broker.out" "boot success" "$dir/broker.pid" "broker"; then
    do_stop "$dir"
    return 1
  fi
  echo "$ver" >"$dir/version"
  echo "reference cluster $ver up: namesrv 127.0.0.1:$NS_PORT, broker 127.0.0.1:$BROKER_PORT (dir $dir)"
}

[ $# -ge 2 ] || usage
case "$1" in
  start) do_start "$2" "${3:-5.3.3}" ;;
  stop) do_stop "$2" ;;
  *) usage ;;
esac
