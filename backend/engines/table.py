"""The one table of engines: every value models.yaml's `backend` and `runtime` fields accept, and the factory that
loads an entry's engine. Adding an engine: a module with its engine and a factory, and one line below
(docs/ARCHITECTURE.md, "Where new work plugs in"; tests/test_engine_recipe.py adds a toy one).

- A `backend` says where the model runs: `transformers` (weights in this process; then the entry's `runtime` picks
  the engine) or another backend of this table (an OpenAI-compatible server, ...), whose engine holds no weights here.
- A `runtime` says what runs weights in this process: torch, ONNX Runtime, llama.cpp.

A factory is named by its import path ("package.module:attribute", the attribute may be dotted) and imported only when
an entry uses it, so an engine's libraries (torch, llama-cpp-python, httpx) load with its first model, never at
start-up. backend/core/model_spec.py validates entries through this table, so it imports nothing of the app but the
standard-library table it is made of (backend/core/named_table.py; not even lazily: an engine module imports the
config, which would close a circle); backend/engines/__init__.py's
`create_engine` imports the factories.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Literal, Optional

from backend.core.named_table import NamedTable

LOCAL_BACKEND = "transformers"  # weights in this process: the entry's `runtime` picks the engine

EngineField = Literal["backend", "runtime"]


@dataclass(frozen=True)
class EngineKind:
    """One engine: the models.yaml value that picks it and how to load it."""

    name: str  # the value of `field` in models.yaml
    field: EngineField
    factory: str  # "module:attribute": a callable (ModelSpec) -> the loaded engine
    tasks: Optional[tuple[str, ...]] = None  # the only tasks it serves (None: whatever the checkpoint does)
    probe: Optional[str] = None  # "module:attribute": (ModelSpec) -> (answers, detail), a server's health check


BUILT_IN: tuple[EngineKind, ...] = (
    EngineKind("openai", "backend", "backend.engines.remote:RemoteEngine.load", tasks=("chat", "generate"),
               probe="backend.engines.remote:probe"),
    EngineKind("torch", "runtime", "backend.engines.factories:torch_engine"),
    EngineKind("onnx", "runtime", "backend.engines.factories:onnx_engine"),
    EngineKind("llama_cpp", "runtime", "backend.engines.factories:llama_cpp_engine"),
)
_TABLE: NamedTable[EngineKind] = NamedTable("engine", BUILT_IN, lambda kind: kind.name, reserved=(LOCAL_BACKEND,))
# Adding an engine defined outside this package (a plugin, a test's toy engine), and taking it away again.
register = _TABLE.register
unregister = _TABLE.unregister
registered = _TABLE.registered


def backends() -> tuple[str, ...]:
    """Every value `backend` accepts: transformers first, then the table's backends in order."""
    return (LOCAL_BACKEND, *(kind.name for kind in _TABLE.values() if kind.field == "backend"))


def runtimes() -> tuple[str, ...]:
    """Every value `runtime` accepts (for backend transformers)."""
    return tuple(kind.name for kind in _TABLE.values() if kind.field == "runtime")


def find_engine(name: str) -> Optional[EngineKind]:
    return _TABLE.get(name)


def engine_kind(name: str) -> EngineKind:
    kind = _TABLE.get(name)
    if kind is None:  # validation lists the table's names, so only an engine unregistered since ends here
        raise KeyError(f"no engine {name!r} in backend/engines/table.py (known: {', '.join(_TABLE)})")
    return kind


def imported(path: str) -> Callable[..., object]:
    """The callable that `path` ("package.module:attribute.attribute") names, importing its module now."""
    module_name, _, attribute = path.partition(":")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target

