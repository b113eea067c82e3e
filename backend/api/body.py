"""Reading a route's JSON body before FastAPI does, so that no body can make a route fail with a 500.

`read_json(request, max_bytes)` reads the body once and answers, as a field-named 400 (or 413), what FastAPI and
pydantic would otherwise turn into a 500 or a vague "error parsing the body":

- bytes that are not UTF-8: the body is decoded with `surrogateescape`, so a bad byte inside a string becomes a
  lone surrogate and the error names that string's field (`messages[0].content: is not valid UTF-8 ...`);
- nesting deeper than `MAX_JSON_DEPTH` (a 100,000-deep array raised RecursionError in json.loads, in pydantic
  and in the lone-surrogate check): the field where it passes the limit is named;
- lone UTF-16 surrogates (`"\\ud800"`: valid JSON, not text; it failed deep inside a tokenizer).

The parsed value is handed to Starlette's request (`_json`), so FastAPI does not parse the body a second time
(if Starlette ever stops caching there, FastAPI parses it again: slower, never wrong).
"""

from __future__ import annotations

import json
import re
from typing import Iterator, Optional, Union

from fastapi import Request

from backend.api.errors import ApiError, bad_request, field_path
from backend.guard.request_checks import first_surrogate, surrogate_message

# 8 MB: an embeddings batch or a 64-prompt completions batch fits; the server's own body limit
# (WORKBENCH_MAX_BODY_MB, backend/guard/limits.py) is usually lower and answers first.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Real requests nest a few levels (a JSON Schema in response_format or tools: tens at most).
MAX_JSON_DEPTH = 64
# Bytes 0x80-0xFF that are not UTF-8 become these lone surrogates under `surrogateescape`.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Checks the JSON body of `request` (when it sends one FastAPI would parse) and caches the parsed value."""
    raw = await request.body()
    if not raw or not _is_json(request.headers.get("content-type")):
        return
    if len(raw) > max_bytes:
        raise ApiError(413, f"the request body ({len(raw):,} bytes) is over this route's limit of {max_bytes:,} bytes",
                       code="request_too_large")
    try:
        text = raw.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        text, utf8 = raw.decode("utf-8", "surrogateescape"), False
    try:
        value = json.loads(text)
    except RecursionError:
        where = deep_path(text, MAX_JSON_DEPTH)
        raise _too_deep(where) from None
    except ValueError as error:
        detail = "" if utf8 else " (it is not even valid UTF-8)"
        raise bad_request(f"the request body must be JSON (Content-Type: application/json){detail}: {error}",
                          code="invalid_json") from None
    problem = first_problem(value, utf8)
    if problem is not None:
        raise problem
    request._json = value  # Starlette's cache of request.json(), which FastAPI reads


def _is_json(content_type: Optional[str]) -> bool:
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _too_deep(where: Optional[str]) -> ApiError:
    text = f"nests deeper than {MAX_JSON_DEPTH} levels"
    return bad_request(f"{where}: {text}" if where else f"the request body {text}", param=where or None,
                       code="too_deep")


def first_problem(value: object, utf8: bool = True) -> Optional[ApiError]:
    """The first field (in document order) nested too deep or holding text that is not valid, as a 400."""
    for loc, item in _walk(value):
        if len(loc) > MAX_JSON_DEPTH:
            return _too_deep(field_path(loc) or None)
        if not isinstance(item, (str, dict)):
            continue
        for text in (item,) if isinstance(item, str) else item.keys():
            if not isinstance(text, str):
                continue
            bad = first_surrogate(text)
            if bad is None:
                continue
            where = field_path(loc) or "body"
            code = ord(text[_first_bad(text)])
            if not utf8 and code in _ESCAPED_BYTES:
                return bad_request(f"{where}: is not valid UTF-8 (byte 0x{code - 0xDC00:02x}); send text as UTF-8",
                                   param=where, code="invalid_text")
            return bad_request(surrogate_message(where, bad), param=where, code="invalid_text")
    return None


def _first_bad(text: str) -> int:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return 0


Location = tuple[Union[str, int], ...]  # keys and indexes from the body's root


def _walk(value: object) -> Iterator[tuple[Location, object]]:
    """(location, value) for `value` and everything in it, in document order, without recursion."""
    stack: list[tuple[Location, object]] = [((), value)]
    while stack:
        loc, item = stack.pop()
        yield loc, item
        if len(loc) > MAX_JSON_DEPTH:
            continue  # reported by the caller; nothing below it needs looking at
        if isinstance(item, dict):
            stack.extend(((*loc, key), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*loc, index), child) for index, child in reversed(list(enumerate(item))))


# JSON's structural tokens, with strings skipped whole (a bracket inside a string is text).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


def deep_path(text: str, limit: int) -> Optional[str]:
    """The field path where JSON `text` first nests deeper than `limit`, found without parsing it (for a body
    json.loads cannot parse at all because of its depth); None if it never does or the text is not JSON."""
    loc: list[Union[str, int, None]] = []  # None: in an object, before its first key
    kinds: list[str] = []
    key: Optional[str] = None
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            if len(loc) > limit:  # this container sits at `loc`, as deep as `first_problem` counts
                return field_path(loc) or None
            kinds.append(token)
            loc.append(0 if token == "[" else None)
        elif token in "]}":
            if kinds:
                kinds.pop()
                loc.pop()
        elif token == ",":
            index = loc[-1] if kinds and kinds[-1] == "[" else None
            if isinstance(index, int):
                loc[-1] = index + 1
        elif token == ":":
            if kinds and kinds[-1] == "{":
                loc[-1] = key
        else:  # a string: remember it, it may be a key
            try:
                key = json.loads(token)
            except ValueError:
                key = token[1:-1]
    return None
