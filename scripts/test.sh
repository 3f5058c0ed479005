#!/usr/bin/env bash
# Every test pollnet has, in one run (`make test` calls this after installing):
#   1. lint, types and layering: ruff, mypy --strict, import-linter's contracts, no circle
#   2. the C core's tests, built twice: -O2, and ASan+UBSan (make -C native test)
#   3. the real links' C tests under ASan+UBSan in private namespaces (root)
#   4. the efvi Python tests against an ASan+UBSan build of the core and of the compiled
#      per-message path (pollnet._pnfast)
#   5. the efvi tests and the whole behaviour suite on the Python per-message path (the
#      fallback where _pnfast cannot be built)
#   6. the whole pytest suite against the optimised build (its summary line comes last)
# A failing stage does not stop the later ones; the exit status is non-zero if any failed.
# A stage that cannot run here says SKIPPED with its reason, never ok (scripts/stage.sh).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
. scripts/stage.sh

stage "ruff" "$PY" -m ruff check pollnet tests
stage "mypy --strict" "$PY" -m mypy pollnet
stage "import layering (import-linter, pyproject.toml)" \
  "$PY" -c "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
stage "no import circle (scripts/import_cycles.py)" "$PY" scripts/import_cycles.py
stage "C core, -O2 and ASan+UBSan" make -s -C native test
stage "libFuzzer on the core's frame input (20 s)" scripts/fuzz-stage.sh
stage "real links, ASan+UBSan" native/tests/links/run.sh --asan
stage "efvi Python tests on the ASan+UBSan core" scripts/pytest-asan.sh tests/efvi
stage "the compiled per-message path under ASan+UBSan (behaviour suite, tcpdirect)" \
  scripts/pytest-asan.sh tests/behaviour tests/tcpdirect tests/unit/test_socket_fastpath.py \
  -k "efvi:sim or socket or tcpdirect"
stage "the Python per-message path (POLLNET_PURE_PYTHON=1)" env POLLNET_PURE_PYTHON=1 \
  "$PY" -m pytest -q -p no:cacheprovider tests/efvi tests/efvi_adapter tests/behaviour \
  tests/unit/test_socket_fastpath.py tests/tcpdirect
stage "pytest" "$PY" -m pytest -q -p no:cacheprovider

if [ ${#skipped[@]} -gt 0 ]; then
  echo "SKIPPED stages: ${skipped[*]}" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}" >&2
  exit 1
fi
