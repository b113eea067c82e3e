"""A backend error in words for a person, in the browser's language, from the error's code and params.

Backend errors are values (backend.core.types.WorkbenchError: code, field, params) with an English message for the CLI,
the logs and API callers. The UI words one from its code: "err_" + code in ui/i18n/strings_errors.py, in English
or Chinese as the request asks (Accept-Language), the field named as the UI calls it. An error without a code, or
one whose code has no wording, shows its message. Nothing here reads the message back.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import gradio as gr

from backend.core.types import WorkbenchError
from ui.i18n.core import CHINESE, STRINGS, language

Derive = Callable[[dict[str, Any], int], dict[str, Any]]


def _said(key: str, column: int, fallback: str) -> str:
    return STRINGS[key][column] if key in STRINGS else fallback


def _needs_column(params: dict[str, Any], column: int) -> dict[str, Any]:
    role, task = params.get("role", ""), params.get("task", "")
    name = "label" if role == "reference" and task == "classification" else role
    return {"column": _said(f"column_{name}", column, f"{name} column"), "task": _said(f"task_{task}", column, task)}


def _hub_name(params: dict[str, Any], column: int) -> dict[str, Any]:
    role = params.get("role", "")
    return {"role": _said(f"role_{role}", column, role)}


# Values a wording needs that are worded themselves (a column's role, a task's name), by code.
DERIVED: dict[str, Derive] = {"needs_column": _needs_column, "hub_name": _hub_name}


def field_words(field: Optional[str], params: dict[str, Any], column: int) -> str:
    """The field as the UI calls it ("Temperature", "Message 3 of the conversation"); its own name otherwise."""
    if not field:
        return ""
    item = params.get("item")
    if isinstance(item, int) and f"field_{field}_item" in STRINGS:
        return STRINGS[f"field_{field}_item"][column].format(number=item + 1)
    return _said(f"field_{field}", column, field.replace("_", " "))


def wording_key(error: WorkbenchError) -> Optional[str]:
    """The key of the error's wording in STRINGS (a field's own wording first), or None when it has none."""
    if not error.code:
        return None
    for key in (f"err_{error.code}__{error.field}", f"err_{error.code}"):
        if key in STRINGS:
            return key
    return None


def worded(error: WorkbenchError, request: Optional[gr.Request] = None, plain: bool = True) -> str:
    """What the UI shows for `error`: its wording in the request's language; `plain=False` (handlers that are
    also API endpoints) keeps the English message for anyone who does not ask for Chinese."""
    key = wording_key(error)
    chinese = language(request) == CHINESE
    if key is None or not (chinese or plain):
        return str(error)
    column = 1 if chinese else 0
    values = {**error.params, "field": field_words(error.field, error.params, column)}
    if error.code in DERIVED:
        values.update(DERIVED[error.code](error.params, column))
    try:
        said = STRINGS[key][column].format(**values)
    except (KeyError, IndexError, ValueError):  # a param missing or of another type: the message still says it
        return str(error)
    return said if chinese else said[:1].upper() + said[1:]
