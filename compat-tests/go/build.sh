#!/usr/bin/env bash
# Build the Go compat driver binaries into <outdir>.
#
#   build.sh <outdir>              # against the client version pinned in go.mod (v2.1.2)
#   build.sh <outdir> <version>    # against another rocketmq-client-go/v2 version, e.g.
#                                  #   v2.1.3-0.20251226070945-2173d070fd1b  (HEAD, Dec 2025)
#
# GO_TARGETS="produce-consume scenarios" builds those commands (default:
# produce-consume).
#
# Uses the Go module cache as it is and downloads what is missing from the Go
# module proxy. Prints nothing on success; on failure prints the go output and
# exits non-zero. The second form builds from a temporary copy of this module
# (go mod edit -require + go mod tidy there), so go.mod/go.sum here stay untouched.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || -z "${1:-}" ]]; then
    echo "usage: $0 <outdir> [rocketmq-client-go version]" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
outdir="$(cd "$1" && pwd)"
version="${2:-}"
client="github.com/apache/rocketmq-client-go/v2"

log="$(mktemp)"
tmp=""
cleanup() {
    rm -f "$log"
    if [[ -n "$tmp" ]]; then
        # the module cache marks files read-only; copies here are plain files
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# shellcheck source=common.sh
source "$here/common.sh"

src="$here"
if [[ -n "$version" ]]; then
    tmp="$(mktemp -d)"
    cp "$here/go.mod" "$here/go.sum" "$tmp/"
    cp -R "$here/cmd" "$tmp/"
    src="$tmp"
    cd "$src"
    run go mod edit -require="$client@$version"
    run go mod tidy
fi

cd "$src"
# GO_TARGETS: the commands to build (default: produce-consume only).
for target in ${GO_TARGETS:-produce-consume}; do
    run go build -trimpath -o "$outdir/$target" "./cmd/$target"
done
