"""Backend errors in plain words for the UI.

Backend errors start with the field they are about and may name a command-line flag ("reference column:
classification needs one (--reference-column)"): right for the API and the command line, which keep them as they
are, but a person in the browser should read a sentence ("Pick the label column: classification needs one.").
Tabs wrap their handlers with `plain_errors` (outside `handle_errors`) to rewrite the message of the toast. For a
browser that asks for Chinese, `handle_errors` has already said the common errors in Chinese (ui/i18n_errors.py);
those have no field prefix or flag, so they pass through here unchanged.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable, Iterator, TypeVar

import gradio as gr

F = TypeVar("F", bound=Callable[..., Any])

_FLAG = re.compile(r"\s*\((?:--[a-z][a-z-]*(?: [A-Z]+)?(?:, )?)+\)|\s*\(--[a-z-]+ [^)]*\)")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z _-]{0,30}): (.+)$", re.DOTALL)
_IMPERATIVE = ("give ", "pick ", "type ", "upload ", "choose ", "use ", "add ", "set ")
_NEEDS = re.compile(r"^(input|reference|predictions) column: (\w+) needs one\b\.?;?\s*(.*)$", re.DOTALL)
# Field names as a person calls them (the API's names on the left).
_NAMES = {"reference": "label", "batch_size": "batch size", "max_new_tokens": "max new tokens",
          "top_k": "top k", "hub dataset": "Hub dataset"}


def plain_words(message: str) -> str:
    """`message` without its field prefix and command-line flags, as a sentence."""
    text = _FLAG.sub("", message).strip().replace("give --model", "pick a model")
    needs = _NEEDS.match(text)
    if needs:
        role, task, rest = needs.groups()
        column = "label" if role == "reference" and task == "classification" else role
        sentence = f"Pick the {column} column: {task} needs one."
        return f"{sentence} {_sentence(rest)}" if rest else sentence
    field = _FIELD.match(text)
    if not field:
        return _sentence(text)
    name, rest = field.groups()
    name = _NAMES.get(name, name.replace("_", " "))
    if rest.startswith(_IMPERATIVE):
        return f"{_sentence(name)}: {rest}"
    if rest.startswith(("must ", "is ", "has ", "should ", "cannot ")):
        return _sentence(f"{name} {rest}")
    if rest.startswith(("'", "&#x27;")):
        return _sentence(f"the {name} {rest}")
    return _sentence(rest)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:]


def plain_errors(fn: F) -> F:
    """Rewrites the message of the gr.Error a handler raises with `plain_words` (functions and generators)."""
    def rewrite(error: gr.Error) -> gr.Error:
        return gr.Error(plain_words(str(error.message)), duration=error.duration, visible=error.visible,
                        title=error.title, print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as error:
                raise rewrite(error) from error

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error as error:
            raise rewrite(error) from error

    return wrapper  # type: ignore[return-value]
