"""OpenAI-compatible servers (vLLM, TGI, `transformers serve`, HF Inference Endpoints) behind the engine contract.

The engine speaks the wire protocol itself (HTTP + server-sent events over httpx) rather than through the openai
client, so that it owns exactly what the contract needs: closing the iterator closes the HTTP response (the server
sees the disconnect and stops generating), no thread is ever started, retries happen only before the first token,
and every failure becomes a typed error that names the entry, the URL and what to check.

- `stream_chat` posts to `{base_url}/chat/completions` (the server applies the chat template);
  `stream_generate` posts to `{base_url}/completions`. The HTTP side (client, reachability, typed errors) is
  backend/engines/remote_transport.py; reading the event stream is backend/engines/remote_sse.py; fitting a
  chat to the context and the final statistics are shared with the local engine (backend/engines/budget.py).
- Stop sequences are sent to the server *and* applied here (servers differ on whether the stop text is included),
  so the text after a stop sequence never reaches the user and the stream is closed as soon as it matches.
- Token counts: the server's `usage` when it sends one (`stream_options.include_usage` is requested). Before the
  request, and when a server sends none, counts come from the model's own tokenizer when `model` names a local
  folder or a Hub repo already in the local cache (never downloaded), else from an estimate (UTF-8 bytes per token,
  calibrated on the server's usage reports); estimated counts are flagged in `GenerationStats.notices`.
"""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer, rendered_text
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import httpx

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.engines.base import require_task
from backend.engines.budget import Clock, check_prompt_fits, final_event, fit_chat, reply_budget
from backend.engines.remote_sse import StreamState, decode_chunk, finish_reason, sse_data, usage_int, \
    wrap_stream_errors
from backend.engines.remote_transport import ATTEMPTS, PROBE_TIMEOUT_S, Endpoint, Retryable, Unreachable, \
    api_key_for, check_endpoint, make_client, open_stream
from backend.engines.text_stream import StopMatcher
from backend.core.types import (
    Delta,
    Event,
    Final,
    GenerationError,
    GenerationParams,
    LabelScore,
    Message,
    ModelLoadError,
    Task,
    UnsupportedTaskError,
)

DEFAULT_BYTES_PER_TOKEN = 3.0  # English prose is ~4 bytes per token on modern tokenizers: 3 errs on the safe side
MESSAGE_OVERHEAD_TOKENS = 4  # role markers a chat template adds around each message (estimate)

__all__ = ["RemoteEngine", "api_key_for", "estimate_tokens", "probe"]


# ---------------------------------------------------------------------------------------- public API


