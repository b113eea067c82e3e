"""`runtime: onnx`: an encoder's forward pass exported once with `torch.onnx.export` and run by ONNX Runtime.

Optimum's exporter would pull transformers below 5, so the export is torch's own (the TorchScript-based exporter,
which needs no onnxscript), with batch and sequence axes dynamic. The file is cached next to the weights
(`<model folder>/onnx/model.onnx`, or a folder under ~/.cache when that is not writable) with a stamp of what it
was made from (weights size and time, task head, torch and ONNX Runtime versions); a changed stamp exports again.

Sessions run with every graph optimisation on, sequentially, on `WORKBENCH_ONNX_THREADS` intra-op threads
(default: the physical cores this process may use, like PyTorch's default), so the ONNX / PyTorch comparison in
bench/tasks_batching.py is thread for thread.

With `WORKBENCH_ONNX_FUSE=1`, BERT-family exports are also rewritten by ONNX Runtime's transformer optimizer
(`onnxruntime.transformers.optimizer`, model_type "bert": attention, LayerNorm + residual, GELU + bias and the
embedding layer become fused operators), kept (`model.opt.onnx`) only if it gives the plain export's outputs on a
padded sample batch. Off by default: on the 2-core AMD EPYC CPU it was measured on, the fused MiniLM graph ran
3-15% slower than the plain export under the session's own optimisations (docs/BENCHMARKS.md, issue 18).

`onnx_forward` returns a callable with the model's keyword interface whose outputs support both `out["logits"]`
and `out.logits`, so transformers pipelines (through `model.forward`) and the engines' own forward functions use
it unchanged. Outputs equal PyTorch's within float tolerance (tests/test_onnx_runtime.py).
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from backend.core.config import ModelSpec, checkpoint_file
from backend.core.json_types import JSONObject, JSONValue
from backend.engines.cpu_threads import cpu_threads
from backend.core.types import ModelLoadError

OPSET = 17
OPTIMIZER_VERSION = 1  # bump when the fusion step changes, so cached fused graphs are rebuilt
# Encoders whose graphs ONNX Runtime's "bert" fusions understand (config.model_type).
FUSABLE = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet", "deberta"}
FUSION_TOLERANCE = 1e-4  # largest difference from the plain export allowed on the check batch (float32)
_OUTPUTS = {  # what each head returns, by the suffix of its class name
    "ForQuestionAnswering": ("start_logits", "end_logits"),
    "ForTokenClassification": ("logits",),
    "ForSequenceClassification": ("logits",),
    "ForMaskedLM": ("logits",),
}


if TYPE_CHECKING:
    import onnxruntime


class OnnxOutput(dict[str, torch.Tensor]):
    """ONNX Runtime's outputs as torch tensors, by name and as attributes (like transformers' ModelOutput)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def output_names(model: HFModel) -> tuple[str, ...]:
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


def _stamp(spec: ModelSpec, model: HFModel) -> JSONObject:
    weights = [checkpoint_file(spec, name) for name in ("model.safetensors", "pytorch_model.bin")]
    found = [path for path in weights if path is not None]
    facts: list[JSONValue] = [[path.name, path.stat().st_size, int(path.stat().st_mtime)] for path in found]
    import onnxruntime

    return {"weights": facts, "class": type(model).__name__, "torch": torch.__version__, "opset": OPSET,
            "onnxruntime": onnxruntime.__version__, "optimizer": OPTIMIZER_VERSION}


def onnx_threads() -> int:
    """Intra-op threads for ONNX Runtime: WORKBENCH_ONNX_THREADS, else the physical cores this process may use."""
    return cpu_threads("WORKBENCH_ONNX_THREADS")


def session_options() -> onnxruntime.SessionOptions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL  # one encoder graph: no parallel branches
    options.intra_op_num_threads = onnx_threads()
    options.inter_op_num_threads = 1
    return options


