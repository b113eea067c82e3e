"""The one table of pipeline tasks: every task the registry, the engine layer, the service, file runs, evaluation
and the Tasks tab know of is listed here, and nowhere else. Adding a task: a module under backend/tasks/ with its
`TaskSpec` and `TaskHandler`, and one line below (docs/recipes/task.md).

Torch-free: backend/core/config.py validates models.yaml through it, and `import ui` reads it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, overload

from backend.core.named_table import NamedTable
from backend.tasks import embed, fill_mask, ner, qa, seq2seq
from backend.tasks.base import TaskSpec
from backend.core.types import InvalidInputError

BUILT_IN: tuple[TaskSpec[Any, Any], ...] = (ner.SPEC, qa.SPEC, fill_mask.SPEC, seq2seq.SUMMARIZE, seq2seq.TRANSLATE,
                                            embed.SPEC)
_TABLE: NamedTable[TaskSpec[Any, Any]] = NamedTable("task", BUILT_IN, lambda spec: spec.name)
# Adding a task defined outside this package (a plugin, a test's toy task), and taking it away again.
register = _TABLE.register
unregister = _TABLE.unregister
registered = _TABLE.registered


def task_specs() -> tuple[TaskSpec[Any, Any], ...]:
    """Every pipeline task, in the order the Tasks tab shows them."""
    return tuple(_TABLE.values())


def find_task(name: str) -> Optional[TaskSpec[Any, Any]]:
    return _TABLE.get(name)


def task_spec(name: str) -> TaskSpec[Any, Any]:
    """The task called `name`; an error naming the field `task` for anything else."""
    spec = _TABLE.get(name)
    if spec is None:
        raise InvalidInputError(f"task: one of {', '.join(_TABLE)}, got {name!r}", field="task")
    return spec


def evaluation_spec(evaluation_task: str) -> Optional[TaskSpec[Any, Any]]:
    """The pipeline task that serves an evaluation task (e.g. "summarization" → summarize), or None."""
    return next((spec for spec in _TABLE.values() if spec.evaluation and spec.evaluation.task == evaluation_task),
                None)



class TaskNames(Sequence[str]):
    """A live, read-only view of task names (a registered task appears at once): `in`, iteration, `len`."""

    def __init__(self, select: Callable[[TaskSpec[Any, Any]], bool] = lambda spec: True,
                 before: tuple[str, ...] = ()) -> None:
        self._select = select
        self._before = before

    def _names(self) -> tuple[str, ...]:
        return self._before + tuple(spec.name for spec in _TABLE.values() if self._select(spec))

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


PIPELINE_TASKS = TaskNames()
