"""How a tab's event handlers fail and how their listeners are set up: backend errors become a readable gr.Error
(`handle_errors`, `ui_errors`), UI events stay off the API page with their progress pinned to one component
(`ui_event`), and Stop cancels before it updates (`cancel_then`). Re-exported by ui/common/components.py."""

from __future__ import annotations

import functools
import html
import inspect
import logging
from typing import Any, Callable, Iterator, TypeVar

import gradio as gr

from backend.guard.request_checks import lone_surrogates
from backend.guard.security import redact
from backend.guard.table_limits import MAX_MESSAGE_CHARS, clip
from backend.core.types import WorkbenchError
from ui.i18n.error_words import worded

logger = logging.getLogger("ui.common.components")  # the name the app's log has always shown for handler errors

# ----------------------------------------------------------------------------------------------- errors

F = TypeVar("F", bound=Callable[..., Any])


def user_error(message: str) -> gr.Error:
    """gr.Error renders its message as HTML: escape it (it often quotes user text). Quotes stay readable.

    Secrets (a remote server's error may quote the API key it was sent) become `***`.
    """
    return gr.Error(html.escape(clip(redact(message), MAX_MESSAGE_CHARS), quote=False), print_exception=False)


def _as_user_error(error: Exception, plain: bool = False) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, WorkbenchError):
        # Worded from its code, in Chinese for a browser that asks for it (ui/i18n/error_words.py); API callers keep the
        # field-named English message.
        return user_error(worded(error, plain=plain))
    logger.exception("unexpected error in a UI handler")
    return user_error(f"unexpected error: {type(error).__name__}: {error}")


def refuse_invalid_text(args: list[Any]) -> None:
    """A lone UTF-16 surrogate (the browser or a client can send one) is not text: it failed deep in a tokenizer
    as "unexpected error: TypeError". Say so plainly instead (strings, and those inside lists and dicts: a chat
    history)."""
    for _, bad in lone_surrogates(args):
        raise user_error(f"the text contains a lone UTF-16 surrogate ({bad}), which is not a valid character; "
                         "remove it and try again")


def handle_errors(fn: F, plain: bool = False) -> F:
    """Turns backend errors (and surprises) into a gr.Error the user can read; the app keeps serving.

    Works for plain functions and generators (Gradio streams only when the handler is a generator function).
    GeneratorExit (Stop, cancel, closed tab) is not an Exception, so it passes through and closes the stream.
    `plain=True` (ui_errors) words the error for a person (ui/i18n/error_words.py); API handlers keep field names.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            refuse_invalid_text([*args, *kwargs.values()])
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_user_error(error, plain) from error

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refuse_invalid_text([*args, *kwargs.values()])
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise _as_user_error(error, plain) from error

    return wrapper  # type: ignore[return-value]


def ui_errors(fn: F) -> F:
    """handle_errors for UI handlers: errors in plain words."""
    return handle_errors(fn, plain=True)


def ui_event(feedback_on: gr.components.Component, progress: bool = False, queue: bool = True) -> dict[str, Any]:
    """Listener options for a UI event: kept off the API page, and progress shown only on `feedback_on`.

    Why: by default Gradio covers every output of a failed event with an "Error" badge that hides (and blocks)
    the chat, the sliders, ... until dismissed. With the progress pinned to one small component and hidden,
    a failure shows only the toast. `queue=False` for instant, model-free updates (undo, presets).
    """
    return {"api_visibility": "private", "show_progress": "full" if progress else "hidden",
            "show_progress_on": feedback_on, "queue": queue}


def status_sink() -> gr.HTML:
    """An invisible component that carries a streaming event's status badge.

    Why: when Stop cancels a stream, Gradio may mark the cancelled event as failed and put an "Error" badge on
    the component its progress is pinned to; pinned to the stats line, a normal Stop read "Error Stopped.".
    Real failures still reach the user as a toast (gr.Error).
    """
    return gr.HTML("", visible=False)


def cancel_then(button: gr.Button, running: list[Any], fn: Any, outputs: Any, feedback_on: gr.components.Component,
                inputs: Any = None) -> Any:
    """On click: cancel the running streams first, then run `fn`.

    Why two steps: an update already on its way from the cancelled stream could land after a combined
    cancel-and-update and overwrite it ("Stopped" replaced by a stale "generating...", an undone bubble back).
    """
    return button.click(None, cancels=running, api_visibility="private", queue=False).then(
        fn, inputs=inputs, outputs=outputs, **ui_event(feedback_on, queue=False))
