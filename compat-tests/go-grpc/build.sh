#!/usr/bin/env bash
# Build the RocketMQ 5 gRPC Go client driver (cmd/scenarios) into <outdir>.
#
#   build.sh <outdir>     # against the client pinned in go.mod (golang/v5 v5.1.2)
#
# Uses the Go module cache as it is and downloads what is missing from the Go
# module proxy. Prints nothing on success; on failure prints the go output and
# exits non-zero.
set -euo pipefail

if [[ $# -ne 1 || -z "${1:-}" ]]; then
    echo "usage: $0 <outdir>" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
outdir="$(cd "$1" && pwd)"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# shellcheck source=../go/common.sh
source "$here/../go/common.sh"

cd "$here"
run go build -trimpath -o "$outdir/scenarios" ./cmd/scenarios
