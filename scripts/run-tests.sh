#!/usr/bin/env bash
# The project's checks: ruff, mypy (beside the fast tier: see below), the fast test tier, the full test tier
# (tests/tiers.py).
# Each tier runs in two parts: its tests in JOBS pytest-xdist workers side by side (whole files per worker, so a
# module's fixtures are built once), then its tests marked `alone` (pytest.ini: wall-clock, CPU or memory bounds,
# load) by themselves, never beside another test.
# Every step runs even when an earlier one failed, so one run reports everything; the exit status is non-zero
# when any step failed. Extra arguments go to every pytest run (e.g. `-x`, `-k chat`).
#   bash scripts/run-tests.sh            everything (what CI runs)
#   TIERS=fast bash scripts/run-tests.sh lint, types and the fast tier only (minutes)
#   JOBS=0 bash scripts/run-tests.sh     every test in one process, one after another (e.g. for --pdb)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TIERS=${TIERS:-fast full}
# Two workers for CI's two cores: in one process, a test often waits on a server, a subprocess or the browser while
# a core idles.
JOBS=${JOBS:-2}
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

beside_pid="" beside_log=""
beside() {  # beside COMMAND...: starts it in the background, its output (and its own duration) kept for beside_done
  beside_log=$(mktemp)
  (
    started=$SECONDS
    "$@"
    status=$?
    echo "(it took $((SECONDS - started)) s)"
    exit $status
  ) >"$beside_log" 2>&1 &
  beside_pid=$!
}
beside_done() {  # beside_done NAME: waits for it, prints its output, records NAME when it failed
  local name=$1 status
  wait "$beside_pid"
  status=$?
  echo "=== $name (ran beside the fast tier)"
  cat "$beside_log"
  rm -f "$beside_log"
  [ "$status" -eq 0 ] || failed+=("$name (exit $status)")
  echo "=== $name: exit $status"
}

step ruff "$PYTHON" -m ruff check .
# mypy takes about a minute and a half of one core on a clean machine (no cache yet): it runs beside the fast tier's
# parallel part, not before it; its output and status come after that part's. Without the fast tier first, it runs
# first and alone (never beside the full tier, whose tests start servers and browsers with timeouts).
read -r first_tier _ <<<"$TIERS"
if [ "$first_tier" = fast ]; then beside "$PYTHON" -m mypy; else step mypy "$PYTHON" -m mypy; fi
for tier in $TIERS; do
  case $tier in
    fast) marks="not full" ;;
    full) marks="full" ;;
    *) echo "unknown tier '$tier' (fast, full)" >&2; exit 2 ;;
  esac
  step "$tier tier" "$PYTHON" -m pytest -q -n "$JOBS" --dist loadfile -m "$marks and not alone" "$@"
  [ -z "$beside_pid" ] || { beside_done mypy; beside_pid=""; }
  step "$tier tier, alone" "$PYTHON" -m pytest -q -m "$marks and alone" "$@"
done

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all checks passed"
