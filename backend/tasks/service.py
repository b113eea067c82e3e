"""What the UI, the API and scripts call for the pipeline tasks: validated requests in, results out.

Input is checked before any model is touched (a question without a context, a fill-mask text without the
model's mask token, a language pair the model does not declare are refused without loading it). Every call holds
a registry lease while it runs, so eviction never pulls a model away mid-request. No torch here.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from backend.config import checkpoint_file, read_checkpoint_config
from backend.registry import Registry
from backend.service import check_text, is_out_of_memory
from backend.tasks.catalog import pair_error, translation_pairs
from backend.tasks.types import AGGREGATIONS, Answer, Embeddings, Entity, MaskFill
from backend.types import Event, GenerationError, GenerationParams, InvalidInputError

MAX_TEXTS = 2048  # texts in one call (the API's list input; files go through backend/tasks/files.py in batches)
MAX_TOP_K = 50


def _check_int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise InvalidInputError(f"{field}: must be a whole number between {low} and {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise InvalidInputError(f"{field}: must be between {low} and {high}, got {int(value)}")
    return int(value)


def check_texts(field: str, texts: Any) -> list[str]:
    """One text or a list of them, each checked like a chat message."""
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, (list, tuple)) or not items:
        raise InvalidInputError(f"{field}: give a text or a non-empty list of texts")
    if len(items) > MAX_TEXTS:
        raise InvalidInputError(f"{field}: at most {MAX_TEXTS} texts per call, got {len(items)}; use a file run")
    for index, text in enumerate(items):
        check_text(field if len(items) == 1 else f"{field}[{index}]", text)
    return list(items)


# ------------------------------------------------------------------------------------------------ NER


def recognise_entities(registry: Registry, model_id: str, texts: Any, aggregation: str = "simple",
                       batch_size: int = 16) -> list[list[Entity]]:
    """Entities of each text; `aggregation` is the token-classification pipeline's strategy."""
    registry.spec(model_id, "ner")
    items = check_texts("text", texts)
    if aggregation not in AGGREGATIONS:
        raise InvalidInputError(f"aggregation: one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    batch_size = _check_int("batch_size", batch_size, 1, 256)
    with registry.lease(model_id, "ner") as engine:
        return engine.ner(items, aggregation=aggregation, batch_size=batch_size)  # type: ignore[attr-defined]  # a task engine (local_tasks); Engine types the chat ones


# ------------------------------------------------------------------------------------------------- QA


def answer_questions(registry: Registry, model_id: str, questions: Sequence[str], contexts: Sequence[str],
                     top_k: int = 1, stride: int = 128, max_answer_tokens: int = 30) -> list[list[Answer]]:
    """The best `top_k` answer spans of each (question, context); long contexts are read in overlapping windows."""
    registry.spec(model_id, "question_answering")
    if len(questions) != len(contexts):
        raise InvalidInputError("question: give one question per context")
    for index, (question, context) in enumerate(zip(questions, contexts)):
        where = "" if len(questions) == 1 else f"[{index}]"
        if not isinstance(context, str) or not context.strip():
            raise InvalidInputError(f"context{where}: is empty; paste the text the answer should come from")
        check_text(f"question{where}", question)
        check_text(f"context{where}", context)
    top_k = _check_int("top_k", top_k, 1, MAX_TOP_K)
    stride = _check_int("stride", stride, 0, 512)
    max_answer_tokens = _check_int("max_answer_tokens", max_answer_tokens, 1, 512)
    with registry.lease(model_id, "question_answering") as engine:
        return engine.answer(list(questions), list(contexts), top_k=top_k, stride=stride,  # type: ignore[attr-defined]
                             max_answer_tokens=max_answer_tokens)


def answer_question(registry: Registry, model_id: str, question: str, context: str, **options: Any) -> list[Answer]:
    return answer_questions(registry, model_id, [question], [context], **options)[0]


# ------------------------------------------------------------------------------------------ fill-mask


def mask_token_of(registry: Registry, model_id: str) -> Optional[str]:
    """The model's mask token from its tokenizer files, without loading it (None when not on disk yet)."""
    spec = registry.spec(model_id)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = checkpoint_file(spec, name)
        if path is None:
            continue
        try:
            token = json.loads(path.read_text(encoding="utf-8")).get("mask_token")
        except (OSError, ValueError):
            continue
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and token:
            return token
    return None


def fill_masks(registry: Registry, model_id: str, texts: Any, top_k: int = 5,
               batch_size: int = 16) -> list[list[list[MaskFill]]]:
    """For each text, for each mask in it, the top-k tokens."""
    registry.spec(model_id, "fill_mask")
    items = check_texts("text", texts)
    top_k = _check_int("top_k", top_k, 1, MAX_TOP_K)
    batch_size = _check_int("batch_size", batch_size, 1, 256)
    token = mask_token_of(registry, model_id)
    if token is not None:
        for index, text in enumerate(items):
            if token not in text:
                where = "text" if len(items) == 1 else f"text[{index}]"
                raise InvalidInputError(f"{where}: has no mask token; put {token} where a word should be "
                                        "predicted (this model's mask token)")
    with registry.lease(model_id, "fill_mask") as engine:
        return engine.fill_mask(items, top_k=top_k, batch_size=batch_size)  # type: ignore[attr-defined]  # a task engine (local_tasks); Engine types the chat ones


# --------------------------------------------------------------------------- summarize / translate


def language_pairs(registry: Registry, model_id: str) -> Optional[list[tuple[str, str]]]:
    """The (source, target) pairs the model declares in config.json; None: any pair (say them in words)."""
    spec = registry.spec(model_id, "translate")
    config = read_checkpoint_config(spec)
    if not config.get("is_encoder_decoder"):
        return None
    return translation_pairs(config.get("task_specific_params"))


def stream_text_task(registry: Registry, model_id: str, task: str, text: str,
                     params: Optional[GenerationParams] = None, source_language: str = "",
                     target_language: str = "", min_new_tokens: int = 0) -> Iterator[Event]:
    """Streams a summary (`task="summarize"`) or a translation of `text`: deltas, then a Final with stats."""
    if task not in ("summarize", "translate"):
        raise InvalidInputError(f"task: summarize or translate, got {task!r}")
    spec = registry.spec(model_id, task)  # type: ignore[arg-type]  # checked just above
    check_text("text", text)
    params = (params or spec.default_params()).validated()
    min_new_tokens = _check_int("min_new_tokens", min_new_tokens, 0, params.max_new_tokens)
    source_language = (source_language or "").strip()
    target_language = (target_language or "").strip()
    if task == "translate":
        problem = pair_error(language_pairs(registry, model_id), source_language, target_language)
        if problem:
            raise InvalidInputError(problem)
    return _leased_stream(registry, model_id, task, text, params, source_language, target_language, min_new_tokens)


def _leased_stream(registry: Registry, model_id: str, task: str, text: str, params: GenerationParams,
                   source: str, target: str, min_new_tokens: int) -> Iterator[Event]:
    with registry.lease(model_id, task) as engine:  # type: ignore[arg-type]
        stream = engine.stream_task(task, text, params, source, target, min_new_tokens)  # type: ignore[attr-defined]  # a task engine (local_tasks); Engine types the chat ones
        try:
            yield from stream
        except GenerationError as error:
            if is_out_of_memory(error):
                raise GenerationError(f"model '{model_id}': out of memory while generating; send a shorter text "
                                      "or lower max_new_tokens") from error
            raise
        finally:
            stream.close()  # stops generate before the lease ends


# --------------------------------------------------------------------------------------- embeddings


def embed_texts(registry: Registry, model_id: str, texts: Any, batch_size: int = 32) -> Embeddings:
    """One vector per text, pooled and normalised as the model's sentence-transformers folder says."""
    registry.spec(model_id, "embed")
    items = check_texts("input", texts)
    batch_size = _check_int("batch_size", batch_size, 1, 512)
    parts = []
    with registry.lease(model_id, "embed") as engine:
        for start in range(0, len(items), batch_size):
            parts.append(engine.embed(items[start:start + batch_size]))  # type: ignore[attr-defined]  # a task engine (local_tasks); Engine types the chat ones
    first = parts[0]
    return Embeddings(vectors=[v for part in parts for v in part.vectors],
                      tokens=[n for part in parts for n in part.tokens],
                      truncated=[t for part in parts for t in part.truncated], pooling=first.pooling,
                      normalized=first.normalized)


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
    top_k = _check_int("top_k", top_k, 1, MAX_TOP_K)
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
        raise InvalidInputError("file: a projection needs at least 2 rows with text")
    return PCA(n_components=2, random_state=0).fit_transform(data)
