"""Log-probabilities of tokens: the one computation behind Generate's per-token probabilities view and the
OpenAI API's `logprobs` (generated tokens, through the decode step's `Choice`s, and prompt tokens, scored here
with one forward pass: `echo` with `logprobs`, which lm-evaluation-harness uses for log-likelihood tasks).

Runs under the engine's generate lock, so scoring never races a generation on the same weights, and (on a
ZeroGPU Space) inside `spaces.GPU`, like every other forward pass.
"""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch

from backend.engines.length_groups import length_groups
from backend.engines.token_level import PromptScores, TokenLogprob, check_ids  # noqa: F401 - re-exported
from backend.core.types import ContextOverflowError, InvalidInputError
from backend.engines.zerogpu import gpu_function, resident_model

if TYPE_CHECKING:
    from backend.engines.runtime import LocalRuntime

MAX_TOP = 20  # OpenAI's and vLLM's limit for top_logprobs
# Scoring needs the logits of every prompt position (rows x tokens x vocabulary floats): passes are kept under
# this many values (1 GiB of float32), so a 150k-token vocabulary scores a few long prompts per pass, not 16.
MAX_LOGITS_PER_PASS = 256 * 1024 * 1024


def top_logprobs(log_probs: torch.Tensor, chosen: torch.Tensor, count: int) -> list[TokenLogprob]:
    """Per row of `log_probs` (rows x vocabulary, normalised): the chosen token's log-probability and the `count`
    most likely tokens. Reads values back to the CPU once for all rows."""
    top = torch.topk(log_probs, max(1, min(count, log_probs.shape[-1])), dim=-1)
    chosen_values = log_probs.gather(1, chosen.reshape(-1, 1)).squeeze(1).tolist()
    ids, values, chosen_ids = top.indices.tolist(), top.values.tolist(), chosen.reshape(-1).tolist()
    return [TokenLogprob(int(chosen_ids[row]), float(chosen_values[row]),
                         tuple(zip(ids[row][:count], values[row][:count])))
            for row in range(len(chosen_ids))]


def tokenizer_info(tokenizer: HFTokenizer, max_context: Optional[int], chat_template: Optional[str]) -> dict[str, Any]:
    """vLLM's `/tokenizer_info` fields that clients read (lm-evaluation-harness: eos/bos/pad and the template)."""
    return {
        "tokenizer_class": type(tokenizer).__name__,
        "eos_token": tokenizer.eos_token,
        "bos_token": tokenizer.bos_token,
        "pad_token": tokenizer.pad_token,
        "unk_token": tokenizer.unk_token,
        "chat_template": chat_template,
        "model_max_length": max_context,
        "vocab_size": len(tokenizer),
        "add_bos_token": bool(getattr(tokenizer, "add_bos_token", False)),
    }


