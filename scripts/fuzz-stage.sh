#!/usr/bin/env bash
# The libFuzzer target over the core's frame input (native/tests/fuzz_frames.c), built with
# clang's -fsanitize=fuzzer,address,undefined, run for POLLNET_FUZZ_SECS seconds (default
# 20) from the corpus it keeps in native/build/fuzz/corpus. Exit 77 (SKIPPED, reason in
# $STAGE_SKIP_FILE) where clang or its libFuzzer runtime is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
skip() {
  echo "$1" > "${STAGE_SKIP_FILE:-/dev/stderr}"
  exit 77
}
clang=${CLANG:-clang-14}
command -v "$clang" >/dev/null || skip "no $clang (install clang for the libFuzzer stage)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
  > "$probe/p.c"
"$clang" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null \
  || skip "$clang cannot link -fsanitize=fuzzer (no libFuzzer runtime)"
mkdir -p native/build/fuzz
log=native/build/fuzz/run.log
if ! make -s -C native fuzz CLANG="$clang" FUZZ_SECS="${POLLNET_FUZZ_SECS:-20}" > "$log" 2>&1; then
  tail -n 40 "$log" >&2  # libFuzzer's report: the input that crashed and the stack
  echo "fuzz_frames failed; whole log: $log" >&2
  exit 1
fi
grep -E '^Done [0-9]+ runs' "$log" >&2
