"""Where each user's stored things live, and who may see or start what.

Everything a user stores (evaluation runs, uploads, saved datasets, conversations, feedback, training runs)
lives under one folder per user:

    <root>/users/<user>/<kind>/...        root: $WORKBENCH_RUNS_DIR, default "runs"

`<user>` is the login name when logins are on (WORKBENCH_AUTH), and `LOCAL_USER` when the app is open. A user
sees only their own folder; an admin (WORKBENCH_ADMINS="alice,bob") may list every user's. Training can hold a
GPU for hours, so with logins on only the users named in WORKBENCH_TRAIN_USERS may start it ("*" for everyone);
with logins off anyone may (the app is then a single-user one on 127.0.0.1).

Only the standard library is imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Mapping, Optional

from backend.core.types import InvalidInputError

ENV_RUNS_DIR = "WORKBENCH_RUNS_DIR"
ENV_ADMINS = "WORKBENCH_ADMINS"
ENV_TRAIN_USERS = "WORKBENCH_TRAIN_USERS"
DEFAULT_RUNS_DIR = "runs"
LOCAL_USER = "local"  # the one user of an app without logins
KINDS = ("eval", "uploads", "datasets", "conversations", "feedback", "train")

# A user name becomes a folder name: keep it to safe characters so no name can climb out of the root.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def runs_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The folder that holds every user's things ($WORKBENCH_RUNS_DIR, default `runs`)."""
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_RUNS_DIR) or DEFAULT_RUNS_DIR)


def folder_name(username: Optional[str]) -> str:
    """The folder of a user: the login name made safe, or LOCAL_USER when nobody is logged in."""
    if not username:
        return LOCAL_USER
    name = _UNSAFE.sub("_", username).strip(".") or "_"
    return name[:64]


def user_dir(kind: str, username: Optional[str], root: Optional[Path] = None, create: bool = True) -> Path:
    """`<root>/users/<user>/<kind>`: where `username`'s things of this kind are stored."""
    if kind not in KINDS:
        raise ValueError(f"unknown storage kind {kind!r}; one of {', '.join(KINDS)}")
    folder = (root if root is not None else runs_root()) / "users" / folder_name(username) / kind
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _names(environ: Optional[Mapping[str, str]], variable: str) -> set[str]:
    env = os.environ if environ is None else environ
    return {name.strip() for name in env.get(variable, "").split(",") if name.strip()}


def is_admin(username: Optional[str], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Admins (WORKBENCH_ADMINS) may see every user's stored things."""
    return bool(username) and username in _names(environ, ENV_ADMINS)


def visible_dirs(kind: str, username: Optional[str], root: Optional[Path] = None,
                 environ: Optional[Mapping[str, str]] = None) -> Iterator[Path]:
    """The folders of this kind that `username` may read: their own, or everyone's for an admin."""
    base = (root if root is not None else runs_root(environ)) / "users"
    if is_admin(username, environ) and base.is_dir():
        for user in sorted(base.iterdir()):
            if (user / kind).is_dir():
                yield user / kind
        return
    own = base / folder_name(username) / kind
    if own.is_dir():
        yield own


def resolve_owned(kind: str, username: Optional[str], name: str, root: Optional[Path] = None,
                  environ: Optional[Mapping[str, str]] = None) -> Path:
    """The stored item `name` (a run id, a dataset name) that `username` may open; never a path outside.

    The name must be one plain folder or file name; an item of another user is "not found" (not "forbidden"),
    so nobody can probe what others stored.
    """
    if not name or "/" in name or "\\" in name or name in (".", "..") or _UNSAFE.sub("", name) != name:
        raise InvalidInputError(f"'{name[:80]}' is not a valid name")
    for folder in visible_dirs(kind, username, root, environ):
        candidate = folder / name
        if candidate.exists():
            return candidate
    raise InvalidInputError(f"there is no saved {kind} item named '{name}'")


def may_train(username: Optional[str], auth_on: bool, presenter: bool = False,
              environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether this user may start training: never in presenter mode; with logins on, only allowed users."""
    if presenter:
        return False
    if not auth_on:
        return True
    allowed = _names(environ, ENV_TRAIN_USERS)
    return "*" in allowed or (bool(username) and username in allowed)
