"""backend/core/heap.py: the server keeps its long-lived objects out of full garbage collections (gc.freeze after
start-up and after each model load), and an unload still frees a model held only by a reference cycle."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Iterator

import pytest

from backend.core import heap
from backend.core.registry import Registry


@pytest.fixture
def freezing() -> Iterator[None]:
    """Freezing on, as in the server, for one test; off and everything unfrozen afterwards (this test process is
    no server: the other tests keep Python's default)."""
    heap.enable()
    try:
        yield
    finally:
        heap._enabled = False
        gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def full_collection_s() -> float:
    begin = time.process_time()
    gc.collect()
    return time.process_time() - begin


def test_freezing_is_off_unless_the_server_turns_it_on() -> None:
    gc.unfreeze()
    heap.freeze_survivors()
    assert gc.get_freeze_count() == 0


def test_frozen_objects_leave_full_collections_and_an_unload_still_collects_their_cycles(freezing: None) -> None:
    node = Node()
    ref = weakref.ref(node)
    before = min(full_collection_s() for _ in range(3))
    heap.freeze_survivors()
    assert gc.get_freeze_count() > 10_000  # this process's modules, classes, functions, the node
    after = min(full_collection_s() for _ in range(3))
    assert after < before / 2, (before, after)  # only what was made since the freeze is walked
    del node
    gc.collect()
    assert ref() is not None  # frozen: a plain collection leaves the cycle alone
    heap.collect_everything()  # what an unload runs (backend/engines/loading.py release_memory)
    assert ref() is None
    assert gc.get_freeze_count() > 10_000  # the survivors are frozen again


def test_a_model_frozen_at_its_load_is_freed_by_its_unload(registry: Registry, freezing: None) -> None:
    with registry.lease("tiny-chat") as engine:
        model = engine.model  # type: ignore[attr-defined]
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the load froze what it imported and the model
        model.__dict__["_cycle"] = model  # held by a reference cycle too: reference counting alone cannot free it
        model_ref = weakref.ref(model)
    del engine, model
    registry.unload("tiny-chat")
    assert model_ref() is None, "the unloaded model was kept by the frozen generation"