def score_prompts(runtime: LocalRuntime, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]:
    """Every prompt token's log-probability, and the greedy next token, for each row (a loaded model's
    LocalRuntime; rows grouped by length into forward passes of at most max_batch_size)."""

    rows = [list(row) for row in rows]
    limit = runtime.max_context
    for index, row in enumerate(rows):
        if not row:
            raise InvalidInputError(f"prompt: prompt {index} has no tokens; give at least one", field="prompt")
        if limit is not None and len(row) > limit:
            raise ContextOverflowError(f"the prompt {index} is {len(row)} tokens, but model '{runtime.model_id}' has "
                                       f"a context of {limit} tokens; shorten it")
    top = max(0, min(int(top), MAX_TOP))
    results: list[Optional[PromptScores]] = [None] * len(rows)
    # Prompts that differ only in their last token (the choices of a multiple-choice question, as
    # lm-evaluation-harness sends them) share one forward pass of their common prefix.
    families: dict[tuple[int, ...], list[int]] = {}
    for index, row in enumerate(rows):
        if len(row) >= 2:
            families.setdefault(tuple(row[:-1]), []).append(index)
    shared = [members for members in families.values() if len(members) >= 2]
    for members in shared:
        with runtime.lock:
            runtime.require_loaded("while scoring")
            scored = _on_device(runtime.limits.gpu_duration_s, _shared_prefix_logprobs)(
                runtime.model_key, list(rows[members[0]][:-1]), [rows[index][-1] for index in members], top)
        for index, result in zip(members, scored):
            results[index] = result
    alone = [index for index, result in enumerate(results) if result is None]
    if not alone:
        return [result for result in results if result is not None]
    per_pass = MAX_LOGITS_PER_PASS // max(1, max(len(rows[index]) for index in alone) * len(runtime.tokenizer))
    for group in length_groups([len(rows[index]) for index in alone],
                               max(1, min(runtime.limits.max_batch_size, per_pass))):
        group = [alone[position] for position in group]
        with runtime.lock:  # the lock generation takes: one forward at a time on these weights
            runtime.require_loaded("while scoring")
            scored = _on_device(runtime.limits.gpu_duration_s)(runtime.model_key, runtime.pad_token_id,
                                                              [rows[index] for index in group], top)
        for index, result in zip(group, scored):
            results[index] = result
    return [result for result in results if result is not None]


def _scores(log_probs: torch.Tensor, row: list[int], top: int) -> PromptScores:
    """A row's scores from its positions' log-probabilities (position p predicts token p + 1; the last position
    gives the next token)."""
    following = torch.tensor(row[1:] + [0], device=log_probs.device)
    following[-1] = torch.argmax(log_probs[-1])
    picks = top_logprobs(log_probs, following, top)
    return PromptScores(tokens=(None, *picks[:-1]), next=picks[-1])


def _shared_prefix_logprobs(model_key: str, prefix: list[int], lasts: list[int], top: int) -> list[PromptScores]:
    """Rows `prefix + [last]` for each of `lasts`: one forward of the prefix, then one step for all the last tokens
    against its cache (the same numbers as scoring each row whole, for len(lasts) x less work on the prefix)."""
    model = resident_model(model_key)
    with torch.inference_mode():
        head = model(input_ids=torch.tensor([prefix], device=model.device), use_cache=True)
        cache = head.past_key_values
        cache.batch_repeat_interleave(len(lasts))
        step = model(input_ids=torch.tensor([[last] for last in lasts], device=model.device), past_key_values=cache,
                     attention_mask=torch.ones((len(lasts), len(prefix) + 1), dtype=torch.long, device=model.device))
    prefix_log_probs = torch.log_softmax(head.logits[0].float(), dim=-1)
    last_log_probs = torch.log_softmax(step.logits[:, -1].float(), dim=-1)
    return [_scores(torch.cat([prefix_log_probs, last_log_probs[position:position + 1]]), prefix + [last], top)
            for position, last in enumerate(lasts)]


def _prompt_logprobs(model_key: str, pad: int, rows: list[list[int]], top: int) -> list[PromptScores]:
    """One right-padded forward pass of the resident model over `rows`."""
    model = resident_model(model_key)
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, :len(row)] = torch.tensor(row)
        attention[index, :len(row)] = 1
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits
    return [_scores(torch.log_softmax(logits[index, :len(row)].float(), dim=-1), row, top)
            for index, row in enumerate(rows)]


_ON_DEVICE: dict[tuple[Optional[int], Callable[..., list[PromptScores]]], Callable[..., list[PromptScores]]] = {}


def _on_device(duration: Optional[int], function: Callable[..., list[PromptScores]] = _prompt_logprobs
               ) -> Callable[..., list[PromptScores]]:
    """A forward pass wrapped for ZeroGPU (`spaces.GPU`, see backend/engines/zerogpu.py); itself elsewhere."""
    wrapped = _ON_DEVICE.get((duration, function))
    if wrapped is None:
        wrapped = _ON_DEVICE[(duration, function)] = gpu_function(function, duration=duration)
    return wrapped
