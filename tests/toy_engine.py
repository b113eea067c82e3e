"""A toy engine added through the recipe (docs/ARCHITECTURE.md, "Where new work plugs in"), for
tests/test_engine_recipe.py: `backend: reverse` streams the prompt's characters back reversed, one character a
token (round again when the reply is longer than the prompt). Sampled (temperature > 0), each character is drawn from
the prompt with the request's seed. One module: the engine, and its line for the engine table (`KIND`).

It reuses what every engine shares: context fitting, the reply's budget and the `Final` event
(backend/engines/budget.py), stop sequences (backend/engines/text_stream.py).
"""

from __future__ import annotations

import random
import secrets
from typing import Any, Callable, Iterator, Optional, Sequence

from backend.core.config import ModelSpec
from backend.core.types import (
    Delta,
    Event,
    FinishReason,
    GenerationError,
    GenerationParams,
    LabelScore,
    Message,
    UnsupportedTaskError,
)
from backend.engines.budget import Clock, check_prompt_fits, final_event, fit_chat, reply_budget
from backend.engines.table import EngineKind
from backend.engines.text_stream import StopMatcher

KIND = EngineKind("reverse", "backend", "tests.toy_engine:ReverseEngine.load", tasks=("chat", "generate"))
DEFAULT_CONTEXT = 512


def render(messages: Sequence[Message]) -> str:
    """The toy's chat template: one `role: content` line per message, then the assistant's turn."""
    return "".join(f"{message.role}: {message.content}\n" for message in messages) + "assistant: "


def next_character(reversed_prompt: str, index: int, rng: Optional[random.Random]) -> str:
    """The toy's "model": the index-th character of the reversed prompt (round again), or a drawn one."""
    return rng.choice(reversed_prompt) if rng is not None else reversed_prompt[index % len(reversed_prompt)]


class ReverseEngine:
    """The `Engine` protocol (backend/engines/base.py) without weights: every reply is its prompt reversed."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.tasks = tuple(spec.tasks)
        self.max_context = spec.max_context or DEFAULT_CONTEXT
        # The "forward pass", an attribute so a test can make it fail the way a model's forward can.
        self.step: Callable[[str, int, Optional[random.Random]], str] = next_character

    @classmethod
    def load(cls, spec: ModelSpec) -> "ReverseEngine":
        return cls(spec)

    def count_tokens(self, text: str) -> int:
        return len(text)

    def describe(self) -> dict[str, Any]:
        return {"max_context": self.max_context, "notes": ["streams the prompt back reversed"]}

    def close(self) -> None:
        pass  # nothing held

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' streams text; it does not classify")

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        params = params.validated()
        check_prompt_fits(len(prompt), max_context=self.max_context, model_id=self.spec.id, what="prompt")
        budget, notices = reply_budget(len(prompt), params.max_new_tokens, max_context=self.max_context)
        return self._stream(prompt, len(prompt), budget, params, notices, dropped=0)

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        params = params.validated()
        fitted = fit_chat(messages, measure=lambda kept: (len(render(kept)), None),
                          count_message=lambda message: len(message.content) + len(message.role) + 3,
                          max_context=self.max_context, max_new_tokens=params.max_new_tokens)
        check_prompt_fits(fitted.prompt_tokens, max_context=self.max_context, model_id=self.spec.id,
                          what="conversation")
        budget, notices = reply_budget(fitted.prompt_tokens, params.max_new_tokens, max_context=self.max_context,
                                       dropped_turns=fitted.dropped)
        last = fitted.messages[-1].content
        return self._stream(last, fitted.prompt_tokens, budget, params, notices, dropped=fitted.dropped)

    def _stream(self, prompt: str, prompt_tokens: int, budget: int, params: GenerationParams, notices: list[str],
                dropped: int) -> Iterator[Event]:
        """Lazy: nothing runs until the first `next`, and closing it stops it (no thread to wait for)."""
        sampling = params.temperature > 0
        seed = params.seed if params.seed is not None else (secrets.randbits(31) if sampling else None)
        rng = random.Random(seed) if sampling else None
        reversed_prompt = prompt[::-1] or " "
        clock, stop = Clock(), StopMatcher(params.stop)
        generated = 0
        finish: FinishReason = "length"
        for index in range(budget):
            try:
                piece = self.step(reversed_prompt, index, rng)
            except Exception as error:  # a failing "forward pass" reaches the caller typed, as a model's would
                raise GenerationError(f"model '{self.spec.id}': generation failed: {error}") from error
            generated += 1
            shown = stop.feed(piece)
            if shown:
                clock.saw_text()
                yield Delta(shown)
            if stop.stopped:
                finish = "stop"
                break
        tail = stop.flush()
        if tail:
            clock.saw_text()
            yield Delta(tail)
        yield final_event(stop.text, clock=clock, prompt_tokens=prompt_tokens, generated_tokens=generated,
                          finish_reason=finish, max_context=self.max_context, dropped_turns=dropped,
                          notices=notices, seed=seed)
