"""Summarization and translation by generation (transformers 5 removed both pipelines), streamed.

preprocess: the text becomes the model's input: an encoder-decoder gets the prefix its config's
`task_specific_params` names (T5's "summarize: ", "translate English to German: "), a causal LM an instruction
(through its chat template when it has one). forward: `generate` in a worker thread feeding a
`TextIteratorStreamer`, so encoder-decoder models stream too. postprocess: the final text and the statistics the
Chat tab shows. Closing the stream sets a stopping criterion that ends `generate` within one decode step.
"""

from __future__ import annotations

import random
import threading
import time
from queue import Empty
from typing import Any, Iterator, Optional, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, StoppingCriteria, TextIteratorStreamer

from backend.tasks.catalog import pair_error, translation_pairs
from backend.types import (
    Delta,
    Event,
    Final,
    GenerationError,
    GenerationParams,
    GenerationStats,
    InvalidInputError,
)

STREAM_TIMEOUT_S = 300.0  # one decode step slower than this on a loaded CPU is a hang, reported as an error


def model_class(architectures: Sequence[str]) -> Any:
    causal = any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in architectures)
    return AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM


class _Stop(StoppingCriteria):
    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> bool:
        return self.flag.is_set()


class Seq2SeqTask:
    def __init__(self, model: Any, tokenizer: Any, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.task_params: dict[str, Any] = dict(getattr(model.config, "task_specific_params", None) or {})
        if not self.encoder_decoder:  # a batch of prompts must end where generation starts
            tokenizer.padding_side = "left"

    # ------------------------------------------------------------------------------------ languages

    def pairs(self) -> Optional[list[tuple[str, str]]]:
        """The (source, target) pairs an encoder-decoder declares; None: any pair (causal LMs, or none declared)."""
        return translation_pairs(self.task_params) if self.encoder_decoder else None

    def prompt(self, text: str, task: str, source: str = "", target: str = "") -> str:
        """The model input for `text` (preprocess)."""
        if task == "translate":
            pairs = self.pairs()
            if pairs is not None and self.encoder_decoder:
                problem = pair_error(pairs, source, target)
                if problem:
                    raise InvalidInputError(problem)
                return self.task_params[f"translation_{source}_to_{target}"].get("prefix", "") + text
            if not self.encoder_decoder:
                if not target:
                    raise InvalidInputError("target_language: say which language to translate into")
                instruction = f"Translate the following text{f' from {source}' if source else ''} into {target}. " \
                              "Reply with the translation only."
                return self._instruct(instruction, text)
            return text  # a single-pair model (Marian-style): the text as it is
        if self.encoder_decoder:
            return self.task_params.get("summarization", {}).get("prefix", "") + text
        return self._instruct("Summarize the following text. Reply with the summary only.", text)

    def _instruct(self, instruction: str, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": f"{instruction}\n\n{text}"}],
                                                      tokenize=False, add_generation_prompt=True)
        return f"{instruction}\n\n{text}\n\nAnswer:"

    # ------------------------------------------------------------------------------------ generation

    def _encode(self, prompts: list[str]) -> tuple[Any, list[int]]:
        lengths = [len(ids) for ids in self.tokenizer(prompts, verbose=False)["input_ids"]]
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=self.encoder_decoder or None)
        return encoded.to(self.model.device), lengths

    def _generate_kwargs(self, params: GenerationParams, min_new_tokens: int) -> tuple[dict[str, Any], Optional[int]]:
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens,
                                  "repetition_penalty": params.repetition_penalty,
                                  "do_sample": not params.greedy}
        if min_new_tokens:
            kwargs["min_new_tokens"] = min(min_new_tokens, params.max_new_tokens)
        seed = None
        if not params.greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None)
            seed = params.seed if params.seed is not None else random.randrange(2**31)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        return kwargs, seed

    def stream(self, text: str, task: str, params: GenerationParams, source: str = "", target: str = "",
               min_new_tokens: int = 0) -> Iterator[Event]:
        """Deltas of the output text, then one Final with the statistics."""
        prompt = self.prompt(text, task, source, target)
        encoded, lengths = self._encode([prompt])
        kwargs, seed = self._generate_kwargs(params, min_new_tokens)
        stop = threading.Event()
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=not self.encoder_decoder, skip_special_tokens=True,
                                        timeout=STREAM_TIMEOUT_S)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if seed is not None:
                    torch.manual_seed(seed)
                with torch.inference_mode():
                    result["ids"] = self.model.generate(**encoded, streamer=streamer, stopping_criteria=[_Stop(stop)],
                                                        **kwargs)
            except BaseException as error:  # reaches the consumer; the streamer is ended so it cannot hang
                result["error"] = error
                streamer.end()

        started = time.perf_counter()
        first_at: Optional[float] = None
        pieces: list[str] = []
        stop_hit = False
        worker = threading.Thread(target=run, name="seq2seq-generate", daemon=True)
        worker.start()
        try:
            try:
                for piece in streamer:
                    if not piece:
                        continue
                    first_at = first_at or time.perf_counter()
                    piece, stopped = _cut_at_stop("".join(pieces), piece, params.stop)
                    if piece:
                        pieces.append(piece)
                        yield Delta(piece)
                    if stopped:
                        stop_hit = True
                        stop.set()  # a stop sequence appeared: end generate at its next step
                        break
            except Empty:
                stop.set()
                raise GenerationError(f"generation produced nothing for {STREAM_TIMEOUT_S:.0f} s") from None
            worker.join()
            if "error" in result:
                raise GenerationError(f"generation failed: {type(result['error']).__name__}: {result['error']}") \
                    from result["error"]
        finally:
            stop.set()  # a closed stream (Stop, a closed tab) ends generate at its next step
        total = time.perf_counter() - started
        generated = self._generated_tokens(result["ids"], encoded)
        notices = (f"the input was cut to the model's {self.max_length} tokens",) if lengths[0] > self.max_length \
            else ()
        rate = generated / total if total > 0 else None  # over the whole run: encoder-decoders emit in bursts
        yield Final(text="".join(pieces), stats=GenerationStats(
            prompt_tokens=min(lengths[0], self.max_length), generated_tokens=generated,
            time_to_first_token_s=(first_at - started) if first_at else None, tokens_per_second=rate, total_s=total,
            finish_reason="length" if generated >= params.max_new_tokens and not stop_hit else "stop",
            max_context=self.max_length,
            notices=notices, seed=seed))

    def _generated_tokens(self, ids: torch.Tensor, encoded: Any) -> int:
        new = ids[0] if self.encoder_decoder else ids[0][encoded["input_ids"].shape[1]:]
        special = set(self.tokenizer.all_special_ids)
        tokens = [int(token) for token in new.tolist()]
        if self.encoder_decoder and tokens:
            tokens = tokens[1:]  # the decoder start token is not generated
        return sum(1 for token in tokens if token not in special) + (1 if tokens and tokens[-1] in special else 0)

    def generate_batch(self, texts: Sequence[str], task: str, params: GenerationParams, source: str = "",
                       target: str = "", min_new_tokens: int = 0) -> list[str]:
        """Outputs for several texts in one padded `generate` call (whole-file runs)."""
        prompts = [self.prompt(text, task, source, target) for text in texts]
        encoded, _ = self._encode(prompts)
        kwargs, seed = self._generate_kwargs(params, min_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            ids = self.model.generate(**encoded, **kwargs)
        if not self.encoder_decoder:
            ids = ids[:, encoded["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _cut_at_stop(before: str, piece: str, stops: Sequence[str]) -> tuple[str, bool]:
    """`piece` up to the first stop sequence in `before + piece` (which is left out), and whether one appeared."""
    if not stops:
        return piece, False
    text = before + piece
    found = [text.find(stop, max(0, len(before) - len(stop) + 1)) for stop in stops]
    hits = [index for index in found if index >= 0]
    if not hits:
        return piece, False
    return text[len(before):min(hits)] if min(hits) >= len(before) else "", True
