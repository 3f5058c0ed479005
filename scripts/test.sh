#!/usr/bin/env bash
# Every test pollnet has, in one run (`make test` calls this after installing):
#   1. lint and types: ruff, mypy --strict
#   2. the C core's tests, built twice: -O2, and ASan+UBSan (make -C native test)
#   3. the real links' C tests under ASan+UBSan in private namespaces (root)
#   4. the efvi Python tests against an ASan+UBSan build of the core
#   5. the whole pytest suite against the optimised build (its summary line comes last)
# A failing stage does not stop the later ones; the exit status is non-zero if any failed.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
failed=()

stage() {
  local name=$1; shift
  echo "=== $name" >&2
  local t0=$SECONDS
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - t0)) s)" >&2
  else
    echo "=== $name: FAILED ($((SECONDS - t0)) s)" >&2
    failed+=("$name")
  fi
}

stage "ruff" "$PY" -m ruff check pollnet cli tests
stage "mypy --strict" "$PY" -m mypy pollnet cli
stage "C core, -O2 and ASan+UBSan" make -s -C native test
stage "real links, ASan+UBSan" native/tests/links/run.sh --asan
stage "efvi Python tests on the ASan+UBSan core" scripts/pytest-asan.sh tests/efvi
stage "pytest" "$PY" -m pytest -q -p no:cacheprovider

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}" >&2
  exit 1
fi
