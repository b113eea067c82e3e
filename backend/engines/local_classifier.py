"""Local transformers engine for sequence classifiers: supervised labels and NLI zero-shot."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from backend.config import ModelSpec
from backend.engines import loading
from backend.types import Event, GenerationParams, InvalidInputError, LabelScore, Message, Task, UnsupportedTaskError

DEFAULT_HYPOTHESIS = "This example is {}."


class LocalClassifierEngine:
    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str, load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_time_s = load_time_s
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.max_context = spec.max_context or _tokenizer_limit(tokenizer, model)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalClassifierEngine":
        started = time.perf_counter()
        device = loading.resolve_device(spec)
        dtype = loading.resolve_dtype(spec, device)
        source = loading.model_source(spec)
        kwargs = loading.from_pretrained_kwargs(spec, device, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
            )
            model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
            if "device_map" not in kwargs:
                model.to(device)
            model.eval()
        except Exception as error:
            loading.release_memory(device)
            raise loading.explain_load_failure(spec, error) from error
        return cls(spec, model, tokenizer, device, time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {
            "device": loading.device_of(model) if model is not None else None,
            "dtype": str(model.dtype).removeprefix("torch.") if model is not None else None,
            "parameters": model.num_parameters() if model is not None else None,
            "memory_bytes": loading.memory_footprint(model) if model is not None else None,
            "max_context": self.max_context,
            "load_time_s": self.load_time_s,
            "notes": [f"labels: {', '.join(self.labels)}"],
        }

    def close(self) -> None:
        with self._lock:
            self.model = None
            self.tokenizer = None
        loading.release_memory(self.device)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a classifier; it cannot chat")

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a classifier; it cannot generate text")

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        """Supervised: the model's own labels. With `labels` (zero_shot): NLI entailment over those labels."""
        if labels:
            return self.zero_shot(texts, labels)
        probabilities = self._softmax(list(texts), None)
        return [_ranked(self.labels, row) for row in probabilities]

    def zero_shot(
        self, texts: Sequence[str], labels: Sequence[str], hypothesis: str = DEFAULT_HYPOTHESIS,
        multi_label: bool = False,
    ) -> list[list[LabelScore]]:
        if "zero_shot" not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' is not an NLI model set up for zero_shot")
        if "{}" not in hypothesis:
            raise InvalidInputError("hypothesis template: must contain {} where the label goes")
        entail = self._label_index("entail")
        contradict = self._label_index("contradict")
        results = []
        for text in texts:
            logits = self._logits([text] * len(labels), [hypothesis.format(label) for label in labels])
            if multi_label:
                # Each label on its own: entailment against contradiction.
                pair = logits[:, [contradict, entail]] if contradict is not None else logits
                scores = torch.softmax(pair, dim=-1)[:, -1]
            else:
                scores = torch.softmax(logits[:, entail], dim=0)
            results.append(_ranked(list(labels), scores.tolist()))
        return results

    def _label_index(self, prefix: str) -> int | None:
        for index, label in enumerate(self.labels):
            if label.lower().startswith(prefix):
                return index
        return None

    def _softmax(self, texts: list[str], pairs: list[str] | None) -> list[list[float]]:
        return torch.softmax(self._logits(texts, pairs), dim=-1).tolist()

    def _logits(self, texts: list[str], pairs: list[str] | None) -> torch.Tensor:
        with self._lock, torch.inference_mode():
            encoded = self.tokenizer(texts, pairs, padding=True, truncation=True, max_length=self.max_context,
                                     return_tensors="pt").to(self.model.device)
            return self.model(**encoded).logits.float().cpu()


def _ranked(labels: list[str], scores: Sequence[float]) -> list[LabelScore]:
    return sorted((LabelScore(label, float(score)) for label, score in zip(labels, scores)),
                  key=lambda item: item.score, reverse=True)


def _tokenizer_limit(tokenizer: Any, model: Any) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return limit
    return int(getattr(model.config, "max_position_embeddings", 512))
