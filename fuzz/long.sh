#!/usr/bin/env bash
# A long fuzz run: every target for SECONDS each, JOBS at a time (default 1), at the lowest
# CPU priority, with its growing corpus kept in fuzz/work/<target> (not committed). With
# MERGE=1, the inputs that add coverage are then merged into the committed corpus
# (fuzz/corpus/<target>, libFuzzer -set_cover_merge=1: the fewest inputs that cover every
# new feature, which keeps the corpus small).
#   fuzz/long.sh SECONDS [JOBS] [TARGET...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
export FUZZ_NICE=${FUZZ_NICE:-19}
secs=${1:?usage: long.sh SECONDS [JOBS] [TARGET...]}
jobs=${2:-1}
shift $(( $# >= 2 ? 2 : 1 ))
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi
build_targets
echo "fuzz: long run of ${TARGETS[*]}, ${secs} s each, ${jobs} at a time, started $(date -u +%H:%M:%S)"
status=0
run_all "$secs" "$jobs" "$FUZZ_DIR/work" || status=1
if [ "${MERGE:-0}" = 1 ]; then
  for t in "${TARGETS[@]}"; do
    "$BIN_DIR/$t" -set_cover_merge=1 -max_len=4096 "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/work/$t" \
      >"$FUZZ_DIR/logs/$t.merge.log" 2>&1 || true
    echo "fuzz: $t corpus now $(ls "$FUZZ_DIR/corpus/$t" | wc -l) files"
  done
fi
echo "fuzz: long run ended $(date -u +%H:%M:%S)"
exit $status
