"""What the UI, the API and scripts call: validated requests in, streams of events out.

Input is checked before any model is touched, so a bad request never triggers a multi-second load, and every
error names the field and what to do. A stream holds a registry lease for exactly as long as it runs.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

from backend.engines.base import Engine
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.core.streams import close_quietly
from backend.guard.text_checks import MAX_MESSAGE_CHARS, check_text  # noqa: F401 - re-exported for callers
from backend.core.types import (
    Delta,
    Event,
    Final,
    GenerationError,
    GenerationParams,
    InvalidInputError,
    Message,
    Task,
)

MAX_HISTORY_MESSAGES = 1_000


def stream_chat(
    registry: Registry,
    model_id: str,
    message: str,
    history: Sequence[object] = (),
    params: Optional[GenerationParams] = None,
    system_prompt: str = "",
) -> Iterator[Event]:
    """Streams the assistant's reply to `message` after `history` (dicts or Messages)."""
    spec = registry.spec(model_id, "chat")
    messages = build_messages(message, history, system_prompt)
    params = (params or spec.default_params()).validated()
    return _leased(registry, model_id, "chat", lambda engine: engine.stream_chat(messages, params))


def stream_generate(
    registry: Registry, model_id: str, prompt: str, params: Optional[GenerationParams] = None
) -> Iterator[Event]:
    """Streams a raw completion of `prompt`."""
    spec = registry.spec(model_id, "generate")
    check_text("prompt", prompt, allow_empty=True)
    params = (params or spec.default_params()).validated()
    return _leased(registry, model_id, "generate", lambda engine: engine.stream_generate(prompt, params))


def build_messages(message: str, history: Sequence[object] = (), system_prompt: str = "") -> list[Message]:
    """System prompt + validated history + the new user message."""
    check_text("message", message)
    if system_prompt is None:
        system_prompt = ""
    if not isinstance(system_prompt, str):
        raise refuse("not_text", "system_prompt")
    check_text("system_prompt", system_prompt, allow_empty=True)
    if history is None:
        history = ()
    if not isinstance(history, (list, tuple)):
        raise InvalidInputError("history: must be a list of {'role': ..., 'content': ...} messages", field="history")
    if len(history) > MAX_HISTORY_MESSAGES:
        raise InvalidInputError(f"history: at most {MAX_HISTORY_MESSAGES} messages, got {len(history)}",
                                field="history")
    past = [without_emitted_nul(item if isinstance(item, Message) else Message.from_dict(item, index))
            for index, item in enumerate(history)]
    for index, item in enumerate(past):
        check_text("history", item.content, allow_empty=True, shown=f"history item {index}", item=index)
    system = [Message("system", system_prompt)] if system_prompt.strip() else []
    if system and past and past[0].role == "system":
        past = past[1:]  # the system prompt box replaces one carried in the history
    return system + past + [Message("user", message)]


def without_nul(text: str) -> str:
    """`text` without NUL characters. A byte-level tokenizer can decode a NUL; the app never emits one (every
    stream below drops them) and refuses one only where a person typed it, so whatever it replied is accepted
    back: by the API, the Gradio endpoints, the Chat tab, the tokenizer routes."""
    return text.replace("\x00", "") if "\x00" in text else text


def without_emitted_nul(message: Message) -> Message:
    """An assistant turn with its NUL characters dropped (a reply from before the app dropped them, or one a
    client got elsewhere): accepted back, so a multi-turn client never gets stuck on its own history."""
    if message.role == "assistant" and isinstance(message.content, str) and "\x00" in message.content:
        return Message("assistant", without_nul(message.content))
    return message


def emitted(events: Iterator[Event]) -> Iterator[Event]:
    """The stream as the app hands it on: NUL characters dropped from every delta and the final text.

    Token-level views (a delta's `choices`, /detokenize) stay faithful to the ids; only generated text, which
    clients send back as history or as the next prompt, is cleaned."""
    for event in events:
        if isinstance(event, Delta) and "\x00" in event.text:
            yield Delta(without_nul(event.text), event.choices)
        elif isinstance(event, Final) and "\x00" in event.text:
            yield Final(without_nul(event.text), event.stats)
        else:
            yield event


def stream_leased(
    registry: Registry, model_id: str, task: Task, start: Callable[[Engine], Iterator[Event]]
) -> Iterator[Event]:
    """The stream `start(engine)` makes, under a lease of the model (for streams built outside this module)."""
    return _leased(registry, model_id, task, start)


def _leased(
    registry: Registry, model_id: str, task: Task, start: Callable[[Engine], Iterator[Event]]
) -> Iterator[Event]:
    with registry.lease(model_id, task) as engine:
        stream = start(engine)
        try:
            yield from emitted(stream)
        except GenerationError as error:
            if is_out_of_memory(error):
                # "OutOfMemoryError: CUDA out of memory. Tried to allocate ..." says what, not what to do.
                raise GenerationError(
                    f"model '{model_id}': out of memory while generating. Send a shorter message or lower "
                    "max_new_tokens, lower max_batch_size in models.yaml (fewer requests share a pass), or unload "
                    "other models; the model stays loaded, so just try again"
                ) from error
            raise
        finally:
            # Closing the engine's stream is what stops the model; do it before the lease ends.
            close_quietly(stream)


def is_out_of_memory(error: BaseException) -> bool:
    """True when `error` or an error it was raised from is an out-of-memory (torch's, or the allocator's text)."""
    seen = 0
    current: Optional[BaseException] = error
    while current is not None and seen < 10:
        if type(current).__name__ in ("OutOfMemoryError", "MemoryError") or "out of memory" in str(current).lower():
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False


def count_tokens(
    registry: Registry, model_id: str, text: str, load: bool = True
) -> tuple[Optional[int], Optional[int]]:
    """(tokens in `text`, the model's context) with the model's own tokenizer.

    With `load=False` an unloaded model is not loaded just to count (the UI counts on every keystroke):
    the count is then None and only the context (from models.yaml, when set) is known.
    """
    spec = registry.spec(model_id)
    check_text("text", text, allow_empty=True)
    if not load and registry.status_of(model_id).state != "loaded":
        return None, spec.max_context
    with registry.lease(model_id) as engine:
        return engine.count_tokens(text), registry.status_of(model_id).max_context
