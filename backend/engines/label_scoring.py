"""LLM as a classifier: score each candidate label by its log-likelihood after a prompt, for a causal LM.

For every text the prompt is rendered once and each label is appended as a continuation; one forward pass over
those rows (padded on the right) gives each label's total log-probability (the sum over its tokens), and a
softmax over the labels turns them into probabilities over exactly the labels given. No text is generated, so
nothing has to be parsed. Several texts of similar length can share one forward pass (`texts_per_pass`).

Works on the model's `LocalRuntime` (backend/engines/runtime.py): runs under its lock, so scoring never races a
generation on the same weights, and (on a ZeroGPU Space) inside `spaces.GPU`, like every other forward pass.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, decoded_text
import inspect
from typing import Callable, NamedTuple, Optional, Sequence

import torch

from backend.engines.base import Engine
from backend.engines.length_groups import length_groups
from backend.engines.runtime import LocalRuntime, RunsLocally
from backend.core.types import InvalidInputError, LabelScore, UnsupportedTaskError
from backend.engines.zerogpu import gpu_function, resident_model

# The labels are listed so the model sees its choices: without them SmolLM2-135M-Instruct rated "I loved this
# film" 60% negative; with them 91% positive.
DEFAULT_PROMPT_TEMPLATE = "Classify the text into one of these labels: {labels}.\n\nText: {text}\nLabel:"
TEXT_SLOT = "{text}"
LABELS_SLOT = "{labels}"  # optional: the candidate labels, comma separated, so the model sees its choices


class ScoredBatch(NamedTuple):
    """Scores per text (ranked, best first) and whether each text was cut to fit the model's context."""

    scores: list[list[LabelScore]]
    truncated: list[bool]


def render_prompt(template: str, text: str, labels: Sequence[str]) -> str:
    """The prompt for one text. `str.replace`, not `format`: templates may hold other braces (JSON, code)."""
    return template.replace(LABELS_SLOT, ", ".join(labels)).replace(TEXT_SLOT, text)


def score_labels(
    engine: Engine,
    texts: Sequence[str],
    labels: Sequence[str],
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    texts_per_pass: int = 1,
) -> ScoredBatch:
    """Probabilities over `labels` for each text from a causal LM loaded in this process (`RunsLocally`)."""
    if not isinstance(engine, RunsLocally) or not engine.runtime.loaded:
        raise UnsupportedTaskError(
            f"model '{engine.spec.id}' cannot score labels (it needs a causal LM loaded in this process)"
        )
    runtime = engine.runtime
    tokenizer = runtime.tokenizer
    if TEXT_SLOT not in prompt_template:
        raise InvalidInputError(f"prompt_template: must contain {TEXT_SLOT} where the text goes",
                                field="prompt_template")
    labels = list(labels)
    if not labels:
        raise InvalidInputError("labels: give the candidate labels to score", field="labels")
    continuations = [_continuation(prompt_template, label) for label in labels]
    encoded = [_encode(runtime, prompt_template, text, labels, continuations) for text in texts]
    scores: list[list[LabelScore]] = [[] for _ in encoded]
    lengths = [len(context) + max(len(ids) for ids in label_ids) for context, label_ids, _ in encoded]
    for group in length_groups(lengths, max(1, int(texts_per_pass))):
        rows = [(encoded[index][0], ids) for index in group for ids in encoded[index][1]]
        with runtime.lock:  # the same lock generation takes: one forward at a time on these weights
            runtime.require_loaded("while scoring")
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            # Plain values in, a CPU tensor out: on ZeroGPU this runs in a forked worker (backend/engines/zerogpu.py).
            totals = torch.tensor(_on_device(runtime.limits.gpu_duration_s)(runtime.model_key, pad, rows))
        for position, index in enumerate(group):
            row = totals[position * len(labels):(position + 1) * len(labels)]
            probabilities = torch.softmax(row, dim=0).tolist()
            scores[index] = sorted((LabelScore(label, float(p)) for label, p in zip(labels, probabilities)),
                                   key=lambda item: item.score, reverse=True)
    return ScoredBatch(scores, [cut for _, _, cut in encoded])


# --------------------------------------------------------------------------------------------- tokens


def _continuation(template: str, label: str) -> str:
    """The label as the model would write it after the prompt: after a space unless the prompt ends in one."""
    return label if not template or template[-1].isspace() else " " + label


