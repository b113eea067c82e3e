"""`quantization: int8`: PyTorch dynamic int8 on the CPU path, as an opt-in entry field.

The local engine contract runs again on tiny-chat loaded with int8 (streaming, Stop, seeds, stop sequences,
context fitting all hold on the quantized model), and the effect on output is stated as a bound: the int8 model's
next-token distribution stays close to float32's.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch

from backend.core.model_spec import ModelSpec
from tests import test_engine_contract_local as local_contract


def int8_spec(tiny_config: Any) -> ModelSpec:
    return ModelSpec.model_validate({**tiny_config.spec("tiny-chat").model_dump(exclude_unset=True),
                                     "quantization": "int8"})


@pytest.fixture(scope="module")
def engine(tiny_config: Any) -> Iterator[Any]:
    from backend.engines import create_engine

    loaded = create_engine(int8_spec(tiny_config))
    yield loaded
    loaded.close()


class TestInt8EngineContract(local_contract.TestLocalEngineContract):
    """Every contract case, on the int8 model, except one stated difference: dynamic int8 quantizes each linear
    layer's input per batch (one scale for the whole tensor), so a row's greedy text can change when other users'
    rows share its batch. Counts and finish reasons still hold there; the README states the effect."""

    batch_invariant = False


def test_int8_replaces_every_linear_layer_and_keeps_float32_activations(engine: Any) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    modules = list(engine.model.modules())
    assert not [m for m in modules if type(m) is torch.nn.Linear], "a float linear layer was left"
    assert any(isinstance(m, DynamicInt8Linear) for m in modules)
    assert engine.describe()["quantization"] == "int8"


def test_int8_next_token_distribution_stays_close_to_float32(engine: Any, tiny_config: Any) -> None:
    """The stated effect on output: on the same prompt, int8's next-token probabilities differ from float32's by
    a small total variation (measured 0.01-0.02 on tiny-chat's random weights), and its top token is float32's."""
    from backend.engines import create_engine

    reference = create_engine(tiny_config.spec("tiny-chat"))
    try:
        ids = torch.tensor([reference.runtime.encode_prompt("The quick brown fox jumps over the lazy dog and")])
        with torch.inference_mode():
            float_probs = reference.model(input_ids=ids).logits[0, -1].softmax(-1)
            int8_probs = engine.model(input_ids=ids).logits[0, -1].softmax(-1)
        float_status = reference.describe()
    finally:
        reference.close()
    int8_status = engine.describe()
    # The status counts the int8 weights too (they are packed, not Parameters) and shows the memory they save.
    assert int8_status["parameters"] == float_status["parameters"]
    assert int8_status["memory_bytes"] < 0.6 * float_status["memory_bytes"]
    total_variation = 0.5 * (float_probs - int8_probs).abs().sum().item()
    assert total_variation < 0.1, total_variation
    assert int(float_probs.argmax()) == int(int8_probs.argmax())


@pytest.mark.parametrize("fields, wanted", [
    ({"device": "cuda"}, "field 'quantization': int8 is dynamic quantization for the CPU"),
    ({"dtype": "bfloat16"}, "field 'dtype': quantization int8 computes in float32"),
    ({"runtime": "onnx", "tasks": ["classify"]}, "onnx does not combine with quantization"),
])
def test_int8_refuses_what_it_cannot_do_naming_the_field(tiny_config: Any, fields: dict[str, Any],
                                                         wanted: str) -> None:
    entry = {**tiny_config.spec("tiny-chat").model_dump(exclude_unset=True), "quantization": "int8", **fields}
    with pytest.raises(ValueError, match=wanted):
        ModelSpec.model_validate(entry)
