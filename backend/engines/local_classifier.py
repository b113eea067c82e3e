"""Local transformers engine for sequence classifiers: supervised labels and NLI zero-shot.

`score` is the batched entry point the classification service uses: one forward pass per batch of texts, and
for each text whether it was longer than the model takes (it is truncated; the UI counts and says so).
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, UNLOADED_MODEL, UNLOADED_TOKENIZER
import threading
from typing import Iterator, Sequence, cast

import torch
from transformers import AutoModelForSequenceClassification

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.engines import loading
from backend.engines.label_scoring import ScoredBatch
from backend.engines.length_groups import length_groups
from backend.engines.zerogpu import gpu_function
from backend.core.types import (
    Event,
    GenerationError,
    GenerationParams,
    InvalidInputError,
    LabelScore,
    Message,
    Task,
    UnsupportedTaskError,
)

DEFAULT_HYPOTHESIS = "This example is {}."


class LocalClassifierEngine:
    def __init__(self, spec: ModelSpec, model: HFModel, tokenizer: HFTokenizer, device: str,
                 load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_time_s = load_time_s
        id2label = cast(dict[int, str], model.config.id2label)  # a classification head's config always has it
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.max_context = spec.max_context or _tokenizer_limit(tokenizer, model)
        self._lock = threading.Lock()
        # On a ZeroGPU Space the GPU exists only inside spaces.GPU functions: the forward pass is one.
        self._run_model = gpu_function(self._forward, duration=getattr(spec, "gpu_duration_s", None))

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalClassifierEngine":
        return cls(spec, *loading.load_pretrained(spec, AutoModelForSequenceClassification))

    def describe(self) -> JSONObject:
        return {**loading.describe_model(self.model, self.max_context, self.load_time_s),
                "notes": [f"labels: {', '.join(self.labels)}"]}

    def close(self) -> None:
        with self._lock:
            self.model = UNLOADED_MODEL
            self.tokenizer = UNLOADED_TOKENIZER
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
        return self.score(texts).scores

    def score(
        self,
        texts: Sequence[str],
        labels: Sequence[str] | None = None,
        hypothesis_template: str = DEFAULT_HYPOTHESIS,
        multi_label: bool = False,
    ) -> ScoredBatch:
        """Ranked scores for each text, and which texts were cut to the model's limit.

        Without `labels`: the model's own labels (probabilities summing to 1). With `labels`: zero-shot NLI.
        Texts of similar length share a forward pass (see `length_groups`), so padding stays cheap.
        """
        texts = list(texts)
        hypotheses = None
        if labels:
            self._check_zero_shot(hypothesis_template)
            hypotheses = [hypothesis_template.replace("{}", label) for label in labels]
        lengths = self._token_lengths(texts, hypotheses)
        limit = self.max_context
        rows: list[list[float]] = [[] for _ in texts]
        for group in length_groups([min(n, limit) if limit else n for n in lengths], max_items=len(texts)):
            batch = [texts[index] for index in group]
            if hypotheses is None:
                scores = torch.softmax(self._logits(batch, None), dim=-1)
            else:
                scores = self._entailment(batch, hypotheses, multi_label)
            for index, row in zip(group, scores.tolist()):
                rows[index] = row
        names = self.labels if hypotheses is None else list(labels or ())
        truncated = [limit is not None and n > limit for n in lengths]
        return ScoredBatch([_ranked(names, row) for row in rows], truncated)

    def zero_shot(
        self, texts: Sequence[str], labels: Sequence[str], hypothesis: str = DEFAULT_HYPOTHESIS,
        multi_label: bool = False,
    ) -> list[list[LabelScore]]:
        return self.score(texts, labels, hypothesis, multi_label).scores

    def _check_zero_shot(self, hypothesis: str) -> None:
        if "zero_shot" not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' is not an NLI model set up for zero_shot")
        if "{}" not in hypothesis:
            raise InvalidInputError("hypothesis_template: must contain {} where the label goes",
                                    field="hypothesis_template")
        if self._label_index("entail") is None:
            raise UnsupportedTaskError(f"model '{self.spec.id}' has no 'entailment' label; it cannot do zero-shot")

    def _entailment(self, texts: list[str], hypotheses: list[str], multi_label: bool) -> torch.Tensor:
        """NLI zero-shot as the transformers pipeline does it, over every (text, hypothesis) pair in one pass.

        Single-label: softmax of the entailment logits across labels. Multi-label: for each label on its own,
        entailment against contradiction.
        """
        entail = self._label_index("entail")
        contradict = self._label_index("contradict")
        premises = [text for text in texts for _ in hypotheses]
        logits = self._logits(premises, hypotheses * len(texts)).reshape(len(texts), len(hypotheses), -1)
        if multi_label:
            pair = logits[..., [contradict, entail]] if contradict is not None else logits
            return torch.softmax(pair, dim=-1)[..., -1]
        return torch.softmax(logits[..., entail], dim=-1)

    def _token_lengths(self, texts: list[str], hypotheses: list[str] | None) -> list[int]:
        """Tokens of each text (with the longest hypothesis for zero-shot), before truncation."""
        with self._lock:
            tokenizer = self.tokenizer
            if tokenizer is None:
                raise GenerationError(f"model '{self.spec.id}' was unloaded while classifying")
            if not hypotheses:
                return [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]
            # The longest hypothesis decides: the text is cut so that every pair fits.
            longest = max(hypotheses, key=lambda h: len(tokenizer(h, add_special_tokens=False)["input_ids"]))
            encoded = tokenizer(texts, [longest] * len(texts), verbose=False)["input_ids"]
            return [len(ids) for ids in encoded]

    def _label_index(self, prefix: str) -> int | None:
        for index, label in enumerate(self.labels):
            if label.lower().startswith(prefix):
                return index
        return None

    def _logits(self, texts: list[str], pairs: list[str] | None) -> torch.Tensor:
        with self._lock:
            if self.model is None:
                raise GenerationError(f"model '{self.spec.id}' was unloaded while classifying")
            # only_first: with a (text, hypothesis) pair it is the text that gets cut, never the hypothesis.
            encoded = self.tokenizer(texts, pairs, padding=True, truncation="only_first" if pairs else True,
                                     max_length=self.max_context, return_tensors="pt")
            return torch.tensor(self._run_model(dict(encoded)))

    def _forward(self, encoded: dict[str, torch.Tensor]) -> list[list[float]]:
        """The model on a tokenized batch; logits back as plain lists. Wrapped for ZeroGPU in `__init__`: it runs
        in a forked worker there, and a result that is a tensor would be shared memory the worker must outlive."""
        with torch.inference_mode():
            device = self.model.device
            logits = self.model(**{name: value.to(device) for name, value in encoded.items()}).logits
            return logits.float().cpu().tolist()


def _ranked(labels: list[str], scores: Sequence[float]) -> list[LabelScore]:
    return sorted((LabelScore(label, float(score)) for label, score in zip(labels, scores)),
                  key=lambda item: item.score, reverse=True)


def _tokenizer_limit(tokenizer: HFTokenizer, model: HFModel) -> int:
    """The tokens the model takes: the tokenizer's limit, capped by the position embeddings it has."""
    positions = getattr(model.config, "max_position_embeddings", None)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit
    return int(positions) if isinstance(positions, int) and positions > 0 else 512
