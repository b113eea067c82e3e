"""The engine contract on the local transformers engine with the tiny-chat model."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pytest

from tests.engine_contract import EngineContract


@pytest.fixture(scope="module")
def engine(tiny_config) -> Iterator[Any]:
    from backend.engines import create_engine

    loaded = create_engine(tiny_config.spec("tiny-chat"))
    yield loaded
    loaded.close()


class TestLocalEngineContract(EngineContract):
    def tokens_generated_so_far(self, engine: Any) -> Optional[int]:
        return engine.generated_tokens_total

    @contextmanager
    def failing_generation(self, engine: Any) -> Iterator[None]:
        # A real model whose forward pass fails on its third call, as a CUDA error or OOM would.
        model = engine.model
        original = model.forward
        calls = {"n": 0}

        def failing_forward(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("injected failure in forward")
            return original(*args, **kwargs)

        model.forward = failing_forward
        try:
            yield
        finally:
            model.forward = original