def _encode(
    runtime: LocalRuntime, template: str, text: str, labels: list[str], continuations: list[str]
) -> tuple[list[int], list[list[int]], bool]:
    """Prompt token ids, each label's token ids, and whether the text had to be cut to fit the context."""
    tokenizer = runtime.tokenizer
    prompt = render_prompt(template, text, labels)
    context = _context_ids(runtime, prompt)
    label_ids = [_label_ids(tokenizer, prompt, context, continuation) for continuation in continuations]
    longest = max(len(ids) for ids in label_ids)
    limit = runtime.max_context
    if limit is None or len(context) + longest <= limit:
        return context, label_ids, False
    # Too long: keep the start of the text (its tokens), as many as fit with the template and the longest label.
    text_ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    overhead = len(context) - len(text_ids)
    budget = limit - longest - overhead
    while True:
        if budget <= 0:
            raise InvalidInputError(
                f"prompt_template: the template and the longest label leave no room for the text within model "
                f"'{runtime.model_id}''s {limit}-token context; shorten them"
            , field="prompt_template")
        cut_text = decoded_text(tokenizer, text_ids[:budget], skip_special_tokens=True)
        prompt = render_prompt(template, cut_text, labels)
        context = _context_ids(runtime, prompt)
        label_ids = [_label_ids(tokenizer, prompt, context, continuation) for continuation in continuations]
        longest = max(len(ids) for ids in label_ids)
        if len(context) + longest <= limit:
            return context, label_ids, True
        budget -= max(1, len(context) + longest - limit)  # re-tokenising can merge differently: shrink and retry


def _context_ids(runtime: LocalRuntime, prompt: str) -> list[int]:
    tokenizer = runtime.tokenizer
    ids = list(tokenizer(prompt, verbose=False)["input_ids"])  # special tokens as the model expects them (e.g. a BOS)
    eos = tokenizer.eos_token_id
    if len(ids) > 1 and eos is not None and ids[-1] == eos and (tokenizer.eos_token or "") not in prompt:
        ids = ids[:-1]  # a tokenizer that appends EOS would put it between the prompt and the label
    return ids or [runtime.start_token_id]


def _label_ids(tokenizer: HFTokenizer, prompt: str, context: list[int], continuation: str) -> list[int]:
    """The label's tokens as they occur after this prompt.

    Encoding prompt + label together and taking what follows the prompt's tokens matches how the model would
    see the text (SentencePiece tokenizers treat a leading space differently on its own). If the joint encoding
    merges across the boundary, the label is encoded on its own instead, so the prompt's tokens stay the same
    for every label and the scores remain comparable.
    """
    whole = tokenizer(prompt + continuation, verbose=False)["input_ids"]
    if len(whole) > len(context) and whole[:len(context)] == context:
        ids = list(whole[len(context):])
    else:
        ids = list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    # A tokenizer that appends EOS (some do) would add EOS's likelihood to every label: drop it.
    eos = tokenizer.eos_token_id
    if len(ids) > 1 and eos is not None and ids[-1] == eos and (tokenizer.eos_token or "") not in continuation:
        ids = ids[:-1]
    if not ids:
        raise InvalidInputError(f"labels: '{continuation.strip()}' encodes to no tokens; use another label",
                                field="labels")
    return ids


# -------------------------------------------------------------------------------------------- forward


def _label_log_likelihoods(model_key: str, pad: int, rows: list[tuple[list[int], list[int]]]) -> list[float]:
    """Sum of log p(label tokens | prompt) per row, from one right-padded forward pass of the resident model."""
    model = resident_model(model_key)
    lengths = [len(context) + len(label) for context, label in rows]
    width = max(lengths)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, (context, label) in enumerate(rows):
        sequence = context + label
        input_ids[index, :len(sequence)] = torch.tensor(sequence)
        attention[index, :len(sequence)] = 1
    # Only positions from the earliest label start on are needed: asking for just those logits keeps memory at
    # rows x (label length) x vocab instead of rows x (whole prompt) x vocab.
    first_needed = min(len(context) for context, _ in rows) - 1
    keep = width - first_needed
    kwargs: dict[str, int] = {}  # logits_to_keep, where the model takes it
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                       **kwargs).logits
    offset = width - logits.shape[1]  # the position of logits[:, 0] in the sequence
    # Every label token at once: the token at position p is predicted by the logits at position p - 1, so gather
    # just those rows of logits and normalise them (not the whole rows x positions x vocab block).
    row_index: list[int] = []
    position_index: list[int] = []
    targets: list[int] = []
    for index, (context, label) in enumerate(rows):
        for step, token in enumerate(label):
            row_index.append(index)
            position_index.append(len(context) - 1 + step - offset)
            targets.append(token)
    device = logits.device
    picked = logits[torch.tensor(row_index, device=device), torch.tensor(position_index, device=device)]
    log_probs = torch.log_softmax(picked.float(), dim=-1)
    token_scores = log_probs.gather(1, torch.tensor(targets, device=device).unsqueeze(1)).squeeze(1)
    totals = torch.zeros(len(rows), dtype=torch.float64)
    totals.index_add_(0, torch.tensor(row_index), token_scores.double().cpu())
    return totals.tolist()


_ON_DEVICE: dict[Optional[int], Callable[..., list[float]]] = {}


def _on_device(duration: Optional[int]) -> Callable[..., list[float]]:
    """The forward pass wrapped for ZeroGPU (`spaces.GPU`, see backend/engines/zerogpu.py); itself elsewhere."""
    wrapped = _ON_DEVICE.get(duration)
    if wrapped is None:
        wrapped = _ON_DEVICE[duration] = gpu_function(_label_log_likelihoods, duration=duration)
    return wrapped


def _accepts_logits_to_keep(model: HFModel) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
