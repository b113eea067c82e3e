"""The engine contract (tests/engine_contract.py) on a chosen device, for the GPU check (bench/gpu_check.py).

    GPU_CHECK_MODELS=.../models.yaml GPU_CHECK_DEVICE=cuda python -m pytest -q bench/gpu_check_contract.py

The local engine's contract test (tests/test_engine_contract_local.py: its hooks count tokens and inject a
failure into the model's forward) with an `engine` fixture that loads tiny-chat on GPU_CHECK_DEVICE in
GPU_CHECK_DTYPE (default float32: the contract compares batched and single texts exactly, which bf16 kernels
need not give). Not collected by the test suite (it is not under tests/, nor named test_*).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.test_engine_contract_local as local  # noqa: E402 - a module, so pytest does not collect it twice


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from backend.core.config import load_config
    from backend.engines import create_engine

    spec = load_config(os.environ["GPU_CHECK_MODELS"]).spec("tiny-chat")
    spec = spec.model_copy(update={"device": os.environ.get("GPU_CHECK_DEVICE", "cpu"),
                                   "dtype": os.environ.get("GPU_CHECK_DTYPE", "float32")})
    loaded = create_engine(spec)
    yield loaded
    loaded.close()


class TestEngineContractOnDevice(local.TestLocalEngineContract):
    """The same tests and hooks as the local engine's, over the engine fixture above."""
