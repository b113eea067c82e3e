"""Batched inference for evaluation on a loaded causal LM: greedy generation and per-text log-likelihoods.

Why not the engine's streaming API: a stream serves one user and turns tokens into text as they come;
evaluation wants many prompts decoded together, in batches it chooses. Prompts are sorted by length so a batch
holds similar lengths (little padding), then go through the model's scheduler (`Scheduler.decode_rows`,
backend/engines/runtime.py: the same GPU step as chat), which left-pads them with an attention mask: a
decoder-only model continues from the last position of every row, and left padding gives each row the same
greedy output it gets alone. Only engines that run in this process (`RunsLocally`) are batched; others (remote
servers) are asked one prompt at a time through their own stream.

Every batch runs under the runtime's lock, the lock chat batches and label scoring take, so a run never races
a chat on the same weights; releasing it between batches lets chats interleave with a long run.
Cancelling sets an event that is checked after every decode step: the batch in flight is dropped, everything
finished before it is kept.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence, Union

import torch

from backend.engines.base import Engine
from backend.engines.decode import RowPlan
from backend.engines.runtime import LocalRuntime, RunsLocally, Scheduler
from backend.core.streams import close_quietly
from backend.core.types import GenerationParams, InvalidInputError, Message
from backend.engines.zerogpu import gpu_function, resident_model

OnBatch = Callable[[int], None]  # called with the number of examples a finished batch completed
# A prompt: text (through the chat template when `chat`), or a conversation (always through the chat template).
Prompt = Union[str, Sequence[Message]]


def is_local_causal_lm(engine: Engine) -> bool:
    """A causal LM whose weights are in this process (and still loaded)."""
    return isinstance(engine, RunsLocally) and engine.runtime.loaded


def generate_texts(
    engine: Engine,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    batch_size: int,
    chat: bool,
    cancel: Optional[threading.Event] = None,
    on_batch: Optional[OnBatch] = None,
) -> tuple[list[Optional[str]], list[str]]:
    """Greedy completions of `prompts` (None where cancelled before done), and notices for the user."""
    cancel = cancel or threading.Event()
    on_batch = on_batch or (lambda count: None)
    if not isinstance(engine, RunsLocally) or not engine.runtime.loaded:
        return _generate_one_by_one(engine, prompts, max_new_tokens, chat, cancel, on_batch), []
    runtime, scheduler = engine.runtime, engine.scheduler
    budget = _prompt_budget(runtime, max_new_tokens)
    encoded = [_encode_prompt(runtime, prompt, chat) for prompt in prompts]
    cut = sum(1 for ids in encoded if len(ids) > budget)
    # Keep the end of an over-long prompt: with a template, that is where the question and the answer cue are.
    encoded = [ids[-budget:] if len(ids) > budget else ids for ids in encoded]
    outputs: list[Optional[str]] = [None] * len(prompts)
    for batch in _length_sorted_batches(encoded, batch_size):
        if cancel.is_set():
            break
        texts = _generate_batch(runtime, scheduler, [encoded[index] for index in batch], max_new_tokens, cancel)
        if texts is None:  # cancelled mid-batch: its partial outputs are not answers
            break
        for index, text in zip(batch, texts):
            outputs[index] = text
        on_batch(len(batch))
    notices = [f"{cut:,} prompt(s) longer than the model's context were cut to their last {budget} tokens"
               ] if cut else []
    return outputs, notices


def text_log_likelihoods(
    engine: Engine,
    texts: Sequence[str],
    *,
    batch_size: int,
    cancel: Optional[threading.Event] = None,
    on_batch: Optional[OnBatch] = None,
) -> tuple[list[Optional[tuple[float, int]]], list[str]]:
    """Per text: (summed NLL in nats, tokens scored), None where cancelled; and notices.

    A BOS token (when the tokenizer has one) is put first so that the text's first token is scored too.
    Batches are right-padded: positions then start at 0 in every row, and padding, masked out of attention and
    out of the loss, changes nothing for the real tokens.
    """
    if not isinstance(engine, RunsLocally) or not engine.runtime.loaded:
        raise InvalidInputError(f"model '{engine.spec.id}': perplexity needs a model loaded in this process")
    cancel = cancel or threading.Event()
    on_batch = on_batch or (lambda count: None)
    runtime = engine.runtime
    tokenizer = runtime.tokenizer
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    limit = runtime.max_context
    encoded = [bos + list(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    cut = sum(1 for ids in encoded if limit and len(ids) > limit)
    encoded = [ids[:limit] if limit else ids for ids in encoded]
    results: list[Optional[tuple[float, int]]] = [None] * len(texts)
    for batch in _length_sorted_batches(encoded, batch_size):
        if cancel.is_set():
            break
        for index, value in zip(batch, _nll_batch(runtime, [encoded[index] for index in batch])):
            results[index] = value
        on_batch(len(batch))
    notices = [f"{cut:,} text(s) longer than the model's {limit}-token context were scored on their first "
               f"{limit} tokens"] if cut else []
    return results, notices


# ----------------------------------------------------------------------------------------------- batches


def _length_sorted_batches(encoded: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _prompt_budget(runtime: LocalRuntime, max_new_tokens: int) -> int:
    if not runtime.max_context:
        return 10**9
    budget = runtime.max_context - max_new_tokens
    if budget < 1:
        raise InvalidInputError(f"max_new_tokens: {max_new_tokens} leaves no room for a prompt in model "
                                f"'{runtime.model_id}''s {runtime.max_context}-token context", field="max_new_tokens")
    return budget


def _encode_prompt(runtime: LocalRuntime, prompt: Prompt, chat: bool) -> list[int]:
    """Token ids exactly as the engine's own chat / generate paths build them."""
    if not isinstance(prompt, str):
        return runtime.encode_chat(prompt)
    return runtime.encode_chat([Message("user", prompt)]) if chat else runtime.encode_prompt(prompt)


