#!/usr/bin/env bash
# The longer runs that `.ci/run` (scripts/test.sh) leaves out, one after the
# other: every `#[ignore]`d test of the workspace (the second compositions of
# scenarios whose first runs in CI, and the Java-only reference runs; see
# compat-tests/README.md), then the two soaks at a larger size:
# CTL_FAULT_ROUNDS (default here 200) and DLEDGER_PROCESS_SETS (default here 10).
# The store's disk-full test stays in test.sh (it needs root for a tmpfs).
#
#   scripts/test-long.sh            all of it
#   scripts/test-long.sh ignored    only the ignored tests
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
for tool in cargo java mvn go; do
  command -v "$tool" >/dev/null || { echo "test-long.sh: '$tool' is required but not installed" >&2; exit 1; }
done
# Always --workspace: the same feature resolution as test.sh, so nothing is
# compiled twice.
cargo build --release --locked --workspace --bins --tests --examples
failed=0
cargo test --release --locked --workspace --no-fail-fast -- --ignored \
  --skip disk_full_is_an_error_and_leaves_files_consistent || failed=1
if [ "${1:-}" != ignored ]; then
  CTL_FAULT_ROUNDS=${CTL_FAULT_ROUNDS:-200} \
    cargo test --release --locked --workspace --test controller_fault_rounds -- --nocapture || failed=1
  DLEDGER_PROCESS_SETS=${DLEDGER_PROCESS_SETS:-10} \
    cargo test --release --locked --workspace --test dledger_processes || failed=1
fi
if [ "$failed" != 0 ]; then
  echo "test-long.sh: FAILED after $(( $(date +%s) - start ))s (see above)" >&2
  exit 1
fi
echo "test-long.sh: all long tests passed in $(( $(date +%s) - start ))s"
