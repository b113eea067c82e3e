"""Engines turn a ModelSpec into something that streams or classifies.

Each backend's module is imported only when an entry uses it, so torch stays out of processes that never load.
"""

from __future__ import annotations

from backend.core.config import ModelSpec
from backend.engines.base import LoadedModel


def create_engine(spec: ModelSpec) -> LoadedModel:
    """Loads the engine for `spec` (slow: reads weights). Called by the registry, never at start-up."""
    if spec.backend == "transformers":
        from backend.tasks.table import find_task

        if any(find_task(task) is not None for task in spec.tasks):  # a pipeline task of backend/tasks/table.py
            from backend.engines.local_tasks import LocalTaskEngine

            return LocalTaskEngine.load(spec)  # type: ignore[return-value]  # serves pipeline tasks, not chat
        if spec.is_gguf:
            from backend.engines.llama_cpp_source import require_llama_cpp, resolved_runtime

            if resolved_runtime(spec) == "llama_cpp":  # a GGUF on the CPU (backend/engines/llama_cpp.py)
                require_llama_cpp(spec)
                from backend.engines.llama_cpp import LlamaCppEngine

                return LlamaCppEngine.load(spec)
        if spec.is_generative:
            from backend.engines.local import LocalGenerativeEngine

            return LocalGenerativeEngine.load(spec)
        from backend.engines.local_classifier import LocalClassifierEngine

        engine = LocalClassifierEngine.load(spec)
        if spec.runtime == "onnx":  # the forward pass on ONNX Runtime (backend/engines/onnx_runtime.py)
            from backend.engines.onnx_runtime import onnx_forward

            engine.model.forward = onnx_forward(spec, engine.model, engine.tokenizer)
        return engine  # type: ignore[return-value]  # a classifier: classify/score, no chat
    if spec.backend == "openai":
        from backend.engines.remote import RemoteEngine

        return RemoteEngine.load(spec)
    raise NotImplementedError(f"backend {spec.backend!r}")  # unreachable: config validation lists backends
