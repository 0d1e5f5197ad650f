#!/usr/bin/env bash
# Build the Java compat drivers against one official RocketMQ version and lay out
#   target/<version>/classes     compiled drivers (compat.*)
#   target/<version>/lib/*.jar   rocketmq-client/-remoting/-tools <version> + deps
#   target/<version>/home/conf/  logback_*.xml for ROCKETMQ_HOME (4.9.x needs them)
# Classpath afterwards: target/<version>/classes:target/<version>/lib/*
# Usage: prepare.sh <version>   (e.g. 4.9.8 or 5.3.3). Idempotent, quiet unless failing.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 <rocketmq-version>  (e.g. 4.9.8, 5.3.3)" >&2
  exit 2
fi
ver="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/target/$ver"
mkdir -p "$out"

# Skip Maven when nothing changed since the last successful run.
stamp="$out/.prepared"
want="$(cd "$here" && { echo "$ver"; cat pom.xml prepare.sh; find src conf -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -d "$out/classes/compat" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
rm -f "$stamp"

log="$out/prepare.log"
# Fresh lib dir so jars of an older resolution never linger on the classpath.
rm -rf "$out/lib"
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/pom.xml" -Drmq.version="$ver" \
      compile dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$log" 2>&1; then
  cat "$log" >&2
  echo "prepare.sh: maven build for RocketMQ $ver failed (log: $log)" >&2
  exit 1
fi

mkdir -p "$out/home/conf"
cp "$here"/conf/*.xml "$out/home/conf/"

echo "$want" >"$stamp"