def _generate_batch(runtime: LocalRuntime, scheduler: Scheduler, batch: list[list[int]], max_new_tokens: int,
                    cancel: threading.Event) -> Optional[list[str]]:
    """Greedy completions of one batch, through the model's scheduler (backend/engines/decode.py's GPU step):
    the same decoding as chat, under the same lock, and under `spaces.GPU` on ZeroGPU."""
    greedy = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    rows = [RowPlan.of(ids, greedy, max_new_tokens, seed=0) for ids in batch]
    generated = scheduler.decode_rows(rows, cancel)
    if generated is None:
        return None
    return [runtime.decode(row) for row in generated]


def _nll_batch(runtime: LocalRuntime, batch: list[list[int]]) -> list[tuple[float, int]]:
    with runtime.lock:
        runtime.require_loaded("during the evaluation")
        duration = runtime.limits.gpu_duration_s
        on_device = _NLL_ON_DEVICE.get(duration)
        if on_device is None:
            on_device = _NLL_ON_DEVICE[duration] = gpu_function(_nll_of_rows, duration=duration)
        # Plain values in and out: on ZeroGPU this runs in spaces' forked worker (backend/engines/zerogpu.py).
        return on_device(runtime.model_key, runtime.pad_token_id, batch)


_NLL_ON_DEVICE: dict[Optional[int], Callable[..., list[tuple[float, int]]]] = {}


def _nll_of_rows(model_key: str, pad: int, batch: list[list[int]]) -> list[tuple[float, int]]:
    """(summed NLL, tokens scored) per row of token ids, from one right-padded forward pass."""
    model = resident_model(model_key)
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, :len(ids)] = 1
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits
        results = []
        for row, ids in enumerate(batch):
            scored = len(ids) - 1  # position p predicts token p + 1
            if scored < 1:
                results.append((0.0, 0))
                continue
            # One row at a time: float32 log-softmax over (length x vocabulary), not (batch x length x vocabulary).
            nll = torch.nn.functional.cross_entropy(logits[row, :scored].float(), input_ids[row, 1:len(ids)].to(
                logits.device), reduction="sum")
            results.append((float(nll), scored))
    return results


def _generate_one_by_one(engine: Engine, prompts: Sequence[Prompt], max_new_tokens: int, chat: bool,
                         cancel: threading.Event, on_batch: OnBatch) -> list[Optional[str]]:
    """Engines without local weights (remote servers): their own greedy stream, one prompt at a time."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    outputs: list[Optional[str]] = [None] * len(prompts)
    for index, prompt in enumerate(prompts):
        if cancel.is_set():
            break
        if not isinstance(prompt, str):
            stream = engine.stream_chat(list(prompt), params)
        else:
            stream = (engine.stream_chat([Message("user", prompt)], params) if chat
                      else engine.stream_generate(prompt, params))
        try:
            final = None
            for event in stream:
                final = event
                if cancel.is_set():
                    break
        finally:
            close_quietly(stream)
        if cancel.is_set():
            break
        outputs[index] = getattr(final, "text", "")
        on_batch(1)
    return outputs
