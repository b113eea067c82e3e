"""Who may see and use a model: with logins on, a fine-tuned model may belong to one user (`ModelSpec.owner`).

The registry's lookups are made for a *viewer*: a login name, None (no login: the CLI, an open app, the app's own
background threads: everything is visible) or PUBLIC (nobody in particular: a page being built before anyone
logged in). Set per context with `Registry.viewing_as`, or `set_viewer` for the rest of an HTTP request's task.
Only the standard library and backend modules: no gradio.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

from backend.guard import user_space
from backend.core.model_spec import ModelSpec

PUBLIC = "\x00public"  # a viewer who is nobody in particular: sees only the models everyone may use
_UNSET = "\x00unset"
# Who the lookups of this context are for, when set explicitly (`viewing`, `set_viewer`); else the registry's hook.
_VIEWER: ContextVar[Optional[str]] = ContextVar("workbench_registry_viewer", default=_UNSET)


def current_viewer(fallback: Callable[[], Optional[str]]) -> Optional[str]:
    """The viewer set for this context, else `fallback()` (the UI: the logged-in user of the request)."""
    viewer = _VIEWER.get()
    return fallback() if viewer == _UNSET else viewer


@contextmanager
def viewing(viewer: Optional[str]) -> Iterator[None]:
    """Lookups inside the block are for `viewer` (None: every model, for the app's own upkeep)."""
    token = _VIEWER.set(viewer)
    try:
        yield
    finally:
        _VIEWER.reset(token)


def set_viewer(viewer: Optional[str]) -> None:
    """Lookups for the rest of this context (an HTTP request's task) are for `viewer` (the API's basic-auth user)."""
    _VIEWER.set(viewer)


def visible(spec: ModelSpec, viewer: Optional[str]) -> bool:
    """Whether `viewer` (a login name; None: no login, everything is visible; PUBLIC) may see and use `spec`."""
    if viewer is None or spec.owner is None or spec.shared:
        return True
    if viewer == PUBLIC:
        return False
    return user_space.folder_name(viewer) == spec.owner or user_space.is_admin(viewer)
