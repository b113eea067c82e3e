"""Which checkpoints can serve each pipeline task, and which tasks may share one registry entry: questions
backend/core/config.py and backend/core/model_spec.py ask while validating models.yaml, answered from the task table
(backend/tasks/table.py). Only the standard library and the torch-free task specs here.
"""

from __future__ import annotations

from typing import Optional

from backend.tasks.seq2seq import pair_error, translation_pairs
from backend.tasks.table import PIPELINE_TASKS, TaskNames, find_task, task_spec

__all__ = ["PIPELINE_TASKS", "ONNX_TASKS", "serves", "needs", "combination_error", "translation_pairs", "pair_error"]

# Encoder tasks whose forward pass can be exported to ONNX (`runtime: onnx`): the classifiers, and the pipeline
# tasks whose spec says so.
ONNX_TASKS = TaskNames(lambda spec: spec.onnx, before=("classify", "zero_shot"))


def serves(task: str, architecture: str) -> bool:
    """Whether a checkpoint of class `architecture` can do the pipeline task `task`."""
    return task_spec(task).serves(architecture)


def needs(task: str) -> str:
    """What `task` needs, in words, for error messages."""
    return task_spec(task).needs()


def combination_error(tasks: tuple[str, ...]) -> Optional[str]:
    """Why these tasks cannot share one entry, or None when they can. Every pipeline task needs its own head,
    hence its own entry, unless its spec names the others as sharing one (summarize and translate)."""
    pipeline = [task for task in tasks if find_task(task) is not None]
    if not pipeline:
        return None
    others = set(tasks) - set(pipeline)
    alone = any(set(pipeline) - {task} - task_spec(task).shares_entry_with for task in pipeline)
    if others or alone:
        sharing = sorted({" and ".join(sorted({task, *task_spec(task).shares_entry_with}))
                          for task in PIPELINE_TASKS if task_spec(task).shares_entry_with})
        return (f"'{sorted(pipeline)[0]}' needs its own entry (only {'; '.join(sharing) or 'none'} may share one): "
                "each task uses a different model head; add a second entry with the same source")
    return None
