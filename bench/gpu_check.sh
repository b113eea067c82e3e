#!/usr/bin/env bash
# One prepared GPU check of the whole app (docs/BENCHMARKS.md, "GPU check"). On the lent device machine:
#
#   bash bench/gpu_check.sh                   # carry .whl (prepared here: python bench/gpu_check_wheels.py)
#   bash bench/gpu_check.sh --cpu             # the dry run on CPU, anywhere (tests/test_gpu_check_dry_run.py)
#
# The device image has torch, transformers, accelerate, peft, numpy, pandas, pytest... but not gradio, fastapi,
# pydantic, datasets, openai or bitsandbytes, and it cannot reach PyPI. So the wheels the app needs travel in the
# ignored folder .whl/ (under 64 MiB with the working tree) and are installed here into a folder of their own
# that goes first on PYTHONPATH: the app then runs on the versions requirements.txt pins (transformers 5.23, not
# the image's), torch stays the image's CUDA build. Where .whl is absent the current Python is used as it is.
#
# Results: OUT/gpu-check-MODE-TIME.json, .txt and -log.txt (OUT: $OUT on the device machine, else
# bench/results). Extra arguments go to bench/gpu_check.py (--steps a,b  --budget-s N  --workdir DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

SITE="${GPU_CHECK_SITE:-/tmp/gpu-check-site}"
if compgen -G ".whl/*.whl" >/dev/null && [ "$(ls .whl/*.whl)" = "$(cat "$SITE/.gpu-check-wheels" 2>/dev/null)" ]; then
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"  # installed by an earlier call on this machine
  echo "gpu_check.sh: the wheels are already installed in $SITE"
elif compgen -G ".whl/*.whl" >/dev/null; then
  started=$(date +%s)
  # --no-deps: .whl holds the whole set (bench/gpu_check_wheels.py resolved it against the image's packages).
  if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl >"$OUT/gpu-check-install-log.txt" 2>&1; then
    echo "gpu_check.sh: installing .whl failed:" >&2
    tail -20 "$OUT/gpu-check-install-log.txt" >&2
    exit 1
  fi
  ls .whl/*.whl >"$SITE/.gpu-check-wheels"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check.sh: installed $(ls .whl/*.whl | wc -l) wheels into $SITE in $(( $(date +%s) - started )) s"
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# A fixed workdir on the device, so that a second call on the still-warm machine (--steps ...) reuses the models.
WORKDIR=()
[[ " $* " == *" --workdir "* ]] || WORKDIR=(--workdir "${GPU_CHECK_WORKDIR:-/tmp/gpu-check-work}")
exec "$PYTHON" bench/gpu_check.py --out "$OUT" "${WORKDIR[@]}" "$@"