class _Named(torch.nn.Module):
    """The model with positional inputs and a tuple of named outputs: the shape the exporter traces cleanly (some
    models' keyword arguments, e.g. BertModel's `use_cache`, collide with how it passes keyword inputs)."""

    def __init__(self, model: HFModel, inputs: list[str], outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.model(**dict(zip(self.inputs, values)))
        return tuple(result[name] for name in self.outputs)


def export(model: HFModel, tokenizer: HFTokenizer, path: Path) -> None:
    """Exports `model` with dynamic batch and sequence axes to `path` (written whole, then moved into place)."""
    sample = tokenizer(["An example sentence.", "Another, longer example sentence."], padding=True,
                       return_tensors="pt")
    names = [name for name in inspect.signature(model.forward).parameters if name in sample]
    outputs = output_names(model)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, *outputs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    device = next(model.parameters()).device
    # Traced with the eager attention: its MatMul/Softmax pattern is what ONNX Runtime fuses into one Attention
    # operator (the SDPA trace is not recognised). The model's own setting is put back after.
    attention = getattr(model.config, "_attn_implementation", None)
    switch = attention not in (None, "eager") and hasattr(model, "set_attn_implementation")
    # The exporter puts the wrapper back in the training mode it found, recursively: a fresh wrapper is in
    # training mode, which switched the model's dropout on after export. eval() first, and the model's mode after.
    was_training = model.training
    try:
        if switch:
            model.set_attn_implementation("eager")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(_Named(model, names, outputs).eval(), tuple(sample[name].to(device) for name in names),
                              str(partial), input_names=names, output_names=list(outputs), dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
    finally:
        if switch and attention is not None:
            model.set_attn_implementation(attention)
        model.train(was_training)
    partial.replace(path)


def fuse(model: HFModel, tokenizer: HFTokenizer, path: Path) -> Path | None:
    """ONNX Runtime's transformer fusions on the export, written next to it; None when the model is not one they
    cover, fusing fails, or the fused graph's outputs differ from the export's (then the plain export runs)."""
    config = model.config
    if getattr(config, "model_type", None) not in FUSABLE:
        return None
    fused = path.with_name("model.opt.onnx")
    try:
        from onnxruntime.transformers import optimizer

        heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_heads", 0) or 0)
        hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0) or 0)
        # opt_level 0: the Python fusions only; the session applies ONNX Runtime's own optimisations at load.
        optimized = optimizer.optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=hidden,
                                             opt_level=0)
        partial = fused.with_suffix(".partial")
        optimized.save_model_to_file(str(partial))
        if not _same_outputs(path, partial, tokenizer):
            partial.unlink(missing_ok=True)
            return None
        partial.replace(fused)
        return fused
    except Exception:  # a graph the fusions do not handle: the plain export still runs correctly
        return None


def _same_outputs(plain: Path, fused: Path, tokenizer: HFTokenizer) -> bool:
    import onnxruntime

    sample = tokenizer(["A short one.", "A rather longer sentence, padded against the short one, for the check."],
                       padding=True, return_tensors="np")
    sessions = [onnxruntime.InferenceSession(str(file), session_options(), providers=["CPUExecutionProvider"])
                for file in (plain, fused)]
    names = {item.name for item in sessions[0].get_inputs()}
    feed = {name: np.asarray(value, dtype=np.int64) for name, value in sample.items() if name in names}
    mask = np.asarray(sample["attention_mask"])
    for want, have in zip(*(session.run(None, feed) for session in sessions)):
        if want.shape != have.shape:
            return False
        # Padded positions are garbage in both; compare the real tokens (or the whole row for pooled outputs).
        keep = mask.astype(bool) if want.ndim >= 2 and want.shape[:2] == mask.shape else np.ones(want.shape[:1], bool)
        if not np.allclose(want[keep], have[keep], atol=FUSION_TOLERANCE, rtol=0):
            return False
    return True


def onnx_forward(spec: ModelSpec, model: HFModel, tokenizer: HFTokenizer) -> Callable[..., OnnxOutput]:
    """The model's forward pass on ONNX Runtime (exporting first when no current export is cached)."""
    import onnxruntime

    path = onnx_path(spec)
    stamp_file = path.with_name("export.json")
    stamp = json.loads(json.dumps(_stamp(spec, model)))  # as it reads back (tuples become lists)
    stamp["fuse"] = os.environ.get("WORKBENCH_ONNX_FUSE", "").strip() == "1"
    recorded = json.loads(stamp_file.read_text()) if path.is_file() and stamp_file.is_file() else None
    if recorded is None or {k: v for k, v in recorded.items() if k != "fused"} != stamp:
        try:
            export(model, tokenizer, path)
        except Exception as error:
            raise ModelLoadError(f"model '{spec.id}', field 'runtime': exporting to ONNX failed "
                                 f"({type(error).__name__}: {error}); use runtime: torch for this model") from error
        path.with_name("model.opt.onnx").unlink(missing_ok=True)
        fused = fuse(model, tokenizer, path) if stamp["fuse"] else None
        recorded = {**stamp, "fused": fused is not None}
        stamp_file.write_text(json.dumps(recorded))
    fused_path = path.with_name("model.opt.onnx")
    run_path = fused_path if recorded.get("fused") and fused_path.is_file() else path
    session = onnxruntime.InferenceSession(str(run_path), session_options(), providers=["CPUExecutionProvider"])
    inputs = {item.name for item in session.get_inputs()}
    names = [item.name for item in session.get_outputs()]

    def forward(**kwargs: object) -> OnnxOutput:  # tensors by input name
        feed = {name: _numpy(value) for name, value in kwargs.items() if name in inputs and value is not None}
        results = session.run(names, feed)
        return OnnxOutput({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in zip(names, results)})

    forward.onnx_path = run_path  # type: ignore[attr-defined]  # for status notes and tests
    forward.fused = run_path == fused_path  # type: ignore[attr-defined]
    return forward


def _numpy(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.int64)
    return np.asarray(value, dtype=np.int64)
