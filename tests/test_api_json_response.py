"""`backend.api.route.json_bytes`: the API's large bodies (/tokenize's ids, /v1/embeddings' vectors) are encoded in
a worker thread a slice at a time, so that the event loop can run between slices; the bytes are JSONResponse's."""

from __future__ import annotations

import threading
import time

import pytest

from backend.api.route import json_bytes

# The ticking thread's longest gap is wall-clock time: alone, never beside another test (pytest.ini).
pytestmark = pytest.mark.alone


def test_sliced_encoding_is_byte_for_byte_what_json_response_sends() -> None:
    from fastapi.responses import JSONResponse

    bodies = [{"count": 3, "tokens": list(range(45_001)), "text": "é\u2028"},
              {"empty": [], "nested": {"deep": [1.5, None, True]}},
              {"data": [{"index": i, "embedding": [0.1, -2.0]} for i in range(40_000)], "model": "m"}]
    for body in bodies:
        assert json_bytes(body) == JSONResponse(body).body


def test_another_thread_runs_while_a_long_list_is_encoded() -> None:
    """One json.dumps of 1.8 million ids holds the GIL ~0.2 s; in slices, a ticking thread is never held that long."""
    ids = list(range(1_800_000))
    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.02)
    begin = time.perf_counter()
    json_bytes({"tokens": ids})
    took = time.perf_counter() - begin
    done.set()
    ticker.join()
    # The longest gap stays a small part of the whole encoding (one call would hold the GIL throughout: ~all of it).
    assert max(gaps) < max(0.5 * took, 0.05), (max(gaps), took)
