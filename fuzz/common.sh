# Shared by run.sh and long.sh: builds the targets and runs one of them. Sourced, not run.
# The targets are built by `cargo fuzz` (libFuzzer) on the stable toolchain, which needs
# RUSTC_BOOTSTRAP=1 for the sanitizer-coverage flags. No sanitizer: every crate forbids
# unsafe code, so AddressSanitizer would find nothing and cost half the speed; debug
# assertions are on (-a), so arithmetic overflow is a crash.

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# FUZZ_TARGET_DIR keeps the build somewhere that outlives the checkout (e.g. CI's cache), so
# a later run rebuilds only what changed.
TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"
# Every target, in the order they run.
TARGETS=(params client_auth bearer redirect scope token_request oauth1_header oauth1_request
  cookie jwt token_endpoint authorize client_cert_header)

build_targets() {
  local start=$SECONDS
  if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --version 0.13.2
  fi
  (cd "$FUZZ_DIR" && RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --debug-assertions \
    --target-dir "$TARGET_DIR")
  echo "fuzz: built ${#TARGETS[@]} targets in $((SECONDS - start)) s"
}

# run_target TARGET SECONDS WORK_CORPUS [extra libFuzzer flags...]
# New inputs go to WORK_CORPUS; the committed corpus is read as seeds. Prints one summary
# line: target, seconds, executions, coverage, features, corpus size, result.
run_target() {
  local target=$1 secs=$2 work=$3
  shift 3
  local seeds="$FUZZ_DIR/corpus/$target" log="$FUZZ_DIR/logs/$target.log"
  local artifacts="$FUZZ_DIR/artifacts/$target/"
  mkdir -p "$work" "$seeds" "$artifacts" "$FUZZ_DIR/logs"
  local start=$SECONDS rc=0 dict=()
  if [ -f "$FUZZ_DIR/dict/$target.dict" ]; then dict=(-dict="$FUZZ_DIR/dict/$target.dict"); fi
  nice -n "${FUZZ_NICE:-0}" "$BIN_DIR/$target" "$work" "$seeds" -max_total_time="$secs" -rss_limit_mb=2048 \
    -timeout=10 -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" "$@" \
    >"$log" 2>&1 || rc=$?
  local execs cov ft units
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  local result=ok
  if [ "$rc" -ne 0 ]; then
    result="CRASH (exit $rc; see $log and $artifacts)"
  fi
  printf 'fuzz: %-15s %5ss %10s execs  cov %-6s ft %-6s corpus %-5s %s\n' \
    "$target" "$((SECONDS - start))" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" "$result"
  [ "$rc" -eq 0 ]
}

# run_all SECONDS JOBS WORK_ROOT [extra flags...]: every target, JOBS at a time.
run_all() {
  local secs=$1 jobs=$2 work_root=$3
  shift 3
  local failed=0 pids=() t
  for t in "${TARGETS[@]}"; do
    run_target "$t" "$secs" "$work_root/$t" "$@" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return $failed
}
