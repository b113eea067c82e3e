"""Local transformers engine for the pipeline tasks (backend/tasks/): one entry, one head. The task table says
which model class loads the checkpoint and which handler runs it; the engine owns the loaded weights, the lock,
and the status. It offers `RunsTasks` (and `StreamsTasks` for a task whose spec streams), nothing it cannot do.

Forward passes of one model run one at a time (the lock), like the classifier engine; a stream takes the same
lock in the thread that generates. `runtime: onnx` swaps the PyTorch forward for an ONNX Runtime session
(onnx_runtime.py).
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, UNLOADED_MODEL, UNLOADED_TOKENIZER
import threading
from typing import Any, Generator, Generic

from backend.core.config import ModelSpec, checkpoint_file, read_checkpoint_config
from backend.core.json_types import JSONObject
from backend.engines import loading
from backend.tasks.base import LoadContext, LoadedTask, OptionsT, ResultT, StreamingHandler, TaskRequest
from backend.tasks.table import find_task, task_spec
from backend.core.types import Event, GenerationError, ModelLoadError, Task, UnsupportedTaskError


class LocalTaskEngine(Generic[OptionsT, ResultT]):
    """One entry's task on its loaded model: requests with the task's options in, the task's results out."""

    def __init__(self, spec: ModelSpec, task: str, handler: LoadedTask[OptionsT, ResultT], model: HFModel,
                 tokenizer: HFTokenizer, device: str, load_time_s: float, max_context: int, notes: list[str],
                 lock: threading.Lock) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.task = task
        self.handler: LoadedTask[OptionsT, ResultT] | None = handler
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_time_s = load_time_s
        self.max_context = max_context
        self.notes = notes
        self.generated_tokens_total = 0
        self.lock = lock

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalTaskEngine[Any, Any]":  # the types of whichever task the entry does
        task = next(task for task in spec.tasks if find_task(task) is not None)
        task_def = task_spec(task)
        architectures = read_checkpoint_config(spec).get("architectures") or []
        model, tokenizer, device, seconds = loading.load_pretrained(spec, task_def.model_class(architectures))
        _check_architecture(spec, task, model, device)
        limit = spec.max_context or _tokenizer_limit(tokenizer, model)
        lock = threading.Lock()
        context = LoadContext(model_id=spec.id, model=model, tokenizer=tokenizer, max_length=limit, lock=lock,
                              notes=[f"task: {', '.join(spec.tasks)}"],
                              find_file=lambda name: checkpoint_file(spec, name))
        try:
            handler = task_def.handler(context)
            if spec.runtime == "onnx":
                from backend.engines.onnx_runtime import onnx_forward

                handler.use_forward(onnx_forward(spec, model, tokenizer))
                context.notes.append("runtime: ONNX Runtime")
        except Exception as error:
            loading.release_memory(device)
            if isinstance(error, ModelLoadError):
                raise
            raise loading.explain_load_failure(spec, error) from error
        return cls(spec, task, handler, model, tokenizer, device, seconds, context.max_length, context.notes, lock)

    # -------------------------------------------------------------------------------------- status

    def describe(self) -> JSONObject:
        return {**loading.describe_model(self.model, self.max_context, self.load_time_s), "notes": list(self.notes)}

    def close(self) -> None:
        with self.lock:
            if self.handler is not None:
                self.handler.release()
            self.handler = None
            self.model = UNLOADED_MODEL
            self.tokenizer = UNLOADED_TOKENIZER
        loading.release_memory(self.device)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    # -------------------------------------------------------------------------------------- tasks

    def _handler_for(self, task: str) -> LoadedTask[OptionsT, ResultT]:
        if task not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' does not do '{task}'", field="model")
        if self.handler is None:
            raise GenerationError(f"model '{self.spec.id}' was unloaded while running")
        return self.handler

    def run_task(self, task: str, request: TaskRequest[OptionsT]) -> list[ResultT]:
        """One result per input of `request`, with the model's lock held (forward passes one at a time)."""
        with self.lock:
            return self._handler_for(task)(request)

    def stream_task(self, task: str, request: TaskRequest[OptionsT]) -> Generator[Event, None, None]:
        """A streaming task's events for the request's one text (the handler takes the lock as it generates)."""
        handler = self._handler_for(task)
        if not isinstance(handler, StreamingHandler):
            raise UnsupportedTaskError(f"'{task}' does not stream; run it with run_task", field="task")
        stream = handler.stream(request)
        try:
            for event in stream:
                stats = getattr(event, "stats", None)
                if stats is not None:
                    self.generated_tokens_total += stats.generated_tokens
                yield event
        finally:
            stream.close()


def _check_architecture(spec: ModelSpec, task: str, model: HFModel, device: str) -> None:
    """The check models.yaml validation could not make before the weights were downloaded."""
    task_def = task_spec(task)
    architectures = getattr(model.config, "architectures", None) or []
    if architectures and not any(task_def.serves(arch) for arch in architectures):
        loading.release_memory(device)
        raise ModelLoadError(f"model '{spec.id}', field 'tasks': '{task}' needs {task_def.needs()}, but {spec.source} "
                             f"is {', '.join(architectures)}", field="tasks")


def _tokenizer_limit(tokenizer: HFTokenizer, model: HFModel) -> int:
    """The tokens the model takes: the tokenizer's limit, capped by its position embeddings."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit
    return int(positions) if isinstance(positions, int) and positions > 0 else 512
