#!/usr/bin/env bash
# Build the gRPC Java driver (compat.grpc.GrpcScenarios) against
# rocketmq-client-java (the RocketMQ 5 gRPC client, shading its own gRPC) and
# lay out
#   target/client-<version>/classes     compiled driver
#   target/client-<version>/lib/*.jar   rocketmq-client-java <version> + deps
# Classpath afterwards: target/client-<version>/classes:target/client-<version>/lib/*
# Usage: prepare.sh [<client-version>]   (default 5.0.8). Idempotent, quiet unless failing.
set -euo pipefail
ver="${1:-5.0.8}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/target/client-$ver"
mkdir -p "$out"
if command -v flock >/dev/null; then
  exec 8>"$here/target/.prepare-client-$ver.lock"
  flock 8
fi
stamp="$out/.prepared"
want="$(cd "$here" && { echo "$ver"; cat pom.xml prepare.sh; find src -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -d "$out/classes/compat" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
rm -f "$stamp"
log="$out/prepare.log"
rm -rf "$out/lib"
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/pom.xml" -Dclient.version="$ver" \
      compile dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$log" 2>&1; then
  cat "$log" >&2
  echo "prepare.sh: maven build of the gRPC driver (client $ver) failed (log: $log)" >&2
  exit 1
fi
echo "$want" >"$stamp"
