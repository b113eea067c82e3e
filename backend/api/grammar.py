"""Grammar builds for constrained decoding (`response_format`, a forced tool call), off the event loop and bounded.

llguidance compiles a JSON Schema into a grammar; a large schema takes long (a 370 kB one: ~0.5 s here), and built
on the event loop it stalled every other request of the server (the UI's included). Here a schema over
`MAX_SCHEMA_BYTES` is refused at once, and the build runs in a worker process with `MAX_BUILD_S` to finish. The
build also builds the grammar's matcher and first mask once (backend/services/structured.py), the work the decode
step would otherwise meet unannounced inside a batch; over its CPU bound the schema is refused too. Every refusal
is a 400 naming the request field.

A process, not a thread: parts of llguidance hold the GIL (compiling the schema; dropping a large matcher took
~1 s with it held), and while another thread holds the GIL the event loop gets it back only between those parts,
so a worker thread still stretched `GET /config` to 3 s during one costly build. Two worker processes, started
on first use (they import llguidance only), build at most two grammars at once.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import multiprocessing
import os
import threading
import time
from typing import Callable, Optional, Sequence

from backend.api.errors import ApiError, bad_request
from backend.core.errors import InvalidInputError
from backend.core.json_types import JSONObject, JSONOutput
from backend.services.structured import grammar_for_schema, grammar_for_tool_call

MAX_SCHEMA_BYTES = 64 * 1024  # as JSON text; real schemas are a few kB
MAX_BUILD_S = 10.0
BUILDERS = 2  # builds at once: each holds a CPU core
_POOL: Optional[concurrent.futures.ProcessPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ProcessPoolExecutor:
    """The builders' processes (spawned: a fork would copy the server, its threads and its models)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ProcessPoolExecutor(BUILDERS, mp_context=multiprocessing.get_context("spawn"),
                                                           initializer=_exit_with_parent, initargs=(os.getpid(),))
            atexit.register(_close_pool)
        return _POOL


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """In each builder: ends it once the server that started it is gone. A server stopped by a signal (SIGTERM,
    SIGKILL, an out-of-memory kill) runs no atexit, and an idle builder waits on its queue for ever: found as
    orphans after test runs, each holding llguidance in memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _close_pool() -> None:
    """Stops the builders at exit and drops the pool while the interpreter is whole: collected later, during
    shutdown, its finaliser printed "Exception ignored in ... weakref_cb" (multiprocessing already torn down)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


async def schema_grammar(schema: Optional[JSONObject], field: str = "response_format") -> str:
    """The grammar of `response_format`'s JSON Schema."""
    return await _build(grammar_for_schema, (schema, field), schema, field)


async def tool_call_grammar(tools: Sequence[JSONObject], name: Optional[str]) -> str:
    """The grammar of one call to `name` (or any of `tools`), its arguments following the tool's parameters."""
    return await _build(grammar_for_tool_call, (tools, name), tools, "tools")


async def _build(build: Callable[..., str], arguments: tuple[object, ...], source: JSONOutput, field: str) -> str:
    size = len(json.dumps(source))
    if size > MAX_SCHEMA_BYTES:
        raise bad_request(f"{field}: the JSON Schema is {size:,} bytes, over the limit of {MAX_SCHEMA_BYTES:,}; "
                          "send a smaller schema", param=field, code="schema_too_large")
    try:
        future = asyncio.get_running_loop().run_in_executor(_pool(), build, *arguments)
        return await asyncio.wait_for(future, MAX_BUILD_S)
    except InvalidInputError as error:
        if error.code == "grammar_too_complex":
            raise ApiError(400, str(error), param=field, code="schema_too_complex") from None
        raise
    except asyncio.TimeoutError:
        # The build finishes on its own (the size bound keeps that short); the request is answered now.
        raise ApiError(400, f"{field}: the JSON Schema took over {MAX_BUILD_S:g} s to compile (waiting included); "
                       "simplify it", param=field, code="schema_too_complex") from None
