"""The GPU step: one batch of rows decoded together, plain values in, plain values out.

`decode_batch` runs `model.generate` over left-padded rows, each with its own parameters, and hands every
decode step's token ids (one per row) to a callback. Nothing in its arguments or its output is a live object
of the app: prompts, parameters and seeds are a picklable `RowPlan`, a step is a picklable `Step`, and the only
shared state is `stop_flags`, a bool tensor the app sets to end a row (Stop, a stop sequence, a closed tab).
That is what ZeroGPU needs (its `spaces.GPU` runs the function in a forked worker and pickles arguments and
results; a CPU tensor pickled on the way there moves to shared memory, so the app's later writes to
`stop_flags` still reach the worker): `decode_steps` is the same step as a generator, for `spaces.GPU`.
In-process, the batcher calls `decode_batch` directly with its callback, in its own thread.

Sampling is vectorised over the batch (`BatchSampler`): greedy rows, temperature, top-k, top-p and repetition
penalty are each one tensor operation for all rows, so a step costs no GPU synchronisation per row (on an H200,
deciding each row with its own `argmax` and `int()` capped 16 concurrent users at 2.4x one). Every sampled row
draws from its own random stream, precomputed from its seed on the CPU: the same seed gives the same text
whatever else shares the batch, on any device.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, generator
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, \
    StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from backend.engines.grammar import GrammarMask
from backend.engines.penalties import OccurrencePenalty
from backend.engines.token_ops import top_logprobs
from backend.core.streams import Channel, produce_in_thread
from backend.core.types import GenerationParams
from backend.engines.zerogpu import resident_model

@dataclass(frozen=True)
class RowPlan:
    """Everything the GPU step needs to know about one row, as plain values."""

    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    temperature: float  # 0: greedy
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: int
    top_alternatives: int = 0
    draw_offset: int = 0  # random draws already used: a row resumed after `draw_offset` tokens goes on from there
    presence_penalty: float = 0.0  # OpenAI's penalties and logit_bias (backend/engines/penalties.py)
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    grammar: Optional[str] = None  # structured output (backend/engines/grammar.py)

    @classmethod
    def of(cls, prompt_ids: list[int], params: GenerationParams, max_new_tokens: int, seed: int) -> "RowPlan":
        return cls(tuple(prompt_ids), max_new_tokens, 0.0 if params.greedy else params.temperature,
                   params.top_k, params.top_p, params.repetition_penalty, seed, params.top_alternatives,
                   presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
                   logit_bias=params.logit_bias, grammar=params.grammar)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def uniforms(self) -> torch.Tensor:
        """This row's random draws, one per step, from its own seed (CPU generator: device-independent)."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.rand(self.draw_offset + self.max_new_tokens, generator=generator,
                          dtype=torch.float64)[self.draw_offset:]

    def resumed(self, generated: list[int]) -> "RowPlan":
        """This row to go on in a new batch after `generated` tokens: they join the prompt (the new batch's
        prefill recomputes their cache), and sampling continues with the next of the row's own draws."""
        return replace(self, prompt_ids=self.prompt_ids + tuple(generated),
                       max_new_tokens=self.max_new_tokens - len(generated),
                       draw_offset=self.draw_offset + len(generated))


@dataclass(frozen=True)
class Choice:
    """What a row was choosing between at one step (only for rows that asked for top_alternatives)."""

    token_id: int
    probability: float
    alternatives: tuple[tuple[int, float], ...]  # (token id, probability), most likely first


@dataclass(frozen=True)
class Step:
    """One decode step: a token id per row (rows that had ended get padding, to be ignored), and the choices
    that rows asked for (top_alternatives)."""

    token_ids: tuple[int, ...]
    choices: tuple[Optional[Choice], ...] = ()


@dataclass(frozen=True)
class Decoding:
    """The model-level settings of a batch: which tokens end a row, which pad one."""

    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    bos_token_id: Optional[int] = None


