"""Access settings from the environment, credential checks, and keeping secrets out of logs.

    WORKBENCH_AUTH="alice:pw1,bob:pw2"   users for the UI, the Gradio API and the OpenAI-compatible API
                                         (passwords: 8+ characters, not the user name)
    WORKBENCH_API_TOKEN="..."            a bearer token for /v1/* (also a password any user name can log in with)
    WORKBENCH_MAX_UPLOAD_MB=50           uploads larger than this are refused (HTTP 413)
    WORKBENCH_QUEUE_SIZE=256             requests waiting beyond this get "busy, try again"

With neither WORKBENCH_AUTH nor WORKBENCH_API_TOKEN set, the app is open (fine on 127.0.0.1, not on a network).
Credentials are compared in constant time and never printed: `repr` hides them and `install_log_redaction`
replaces any secret value that reaches stdout, stderr or a log record with `***`.

Only the standard library is imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence, TextIO

from backend.core.types import ConfigError
from backend.guard.limits import env_number

ENV_AUTH = "WORKBENCH_AUTH"
ENV_API_TOKEN = "WORKBENCH_API_TOKEN"
ENV_MAX_UPLOAD_MB = "WORKBENCH_MAX_UPLOAD_MB"
ENV_QUEUE_SIZE = "WORKBENCH_QUEUE_SIZE"

# 50 MB: the largest classification / evaluation file backend.data.files accepts, so any file it could read
# can be uploaded; anything bigger is refused by the server before it is written to disk.
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_QUEUE_SIZE = 256
REDACTED = "***"
_MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words; such passwords are refused anyway
# With failed logins throttled (backend/guard/throttle.py: 30 guesses per user per 5 minutes) an 8-character password
# outlasts any online guessing; shorter ones, or the user's own name, are refused at start-up.
MIN_PASSWORD_CHARS = 8


@dataclass(frozen=True)
class SecuritySettings:
    """Who may use the app and how much it accepts. Build with `from_env()`."""

    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    api_token: Optional[str] = field(default=None, repr=False)
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    queue_size: int = DEFAULT_QUEUE_SIZE

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "SecuritySettings":
        """Reads the WORKBENCH_* variables; a malformed value is a ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        return cls(
            users=parse_users(env.get(ENV_AUTH, "")),
            api_token=_parse_token(env.get(ENV_API_TOKEN, "")),
            max_upload_mb=env_number(env, ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB, low=0.001),
            queue_size=int(env_number(env, ENV_QUEUE_SIZE, DEFAULT_QUEUE_SIZE, whole=True, low=1)),
        )

    # ---------------------------------------------------------------------------------------- facts

    @property
    def auth_enabled(self) -> bool:
        return bool(self.users or self.api_token)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def secrets(self) -> list[str]:
        """Every secret value these settings hold (for log redaction)."""
        values = [password for _, password in self.users]
        if self.api_token:
            values.append(self.api_token)
        return values

    def describe(self) -> str:
        """One start-up line that says what is protected, without any secret."""
        if not self.auth_enabled:
            access = "open (no WORKBENCH_AUTH / WORKBENCH_API_TOKEN set)"
        else:
            parts = []
            if self.users:
                parts.append(f"{len(self.users)} user(s) from {ENV_AUTH}")
            if self.api_token:
                parts.append(f"a bearer token from {ENV_API_TOKEN}")
            access = "login required for the UI, the Gradio API and /v1 (" + ", ".join(parts) + ")"
        return (f"access: {access}; uploads up to {self.max_upload_mb:g} MB; "
                f"queue holds {self.queue_size} waiting request(s)")

    # --------------------------------------------------------------------------------------- checks

    def check_password(self, username: str, password: str) -> bool:
        """A login (UI form, gradio_client auth=(user, pw), HTTP basic auth on /v1).

        A configured user with their password passes; so does any user name with the API token as password,
        so a deployment with only WORKBENCH_API_TOKEN still has a way into the UI.
        """
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        ok = False
        for user, secret in self.users:
            # No early exit: every entry is compared, so timing does not reveal which user names exist.
            ok |= _same(username, user) & _same(password, secret)
        if self.api_token:
            ok |= _same(password, self.api_token)
        return ok

    def check_token(self, token: Optional[str]) -> bool:
        """A bearer token on /v1/*: the API token (when set)."""
        return bool(self.api_token) and isinstance(token, str) and _same(token, self.api_token or "")

    def check_authorization(self, header: Optional[str]) -> bool:
        """An `Authorization` header value: `Bearer <token>` or `Basic base64(user:password)`."""
        if not self.auth_enabled:
            return True
        scheme, _, value = (header or "").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self.check_token(value.strip())
        if scheme == "basic":
            credentials = decode_basic(value)
            return credentials is not None and self.check_password(*credentials)
        return False

    def gradio_auth(self) -> Optional[Callable[[str, str], bool]]:
        """What `gr.Blocks.launch(auth=...)` takes: None when the app is open, else a checking function."""
        if not self.auth_enabled:
            return None

        def check(username: str, password: str) -> bool:
            return self.check_password(username, password)

        return check


# ------------------------------------------------------------------------------------------- parsing


