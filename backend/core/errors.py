"""The backend's typed errors: values with a code, the field they are about and the values the wording needs.

Their English templates and the `refuse` helper that builds them are in backend/core/error_codes.py; the UI words
them from the code (ui/i18n/error_words.py), the API renders OpenAI's error JSON from the field.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

class WorkbenchError(Exception):
    """Base of every error the backend raises on purpose.

    An error is a value: `code` says what went wrong (a key of the UI's wording tables, e.g. "empty"), `field`
    names the input it is about (the API's `param`, the form field the UI points at) and `params` holds the values
    the wording needs. The message is the English rendering for logs, the CLI and callers that know no better; no
    caller parses it back (the UI words the error from `code` and `params`, the API reads `field`).
    """

    def __init__(self, message: str = "", *, code: Optional[str] = None, field: Optional[str] = None,
                 params: Optional[Mapping[str, object]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.params: dict[str, object] = dict(params or {})

    def __reduce__(self) -> tuple[Callable[..., "WorkbenchError"], tuple[object, ...]]:
        # Errors cross process boundaries (training, data jobs): keep code, field and params through pickling.
        return (_rebuild_error, (type(self), str(self), self.code, self.field, self.params))


def _rebuild_error(cls: "type[WorkbenchError]", message: str, code: Optional[str], field: Optional[str],
                   params: dict[str, object]) -> "WorkbenchError":
    error: WorkbenchError = cls.__new__(cls)
    WorkbenchError.__init__(error, message, code=code, field=field, params=params)
    return error


class ConfigError(WorkbenchError):
    """models.yaml is invalid; the message names the file, the entry and the field."""


class ModelNotFoundError(WorkbenchError):
    """The requested model id is not in the registry."""


class UnsupportedTaskError(WorkbenchError):
    """The model exists but does not do the requested task."""


class ModelLoadError(WorkbenchError):
    """Loading a model failed; the next request tries again."""


class InvalidInputError(WorkbenchError):
    """A request carries a bad message, prompt, history or parameter."""


class ContextOverflowError(InvalidInputError):
    """A single prompt does not fit the model's context window."""


class BusyError(WorkbenchError):
    """A model's queue is full; the caller should try again shortly."""


class GenerationError(WorkbenchError):
    """Generation failed inside the model (the error raised in the worker thread is chained)."""