def decode_batch(model: HFModel, decoding: Decoding, rows: list[RowPlan], stop_flags: torch.Tensor,
                 on_step: Callable[[Step], object]) -> None:
    """Decodes `rows` together, calling `on_step` after every step, until each row has ended: its EOS, its own
    max_new_tokens, or `stop_flags[row]` set by the caller."""
    input_ids, attention_mask = _left_pad(rows, decoding.pad_token_id)
    device = model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    sampler = BatchSampler(rows, attention_mask, GrammarMask.of(rows, model, decoding.eos_token_ids))
    with torch.inference_mode():
        generator(model).generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=GenerationConfig(
                do_sample=False,  # sampling happens per row in BatchSampler; generate takes its choice greedily
                num_beams=1,
                max_new_tokens=max(row.max_new_tokens for row in rows),
                eos_token_id=list(decoding.eos_token_ids),
                pad_token_id=decoding.pad_token_id,
                bos_token_id=decoding.bos_token_id,
            ),
            logits_processor=sampler.processors(),
            stopping_criteria=StoppingCriteriaList([RowsDone(rows, stop_flags, input_ids.shape[1])]),
            streamer=_StepStreamer(sampler, on_step),
        )


def decode_encoded(model: HFModel, decoding: Decoding, rows: list[RowPlan], encoded: dict[str, torch.Tensor],
                   stop_flags: torch.Tensor, on_step: Callable[[Step], None], *, min_new_tokens: int = 0,
                   decoder_start_token_id: Optional[int] = None) -> None:
    """`decode_batch` for inputs the caller encoded itself (backend/tasks/seq2seq.py): a text-to-text model's
    encoder inputs, whose decoder starts from `decoder_start_token_id`, or a causal LM's left-padded prompts. The
    same sampler (each row's own seeded draws), stop flags and step callback; `min_new_tokens` keeps EOS away
    that long."""
    device = model.device
    inputs = {name: value.to(device) for name, value in encoded.items()}
    if getattr(model.config, "is_encoder_decoder", False):
        # The sampler and the row limits look at the decoder's sequence, which starts as one token per row.
        decoder_mask = torch.ones((len(rows), 1), dtype=torch.long, device=device)
    else:
        decoder_mask = inputs["attention_mask"]
    sampler = BatchSampler(rows, decoder_mask, GrammarMask.of(rows, model, decoding.eos_token_ids))
    with torch.inference_mode():
        generator(model).generate(
            **inputs,
            generation_config=GenerationConfig(
                do_sample=False, num_beams=1, max_new_tokens=max(row.max_new_tokens for row in rows),
                min_new_tokens=min_new_tokens or None, eos_token_id=list(decoding.eos_token_ids),
                pad_token_id=decoding.pad_token_id, bos_token_id=decoding.bos_token_id,
                decoder_start_token_id=decoder_start_token_id),
            logits_processor=sampler.processors(),
            stopping_criteria=StoppingCriteriaList([RowsDone(rows, stop_flags, decoder_mask.shape[1])]),
            streamer=_StepStreamer(sampler, on_step),
        )


def decode_steps(model_key: str, decoding: Decoding, rows: list[RowPlan],
                 stop_flags: torch.Tensor) -> Iterator[Step]:
    """`decode_batch` as a generator of steps, for `spaces.GPU` (which runs it in its worker process).
    Closing the generator ends the batch."""
    model = resident_model(model_key)
    # The step runs in its own thread (generate calls back; a generator has to hand over); closing the stream
    # sets every row's stop flag, so the batch ends at its next step, and waits for that thread.
    steps: Channel[Step] = produce_in_thread(
        lambda emit: decode_batch(model, decoding, rows, stop_flags, emit),
        name=f"decode-{model_key}", on_close=lambda: stop_flags.fill_(True))
    try:
        yield from steps
    finally:
        steps.close()


