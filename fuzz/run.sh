#!/usr/bin/env bash
# CI's short fuzz pass: builds every target and runs each for SECONDS (default 15), two at a
# time, starting from the committed corpus (fuzz/corpus/<target>, left unchanged: new inputs
# go to a temporary directory). Fails when a target crashes; the input is kept in
# fuzz/artifacts/<target>/ and the log in fuzz/logs/<target>.log.
#   fuzz/run.sh [SECONDS]        FUZZ_JOBS=N to change the parallelism
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${1:-15}
jobs=${FUZZ_JOBS:-2}
start=$SECONDS
build_targets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if run_all "$secs" "$jobs" "$work"; then
  echo "fuzz: all ${#TARGETS[@]} targets passed, $((SECONDS - start)) s in all"
else
  echo "fuzz: a target crashed ($((SECONDS - start)) s in all)"
  exit 1
fi
