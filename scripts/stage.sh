# Sourced by scripts/test.sh: `stage NAME CMD...` runs one stage and reports it as
#   ok        CMD exited 0
#   SKIPPED   CMD exited 77 (the automake convention) because it could not run here; the
#             reason is the first line it wrote to $STAGE_SKIP_FILE (or "no reason given")
#   FAILED    anything else (the stage's name is added to $failed)
# A stage that skipped is never reported as ok.
failed=()
skipped=()
STAGE_SKIP_FILE=$(mktemp)
export STAGE_SKIP_FILE
trap 'rm -f "$STAGE_SKIP_FILE"' EXIT

stage() {
  local name=$1; shift
  echo "=== $name" >&2
  local t0=$SECONDS rc=0
  : > "$STAGE_SKIP_FILE"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "=== $name: ok ($((SECONDS - t0)) s)" >&2
  elif [ "$rc" -eq 77 ]; then
    local why
    why=$(head -n 1 "$STAGE_SKIP_FILE")
    echo "=== $name: SKIPPED (${why:-no reason given})" >&2
    skipped+=("$name")
  else
    echo "=== $name: FAILED ($((SECONDS - t0)) s)" >&2
    failed+=("$name")
  fi
}
