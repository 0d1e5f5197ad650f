#!/usr/bin/env bash
# The cross-version compatibility matrix: every client and tool version of
# compat-tests/versions.txt through the scenario groups, against our servers
# and the mixed pairings with the Java servers; writes docs/COMPATIBILITY.md.
#
#   scripts/compat-matrix.sh                      # the whole matrix (about 20 min on 2 cores)
#   scripts/compat-matrix.sh --pairings ours      # only against our name server and broker
#   scripts/compat-matrix.sh --only java:4.3.0,go:v2.1.2 --out /tmp/m.md
#   scripts/compat-matrix.sh --ci                 # the rows .ci/run covers
#
# Needs what the compat suite needs (Java 17, Maven, Go, Node/npm; Maven
# Central, the Go module proxy and the npm registry on first use). Uses
# MQ_BIN_DIR's binaries when set, else builds the release binaries first.
# Exit status 1 when a cell failed that versions.txt does not document as the
# Java servers' own behaviour.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

out="docs/COMPATIBILITY.md"
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

if [[ -z "${MQ_BIN_DIR:-}" ]]; then
    cargo build --release --bins -p nameserver -p broker -q
fi
cargo build --release -p compat-tests --bin compat_matrix -q
target="${CARGO_TARGET_DIR:-$root/target}"
exec "$target/release/compat_matrix" --out "$out" --command "scripts/compat-matrix.sh" "${args[@]}"
