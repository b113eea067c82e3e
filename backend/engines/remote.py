"""OpenAI-compatible servers (vLLM, TGI, `transformers serve`, HF Inference Endpoints) behind the engine contract.

The engine speaks the wire protocol itself (HTTP + server-sent events over httpx) rather than through the openai
client, so that it owns exactly what the contract needs: closing the iterator closes the HTTP response (the server
sees the disconnect and stops generating), no thread is ever started, retries happen only before the first token,
and every failure becomes a typed error that names the entry, the URL and what to check.

- `stream_chat` posts to `{base_url}/chat/completions` (the server applies the chat template);
  `stream_generate` posts to `{base_url}/completions`.
- Stop sequences are sent to the server *and* applied here (servers differ on whether the stop text is included),
  so the text after a stop sequence never reaches the user and the stream is closed as soon as it matches.
- Token counts: the server's `usage` when it sends one (`stream_options.include_usage` is requested). Before the
  request, and when a server sends none, counts come from the model's own tokenizer when `model` names a local
  folder or a Hub repo already in the local cache (never downloaded), else from an estimate (UTF-8 bytes per token,
  calibrated on the server's usage reports); estimated counts are flagged in `GenerationStats.notices`.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import httpx

from backend.config import ModelSpec
from backend.engines.text_stream import StopMatcher
from backend.types import (
    ContextOverflowError,
    Delta,
    Event,
    Final,
    FinishReason,
    GenerationError,
    GenerationParams,
    GenerationStats,
    InvalidInputError,
    LabelScore,
    Message,
    ModelLoadError,
    Task,
    UnsupportedTaskError,
    WorkbenchError,
)

PROBE_TIMEOUT_S = 3.0  # reachability checks (load, Models tab) must answer quickly
CONNECT_TIMEOUT_S = 10.0  # connecting never waits longer than this, whatever timeout_s says
ATTEMPTS = 2  # one retry, and only before the first token
RETRY_BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 5.0  # a 429 asking to wait longer than this is reported instead of waited for
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
DEFAULT_BYTES_PER_TOKEN = 3.0  # English prose is ~4 bytes per token on modern tokenizers: 3 errs on the safe side
MESSAGE_OVERHEAD_TOKENS = 4  # role markers a chat template adds around each message (estimate)
ERROR_BODY_LIMIT = 2000

_CONTEXT_ERROR = re.compile(
    r"context length|context window|maximum context|max_model_len|too many tokens|input is too long|"
    r"prompt is too long|inputs` tokens \+ `max_new_tokens`|must be <= \d+",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------- public API


def api_key_for(spec: ModelSpec) -> Optional[str]:
    """The API key from the environment variable named by `api_key_env` (None when the entry names none)."""
    if not spec.api_key_env:
        return None
    key = os.environ.get(spec.api_key_env, "").strip()
    if not key:
        raise ModelLoadError(
            f"model '{spec.id}': the environment variable {spec.api_key_env} (api_key_env in models.yaml) is not set "
            f"or empty; export it with the API key for {spec.base_url} before starting the app"
        )
    return key


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
        with _make_client(spec, key, timeout_s) as client:
            endpoint = _check_endpoint(client, spec, timeout_s)
    except _Unreachable as problem:
        return False, str(problem)
    except Exception as error:  # noqa: BLE001 - a probe reports, it never raises
        return False, f"{spec.base_url}: {type(error).__name__}: {error}"
    return True, endpoint.detail


def estimate_tokens(text: str, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> int:
    """A token count from the UTF-8 size alone (used when no tokenizer for the remote model is at hand)."""
    size = len(text.encode("utf-8"))
    return math.ceil(size / bytes_per_token) if size else 0


class RemoteEngine:
    """A model served by an OpenAI-compatible server. Any number of concurrent streams (the server schedules)."""

    def __init__(
        self,
        spec: ModelSpec,
        client: httpx.Client,
        endpoint: "_Endpoint",
        tokenizer: Any,
        tokenizer_source: Optional[str],
        load_time_s: float,
    ) -> None:
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
        client = _make_client(spec, key, spec.timeout_s)
        try:
            endpoint = _check_endpoint(client, spec, min(spec.timeout_s, PROBE_TIMEOUT_S * 2))
        except _Unreachable as problem:
            client.close()
            raise ModelLoadError(f"model '{spec.id}': {problem}") from None
        except BaseException:
            client.close()
            raise
        tokenizer, source = _local_tokenizer(spec)
        return cls(spec, client, endpoint, tokenizer, source, time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
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
        fitted, dropped, prompt_tokens, exact = self._fit_chat(list(messages), params)
        body = {"messages": [{"role": m.role, "content": m.content} for m in fitted]}
        prompt_bytes = sum(len(m.content.encode("utf-8")) for m in fitted)
        return self._stream("chat", body, params, prompt_tokens, exact, prompt_bytes, dropped)

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        self._require("generate")
        params = params.validated()
        self._check_open()
        prompt_tokens, exact = self._count(prompt)
        self._check_prompt_fits(prompt_tokens, exact, what="prompt")
        return self._stream("generate", {"prompt": prompt}, params, prompt_tokens, exact, len(prompt.encode()), 0)

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
        """Tokens of the rendered conversation, as the server will see it (when we have the template)."""
        tokenizer = self.tokenizer
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            with self._tokenizer_lock:
                text = tokenizer.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in messages],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                return len(tokenizer(text, add_special_tokens=False)["input_ids"]), True
        counts = [self._count(m.content) for m in messages]
        total = sum(n for n, _ in counts) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)
        return total, False  # the template's own tokens are estimated even with a tokenizer

    def _fit_chat(self, messages: list[Message], params: GenerationParams) -> tuple[list[Message], int, int, bool]:
        """Drops the oldest turns (never the system prompt, never the last message) until the chat fits."""
        system = []
        for message in messages:
            if message.role != "system":
                break
            system.append(message)
        turns = messages[len(system):]
        dropped = 0
        while True:
            tokens, exact = self._count_chat(system + turns)
            fits = self.max_context is None or tokens + params.max_new_tokens <= self.max_context
            if fits or len(turns) <= 1:
                break
            cut = 1  # a whole exchange, so the conversation still starts with a user turn
            while cut < len(turns) - 1 and turns[cut].role != "user":
                cut += 1
            dropped += cut
            turns = turns[cut:]
        self._check_prompt_fits(tokens, exact, what="message")
        return system + turns, dropped, tokens, exact

    def _check_prompt_fits(self, prompt_tokens: int, exact: bool, what: str) -> None:
        if self.max_context is None:
            return
        # An estimate may be off either way: refuse here only what is certainly too long, the server judges the rest.
        certain = prompt_tokens if exact else prompt_tokens // 2
        if certain >= self.max_context:
            about = "" if exact else "about "
            raise ContextOverflowError(
                f"the {what} is {about}{prompt_tokens} tokens, but model '{self.spec.id}' has a context of "
                f"{self.max_context} tokens (with room needed for the reply); shorten it"
            )

    # ---------------------------------------------------------------------------------------- streaming

    def _stream(
        self,
        kind: str,
        body: dict[str, Any],
        params: GenerationParams,
        prompt_tokens: int,
        exact: bool,
        prompt_bytes: int,
        dropped_turns: int,
    ) -> Iterator[Event]:
        """Builds the request now (so bad input fails at the call); sends it on the first `next` only."""
        notices: list[str] = []
        if dropped_turns:
            notices.append(f"{dropped_turns} oldest message(s) dropped to fit the {self.max_context}-token context"
                           + ("" if exact else " (token counts estimated)"))
        max_new_tokens = params.max_new_tokens
        if self.max_context is not None and prompt_tokens + max_new_tokens > self.max_context:
            max_new_tokens = max(1, self.max_context - prompt_tokens)
            notices.append(f"max_new_tokens lowered to {max_new_tokens} to fit the {self.max_context}-token context"
                           + ("" if exact else " (token counts estimated)"))
        ignored = [name for name, value, neutral in (("top_k", params.top_k, 0),
                                                       ("repetition_penalty", params.repetition_penalty, 1.0))
                   if value != neutral and not params.greedy]
        if ignored:
            notices.append(f"{' and '.join(ignored)} not sent: the OpenAI API has no such parameter")
        if params.top_alternatives:
            notices.append("token alternatives are not available from a remote server")
        seed = None if params.greedy else (params.seed if params.seed is not None else secrets.randbits(31))
        request = {
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
        if params.stop:
            request["stop"] = list(params.stop)
        path = "/chat/completions" if kind == "chat" else "/completions"
        return self._run(kind, path, request, params, max_new_tokens, seed, prompt_tokens, exact, prompt_bytes,
                         dropped_turns, notices)

    def _run(
        self,
        kind: str,
        path: str,
        request: dict[str, Any],
        params: GenerationParams,
        max_new_tokens: int,
        seed: Optional[int],
        prompt_estimate: int,
        exact: bool,
        prompt_bytes: int,
        dropped_turns: int,
        notices: list[str],
    ) -> Iterator[Event]:
        url = self.base_url + path
        started = time.perf_counter()
        yielded = False  # once the caller has seen text, a failure is reported, never retried
        attempt = 0
        with self._lock:
            self.active_generations += 1
        try:
            while True:
                attempt += 1
                state = _StreamState(StopMatcher(params.stop))
                response: Optional[httpx.Response] = None
                try:
                    self._check_open()
                    response = self._open(url, request)
                    for data in _wrap_stream_errors(_sse_data(response), self._where(url), self.spec):
                        if data.strip() == "[DONE]":
                            state.done = True
                            break
                        text = state.take(_decode_chunk(data, self._where(url)), kind)
                        if not text:
                            continue
                        if state.first_token_at is None:
                            state.first_token_at = time.perf_counter()
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
                            f"{self._where(url)}: the stream ended before the server said it had finished "
                            f"(no finish_reason): the server may have crashed or restarted; check its logs"
                        )
                    break
                except _Retryable as failure:
                    if yielded or attempt >= ATTEMPTS or failure.wait_s is None:
                        raise failure.error from failure.__cause__
                    time.sleep(failure.wait_s)
                finally:
                    if response is not None:
                        response.close()
            tail = "" if state.matcher.stopped else state.matcher.flush()
            if tail:
                yield Delta(text=tail)
            yield self._final(state, params, max_new_tokens, seed, prompt_estimate, exact, prompt_bytes,
                              dropped_turns, notices, started)
        finally:
            with self._lock:
                self.active_generations -= 1

    def _final(
        self,
        state: "_StreamState",
        params: GenerationParams,
        max_new_tokens: int,
        seed: Optional[int],
        prompt_estimate: int,
        exact: bool,
        prompt_bytes: int,
        dropped_turns: int,
        notices: list[str],
        started: float,
    ) -> Final:
        ended = time.perf_counter()
        usage = state.usage
        notices = list(notices)
        prompt_tokens = _usage_int(usage, "prompt_tokens")
        generated = _usage_int(usage, "completion_tokens")
        if prompt_tokens is not None and prompt_tokens > 0:
            with self._lock:
                self._seen_bytes += prompt_bytes
                self._seen_tokens += prompt_tokens
        else:
            prompt_tokens = prompt_estimate
            if not exact:
                notices.append("prompt token count estimated: the server reported no usage")
        if generated is None:
            generated = state.chunks
            reason = "the reply was cut at a stop sequence" if state.matcher.stopped else "the server reported no usage"
            notices.append(f"generated token count estimated from the streamed chunks: {reason}")
        else:
            with self._lock:  # the live counter went up by one per chunk; settle it on the server's figure
                self.generated_tokens_total += generated - state.chunks
        finish = _finish_reason(state, generated, max_new_tokens, notices)
        first = state.first_token_at
        decode_s = ended - first if first is not None else None
        return Final(
            text=state.matcher.text,
            stats=GenerationStats(
                prompt_tokens=prompt_tokens,
                generated_tokens=generated,
                time_to_first_token_s=(first - started) if first is not None else None,
                tokens_per_second=(generated - 1) / decode_s if decode_s and generated > 1 else None,
                total_s=ended - started,
                finish_reason=finish,
                dropped_turns=dropped_turns,
                max_context=self.max_context,
                notices=tuple(notices),
                seed=seed,
            ),
        )

    def _open(self, url: str, request: dict[str, Any]) -> httpx.Response:
        """Sends the request; returns the open 200 response or raises a typed (possibly retryable) error."""
        where = self._where(url)
        try:
            response = self.client.send(
                self.client.build_request("POST", url, json=request, headers={"Accept": "text/event-stream"}),
                stream=True,
            )
        except httpx.HTTPError as error:
            raise _transport_failure(error, where, self.spec) from error
        if response.status_code == 200:
            if response.headers.get("content-type", "").startswith("application/json"):
                try:  # a server that ignores stream=true, or one that reports an error with status 200
                    message = _error_message(_read_limited(response))
                finally:
                    response.close()
                raise GenerationError(f"{where}: the server answered with JSON instead of an event stream: "
                                      f"{message[:200]}")
            return response
        try:
            message = _error_message(_read_limited(response))
        except httpx.HTTPError:
            message = ""
        finally:
            response.close()
        error = _status_error(response.status_code, message, where, self.spec, loading=False)
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(error, _retry_wait(response))
        raise error

    def _where(self, url: str) -> str:
        return f"model '{self.spec.id}' ({url})"

    def _require(self, task: Task) -> None:
        if task not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' is not set up for '{task}' (its tasks: "
                                       f"{', '.join(self.spec.tasks)})")

    def _check_open(self) -> None:
        if self._closed:
            raise GenerationError(f"model '{self.spec.id}' was unloaded; send the request again to reconnect")


# ------------------------------------------------------------------------------------------ internals


@dataclass
class _StreamState:
    """What one attempt has received so far."""

    matcher: StopMatcher
    chunks: int = 0  # chunks that carried text: a lower bound on generated tokens
    usage: Optional[dict[str, Any]] = None
    finish: Optional[str] = None
    done: bool = False
    first_token_at: Optional[float] = None

    def take(self, chunk: dict[str, Any], kind: str) -> str:
        """Records usage / finish_reason from a decoded chunk and returns its text."""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])
        if kind == "chat":
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        if text:
            self.chunks += 1
            return str(text)
        return ""


@dataclass
class _Endpoint:
    models: list[str] = field(default_factory=list)
    max_context: Optional[int] = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)


class _Unreachable(Exception):
    """The server did not answer the reachability check; the message says what to check."""


class _Retryable(Exception):
    """A failure worth one more attempt if nothing reached the caller yet (wait_s None: do not retry)."""

    def __init__(self, error: WorkbenchError, wait_s: Optional[float]) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s


def _make_client(spec: ModelSpec, api_key: Optional[str], timeout_s: float) -> httpx.Client:
    headers = dict(spec.headers)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # read: the longest silence tolerated between two chunks; connect: how long an absent server can stall us.
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S))
    # trust_env=False: a proxy set for the Hub must not capture requests to a server on the local network.
    return httpx.Client(headers=headers, timeout=timeout, trust_env=False, follow_redirects=True)


def _service_root(base_url: str) -> str:
    """Where /health lives: the base URL without its trailing /v1."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _check_endpoint(client: httpx.Client, spec: ModelSpec, timeout_s: float) -> _Endpoint:
    base = spec.base_url.rstrip("/")  # type: ignore[union-attr]
    models_url = f"{base}/models"
    try:
        answer = client.get(models_url, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise _Unreachable(str(_transport_failure(error, models_url, spec).error)) from None
    if answer.status_code in (401, 403):
        raise _Unreachable(str(_status_error(answer.status_code, _error_message(answer.text), models_url, spec, True)))
    if answer.status_code == 200:
        return _read_model_list(answer, models_url, spec)
    health_url = f"{_service_root(base)}/health"
    try:
        health = client.get(health_url, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise _Unreachable(f"GET {models_url} answered HTTP {answer.status_code} and GET {health_url} failed "
                           f"({type(error).__name__}); check base_url (it usually ends in /v1)") from None
    if health.status_code == 200:
        return _Endpoint(
            detail=f"reachable: {health_url} is healthy (GET {models_url} answered HTTP {answer.status_code})",
            notes=[f"GET {models_url} answered HTTP {answer.status_code}; reachability checked with {health_url}"],
        )
    raise _Unreachable(
        f"GET {models_url} answered HTTP {answer.status_code} and GET {health_url} answered HTTP "
        f"{health.status_code}: is {spec.base_url} an OpenAI-compatible server? check base_url (it usually ends "
        f"in /v1)"
    )


def _read_model_list(answer: httpx.Response, models_url: str, spec: ModelSpec) -> _Endpoint:
    try:
        entries = answer.json().get("data") or []
        listed = {str(entry.get("id")): entry for entry in entries if isinstance(entry, dict)}
    except (ValueError, AttributeError):
        return _Endpoint(detail=f"reachable: {models_url} answered", notes=[f"{models_url} sent no model list"])
    wanted = spec.remote_model
    entry = listed.get(wanted)
    context = entry.get("max_model_len") if entry else None  # vLLM says how long its context is
    notes = []
    if listed and entry is None:
        shown = ", ".join(sorted(listed)[:5]) + (" ..." if len(listed) > 5 else "")
        notes.append(f"the server does not list model '{wanted}' (it lists: {shown}); if requests fail with "
                     f"HTTP 404, set 'model' in models.yaml to one of those")
    detail = f"reachable: {models_url} lists {len(listed)} model(s)" + (
        f", including '{wanted}'" if entry is not None else "")
    return _Endpoint(models=list(listed), max_context=context if isinstance(context, int) and context > 0 else None,
                     detail=detail, notes=notes)


def _local_tokenizer(spec: ModelSpec) -> tuple[Any, Optional[str]]:
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


def _tokenizer_context(tokenizer: Any) -> Optional[int]:
    limit = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def _sse_data(response: httpx.Response) -> Iterator[str]:
    """The `data` payloads of a server-sent event stream (multi-line data joined; comments and other fields skipped)."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _decode_chunk(data: str, where: str) -> dict[str, Any]:
    """One SSE payload as a dict; a malformed chunk or an error the server streams becomes a GenerationError."""
    try:
        chunk = json.loads(data)
    except ValueError:
        if '"error"' in data:  # some servers build their error JSON by hand and break it on quotes
            raise GenerationError(f"{where}: the server reported an error mid-stream: {data[:300]}") from None
        raise GenerationError(
            f"{where}: malformed data in the stream (not JSON): {data[:120]!r}; is base_url an OpenAI-compatible "
            f"server?"
        ) from None
    if not isinstance(chunk, dict):
        raise GenerationError(f"{where}: malformed chunk in the stream (expected a JSON object): {data[:120]!r}")
    if chunk.get("error"):
        raise GenerationError(f"{where}: the server reported an error mid-stream: {_error_message(chunk)}")
    choices = chunk.get("choices")
    if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices)):
        raise GenerationError(f"{where}: malformed chunk in the stream ('choices' is not a list of objects): "
                              f"{data[:120]!r}")
    return chunk


def _finish_reason(state: _StreamState, generated: int, max_new_tokens: int, notices: list[str]) -> FinishReason:
    if state.matcher.stopped:
        return "stop"
    reason = (state.finish or "").lower()
    if reason in ("length", "max_tokens", "model_length"):
        return "length"
    if reason in ("abort", "cancelled", "canceled"):
        return "cancelled"
    if reason == "content_filter":
        notices.append("the server's content filter ended the reply")
        return "stop"
    if reason in ("stop", "eos", "eos_token", "stop_sequence", "end_turn", "tool_calls", "function_call"):
        return "stop"
    return "length" if generated >= max_new_tokens else "stop"


def _usage_int(usage: Optional[dict[str, Any]], key: str) -> Optional[int]:
    value = usage.get(key) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _read_limited(response: httpx.Response) -> str:
    body = b""
    for part in response.iter_bytes():
        body += part
        if len(body) >= ERROR_BODY_LIMIT:
            break
    return body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


def _error_message(body: Any) -> str:
    """The human part of an error body: OpenAI/vLLM {"error": {"message"}}, TGI {"error": "..."}, FastAPI {"detail"}."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body.strip()[:300]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                return str(value.get("message") or value)[:300]
            if isinstance(value, list):  # FastAPI validation errors
                return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                                 for item in value)[:300]
            if value:
                return str(value)[:300]
    return str(body)[:300]


def _status_error(status: int, message: str, where: str, spec: ModelSpec, loading: bool) -> WorkbenchError:
    """A typed error for an HTTP status, with what to check."""
    said = f": {message}" if message else ""
    fail = ModelLoadError if loading else GenerationError
    if status in (401, 403):
        if spec.api_key_env:
            hint = f"check that {spec.api_key_env} (api_key_env) holds a valid key for this server"
        else:
            hint = "the server wants an API key: put it in an environment variable and name it in api_key_env"
        return fail(f"{where}: HTTP {status}, the server refused our credentials{said}; {hint}")
    if status == 404:
        return fail(f"{where}: HTTP 404 Not Found{said}; check base_url (usually ending in /v1) and 'model' "
                    f"('{spec.remote_model}' must be a name the server serves: see GET {spec.base_url}/models)")
    if status == 429:
        return fail(f"{where}: HTTP 429, rate limited by the server{said}; wait a moment and try again")
    if status in (400, 413, 422):
        if _CONTEXT_ERROR.search(message):
            return ContextOverflowError(f"{where}: the server says the input is too long{said}")
        if loading:
            return ModelLoadError(f"{where}: HTTP {status}{said}")
        return InvalidInputError(f"{where}: the server refused the request (HTTP {status}){said}")
    if status >= 500:
        return fail(f"{where}: HTTP {status}, server error{said}; check the server's logs")
    return fail(f"{where}: unexpected HTTP {status}{said}")


def _retry_wait(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after", "")
    try:
        wait = float(value) if value else RETRY_BACKOFF_S
    except ValueError:
        wait = RETRY_BACKOFF_S
    return wait if wait <= MAX_RETRY_AFTER_S else None


def _transport_failure(error: httpx.HTTPError, where: str, spec: ModelSpec) -> _Retryable:
    """A network-level failure as a typed error; connecting again is worth a retry, waiting again is not."""
    if isinstance(error, httpx.ConnectTimeout):
        message = (f"{where}: no answer within {min(spec.timeout_s, CONNECT_TIMEOUT_S):g}s while connecting; is the "
                   f"server up, and are the host and port in base_url right?")
        return _Retryable(GenerationError(message), RETRY_BACKOFF_S)
    if isinstance(error, httpx.ConnectError):
        message = (f"{where}: cannot connect ({_reason(error)}); is the server running, and are the host and port "
                   f"in base_url right?")
        return _Retryable(GenerationError(message), RETRY_BACKOFF_S)
    if isinstance(error, httpx.TimeoutException):
        message = (f"{where}: the server sent nothing for {spec.timeout_s:g}s (timeout_s in models.yaml); it may be "
                   f"overloaded or stuck")
        return _Retryable(GenerationError(message), None)
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        message = (f"{where}: the connection broke ({_reason(error)}); the server may have crashed or restarted: "
                   f"check its logs")
        return _Retryable(GenerationError(message), RETRY_BACKOFF_S)
    return _Retryable(GenerationError(f"{where}: {type(error).__name__}: {_reason(error)}"), None)


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]


def _wrap_stream_errors(events: Iterator[str], where: str, spec: ModelSpec) -> Iterator[str]:
    """Network failures while reading the body, as typed errors (retryable only until text was shown)."""
    try:
        yield from events
    except httpx.HTTPError as error:
        raise _transport_failure(error, where, spec) from error
