#!/usr/bin/env bash
# Build the Java compat drivers against one official RocketMQ version and lay out
#   target/<version>/classes     compiled drivers (compat.*)
#   target/<version>/lib/*.jar   rocketmq-client/-remoting/-tools <version> + deps
#   target/<version>/home/conf/  logback_*.xml for ROCKETMQ_HOME (4.9.x needs them)
# Classpath afterwards: target/<version>/classes:target/<version>/lib/*
# Usage: prepare.sh <version>   (e.g. 4.9.8 or 5.3.3). Idempotent, quiet unless failing.
#        prepare.sh <version> <classes-version>
#   Clients older than the drivers' API (4.3.x, 4.7.x: no lite pull consumer,
#   other constructors) cannot compile them: the drivers compiled against
#   <classes-version> are run on <version>'s jars instead. A driver path that
#   calls an API the old client lacks fails with NoSuchMethodError /
#   NoClassDefFoundError, which callers report as "API absent".
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
  echo "usage: $0 <rocketmq-version> [<classes-version>]  (e.g. 4.9.8, 5.3.3; 4.3.0 4.9.8)" >&2
  exit 2
fi
ver="$1"
classes_from="${2:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "$classes_from" ] && [ "$classes_from" != "$ver" ]; then
  "$here/prepare.sh" "$classes_from"
else
  classes_from=""
fi
out="$here/target/$ver"
mkdir -p "$out"
# Test binaries may run side by side: one build of a version at a time.
if command -v flock >/dev/null; then
  exec 8>"$here/target/.prepare-$ver.lock"
  flock 8
fi

# Skip Maven when nothing changed since the last successful run.
stamp="$out/.prepared"
want="$(cd "$here" && { echo "$ver $classes_from"; cat pom.xml prepare.sh; find src conf -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -d "$out/classes/compat" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
rm -f "$stamp"

log="$out/prepare.log"
# Fresh lib dir so jars of an older resolution never linger on the classpath.
rm -rf "$out/lib"
goals="compile dependency:copy-dependencies"
if [ -n "$classes_from" ]; then
  goals="dependency:copy-dependencies"
fi
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/pom.xml" -Drmq.version="$ver" \
      $goals \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$log" 2>&1; then
  cat "$log" >&2
  echo "prepare.sh: maven build for RocketMQ $ver failed (log: $log)" >&2
  exit 1
fi

if [ -n "$classes_from" ]; then
  rm -rf "$out/classes"
  cp -a "$here/target/$classes_from/classes" "$out/classes"
fi

mkdir -p "$out/home/conf"
cp "$here"/conf/*.xml "$out/home/conf/"

echo "$want" >"$stamp"
