"""Token budgeting shared by the local and the remote engines: fitting a chat into the model's context, the
room left for the reply, and the `Final` event with its statistics.

Fitting drops the oldest turns (never the system prompt, never the last message), a whole exchange at a time so
the conversation still starts with a user turn, until the prompt plus the reply's max_new_tokens fits. Its work is
bounded by the context, not by the history: it tokenises each message once from the newest backwards and stops as
soon as the estimate is over the budget (older messages are never tokenised), then places the cut exactly by
measuring O(log n) conversations of about the context's size (the same cut as dropping one exchange at a time,
which re-tokenised the whole remaining history per dropped exchange: 400 turns cost ~85 s of a core; a version
that tokenised the whole history once kept ~490 MB after a 4 MB one). Between measurements it checks `cancelled`
(by default: the consumer of the stream bridge has gone, see backend/core/streams.py) and stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Optional, Sequence, TypeVar

from backend.core.streams import consumer_gone
from backend.core.types import ContextOverflowError, Final, FinishReason, GenerationError, GenerationStats, Message

M = TypeVar("M")  # what measuring a conversation gives besides its token count (token ids, "exact?")


@dataclass(frozen=True)
class Fitted(Generic[M]):
    """A conversation that fits: its messages, how many were dropped, its prompt tokens and its measurement."""

    messages: list[Message]
    dropped: int
    prompt_tokens: int
    measured: M


def fit_chat(messages: Sequence[Message], *, measure: Callable[[list[Message]], tuple[int, M]],
             count_message: Callable[[Message], int], max_context: Optional[int], max_new_tokens: int,
             cancelled: Callable[[], bool] = consumer_gone) -> Fitted[M]:
    """The longest recent part of `messages` that fits (see the module docstring). `measure` gives a whole
    conversation's prompt tokens (as the model sees it: template included); `count_message` a message's own."""
    messages = list(messages)
    system_count = next((index for index, message in enumerate(messages) if message.role != "system"),
                        len(messages))
    system, turns = messages[:system_count], messages[system_count:]

    def check() -> None:
        if cancelled():
            raise GenerationError("the request was cancelled while its conversation was fitted to the context")

    def measured(start: int) -> tuple[int, M]:
        check()
        return measure(system + turns[start:])

    if max_context is None or len(turns) <= 1:
        whole = measured(0)
        return Fitted(system + turns, 0, whole[0], whole[1])
    budget = max_context - max_new_tokens
    # The system prompt with the newest message, measured exactly: the least that is ever sent, and the
    # template's share per message (the fixed part, spread over few messages, makes it an overestimate).
    newest = measured(len(turns) - 1)
    own = 0
    for message in (*system, turns[-1]):
        check()
        own += count_message(message)
    share = max(0.0, (newest[0] - own) / (len(system) + 1))
    # Walk back from the newest message, tokenising each once, until the estimate is over the budget: the older
    # messages are never tokenised (a 4 MB history then costs what a context's worth of it costs).
    estimate, earliest = float(newest[0]), len(turns) - 1
    for index in range(len(turns) - 2, -1, -1):
        check()
        estimate += count_message(turns[index]) + share
        if estimate > budget:
            break
        earliest = index
    starts = _exchange_starts(turns)
    results: dict[int, tuple[int, M]] = {len(starts) - 1: newest}

    def at(position: int) -> tuple[int, M]:
        if position not in results:
            results[position] = measured(starts[position])
        return results[position]

    def fits_at(position: int) -> bool:
        return at(position)[0] <= budget

    # Place the cut exactly: the fewest dropped that fits (fitting is monotone in how much is dropped), by
    # galloping from the estimate to a bracket and bisecting it, measuring O(log n) conversations of about
    # the context's size.
    guess = next(position for position, start in enumerate(starts) if start >= earliest)
    if fits_at(guess):
        fitting, step = guess, 1
        failing = -1  # "position -1": keeping more than everything never fits
        while fitting > 0:
            probe = max(0, fitting - step)
            if fits_at(probe):
                fitting, step = probe, step * 2
            else:
                failing = probe
                break
    else:
        failing, step = guess, 1
        fitting = len(starts)  # "past the end": nothing fits; the newest message alone is then sent
        while failing < len(starts) - 1:
            probe = min(len(starts) - 1, failing + step)
            if fits_at(probe):
                fitting = probe
                break
            failing, step = probe, step * 2
    while fitting - failing > 1:
        middle = (fitting + failing) // 2
        if fits_at(middle):
            fitting = middle
        else:
            failing = middle
    position = min(fitting, len(starts) - 1)
    start = starts[position]
    tokens, extra = at(position)
    return Fitted(system + turns[start:], start, tokens, extra)


def _exchange_starts(turns: Sequence[Message]) -> list[int]:
    """Where the kept part may begin, fewest dropped first: 0, then every later user turn, and at worst the
    last message alone."""
    starts = [0]
    while starts[-1] < len(turns) - 1:
        cut = starts[-1] + 1
        while cut < len(turns) - 1 and turns[cut].role != "user":
            cut += 1
        starts.append(cut)
    return starts


def check_prompt_fits(prompt_tokens: int, *, max_context: Optional[int], model_id: str, what: str,
                      exact: bool = True) -> None:
    """ContextOverflowError when the prompt leaves no room for a reply. An estimated count may be off either
    way, so only what is certainly too long (twice the context) is refused then; the server judges the rest."""
    if max_context is None:
        return
    certain = prompt_tokens if exact else prompt_tokens // 2
    if certain >= max_context:
        about = "" if exact else "about "
        raise ContextOverflowError(
            f"the {what} is {about}{prompt_tokens} tokens, but model '{model_id}' has a context of "
            f"{max_context} tokens (with room needed for the reply); shorten it")


def reply_budget(prompt_tokens: int, max_new_tokens: int, *, max_context: Optional[int], dropped_turns: int = 0,
                 exact: bool = True) -> tuple[int, list[str]]:
    """The reply's max_new_tokens, lowered to fit the context, and the notices that say what was changed."""
    estimated = "" if exact else " (token counts estimated)"
    notices = []
    if dropped_turns:
        notices.append(f"{dropped_turns} oldest message(s) dropped to fit the {max_context}-token context"
                       + estimated)
    if max_context is not None and prompt_tokens + max_new_tokens > max_context:
        max_new_tokens = max(1, max_context - prompt_tokens)
        notices.append(f"max_new_tokens lowered to {max_new_tokens} to fit the {max_context}-token context"
                       + estimated)
    return max_new_tokens, notices


@dataclass
class Clock:
    """When a stream started and when it showed its first text."""

    started: float = field(default_factory=time.perf_counter)
    first_text_at: Optional[float] = None

    def saw_text(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.perf_counter()


def final_event(text: str, *, clock: Clock, prompt_tokens: int, generated_tokens: int,
                finish_reason: FinishReason, max_context: Optional[int], dropped_turns: int = 0,
                notices: Sequence[str] = (), seed: Optional[int] = None) -> Final:
    """The last event of a stream, with its statistics (time to first text, decode speed after it)."""
    ended = time.perf_counter()
    first = clock.first_text_at
    decode_s = ended - first if first is not None else None
    return Final(text=text, stats=GenerationStats(
        prompt_tokens=prompt_tokens,
        generated_tokens=generated_tokens,
        time_to_first_token_s=(first - clock.started) if first is not None else None,
        tokens_per_second=(generated_tokens - 1) / decode_s if decode_s and generated_tokens > 1 else None,
        total_s=ended - clock.started,
        finish_reason=finish_reason,
        dropped_turns=dropped_turns,
        max_context=max_context,
        notices=tuple(notices),
        seed=seed,
    ))
