"""Local transformers engine for the pipeline tasks (backend/tasks/): NER, QA, fill-mask, summarize / translate,
embed. One entry, one head: the engine loads the model class its task needs and hands the work to that task's
module, which has the preprocess → forward → postprocess shape of transformers pipelines.

Forward passes of one model run one at a time (a lock), like the classifier engine; generation streams run in
their own threads. `runtime: onnx` swaps the PyTorch forward for an ONNX Runtime session (onnx_runtime.py).
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, Sequence

from backend.config import ModelSpec, checkpoint_file, read_checkpoint_config
from backend.engines import loading
from backend.tasks.catalog import PIPELINE_TASKS
from backend.tasks.types import Answer, Embeddings, Entity, MaskFill
from backend.types import (
    Event,
    GenerationError,
    GenerationParams,
    LabelScore,
    ModelLoadError,
    Message,
    Task,
    UnsupportedTaskError,
)


class LocalTaskEngine:
    def __init__(self, spec: ModelSpec, task: str, handler: Any, model: Any, tokenizer: Any, device: str,
                 load_time_s: float, max_context: int, notes: list[str]) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.task = task
        self.handler = handler
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_time_s = load_time_s
        self.max_context = max_context
        self.notes = notes
        self.generated_tokens_total = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalTaskEngine":
        task = next(task for task in spec.tasks if task in PIPELINE_TASKS)
        architectures = read_checkpoint_config(spec).get("architectures") or []
        model_class = _model_class(task, architectures)
        model, tokenizer, device, seconds = loading.load_pretrained(spec, model_class)
        _check_architecture(spec, task, model, device)
        limit = spec.max_context or _tokenizer_limit(tokenizer, model)
        notes = [f"task: {', '.join(spec.tasks)}"]
        handler = _handler(spec, task, model, tokenizer, limit, notes)
        if spec.runtime == "onnx":
            from backend.engines.onnx_runtime import onnx_forward

            try:
                forward = onnx_forward(spec, model, tokenizer)
            except Exception as error:
                loading.release_memory(device)
                if isinstance(error, ModelLoadError):
                    raise
                raise loading.explain_load_failure(spec, error) from error
            _use_forward(handler, model, forward)
            notes.append("runtime: ONNX Runtime")
        return cls(spec, task, handler, model, tokenizer, device, seconds, limit, notes)

    # -------------------------------------------------------------------------------------- status

    def describe(self) -> dict[str, Any]:
        return {**loading.describe_model(self.model, self.max_context, self.load_time_s), "notes": list(self.notes)}

    def close(self) -> None:
        with self._lock:
            self.handler = None
            self.model = None
            self.tokenizer = None
        loading.release_memory(self.device)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    # -------------------------------------------------------------------------------------- tasks

    def _run(self, task: str, *args: Any, **kwargs: Any) -> Any:
        if task not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' does not do '{task}'")
        with self._lock:
            if self.handler is None:
                raise GenerationError(f"model '{self.spec.id}' was unloaded while running")
            return self.handler(*args, **kwargs)

    def ner(self, texts: Sequence[str], aggregation: str = "simple", batch_size: int = 16) -> list[list[Entity]]:
        return self._run("ner", texts, aggregation=aggregation, batch_size=batch_size)

    def answer(self, questions: Sequence[str], contexts: Sequence[str], top_k: int = 1, stride: int = 128,
               max_answer_tokens: int = 30) -> list[list[Answer]]:
        return self._run("question_answering", questions, contexts, top_k=top_k, stride=stride,
                         max_answer_tokens=max_answer_tokens)

    def fill_mask(self, texts: Sequence[str], top_k: int = 5, batch_size: int = 16) -> list[list[list[MaskFill]]]:
        return self._run("fill_mask", texts, top_k=top_k, batch_size=batch_size)

    @property
    def mask_token(self) -> str | None:
        return getattr(self.tokenizer, "mask_token", None)

    def embed(self, texts: Sequence[str]) -> Embeddings:
        return self._run("embed", texts)

    @property
    def dimensions(self) -> int | None:
        return self.handler.dimensions if self.task == "embed" and self.handler is not None else None

    def language_pairs(self) -> list[tuple[str, str]] | None:
        """For translate: the (source, target) pairs the model declares; None when any pair is accepted."""
        return self.handler.pairs() if self.task in ("summarize", "translate") and self.handler else None

    def stream_task(self, task: str, text: str, params: GenerationParams, source: str = "", target: str = "",
                    min_new_tokens: int = 0) -> Iterator[Event]:
        """Summaries and translations, streamed (no lock: each stream generates in its own thread)."""
        if task not in self.tasks or task not in ("summarize", "translate"):
            raise UnsupportedTaskError(f"model '{self.spec.id}' does not do '{task}'")
        stream = self.handler.stream(text, task, params, source, target, min_new_tokens)
        try:
            for event in stream:
                stats = getattr(event, "stats", None)
                if stats is not None:
                    self.generated_tokens_total += stats.generated_tokens
                yield event
        finally:
            stream.close()

    def generate_batch(self, task: str, texts: Sequence[str], params: GenerationParams, source: str = "",
                       target: str = "", min_new_tokens: int = 0) -> list[str]:
        if task not in self.tasks or task not in ("summarize", "translate"):
            raise UnsupportedTaskError(f"model '{self.spec.id}' does not do '{task}'")
        with self._lock:
            return self.handler.generate_batch(texts, task, params, source, target, min_new_tokens)

    # ----------------------------------------------------------------------- the engine contract's rest

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a {self.task} model; it cannot chat")

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a {self.task} model; use the Tasks tab")

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a {self.task} model; it does not classify")


def _check_architecture(spec: ModelSpec, task: str, model: Any, device: str) -> None:
    """The check models.yaml validation could not make before the weights were downloaded."""
    from backend.tasks.catalog import needs, serves

    architectures = getattr(model.config, "architectures", None) or []
    if architectures and not any(serves(task, arch) for arch in architectures):
        loading.release_memory(device)
        raise ModelLoadError(f"model '{spec.id}', field 'tasks': '{task}' needs {needs(task)}, but {spec.source} is "
                             f"{', '.join(architectures)}")


def _model_class(task: str, architectures: list[str]) -> Any:
    if task == "ner":
        from backend.tasks.ner import MODEL_CLASS
    elif task == "question_answering":
        from backend.tasks.qa import MODEL_CLASS  # type: ignore[assignment]
    elif task == "fill_mask":
        from backend.tasks.fill_mask import MODEL_CLASS  # type: ignore[assignment]
    elif task == "embed":
        from backend.tasks.embed import MODEL_CLASS  # type: ignore[assignment]
    else:
        from backend.tasks.seq2seq import model_class

        return model_class(architectures)
    return MODEL_CLASS


def _handler(spec: ModelSpec, task: str, model: Any, tokenizer: Any, limit: int, notes: list[str]) -> Any:
    if task == "ner":
        from backend.tasks.ner import NerTask

        ner = NerTask(model, tokenizer)
        notes.append(f"labels: {', '.join(ner.labels)}")
        return ner
    if task == "question_answering":
        from backend.tasks.qa import QuestionAnsweringTask

        return QuestionAnsweringTask(model, tokenizer, limit)
    if task == "fill_mask":
        from backend.tasks.fill_mask import FillMaskTask

        if not tokenizer.mask_token:
            raise ModelLoadError(f"model '{spec.id}': its tokenizer has no mask token; it cannot fill masks")
        notes.append(f"mask token: {tokenizer.mask_token}")
        return FillMaskTask(model, tokenizer)
    if task == "embed":
        from backend.tasks.embed import EmbedTask, pooling_of

        pooling, normalize, max_length = pooling_of(lambda name: checkpoint_file(spec, name))
        limit = min(limit, max_length) if max_length else limit
        notes.append(f"pooling: {pooling}{', normalised' if normalize else ''}; {limit} tokens")
        return EmbedTask(model, tokenizer, limit, pooling, normalize)
    from backend.tasks.seq2seq import Seq2SeqTask

    handler = Seq2SeqTask(model, tokenizer, limit)
    pairs = handler.pairs()
    if pairs:
        notes.append("translates " + ", ".join(f"{s} → {t}" for s, t in pairs))
    return handler


def _use_forward(handler: Any, model: Any, forward: Any) -> None:
    """Routes the handler's forward passes through `forward` (ONNX Runtime) instead of PyTorch."""
    if hasattr(handler, "forward_fn"):
        handler.forward_fn = forward
    else:  # transformers pipelines call the model itself; its `forward` is the public seam
        model.forward = forward


def _tokenizer_limit(tokenizer: Any, model: Any) -> int:
    """The tokens the model takes: the tokenizer's limit, capped by its position embeddings."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit
    return int(positions) if isinstance(positions, int) and positions > 0 else 512
