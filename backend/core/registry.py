"""The registry: knows every model in models.yaml, loads each lazily and exactly once, and lets go of them.

- Nothing loads at start-up. The first request loads; concurrent first requests wait for that one load.
- A failed load reaches every waiter as a `ModelLoadError`; the next request tries again.
- Requests hold a *lease* on the engine while they use it, so eviction (LRU over a count or memory bound,
  idle timeout, explicit unload) never pulls weights away from a running stream: a model that is busy is
  unloaded when its last lease ends.
- The list of models is live: `add` and `remove` (a model fine-tuned or deleted while the app runs) bump
  `version` and call the `subscribe`d listeners, so every picker and command sees one registry.
- A fine-tuned model may belong to a user (`ModelSpec.owner`): lookups made for a logged-in user (`viewer`)
  see only the models that user may use; to everyone else such a model is an unknown id.
- The registry never imports an engine: whoever composes it (the app's start-up, a command, a test) hands it the
  engine factory, `backend.engines.create_engine` (which reads the engine table, backend/engines/table.py).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, cast

from backend.core import heap
from backend.core.config import AppConfig, ModelSpec
from backend.core.model_status import slot_status
from backend.engines.base import Engine, LoadedModel
from backend.guard.model_access import PUBLIC, current_viewer, viewing, visible  # noqa: F401 - PUBLIC re-exported
from backend.core.types import (
    ModelLoadError,
    ModelNotFoundError,
    ModelStatus,
    Task,
    UnsupportedTaskError,
)

EngineFactory = Callable[[ModelSpec], LoadedModel]  # backend.engines.create_engine, or a test's wrapper of it
Listener = Callable[[int], None]  # called with the registry's new version after a model is added or removed

logger = logging.getLogger("backend.core.registry")


# transformers' from_pretrained is not thread-safe: two different models loading at the same moment (Compare's sides,
# two users) left a tied weight of a model loaded later in the process on the meta device ("Cannot copy out of meta
# tensor"; tests/test_registry.py). Loads of local weights take turns; serving the models already loaded does not
# wait on this lock.
_WEIGHTS_LOAD_LOCK = threading.Lock()


@dataclass
class _Slot:
    """Everything the registry tracks about one entry."""

    spec: ModelSpec
    engine: Optional[Engine] = None
    loading: Optional[Future] = None
    loading_since: Optional[float] = None
    leases: int = 0
    last_used: float = 0.0  # when a request last started: the order for LRU eviction
    idle_since: float = 0.0  # when the last request ended: the clock for idle unload
    last_error: Optional[str] = None
    unload_when_idle: bool = False
    load_count: int = 0
    described: dict = field(default_factory=dict)  # engine facts cached at load (device, dtype, memory ...)


class Registry:
    def __init__(self, config: AppConfig, engine_factory: EngineFactory) -> None:
        self.config = config
        self._factory = engine_factory
        self._slots = {spec.id: _Slot(spec) for spec in config.models}
        self._lock = threading.RLock()
        self._reaper: Optional[threading.Thread] = None
        self._closed = threading.Event()
        self._version = 0
        self._listeners: list[Listener] = []
        # Who is asking, when no `viewing_as` says: the UI sets this to "the logged-in user of the request being
        # served" (ui/common/registry_sync.py). None (the default, the CLI, background threads): everything is visible.
        self.viewer: Callable[[], Optional[str]] = lambda: None

    # ------------------------------------------------------------------------------------------ lookup

    def current_viewer(self) -> Optional[str]:
        return current_viewer(self.viewer)

    @contextmanager
    def viewing_as(self, viewer: Optional[str]) -> Iterator[None]:
        """Lookups inside the block are for `viewer` (PUBLIC: what a page shows before anyone logged in; None:
        every model, for the app's own upkeep)."""
        with viewing(viewer):
            yield

    def specs(self, task: Optional[Task] = None) -> list[ModelSpec]:
        """The models the current viewer may use (for `task`), in registry order."""
        slots = list(self._slots.values())  # a snapshot: another thread may add or remove a model meanwhile
        viewer = self.current_viewer()
        return [slot.spec for slot in slots
                if (task is None or task in slot.spec.tasks) and visible(slot.spec, viewer)]

    def all_ids(self) -> frozenset[str]:
        """Every entry's id, whoever may see it (for the registry's own upkeep, never for a user's list)."""
        return frozenset(self._slots)

    def taken(self, model_id: str) -> bool:
        """Whether any entry has this id, whoever may see it (a new model's id must be free)."""
        return model_id in self._slots

    def spec(self, model_id: str, task: Optional[Task] = None) -> ModelSpec:
        """The entry for `model_id`; raises a clear error for an unknown id or a task it does not do."""
        slot = self._slots.get(model_id) if isinstance(model_id, str) else None
        if slot is None or not visible(slot.spec, self.current_viewer()):
            raise self._unknown(model_id)
        if task is not None and task not in slot.spec.tasks:
            able = ", ".join(spec.id for spec in self.specs(task)) or "none"
            raise UnsupportedTaskError(
                f"model '{model_id}' does not do '{task}' (it does: {', '.join(slot.spec.tasks)}); "
                f"models that do: {able}"
            )
        return slot.spec

    def _unknown(self, model_id: object) -> ModelNotFoundError:
        known = ", ".join(spec.id for spec in self.specs()) or "none"
        return ModelNotFoundError(f"unknown model {model_id!r}; models in this registry: {known}")

    def ids(self, task: Optional[Task] = None) -> frozenset[str]:
        return frozenset(spec.id for spec in self.specs(task))

    # ------------------------------------------------------------------------------------------ changes

    @property
    def version(self) -> int:
        """Goes up by one whenever a model is added or removed: a reader that saw another number re-reads."""
        return self._version

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener(version)` after every change (in the changing thread); returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def add(self, spec: ModelSpec) -> None:
        """Adds an entry while the app runs (a model just fine-tuned); an id already there is refused."""
        with self._lock:
            if spec.id in self._slots:
                raise ValueError(f"model id '{spec.id}' is already in the registry")
            self._slots[spec.id] = _Slot(spec)
            self.config = self.config.model_copy(update={"models": self.config.models + (spec,)})
            version = self._bump()
        self._notify(version)

    def remove(self, model_id: str) -> None:
        """Takes an entry out (its run deleted, its overlay entry gone): new requests no longer find it, the
        requests using it finish, and its weights are unloaded when the last one ends."""
        self.spec(model_id)
        with self._lock:
            slot = self._slots.pop(model_id)
            self.config = self.config.model_copy(
                update={"models": tuple(spec for spec in self.config.models if spec.id != model_id)})
            # Also when it is still loading: the loader's lease ends in _release, which then closes it.
            slot.unload_when_idle = True
            if slot.engine is not None and not slot.leases:
                self._close_slot(slot)
            version = self._bump()
        self._notify(version)

    def _bump(self) -> int:
        self._version += 1
        return self._version

    def _notify(self, version: int) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may read the registry
            try:
                listener(version)
            except Exception:  # one broken listener must not stop the others, nor the change itself
                logger.exception("registry listener failed")

    # -------------------------------------------------------------------------------------- use / load

    @contextmanager
    def lease(self, model_id: str, task: Optional[Task] = None) -> Iterator[Engine]:
        """Loads the model if needed and keeps it loaded while the `with` block runs."""
        self.spec(model_id, task)
        slot, engine = self._acquire(model_id)
        try:
            yield engine
        finally:
            self._release(slot)

    def load(self, model_id: str) -> ModelStatus:
        """Loads now (e.g. the Models tab's Load button) and returns the status."""
        with self.lease(model_id):
            pass
        return self.status_of(model_id)

    def _acquire(self, model_id: str) -> tuple[_Slot, Engine]:
        while True:
            with self._lock:
                slot = self._slots.get(model_id)
                if slot is None:  # removed while this request waited for its load
                    raise self._unknown(model_id)
                slot.unload_when_idle = False
                if slot.engine is not None:
                    slot.leases += 1
                    slot.last_used = time.monotonic()
                    return slot, slot.engine
                future = slot.loading
                i_load = future is None
                if i_load:
                    future = slot.loading = Future()
                    slot.loading_since = time.monotonic()
            assert future is not None  # the load under way, or the one this call starts
            if i_load:
                return slot, self._load_into(slot, future)
            try:
                future.result()
            except ModelLoadError:
                raise
            # Loaded by someone else; loop to take a lease under the lock (it may have been evicted since).

    def _load_into(self, slot: _Slot, future: Future) -> Engine:
        """Runs the one load for this slot, outside the registry lock so other models stay usable."""
        try:
            # A task engine or a classifier is a LoadedModel that is no Engine: leases check what it offers.
            if slot.spec.backend == "transformers":
                with _WEIGHTS_LOAD_LOCK:  # see its comment: one local load at a time in a process
                    engine = cast(Engine, self._factory(slot.spec))
            else:  # a remote entry's "load" is a client and a health check: no shared state to guard
                engine = cast(Engine, self._factory(slot.spec))
        except BaseException as error:
            message = str(error) if isinstance(error, ModelLoadError) else (
                f"model '{slot.spec.id}': load failed: {type(error).__name__}: {error}")
            load_error = error if isinstance(error, ModelLoadError) else ModelLoadError(message)
            with self._lock:
                slot.loading = None
                slot.loading_since = None
                slot.last_error = message
            future.set_exception(load_error)
            if load_error is error:
                raise
            raise load_error from error
        with self._lock:
            slot.engine = engine
            slot.loading = None
            slot.loading_since = None
            slot.last_error = None
            slot.load_count += 1
            slot.leases += 1
            slot.last_used = time.monotonic()
            slot.described = _describe(engine)
            self._enforce_bounds(keep=slot.spec.id)
        future.set_result(engine)
        self._start_reaper()
        # What the load imported (torch, transformers: ~330,000 objects) is long-lived: out of full collections.
        heap.freeze_survivors()
        return engine

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.leases -= 1
            slot.idle_since = time.monotonic()
            if slot.leases == 0 and slot.unload_when_idle:
                self._close_slot(slot)
            self._enforce_bounds()

    # ---------------------------------------------------------------------------------------- unload

    def unload(self, model_id: str) -> ModelStatus:
        """Unloads now, or as soon as the requests using it finish."""
        self.spec(model_id)
        with self._lock:
            slot = self._slots[model_id]
            if slot.engine is not None:
                if slot.leases:
                    slot.unload_when_idle = True
                else:
                    self._close_slot(slot)
        return self.status_of(model_id)

    def unload_all(self) -> None:
        with self.viewing_as(None):  # every model, whoever asks (closing the app)
            for model_id in self.all_ids():
                self.unload(model_id)

    def close(self) -> None:
        self._closed.set()
        self.unload_all()

    def wait_closed(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds; True once `close` was called (background followers then stop)."""
        return self._closed.wait(timeout)

    def _close_slot(self, slot: _Slot) -> None:
        engine, slot.engine = slot.engine, None
        slot.unload_when_idle = False
        slot.described = {}
        if engine is not None:
            engine.close()

    def _enforce_bounds(self, keep: Optional[str] = None) -> None:
        """Evicts least-recently-used idle models while over the count or memory bound."""
        settings = self.config.settings
        memory_limit = settings.max_loaded_memory_gb * 1024**3 if settings.max_loaded_memory_gb else None
        while True:
            # Only backend transformers holds weights here: the others (a server) never count against the bounds.
            loaded = [s for s in self._slots.values() if s.engine is not None and s.spec.backend == "transformers"]
            memory = sum(s.described.get("memory_bytes") or 0 for s in loaded)
            over = len(loaded) > settings.max_loaded_models or (memory_limit is not None and memory > memory_limit)
            idle = [s for s in loaded if s.leases == 0 and s.spec.id != keep]
            if not over or not idle:
                return  # under the bound, or everything is busy: evict when a lease ends
            self._close_slot(min(idle, key=lambda s: s.last_used))

    def _start_reaper(self) -> None:
        """Idle unload runs in one daemon thread, started on the first load (never at start-up)."""
        idle_after = self.config.settings.idle_unload_seconds
        if idle_after is None or self._reaper is not None:
            return
        self._reaper = threading.Thread(target=self._reap_idle, args=(idle_after,), name="registry-idle-unload",
                                        daemon=True)
        self._reaper.start()

    def _reap_idle(self, idle_after: float) -> None:
        while not self._closed.wait(min(idle_after / 4, 5.0)):
            now = time.monotonic()
            with self._lock:
                for slot in self._slots.values():
                    if slot.engine is not None and slot.leases == 0 and now - slot.idle_since >= idle_after:
                        self._close_slot(slot)

    # ---------------------------------------------------------------------------------------- status

    def load_count(self, model_id: str) -> int:
        return self._slots[model_id].load_count

    def status(self) -> list[ModelStatus]:
        """The status of every model the current viewer may use."""
        with self._lock:  # one consistent list, even while a model is added or removed
            return [self.status_of(spec.id) for spec in self.specs()]

    def status_of(self, model_id: str) -> ModelStatus:
        with self._lock:
            return slot_status(self._slots[model_id])


def _describe(engine: Engine) -> dict:
    try:
        return dict(engine.describe())
    except Exception:  # status must never break because one engine cannot describe itself
        return {}