def decode_steps_function() -> Callable[..., Iterator[Step]]:
    """A generator function of its own for each model: `spaces.GPU` caches one wrapper per function, with the
    duration it was first given, and each model has its own duration."""
    def decode_steps_of_model(model_key: str, decoding: Decoding, rows: list[RowPlan],
                              stop_flags: torch.Tensor) -> Iterator[Step]:
        yield from decode_steps(model_key, decoding, rows, stop_flags)

    return decode_steps_of_model


def _left_pad(rows: list[RowPlan], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding keeps every row's last prompt token at the same position, where generation starts."""
    width = max(len(row.prompt_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids)
        mask[index, width - len(row.prompt_ids):] = 1
    return ids, mask


class BatchSampler(LogitsProcessor):
    """Chooses every row's next token at once, with each row's own parameters, and hands generate a one-hot
    choice that it takes greedily."""

    def __init__(self, rows: list[RowPlan], attention_mask: torch.Tensor,
                 grammar: Optional[GrammarMask] = None) -> None:
        device = attention_mask.device
        self.grammar = grammar
        column = lambda values, dtype: torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)  # noqa: E731
        self.greedy = column([row.greedy for row in rows], torch.bool)
        self.any_sampled = not all(row.greedy for row in rows)
        self.temperature = column([row.temperature if not row.greedy else 1.0 for row in rows], torch.float32)
        self.top_k = column([row.top_k for row in rows], torch.long)
        self.top_p = column([row.top_p for row in rows], torch.float32)
        self.any_top_p = any(row.top_p < 1.0 for row in rows)
        self.penalty = column([row.repetition_penalty for row in rows], torch.float32)
        self.any_penalty = any(row.repetition_penalty != 1.0 for row in rows)
        self.alternatives = [row.top_alternatives for row in rows]
        if self.any_sampled:  # each row's own draws, one column per step
            width = max(row.max_new_tokens for row in rows)
            draws = torch.full((len(rows), width), 0.5, dtype=torch.float64)
            for index, row in enumerate(rows):
                if not row.greedy:
                    draws[index, : row.max_new_tokens] = row.uniforms()
            self.draws = draws.to(device)
        # Repetition penalty looks at each row's own tokens: padding is replaced by the row's first real token
        # (scattering the same value twice is harmless; a pad id that differs would be penalised wrongly).
        self.first_real = (attention_mask == 0).sum(dim=1, keepdim=True)
        self.padding = attention_mask == 0
        self.occurrence = OccurrencePenalty.of(rows, attention_mask.shape[1], device)
        self.step = 0
        self.choices: tuple[Optional[Choice], ...] = ()  # this step's, for the streamer

    @property
    def needed(self) -> bool:
        """False when every row is plain greedy: no sampling, penalty, bias, grammar or alternatives. Then
        generate's own argmax over the same float32 logits picks the same tokens (ties included), so the sampler's
        argmax, one-hot and bookkeeping would only cost time."""
        return (self.any_sampled or self.any_penalty or self.occurrence is not None or self.grammar is not None
                or any(self.alternatives))

    def processors(self) -> LogitsProcessorList:
        """What generate runs on each step's logits: this sampler, or nothing when no row needs it."""
        return LogitsProcessorList([self] if self.needed else [])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float()
        if self.any_penalty:
            logits = self._penalise(input_ids, logits)
        if self.occurrence is not None:
            logits = self.occurrence(input_ids, logits)
        if self.grammar is not None:
            logits = self.grammar(input_ids, logits)
        chosen = torch.argmax(logits, dim=-1, keepdim=True)
        probs = None
        if self.any_sampled:
            sampled, probs = self._sample(logits)
            chosen = torch.where(self.greedy, chosen, sampled)
        self.choices = self._record(logits, probs, chosen) if any(self.alternatives) else ()
        self.step += 1
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)  # type: ignore[return-value]

    def _penalise(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        padding = torch.nn.functional.pad(self.padding, (0, input_ids.shape[1] - self.padding.shape[1]))
        history = torch.where(padding, input_ids.gather(1, self.first_real), input_ids)
        seen = logits.gather(1, history)
        seen = torch.where(seen > 0, seen / self.penalty, seen * self.penalty)
        return logits.scatter(1, history, seen)

    def _sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Temperature, then top-k and top-p (as transformers' warpers: the most likely token always stays),
        then one draw per row by inverting the cumulative distribution with the row's own uniform number."""
        ordered, order = torch.sort(logits / self.temperature, dim=-1, descending=True)
        vocab = ordered.shape[1]
        keep_k = torch.where((self.top_k > 0) & (self.top_k < vocab), self.top_k, vocab)
        kth = ordered.gather(1, keep_k - 1)
        ordered = ordered.masked_fill(ordered < kth, float("-inf"))
        if self.any_top_p:
            probs = torch.softmax(ordered, dim=-1)
            outside = (probs.cumsum(dim=-1) - probs) >= self.top_p
            outside[:, 0] = False
            ordered = ordered.masked_fill(outside, float("-inf"))
        probs = torch.softmax(ordered, dim=-1)
        cumulative = probs.double().cumsum(dim=-1)
        target = self.draws[:, self.step: self.step + 1] * cumulative[:, -1:]
        position = (cumulative < target).sum(dim=-1, keepdim=True).clamp_(max=vocab - 1)
        # `probs` back in vocabulary order, for rows that report alternatives
        return order.gather(1, position), torch.zeros_like(probs).scatter_(1, order, probs)

    def _record(self, logits: torch.Tensor, sampled_probs: Optional[torch.Tensor],
                chosen: torch.Tensor) -> tuple[Optional[Choice], ...]:
        """The distribution each reporting row chose from, its chosen token's probability and the top ones.
        Only rows that asked pay for this (it reads values back to the CPU)."""
        log_probs = torch.log_softmax(logits, dim=-1)
        if sampled_probs is not None:
            log_probs = torch.where(self.greedy, log_probs, sampled_probs.log())
        # The same computation as the API's logprobs (backend/engines/token_ops.py), as probabilities.
        picks = top_logprobs(log_probs, chosen, max(self.alternatives))
        return tuple(
            Choice(pick.token_id, math.exp(pick.logprob),
                   tuple((token, math.exp(value)) for token, value in pick.top[:count]))
            if count else None
            for pick, count in zip(picks, self.alternatives))


class RowsDone(StoppingCriteria):
    """Per row: its own max_new_tokens reached, or ended by the caller through `stop_flags`."""

    def __init__(self, rows: list[RowPlan], stop_flags: torch.Tensor, prompt_width: int) -> None:
        self.limits = torch.tensor([row.max_new_tokens for row in rows])
        self.stop_flags = stop_flags
        self.prompt_width = prompt_width
        self._sent: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # (done on the CPU, its device copy)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = self.stop_flags | (self.limits <= input_ids.shape[1] - self.prompt_width)
        # Decided on the CPU (the flags live there); copied to the device only when it changed: a copy from
        # pageable memory each step would stall the host until the GPU caught up.
        if self._sent is None or not torch.equal(self._sent[0], done):
            self._sent = (done, done.to(input_ids.device))
        return self._sent[1]  # type: ignore[return-value]


class _StepStreamer(BaseStreamer):
    """Hands each step's tokens (one per row) to the callback, with the choices the sampler recorded."""

    def __init__(self, sampler: BatchSampler, on_step: Callable[[Step], object]) -> None:
        self.sampler = sampler
        self.on_step = on_step
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate first hands over the prompts themselves
            self._prompt_seen = True
            return
        self.on_step(Step(tuple(value.reshape(-1).tolist()), self.sampler.choices))

    def end(self) -> None:
        pass
