"""Engines turn a ModelSpec into something that streams or classifies.

Which engine loads an entry is the engine table's (backend/engines/table.py): its `backend`, or for weights in this
process its `runtime`. Each engine's module is imported only when an entry uses it, so torch stays out of processes
that never load. Nothing of the app is imported here at import time: backend/core/model_spec.py imports the table,
which imports this package first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from backend.engines.table import LOCAL_BACKEND, engine_kind, imported

if TYPE_CHECKING:
    from backend.core.model_spec import ModelSpec
    from backend.engines.base import LoadedModel


def engine_name(spec: "ModelSpec") -> str:
    """The engine table's entry that loads `spec`: its backend, or for weights in this process its runtime (a GGUF
    entry without one gets llama_cpp on a CPU where llama-cpp-python is installed, else torch)."""
    if spec.backend != LOCAL_BACKEND:
        return spec.backend
    from backend.engines.llama_cpp_source import resolved_runtime

    return resolved_runtime(spec)


def create_engine(spec: "ModelSpec") -> "LoadedModel":
    """Loads the engine for `spec` (slow: reads weights). The registry's engine factory, handed to it where the app,
    a command or a test composes one; never called at start-up."""
    return cast("LoadedModel", imported(engine_kind(engine_name(spec)).factory)(spec))


def probe(spec: "ModelSpec") -> tuple[bool, str]:
    """Whether the entry's server answers now, for engines that have one (a short request; loads nothing)."""
    kind = engine_kind(spec.backend) if spec.backend != LOCAL_BACKEND else None
    if kind is None:
        return True, "local model"
    if kind.probe is None:
        return True, f"backend {kind.name}: nothing to probe"
    return cast("tuple[bool, str]", imported(kind.probe)(spec))
