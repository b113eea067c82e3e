"""The server's long-lived Python objects are kept out of the garbage collector's full collections.

CPython's full (oldest-generation) collection walks every tracked object in the process, holding the GIL
throughout, in whichever thread happened to allocate. In the served app that is ~560,000 objects once a local model
has loaded (the modules, classes and functions of torch, transformers, gradio; the models themselves are a few
thousand): 0.27-0.41 CPU-s per collection, every 2-4 s while requests allocate (a `/config` copies the page's
913 kB config each time). Each one stopped every thread: the event loop, `/config`, the request being served
(docs/RELIABILITY.md, "Full garbage collections", issue 27).

`gc.freeze()` moves the objects alive at that moment to a permanent generation that collections skip; they are
still freed by reference counting, only reference cycles among them wait for the next `collect_everything`.
The server freezes after start-up and after each model load (`freeze_survivors`, once `enable` was called:
a process that does not serve, such as a test run or a training worker, keeps Python's default), and every
unload collects with the frozen objects included (`collect_everything`, from the engines' `release_memory`),
so an unloaded model's cycles are freed as before.
"""

from __future__ import annotations

import gc

_enabled = False


def enable() -> None:
    """Lets `freeze_survivors` freeze in this process (the server calls it once at start-up)."""
    global _enabled
    _enabled = True


def freeze_survivors() -> None:
    """Everything alive moves to the permanent generation (a no-op unless enabled). The young generations are
    collected first; not the oldest: a full collection here (0.3-0.5 CPU-s after the first model load) would stop
    every thread once more, while requests are served. What became garbage in the oldest generation since its last
    collection is frozen with the rest (if it is in reference cycles) until the next unload."""
    if _enabled:
        gc.collect(1)
        gc.freeze()


def collect_everything() -> None:
    """A full collection that includes the frozen objects (an unloaded model's reference cycles among them), then
    the survivors are frozen again where freezing is enabled."""
    gc.unfreeze()
    gc.collect()
    if _enabled:
        gc.freeze()
