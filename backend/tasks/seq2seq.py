"""Summarization and translation by generation (transformers 5 removed both pipelines), streamed. Two tasks, one
handler: a registry entry may do both with one model.

preprocess: the text becomes the model's input: an encoder-decoder gets the prefix its config's
`task_specific_params` names (T5's "summarize: ", "translate English to German: "), a causal LM an instruction
(through its chat template when it has one). forward: the shared decode step (backend/engines/decode.py
`decode_encoded`): each row's own seeded random draws (never the process-global seed), stop flags the caller
sets, one token per row per step, under the model's lock. postprocess: text up to EOS. A stream turns the tokens
into text with the chat path's `IncrementalDecoder` and `StopMatcher` (a stop sequence split across tokens never
leaks), and ends with the statistics the Chat tab shows. Closing the stream ends `generate` within a step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Callable, Generator, Optional, Sequence

from backend.core.hf_types import decoded_text, rendered_text
from backend.core.checkpoint import read_checkpoint_config
from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject, json_object
from backend.guard.text_checks import check_text
from backend.tasks.base import Cell, EvalAdapter, LoadContext, ModelClass, TaskHandler, TaskInputs, TaskRequest, \
    TaskSpec, whole_number
from backend.core.types import Delta, Event, GenerationError, GenerationParams, InvalidInputError

if TYPE_CHECKING:
    import torch

    from backend.engines.decode import RowPlan, Step
    from backend.evaluation.types import EvalConfig
    from backend.core.model_spec import ModelSpec


@dataclass(frozen=True)
class TextOptions:
    task: str  # "summarize" or "translate"
    params: GenerationParams
    source: str = ""  # translate: the languages
    target: str = ""
    min_new_tokens: int = 0


# --------------------------------------------------------------------------------------------- languages


def translation_pairs(task_specific_params: Optional[Mapping[str, object]]) -> Optional[list[tuple[str, str]]]:
    """The (source, target) pairs a checkpoint declares in config.json (`translation_en_to_de`: T5 and the like);
    None when it declares none (causal LMs and single-pair models translate whatever they are asked to)."""
    found = []
    for key in task_specific_params or {}:
        if key.startswith("translation_") and "_to_" in key:
            source, target = key[len("translation_"):].split("_to_", 1)
            found.append((source, target))
    return found or None


def pair_error(pairs: Optional[list[tuple[str, str]]], source: str, target: str) -> Optional[InvalidInputError]:
    """The error to raise when (source, target) cannot be translated with a model declaring `pairs`, or None."""
    if pairs is None or (source, target) in pairs:
        return None
    have = ", ".join(f"{s} → {t}" for s, t in pairs)
    return refuse("language_pair", "target_language", source=source or "?", target=target or "?", have=have)


def language_pairs(model: "ModelSpec") -> Optional[list[tuple[str, str]]]:
    """The (source, target) pairs the checkpoint declares in config.json, read without loading it; None: any pair
    (say them in words)."""
    config = read_checkpoint_config(model)
    if not config.get("is_encoder_decoder"):
        return None
    return translation_pairs(json_object(config.get("task_specific_params")))


# ---------------------------------------------------------------------------------------------- handler


@dataclass(frozen=True)
class Prepared:
    """A batch ready for the decode step: the encoded prompts, their lengths before truncation, one row plan each."""

    encoded: dict[str, torch.Tensor]
    lengths: list[int]
    rows: list["RowPlan"]
    min_new_tokens: int


class TextHandler(TaskHandler[TextOptions, str, Prepared, list[list[int]]]):
    def __init__(self, context: LoadContext) -> None:
        super().__init__(context)
        from backend.engines.decode import Decoding

        model, tokenizer = context.model, context.tokenizer
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        # config.json's `task_specific_params`: {"summarization": {"prefix": ...}, "translation_en_to_de": {...}}
        self.task_params: JSONObject = dict(getattr(model.config, "task_specific_params", None) or {})
        if not self.encoder_decoder:  # a batch of prompts must end where generation starts
            tokenizer.padding_side = "left"
        generation = getattr(model, "generation_config", None)
        eos = getattr(generation, "eos_token_id", None)
        eos = eos if eos is not None else tokenizer.eos_token_id
        eos_ids = tuple(int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None)
        pad = next((value for value in (tokenizer.pad_token_id, getattr(generation, "pad_token_id", None))
                    if value is not None), eos_ids[0] if eos_ids else 0)
        self.decoding = Decoding(eos_token_ids=eos_ids, pad_token_id=int(pad),
                                 bos_token_id=getattr(generation, "bos_token_id", None))
        start = getattr(generation, "decoder_start_token_id", None)
        self.decoder_start = start if start is not None else getattr(model.config, "decoder_start_token_id", None)

    def pairs(self) -> Optional[list[tuple[str, str]]]:
        """The (source, target) pairs an encoder-decoder declares; None: any pair (causal LMs, or none declared)."""
        return translation_pairs(self.task_params) if self.encoder_decoder else None

    def prompt(self, text: str, options: TextOptions) -> str:
        """The model input for `text`."""
        if options.task == "translate":
            pairs = self.pairs()
            if pairs is not None and self.encoder_decoder:
                problem = pair_error(pairs, options.source, options.target)
                if problem:
                    raise problem
                return _prefix(self.task_params.get(f"translation_{options.source}_to_{options.target}")) + text
            if not self.encoder_decoder:
                if not options.target:
                    raise refuse("no_target_language", "target_language")
                source = f" from {options.source}" if options.source else ""
                return self._instruct(f"Translate the following text{source} into {options.target}. "
                                      "Reply with the translation only.", text)
            return text  # a single-pair model (Marian-style): the text as it is
        if self.encoder_decoder:
            return _prefix(self.task_params.get("summarization")) + text
        return self._instruct("Summarize the following text. Reply with the summary only.", text)

    def _instruct(self, instruction: str, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return rendered_text(self.tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{instruction}\n\n{text}"}], tokenize=False, add_generation_prompt=True))
        return f"{instruction}\n\n{text}\n\nAnswer:"

    # ------------------------------------------------------------------------------------ the three steps

    def preprocess(self, request: TaskRequest[TextOptions]) -> Prepared:
        from backend.engines.decode import RowPlan

        prompts = [self.prompt(text, request.options) for text in request.inputs.texts]
        lengths = [len(ids) for ids in self.tokenizer(prompts, verbose=False)["input_ids"]]
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=self.encoder_decoder or None)
        params = request.options.params
        seed = _seed(params)
        rows = [RowPlan.of(ids, params, params.max_new_tokens, seed)
                for ids in encoded["input_ids"].tolist()]
        return Prepared(dict(encoded), lengths, rows, request.options.min_new_tokens)

    def forward(self, model_inputs: Prepared) -> list[list[int]]:
        """Token ids per row, each up to its EOS (included) or max_new_tokens. Call with the lock held."""
        import torch

        from backend.engines.decode import decode_encoded

        rows = model_inputs.rows
        eos = set(self.decoding.eos_token_ids)
        tokens: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)

        def collect(step: Step) -> None:
            for row, token in enumerate(step.token_ids):
                if not done[row]:
                    tokens[row].append(token)
                    done[row] = token in eos or len(tokens[row]) >= rows[row].max_new_tokens

        self._require_loaded()
        decode_encoded(self.model, self.decoding, rows, model_inputs.encoded, torch.zeros(len(rows), dtype=torch.bool),
                       collect, min_new_tokens=model_inputs.min_new_tokens, decoder_start_token_id=self.decoder_start)
        return tokens

    def postprocess(self, model_outputs: list[list[int]], request: TaskRequest[TextOptions]) -> list[str]:
        eos = set(self.decoding.eos_token_ids)
        texts = []
        for ids in model_outputs:
            end = next((i for i, token in enumerate(ids) if token in eos), len(ids))
            texts.append(decoded_text(self.tokenizer, ids[:end], skip_special_tokens=True).strip())
        return texts

    # ------------------------------------------------------------------------------------ streaming

    def stream(self, request: TaskRequest[TextOptions]) -> Generator[Event, None, None]:
        """Deltas of one text's output, then one Final with the statistics. Takes the model's lock itself (in
        the thread that generates), so call it without."""
        import torch

        from backend.engines.budget import Clock, final_event
        from backend.engines.decode import decode_encoded
        from backend.engines.text_stream import IncrementalDecoder, StopMatcher
        from backend.core.streams import produce_in_thread

        options = request.options
        prepared = self.preprocess(request)
        rows, lengths, row = prepared.rows, prepared.lengths, prepared.rows[0]
        stop_flags = torch.zeros(1, dtype=torch.bool)

        def produce(emit: Callable[[int], bool]) -> None:
            def on_step(step: Step) -> None:
                emit(step.token_ids[0])

            with self.lock:
                self._require_loaded()
                if not bool(stop_flags[0]):
                    decode_encoded(self.model, self.decoding, rows, prepared.encoded, stop_flags, on_step,
                                   min_new_tokens=prepared.min_new_tokens, decoder_start_token_id=self.decoder_start)

        clock = Clock()
        decoder, matcher = IncrementalDecoder(self.tokenizer), StopMatcher(options.params.stop)
        eos = set(self.decoding.eos_token_ids)
        generated, saw_eos = 0, False
        tokens = produce_in_thread(produce, name="seq2seq-generate", on_close=lambda: stop_flags.fill_(True))
        try:
            try:
                for token in tokens:
                    generated += 1
                    if token in eos:
                        saw_eos = True
                        break
                    piece = matcher.feed(decoder.push(token))
                    if piece:
                        clock.saw_text()
                        yield Delta(piece)
                    if matcher.stopped or generated >= row.max_new_tokens:
                        break
            except GenerationError:
                raise
            except Exception as error:  # noqa: BLE001 - a failed forward pass reaches the caller, typed
                raise GenerationError(f"generation failed: {type(error).__name__}: {error}") from error
            tail = "" if matcher.stopped else matcher.feed(decoder.flush())
            tail += matcher.flush()
            if tail:
                clock.saw_text()
                yield Delta(tail)
        finally:
            tokens.close()  # ends generate at its next step and waits for its thread
        notices = (f"the input was cut to the model's {self.max_length} tokens",) if lengths[0] > self.max_length \
            else ()
        yield final_event(matcher.text, clock=clock, prompt_tokens=min(lengths[0], self.max_length),
                          generated_tokens=generated, finish_reason="stop" if matcher.stopped or saw_eos else "length",
                          max_context=self.max_length, notices=notices,
                          seed=None if options.params.greedy else row.seed)

    def _require_loaded(self) -> None:
        if self.model is None:
            raise GenerationError("the model was unloaded while running")


def _prefix(task_params: object) -> str:
    """The `prefix` of one entry of `task_specific_params` ("" when it has none)."""
    prefix = json_object(task_params).get("prefix", "")
    return prefix if isinstance(prefix, str) else ""


def _seed(params: GenerationParams) -> int:
    """The row's seed: the request's, or a fresh one for a sampled row (reported, so it can be reproduced)."""
    if params.greedy:
        return 0  # unused: greedy rows draw nothing
    return params.seed if params.seed is not None else random.randrange(2**31)


# ------------------------------------------------------------------------------------------------- specs


class TextTaskSpec(TaskSpec[TextOptions, str]):
    """Summarize and translate: generation with the same handler."""

    architectures = ("ForConditionalGeneration", "ForCausalLM", "LMHeadModel")
    streams = True

    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        causal = any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in architectures)
        return AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM

    def options(self, params: Optional[GenerationParams] = None, source_language: str = "",
                target_language: str = "", min_new_tokens: int = 0) -> TextOptions:
        params = (params or GenerationParams()).validated()
        return TextOptions(self.name, params, (source_language or "").strip(), (target_language or "").strip(),
                           whole_number("min_new_tokens", min_new_tokens, 0, params.max_new_tokens))

    def inputs(self, texts: object, questions: object = None) -> TaskInputs:
        items = [texts] if isinstance(texts, str) else list(texts) if isinstance(texts, Iterable) else [texts]
        checked: list[str] = []
        for index, text in enumerate(items):
            check_text("text" if len(items) == 1 else f"text[{index}]", text)
            assert isinstance(text, str)  # check_text refused anything else
            checked.append(text)
        return TaskInputs(tuple(checked))

    def request(self, model: "ModelSpec", texts: object, questions: object = None, batch_size: Optional[int] = None,
                **raw: object) -> TaskRequest[TextOptions]:
        raw["params"] = raw.get("params") or model.default_params()
        return super().request(model, texts, questions, batch_size, **raw)

    def check_model(self, request: TaskRequest[TextOptions], model: "ModelSpec") -> None:
        if self.name == "translate":
            problem = pair_error(language_pairs(model), request.options.source, request.options.target)
            if problem:
                raise problem

    def handler(self, context: LoadContext) -> TextHandler:
        handler = TextHandler(context)
        pairs = handler.pairs()
        if pairs and not any(note.startswith("translates ") for note in context.notes):
            context.notes.append("translates " + ", ".join(f"{s} → {t}" for s, t in pairs))
        return handler

    def file_options(self, model: "ModelSpec", raw: Mapping[str, object],
                     params: Optional[GenerationParams] = None) -> TextOptions:
        options = self.checked_options({"params": params or model.default_params(),
                                        "source_language": raw.get("source", ""),
                                        "target_language": raw.get("target", ""),
                                        "min_new_tokens": raw.get("min_new_tokens", 0)})
        self.check_model(TaskRequest(TaskInputs(()), options), model)
        return options

    def file_row(self, result: str) -> tuple[Cell, ...]:
        return (result,)


class TextEvaluation(EvalAdapter[TextOptions, str]):
    """Summaries and translations, greedy, for ROUGE / BLEU / chrF: the generated text is the prediction."""

    def __init__(self, task: str, spec: Callable[[], TextTaskSpec]) -> None:
        self.task = task
        self._spec = spec

    def options(self, config: "EvalConfig", model: "ModelSpec") -> TextOptions:
        spec = self._spec()
        options = replace(spec.options(GenerationParams(max_new_tokens=config.max_new_tokens, temperature=0.0)),
                          source=config.source_language, target=config.target_language)
        spec.check_model(TaskRequest(TaskInputs(()), options), model)
        return options

    def prediction(self, example_input: str, result: str) -> str:
        return result


class SummarizeSpec(TextTaskSpec):
    name = "summarize"
    title_key = "tasks_summarize"
    shares_entry_with = frozenset({"translate"})
    columns = ("summary",)
    file_stem = "summaries"
    evaluation = TextEvaluation("summarization", lambda: SUMMARIZE)


class TranslateSpec(TextTaskSpec):
    name = "translate"
    title_key = "tasks_translate"
    shares_entry_with = frozenset({"summarize"})
    columns = ("translation",)
    file_stem = "translations"
    evaluation = TextEvaluation("translation", lambda: TRANSLATE)


SUMMARIZE: TextTaskSpec = SummarizeSpec()
TRANSLATE: TextTaskSpec = TranslateSpec()
