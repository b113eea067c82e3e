"""`runtime: onnx`: an encoder's forward pass exported once with `torch.onnx.export` and run by ONNX Runtime.

Optimum's exporter would pull transformers below 5, so the export is torch's own (the TorchScript-based exporter,
which needs no onnxscript), with batch and sequence axes dynamic. The file is cached next to the weights
(`<model folder>/onnx/model.onnx`, or a folder under ~/.cache when that is not writable) with a stamp of what it
was made from (weights size and time, task head, torch version); a changed stamp exports again.

`onnx_forward` returns a callable with the model's keyword interface whose outputs support both `out["logits"]`
and `out.logits`, so transformers pipelines (through `model.forward`) and the engines' own forward functions use
it unchanged. Outputs equal PyTorch's within float tolerance (tests/test_onnx_runtime.py).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from backend.config import ModelSpec, checkpoint_file
from backend.types import ModelLoadError

OPSET = 17
_OUTPUTS = {  # what each head returns, by the suffix of its class name
    "ForQuestionAnswering": ("start_logits", "end_logits"),
    "ForTokenClassification": ("logits",),
    "ForSequenceClassification": ("logits",),
    "ForMaskedLM": ("logits",),
}


class OnnxOutput(dict):
    """ONNX Runtime's outputs as torch tensors, by name and as attributes (like transformers' ModelOutput)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def output_names(model: Any) -> tuple[str, ...]:
    name = type(model).__name__
    for suffix, outputs in _OUTPUTS.items():
        if name.endswith(suffix):
            return outputs
    return ("last_hidden_state",)  # a bare encoder (AutoModel), for embeddings


def onnx_path(spec: ModelSpec) -> Path:
    """Where the export lives: next to the weights when that folder is writable, else under ~/.cache."""
    config = checkpoint_file(spec, "config.json")
    folder = Path(config).parent if config is not None else None
    if folder is not None and os.access(folder, os.W_OK):
        return folder / "onnx" / "model.onnx"
    key = hashlib.sha256(f"{spec.source}@{spec.revision}".encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "llm-workbench" / "onnx" / key / "model.onnx"


def _stamp(spec: ModelSpec, model: Any) -> dict[str, Any]:
    weights = [checkpoint_file(spec, name) for name in ("model.safetensors", "pytorch_model.bin")]
    found = [path for path in weights if path is not None]
    facts = [(path.name, path.stat().st_size, int(path.stat().st_mtime)) for path in found]
    return {"weights": facts, "class": type(model).__name__, "torch": torch.__version__, "opset": OPSET}


class _Named(torch.nn.Module):
    """The model with positional inputs and a tuple of named outputs: the shape the exporter traces cleanly (some
    models' keyword arguments, e.g. BertModel's `use_cache`, collide with how it passes keyword inputs)."""

    def __init__(self, model: Any, inputs: list[str], outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.model(**dict(zip(self.inputs, values)))
        return tuple(result[name] for name in self.outputs)


def export(model: Any, tokenizer: Any, path: Path) -> None:
    """Exports `model` with dynamic batch and sequence axes to `path` (written whole, then moved into place)."""
    sample = tokenizer(["An example sentence.", "Another, longer example sentence."], padding=True,
                       return_tensors="pt")
    names = [name for name in inspect.signature(model.forward).parameters if name in sample]
    outputs = output_names(model)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, *outputs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    device = next(model.parameters()).device
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(_Named(model, names, outputs), tuple(sample[name].to(device) for name in names),
                          str(partial), input_names=names, output_names=list(outputs), dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    partial.replace(path)


def onnx_forward(spec: ModelSpec, model: Any, tokenizer: Any) -> Callable[..., OnnxOutput]:
    """The model's forward pass on ONNX Runtime (exporting first when no current export is cached)."""
    import onnxruntime

    path = onnx_path(spec)
    stamp_file = path.with_name("export.json")
    stamp = json.loads(json.dumps(_stamp(spec, model)))  # as it reads back (tuples become lists)
    current = path.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp
    if not current:
        try:
            export(model, tokenizer, path)
        except Exception as error:
            raise ModelLoadError(f"model '{spec.id}', field 'runtime': exporting to ONNX failed "
                                 f"({type(error).__name__}: {error}); use runtime: torch for this model") from error
        stamp_file.write_text(json.dumps(stamp))
    options = onnxruntime.SessionOptions()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {item.name for item in session.get_inputs()}
    names = [item.name for item in session.get_outputs()]

    def forward(**kwargs: Any) -> OnnxOutput:
        feed = {name: _numpy(value) for name, value in kwargs.items() if name in inputs and value is not None}
        results = session.run(names, feed)
        return OnnxOutput({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in zip(names, results)})

    forward.onnx_path = path  # type: ignore[attr-defined]  # for status notes and tests
    return forward


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.int64)
    return np.asarray(value, dtype=np.int64)
