"""The factories of the built-in runtimes for weights in this process (backend/engines/table.py names them): each
takes an entry and returns its loaded engine. Each engine module is imported inside its factory, so torch,
llama-cpp-python and ONNX Runtime load only when an entry uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.core.model_spec import ModelSpec
    from backend.engines.base import LoadedModel


def _serves_pipeline_tasks(spec: "ModelSpec") -> bool:
    from backend.tasks.table import find_task

    return any(find_task(task) is not None for task in spec.tasks)  # a pipeline task of backend/tasks/table.py


def torch_engine(spec: "ModelSpec") -> "LoadedModel":
    """transformers on PyTorch: pipeline tasks, a causal LM (chat / generate, a GGUF dequantized) or a classifier."""
    if _serves_pipeline_tasks(spec):
        from backend.engines.local_tasks import LocalTaskEngine

        return LocalTaskEngine.load(spec)  # type: ignore[return-value]  # serves pipeline tasks, not chat
    if spec.is_generative:
        from backend.engines.local import LocalGenerativeEngine

        return LocalGenerativeEngine.load(spec)
    from backend.engines.local_classifier import LocalClassifierEngine

    return LocalClassifierEngine.load(spec)  # type: ignore[return-value]  # a classifier: classify/score, no chat


def onnx_engine(spec: "ModelSpec") -> "LoadedModel":
    """An encoder's forward pass on ONNX Runtime (backend/engines/onnx_runtime.py): pipeline tasks (the task engine
    swaps the forward itself) or a classifier."""
    if _serves_pipeline_tasks(spec):
        from backend.engines.local_tasks import LocalTaskEngine

        return LocalTaskEngine.load(spec)  # type: ignore[return-value]  # serves pipeline tasks, not chat
    from backend.engines.local_classifier import LocalClassifierEngine
    from backend.engines.onnx_runtime import onnx_forward

    engine = LocalClassifierEngine.load(spec)
    engine.model.forward = onnx_forward(spec, engine.model, engine.tokenizer)
    return engine  # type: ignore[return-value]  # a classifier: classify/score, no chat


def llama_cpp_engine(spec: "ModelSpec") -> "LoadedModel":
    """A GGUF chat / generate model on llama.cpp (backend/engines/llama_cpp.py); a clear error when the package is
    missing."""
    from backend.engines.llama_cpp_source import require_llama_cpp

    require_llama_cpp(spec)
    from backend.engines.llama_cpp import LlamaCppEngine

    return LlamaCppEngine.load(spec)
