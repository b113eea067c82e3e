"""What the UI, the API and scripts call for the pipeline tasks: validated requests in, results out.

`run_task` and `stream_task` serve every task of the table (backend/tasks/table.py): the task's spec checks the
input before any model is touched (a question without a context, a fill-mask text without the model's mask
token, a language pair the model does not declare are refused without loading it), then a registry lease holds
the model while the engine runs the request, so eviction never pulls a model away mid-request. The named
functions below are the same calls with each task's arguments spelled out. No torch here.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import numpy as np

from backend.engines.base import RunsTasks, StreamsTasks
from backend.core.registry import Registry
from backend.services.generation import check_text, is_out_of_memory
from backend.tasks.base import MAX_TEXTS, MAX_TOP_K, TaskRequest, check_texts, whole_number
from backend.tasks.fill_mask import mask_token_of as _mask_token_of
from backend.tasks.seq2seq import language_pairs as _language_pairs
from backend.tasks.table import task_spec
from backend.tasks.types import Answer, Embeddings, Entity, MaskFill
from backend.core.types import Event, GenerationError, GenerationParams, InvalidInputError, UnsupportedTaskError

__all__ = ["MAX_TEXTS", "MAX_TOP_K", "check_texts", "run_task", "run_request", "stream_task", "recognise_entities",
           "answer_questions", "answer_question", "mask_token_of", "fill_masks", "language_pairs",
           "stream_text_task", "embed_texts", "cosine_matrix", "search", "project_2d"]


# ------------------------------------------------------------------------------------------- any task


def run_task(registry: Registry, model_id: str, task: str, texts: object, questions: object = None,
             batch_size: Optional[int] = None, **options: object) -> list[Any]:
    """One result per text for the pipeline task `task` (`questions`: one per text, for tasks that ask them);
    `texts`, `questions` and `options` as a client sent them: the task's spec checks them. The result's type is
    the task's (the named functions below say it)."""
    spec = task_spec(task)
    request = spec.request(registry.spec(model_id, task), texts, questions, batch_size, **options)  # type: ignore[arg-type]
    with registry.lease(model_id, task) as engine:  # type: ignore[arg-type]
        return run_request(engine, model_id, task, request)


def run_request(engine: object, model_id: str, task: str, request: TaskRequest[Any]) -> list[Any]:
    """A checked request on a leased engine (file runs and evaluation lease once for many requests)."""
    if not isinstance(engine, RunsTasks):
        raise UnsupportedTaskError(f"model '{model_id}' does not run pipeline tasks such as '{task}'", field="model")
    return engine.run_task(task, request)


def stream_task(registry: Registry, model_id: str, task: str, text: str, **options: object) -> Iterator[Event]:
    """Streams a task's generated text: deltas, then a Final with stats. Bad input raises here, before the
    stream is read and before anything loads."""
    spec = task_spec(task)
    if not spec.streams:
        raise InvalidInputError(f"task: '{task}' does not stream", field="task")
    request = spec.request(registry.spec(model_id, task), text, **options)  # type: ignore[arg-type]
    return _leased_stream(registry, model_id, task, request)


def _leased_stream(registry: Registry, model_id: str, task: str, request: TaskRequest[Any]) -> Iterator[Event]:
    with registry.lease(model_id, task) as engine:  # type: ignore[arg-type]
        if not isinstance(engine, StreamsTasks):
            raise UnsupportedTaskError(f"model '{model_id}' does not stream '{task}'", field="model")
        stream = engine.stream_task(task, request)
        try:
            yield from stream
        except GenerationError as error:
            if is_out_of_memory(error):
                raise GenerationError(f"model '{model_id}': out of memory while generating; send a shorter text "
                                      "or lower max_new_tokens") from error
            raise
        finally:
            stream.close()  # stops generate before the lease ends


# ------------------------------------------------------------------------------------------- each task


def recognise_entities(registry: Registry, model_id: str, texts: object, aggregation: str = "simple",
                       batch_size: int = 16) -> list[list[Entity]]:
    """Entities of each text; `aggregation` is the token-classification pipeline's strategy."""
    return run_task(registry, model_id, "ner", texts, batch_size=batch_size, aggregation=aggregation)


