#!/usr/bin/env bash
# Runs Python tests against a sanitised build of the C core (AddressSanitizer +
# UndefinedBehaviorSanitizer), without the Makefile and without touching the installed
# module: the sanitised pollnet._pncore is built under native/build/ffi/asan-module/ and
# loaded from there through POLLNET_CORE_MODULE; the compiled per-message path
# (pollnet._pnfast) likewise through POLLNET_FAST_MODULE.
#
#   scripts/pytest-asan.sh                 # tests/efvi
#   scripts/pytest-asan.sh tests/efvi -k send -x
#
# Python itself is not sanitised: the ASan runtime is LD_PRELOADed, leak detection is off
# (the interpreter keeps memory at exit by design; the C tests run LSan on the core), and
# any ASan or UBSan report aborts the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CC=${CC:-gcc}

out=native/build/ffi/asan-module
rm -f "$out"/pollnet/_pncore*.so
POLLNET_SANITIZE=1 CC="$CC" "$PY" native/build_ffi.py "$out" >&2
so=$(ls "$out"/pollnet/_pncore*.so 2>/dev/null | head -n 1 || true)
if [ -z "$so" ]; then
  echo "pytest-asan: the sanitised build produced no module under $out/pollnet" >&2
  exit 1
fi
# The compiled per-message path, sanitised too, calling that core.
POLLNET_SANITIZE=1 CC="$CC" "$PY" native/build_fast.py "$out" >&2
fast=$(ls "$out"/pollnet/_pnfast*.so 2>/dev/null | head -n 1 || true)
if [ -z "$fast" ]; then
  echo "pytest-asan: the sanitised build produced no _pnfast module under $out/pollnet" >&2
  exit 1
fi
asan=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$asan" ]; then
  echo "pytest-asan: $CC has no libasan.so (apt-get install gcc, or set CC)" >&2
  exit 1
fi

export LD_PRELOAD="$asan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export POLLNET_CORE_MODULE="$PWD/$so"
export POLLNET_FAST_MODULE="$PWD/$fast"
export PYTHONMALLOC=malloc  # so ASan sees Python's buffers too (bytes handed to send())
if [ $# -eq 0 ]; then
  set -- tests/efvi
fi
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