def probe(spec: ModelSpec, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether the entry's server answers and accepts our credentials, and a one-line detail for the Models tab.

    Cheap (one or two GETs with a short timeout), never raises, loads nothing.
    """
    if spec.backend != "openai" or not spec.base_url:
        return False, f"model '{spec.id}' is not a remote (backend openai) entry"
    try:
        key = api_key_for(spec)
    except ModelLoadError as error:
        return False, str(error)
    try:
        with make_client(spec, key, timeout_s) as client:
            endpoint = check_endpoint(client, spec, timeout_s)
    except Unreachable as problem:
        return False, str(problem)
    except Exception as error:  # noqa: BLE001 - a probe reports, it never raises
        return False, f"{spec.base_url}: {type(error).__name__}: {error}"
    return True, endpoint.detail


def estimate_tokens(text: str, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> int:
    """A token count from the UTF-8 size alone (used when no tokenizer for the remote model is at hand)."""
    size = len(text.encode("utf-8"))
    return math.ceil(size / bytes_per_token) if size else 0


@dataclass(frozen=True)
class _Prompt:
    """The prompt's size as known before sending it: tokens (exact with a local tokenizer), and UTF-8 bytes
    (to calibrate the estimate against the server's usage report)."""

    tokens: int
    exact: bool
    size_bytes: int


@dataclass
class _Call:
    """One request to the server, ready to send, and what its final statistics need."""

    kind: str  # "chat" or "generate"
    url: str
    body: JSONObject
    stop: tuple[str, ...]
    max_new_tokens: int
    seed: Optional[int]
    prompt: _Prompt
    dropped_turns: int
    notices: list[str] = field(default_factory=list)


class RemoteEngine:
    """A model served by an OpenAI-compatible server. Any number of concurrent streams (the server schedules)."""

    def __init__(self, spec: ModelSpec, client: httpx.Client, endpoint: Endpoint, tokenizer: Optional[HFTokenizer],
                 tokenizer_source: Optional[str], load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.base_url = spec.base_url.rstrip("/")  # type: ignore[union-attr]  # validated: required for openai
        self.client = client
        self.load_time_s = load_time_s
        self.tokenizer = tokenizer
        self.max_context = spec.max_context or endpoint.max_context or _tokenizer_context(tokenizer)
        self.notes: list[str] = list(endpoint.notes)
        if tokenizer is not None:
            self.notes.append(f"token counts before a reply use the tokenizer from {tokenizer_source}")
        else:
            self.notes.append(
                "token counts before a reply are estimates (no tokenizer for this model on this machine); "
                "the server's usage report replaces them in each reply's statistics"
            )
        self.generated_tokens_total = 0
        self.active_generations = 0
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._closed = False
        # Calibration of the estimate: prompt bytes and tokens the server reported, summed over replies.
        self._seen_bytes = 0
        self._seen_tokens = 0

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, spec: ModelSpec) -> "RemoteEngine":
        """Checks that the server answers (GET /v1/models, else /health) and finds a tokenizer if one is local."""
        started = time.perf_counter()
        key = api_key_for(spec)
        client = make_client(spec, key, spec.timeout_s)
        try:
            endpoint = check_endpoint(client, spec, min(spec.timeout_s, PROBE_TIMEOUT_S * 2))
        except Unreachable as problem:
            client.close()
            raise ModelLoadError(f"model '{spec.id}': {problem}") from None
        except BaseException:
            client.close()
            raise
        tokenizer, source = _local_tokenizer(spec)
        return cls(spec, client, endpoint, tokenizer, source, time.perf_counter() - started)

    def describe(self) -> JSONObject:
        return {
            "device": f"remote: {self.base_url}",
            "dtype": None,
            "parameters": None,
            "memory_bytes": None,  # nothing held in this process
            "max_context": self.max_context,
            "load_time_s": self.load_time_s,
            "generated_tokens_total": self.generated_tokens_total,
            "active_generations": self.active_generations,
            "notes": list(self.notes),
            "remote_model": self.spec.remote_model,
            "token_counts": "tokenizer" if self.tokenizer is not None else "estimated",
        }

    def close(self) -> None:
        """Closes the connection pool; streams still open fail with a clear error."""
        self._closed = True
        self.client.close()

    # ------------------------------------------------------------------------------------------- public

    def count_tokens(self, text: str) -> int:
        """Exact with a local tokenizer for the model, else an estimate (see the module docstring)."""
        return self._count(text)[0]

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' is a remote text generator; it does not classify")

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        self._require("chat")
        params = params.validated()
        self._check_open()
        fitted = fit_chat(messages, measure=self._count_chat,
                          count_message=lambda message: self._count(message.content)[0],
                          max_context=self.max_context, max_new_tokens=params.max_new_tokens)
        exact = fitted.measured
        check_prompt_fits(fitted.prompt_tokens, max_context=self.max_context, model_id=self.spec.id,
                          what="message", exact=exact)
        body: JSONObject = {"messages": [{"role": m.role, "content": m.content} for m in fitted.messages]}
        prompt = _Prompt(fitted.prompt_tokens, exact, sum(len(m.content.encode("utf-8")) for m in fitted.messages))
        return self._stream("chat", body, params, prompt, fitted.dropped)

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        self._require("generate")
        params = params.validated()
        self._check_open()
        tokens, exact = self._count(prompt)
        check_prompt_fits(tokens, max_context=self.max_context, model_id=self.spec.id, what="prompt", exact=exact)
        return self._stream("generate", {"prompt": prompt}, params, _Prompt(tokens, exact, len(prompt.encode())), 0)

    # ------------------------------------------------------------------------------------ token counting

    def _bytes_per_token(self) -> float:
        if self._seen_tokens < 16:
            return DEFAULT_BYTES_PER_TOKEN
        return min(6.0, max(1.0, self._seen_bytes / self._seen_tokens))

    def _count(self, text: str) -> tuple[int, bool]:
        """(tokens, exact?)"""
        if self.tokenizer is not None:
            with self._tokenizer_lock:
                return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]), True
        return estimate_tokens(text, self._bytes_per_token()), False

    def _count_chat(self, messages: Sequence[Message]) -> tuple[int, bool]:
        """(tokens of the rendered conversation as the server will see it, exact?): exact when we have the
        model's chat template, else each message's count plus an estimate of the template's own tokens."""
        tokenizer = self.tokenizer
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            with self._tokenizer_lock:
                text = rendered_text(tokenizer.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True,
                    tokenize=False))
                return len(tokenizer(text, add_special_tokens=False)["input_ids"]), True
        counts = [self._count(m.content) for m in messages]
        total = sum(n for n, _ in counts) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)
        return total, False

    # ---------------------------------------------------------------------------------------- streaming

    def _stream(self, kind: str, body: JSONObject, params: GenerationParams, prompt: _Prompt,
                dropped_turns: int) -> Iterator[Event]:
        """Builds the request now (so bad input fails at the call); sends it on the first `next` only."""
        max_new_tokens, notices = reply_budget(prompt.tokens, params.max_new_tokens, max_context=self.max_context,
                                               dropped_turns=dropped_turns, exact=prompt.exact)
        ignored = [name for name, value, neutral in (("top_k", params.top_k, 0),
                                                       ("repetition_penalty", params.repetition_penalty, 1.0))
                   if value != neutral and not params.greedy]
        if ignored:
            notices.append(f"{' and '.join(ignored)} not sent: the OpenAI API has no such parameter")
        if params.top_alternatives:
            notices.append("token alternatives are not available from a remote server")
        seed = None if params.greedy else (params.seed if params.seed is not None else secrets.randbits(31))
        request: JSONObject = {
            **body,
            "model": self.spec.remote_model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_new_tokens,
            "temperature": 0.0 if params.greedy else params.temperature,
        }
        if seed is not None:
            request["seed"] = seed
            if params.top_p < 1.0:
                request["top_p"] = params.top_p
        # The stop strings and OpenAI's own sampling fields go through as they are (the server applies them).
        passed: JSONObject = {"stop": list(params.stop), "presence_penalty": params.presence_penalty,
                  "frequency_penalty": params.frequency_penalty,
                  "logit_bias": {str(token): bias for token, bias in params.logit_bias or ()}}
        request.update({name: value for name, value in passed.items() if value})
        url = self.base_url + ("/chat/completions" if kind == "chat" else "/completions")
        return self._run(_Call(kind, url, request, tuple(params.stop), max_new_tokens, seed, prompt, dropped_turns,
                               notices))

    def _run(self, call: _Call) -> Iterator[Event]:
        where = self._where(call.url)
        clock = Clock()
        yielded = False  # once the caller has seen text, a failure is reported, never retried
        attempt = 0
        with self._lock:
            self.active_generations += 1
        try:
            while True:
                attempt += 1
                state = StreamState(StopMatcher(call.stop))
                response: Optional[httpx.Response] = None
                try:
                    self._check_open()
                    response = open_stream(self.client, call.url, call.body, where, self.spec)
                    for data in wrap_stream_errors(sse_data(response), where, self.spec):
                        if data.strip() == "[DONE]":
                            state.done = True
                            break
                        text = state.take(decode_chunk(data, where), call.kind)
                        if not text:
                            continue
                        clock.saw_text()
                        with self._lock:
                            self.generated_tokens_total += 1
                        piece = state.matcher.feed(text)
                        if piece:
                            yielded = True
                            yield Delta(text=piece)
                        if state.matcher.stopped:
                            break  # closing the response below tells the server to stop
                    if not (state.done or state.finish or state.matcher.stopped):
                        raise GenerationError(
                            f"{where}: the stream ended before the server said it had finished "
                            f"(no finish_reason): the server may have crashed or restarted; check its logs"
                        )
                    break
                except Retryable as failure:
                    if yielded or attempt >= ATTEMPTS or failure.wait_s is None:
                        raise failure.error from failure.__cause__
                    time.sleep(failure.wait_s)
                finally:
                    if response is not None:
                        response.close()
            tail = "" if state.matcher.stopped else state.matcher.flush()
            if tail:
                yield Delta(text=tail)
            yield self._final(call, state, clock)
        finally:
            with self._lock:
                self.active_generations -= 1

    def _final(self, call: _Call, state: StreamState, clock: Clock) -> Final:
        """The statistics from the server's usage report where it sent one, else from our own counts."""
        notices = list(call.notices)
        prompt_tokens = usage_int(state.usage, "prompt_tokens")
        generated = usage_int(state.usage, "completion_tokens")
        if prompt_tokens is not None and prompt_tokens > 0:
            with self._lock:
                self._seen_bytes += call.prompt.size_bytes
                self._seen_tokens += prompt_tokens
        else:
            prompt_tokens = call.prompt.tokens
            if not call.prompt.exact:
                notices.append("prompt token count estimated: the server reported no usage")
        if generated is None:
            generated = state.chunks
            reason = "the reply was cut at a stop sequence" if state.matcher.stopped else "the server reported no usage"
            notices.append(f"generated token count estimated from the streamed chunks: {reason}")
        else:
            with self._lock:  # the live counter went up by one per chunk; settle it on the server's figure
                self.generated_tokens_total += generated - state.chunks
        finish = finish_reason(state, generated, call.max_new_tokens, notices)
        return final_event(state.matcher.text, clock=clock, prompt_tokens=prompt_tokens, generated_tokens=generated,
                           finish_reason=finish, max_context=self.max_context, dropped_turns=call.dropped_turns,
                           notices=notices, seed=call.seed)

    def _where(self, url: str) -> str:
        return f"model '{self.spec.id}' ({url})"

    def _require(self, task: Task) -> None:
        require_task(self, task)

    def _check_open(self) -> None:
        if self._closed:
            raise GenerationError(f"model '{self.spec.id}' was unloaded; send the request again to reconnect")


# ------------------------------------------------------------------------------------------ internals


def _local_tokenizer(spec: ModelSpec) -> tuple[Optional[HFTokenizer], Optional[str]]:
    """The model's tokenizer if `model` is a local folder or a Hub repo already cached here; never downloads."""
    name = spec.remote_model
    try:
        folder = Path(name).expanduser()
        if folder.is_dir():
            if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
                return None, None
            source = str(folder)
        else:
            if name.count("/") != 1:
                return None, None  # a served name ("tgi", "my-model"), not a Hub repo id
            from huggingface_hub import try_to_load_from_cache  # light import; no network

            if not isinstance(try_to_load_from_cache(name, "tokenizer_config.json"), str):
                return None, None
            source = name
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, local_files_only=True), source
    except Exception:  # noqa: BLE001 - an unusable tokenizer means estimates, never a failed load
        return None, None


def _tokenizer_context(tokenizer: Optional[HFTokenizer]) -> Optional[int]:
    limit = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