def answer_questions(registry: Registry, model_id: str, questions: Sequence[str], contexts: Sequence[str],
                     top_k: int = 1, stride: int = 128, max_answer_tokens: int = 30) -> list[list[Answer]]:
    """The best `top_k` answer spans of each (question, context); long contexts are read in overlapping windows."""
    return run_task(registry, model_id, "question_answering", list(contexts), list(questions), top_k=top_k,
                    stride=stride, max_answer_tokens=max_answer_tokens)


def answer_question(registry: Registry, model_id: str, question: str, context: str, top_k: int = 1,
                    stride: int = 128, max_answer_tokens: int = 30) -> list[Answer]:
    return answer_questions(registry, model_id, [question], [context], top_k=top_k, stride=stride,
                            max_answer_tokens=max_answer_tokens)[0]


def mask_token_of(registry: Registry, model_id: str) -> Optional[str]:
    """The model's mask token from its tokenizer files, without loading it (None when not on disk yet)."""
    return _mask_token_of(registry.spec(model_id))


def fill_masks(registry: Registry, model_id: str, texts: object, top_k: int = 5,
               batch_size: int = 16) -> list[list[list[MaskFill]]]:
    """For each text, for each mask in it, the top-k tokens."""
    return run_task(registry, model_id, "fill_mask", texts, batch_size=batch_size, top_k=top_k)


def language_pairs(registry: Registry, model_id: str) -> Optional[list[tuple[str, str]]]:
    """The (source, target) pairs the model declares in config.json; None: any pair (say them in words)."""
    return _language_pairs(registry.spec(model_id, "translate"))


def stream_text_task(registry: Registry, model_id: str, task: str, text: str,
                     params: Optional[GenerationParams] = None, source_language: str = "",
                     target_language: str = "", min_new_tokens: int = 0) -> Iterator[Event]:
    """Streams a summary (`task="summarize"`) or a translation of `text`: deltas, then a Final with stats."""
    if task not in ("summarize", "translate"):
        raise InvalidInputError(f"task: summarize or translate, got {task!r}", field="task")
    return stream_task(registry, model_id, task, text, params=params, source_language=source_language,
                       target_language=target_language, min_new_tokens=min_new_tokens)


def embed_texts(registry: Registry, model_id: str, texts: object, batch_size: int = 32) -> Embeddings:
    """One vector per text, pooled and normalised as the model's sentence-transformers folder says."""
    return Embeddings.of(run_task(registry, model_id, "embed", texts, batch_size=batch_size))


# ------------------------------------------------------------------------------------- embeddings' uses


def cosine_matrix(left: Sequence[Sequence[float]], right: Optional[Sequence[Sequence[float]]] = None) -> np.ndarray:
    """Cosine similarity of every left vector with every right one (left with itself by default)."""
    a = np.asarray(left, dtype=np.float64)
    b = a if right is None else np.asarray(right, dtype=np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a @ b.T


def search(registry: Registry, model_id: str, query: str, texts: Sequence[str], top_k: int = 5,
           batch_size: int = 32) -> list[tuple[int, float]]:
    """The `top_k` texts closest to `query` by cosine similarity: (index into texts, score), best first."""
    check_text("query", query)
    top_k = whole_number("top_k", top_k, 1, MAX_TOP_K)
    corpus = embed_texts(registry, model_id, list(texts), batch_size=batch_size).vectors
    wanted = embed_texts(registry, model_id, [query]).vectors
    scores = cosine_matrix(wanted, corpus)[0]
    order = np.argsort(-scores)[:top_k]
    return [(int(index), float(scores[index])) for index in order]


def project_2d(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """A 2-D view of the vectors (PCA, scikit-learn): one (x, y) per vector."""
    from sklearn.decomposition import PCA

    data = np.asarray(vectors, dtype=np.float64)
    if len(data) < 2:
        raise InvalidInputError("file: a projection needs at least 2 rows with text", field="file")
    return PCA(n_components=2, random_state=0).fit_transform(data)