def parse_users(value: str) -> tuple[tuple[str, str], ...]:
    """`user:password[,user2:password2]` → ((user, password), ...). A password may itself contain ':'."""
    users: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(part.strip() for part in (value or "").split(",")):
        if not item:
            continue
        user, colon, password = item.partition(":")
        user = user.strip()
        if not colon or not user or not password:
            # The item is not echoed: it may be a password typed without its user name.
            raise ConfigError(f"{ENV_AUTH}: entry {index + 1} is not 'user:password' "
                              "(separate several with commas, e.g. alice:pw1,bob:pw2)")
        if len(password) < MIN_PASSWORD_CHARS:
            raise ConfigError(f"{ENV_AUTH}: the password of user '{user}' is shorter than {MIN_PASSWORD_CHARS} "
                              "characters; choose a longer one")
        if password.lower() == user.lower():
            raise ConfigError(f"{ENV_AUTH}: the password of user '{user}' is the user name; choose another one")
        if user in seen:
            raise ConfigError(f"{ENV_AUTH}: user '{user}' is listed twice")
        seen.add(user)
        users.append((user, password))
    return tuple(users)


def _parse_token(value: str) -> Optional[str]:
    token = (value or "").strip()
    if not token:
        return None
    if len(token) < 8:
        raise ConfigError(f"{ENV_API_TOKEN}: the token is shorter than 8 characters; use a long random value "
                          "(e.g. python -c \"import secrets; print(secrets.token_urlsafe(32))\")")
    if any(ch.isspace() for ch in token):
        raise ConfigError(f"{ENV_API_TOKEN}: the token contains white space; it must be one word")
    return token


def decode_basic(value: str) -> Optional[tuple[str, str]]:
    """`base64(user:password)` → (user, password), or None when it is not that."""
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# ------------------------------------------------------------------------------------------- secrets


class _Entry(Protocol):
    @property
    def api_key_env(self) -> Optional[str]: ...


class _Entries(Protocol):
    """What `model_secrets` reads of the app's config (backend/core/config.py AppConfig, which imports this
    package's neighbours: named by shape, not imported)."""

    @property
    def models(self) -> Sequence[_Entry]: ...


def model_secrets(config: _Entries, environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """The API keys of remote entries (the values of their `api_key_env` variables) that are set."""
    env = os.environ if environ is None else environ
    values = []
    for spec in config.models:
        name = spec.api_key_env
        value = (env.get(name) or "").strip() if name else ""
        if value:
            values.append(value)
    return values


class Redactor:
    """Replaces every known secret value in a text with `***` (longest first, so no fragment survives)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_CHARS}
        with self._lock:
            self._secrets = tuple(sorted(set(self._secrets) | fresh, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


# Log lines longer than this are cut: user input (a malformed 4 MB request quoted in a traceback) reaches the log
# only as its first few hundred characters.
MAX_LOG_LINE_CHARS = 500


def cap_lines(text: str, limit: int = MAX_LOG_LINE_CHARS) -> str:
    """`text` with every line longer than `limit` cut there and marked with how much was left out."""
    if len(text) <= limit:
        return text
    return "\n".join(line if len(line) <= limit else f"{line[:limit]}… [{len(line) - limit} more characters]"
                     for line in text.split("\n"))


class RedactingStream(io.TextIOBase):
    """A text stream that redacts secrets (and cuts over-long lines, see MAX_LOG_LINE_CHARS) before writing to
    the stream it wraps.

    Line-buffered on purpose: a secret split over two `write` calls (a traceback printed in pieces) is still
    found, because text is passed on only at line ends (and on flush).
    """

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        super().__init__()
        self.wrapped = stream
        self._redact = redact
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:  # type: ignore[override]
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self.wrapped.write(cap_lines(self._redact(complete + "\n")))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.wrapped.write(cap_lines(self._redact(self._pending)))
                self._pending = ""
        self.wrapped.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # buffer, mode, ...: whatever the wrapped stream has
        if name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)


class _RedactingFilter(logging.Filter):
    """Redacts a record's message (and its traceback text) before any handler formats it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact:
            return True
        # Redact the parts, not the joined message, so formatters that read `args` (uvicorn's access log) work.
        if isinstance(record.msg, str):
            record.msg = self._redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            message = None
        if message is not None and self._redact(message) != message:
            # A secret assembled from several arguments (or from a non-string argument's str()).
            record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


_installed: Optional[Redactor] = None


def install_log_redaction(secrets: Iterable[str]) -> Redactor:
    """Keeps `secrets` out of everything the process prints or logs. Idempotent; later calls add secrets.

    Wraps sys.stdout / sys.stderr (print, tracebacks, and log handlers created later write there), and adds a
    filter to the handlers that already exist (they hold the original streams).
    """
    global _installed
    if _installed is not None:
        _installed.add(secrets)
        return _installed
    redact = Redactor(secrets)
    _installed = redact
    originals = {id(sys.stdout): None, id(sys.stderr): None}
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout, redact)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, redact)  # type: ignore[assignment]
    log_filter = _RedactingFilter(redact)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            handler.addFilter(log_filter)
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in originals:
                handler.setStream(RedactingStream(handler.stream, redact))  # type: ignore[arg-type]
    # Records reach handlers added later (uvicorn configures its own at start-up) through this factory.
    previous_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:  # the record's fields, handed on
        record = previous_factory(*args, **kwargs)
        log_filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    return redact


def redact(text: str) -> str:
    """`text` with every secret known to `install_log_redaction` replaced by `***` (unchanged before it ran).

    For messages shown to users: a remote server's error body may quote the API key it was sent.
    """
    return _installed(text) if _installed is not None and isinstance(text, str) else text
