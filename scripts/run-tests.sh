#!/usr/bin/env bash
# The project's checks, in order: ruff, mypy, the fast test tier, the full test tier (tests/tiers.py).
# Every step runs even when an earlier one failed, so one run reports everything; the exit status is non-zero
# when any step failed. Extra arguments go to both pytest runs (e.g. `-x`, `-k chat`).
#   bash scripts/run-tests.sh            everything (what CI runs)
#   TIERS=fast bash scripts/run-tests.sh lint, types and the fast tier only (minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TIERS=${TIERS:-fast full}
failed=()

step() {  # step NAME COMMAND...: runs it, records NAME when it fails
  local name=$1
  shift
  echo "=== $name: $*"
  local started=$SECONDS
  "$@"
  local status=$?
  # pytest's 5 is "no tests collected": a tier that -k/-m leaves empty has nothing that failed.
  if [ "$status" -ne 0 ] && ! { [ "$status" -eq 5 ] && [ "$1" = "$PYTHON" ] && [ "$3" = "pytest" ]; }; then
    failed+=("$name (exit $status)")
  fi
  echo "=== $name: exit $status after $((SECONDS - started)) s"
}

step ruff "$PYTHON" -m ruff check .
step mypy "$PYTHON" -m mypy
for tier in $TIERS; do
  case $tier in
    fast) step "fast tier" "$PYTHON" -m pytest -q -m "not full" "$@" ;;
    full) step "full tier" "$PYTHON" -m pytest -q -m full "$@" ;;
    *) echo "unknown tier '$tier' (fast, full)" >&2; exit 2 ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all checks passed"
