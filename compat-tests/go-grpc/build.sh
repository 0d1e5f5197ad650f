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

# The module lives inside the project's git work tree; VCS stamping is not
# wanted (and fails on checkouts owned by another user).
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
# Never switch toolchains behind the caller's back (go.mod asks for go 1.22).
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

cd "$here"
if ! go build -trimpath -o "$outdir/scenarios" ./cmd/scenarios >>"$log" 2>&1; then
    echo "build.sh: failed: go build ./cmd/scenarios" >&2
    cat "$log" >&2
    exit 1
fi
