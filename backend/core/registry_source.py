"""The one list of models the server and every command use: models.yaml plus the runs' overlay (fine-tuned models
registered by training runs, backend/training/overlay.py), read through `registry_config` / `open_registry`.

`python app.py serve`, `eval`, `data` and `train` all open their registry here, so a model registered by
`app.py train --register` or by the Train tab is known to every one of them. A served app also follows the
overlay file while it runs (`OverlayFollower`): a model another process registers (the CLI, a second server)
appears in the live registry within seconds, and one whose overlay entry is gone is removed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Union

from backend.core.config import AppConfig, load_config
from backend.core.registry import EngineFactory, Registry

FOLLOW_EVERY_S = 2.0


def registry_config(models: Union[str, Path], runs_root: Optional[Path] = None) -> AppConfig:
    """models.yaml (errors name the entry and field) plus the valid entries of `<runs root>/registry-overlay.yaml`;
    models.yaml wins an id clash. `runs_root` defaults to $WORKBENCH_RUNS_DIR (backend/guard/user_space.py)."""
    from backend.training.overlay import with_overlay  # pydantic and yaml only: no torch

    return with_overlay(load_config(models), runs_root)


def open_registry(models: Union[str, Path], runs_root: Optional[Path] = None, follow: bool = False, *,
                  engine_factory: EngineFactory) -> Registry:
    """A registry over `registry_config(models, runs_root)` that loads its engines with `engine_factory` (the
    caller composes it: `backend.engines.create_engine`). `follow=True` (a server) also keeps it in step with the
    overlay file until the registry is closed."""
    base = load_config(models)
    from backend.training.overlay import with_overlay

    registry = Registry(with_overlay(base, runs_root), engine_factory)
    if follow:
        OverlayFollower(registry, base, runs_root).start()
    return registry


class OverlayFollower:
    """Applies changes of the overlay file to a live registry: new valid entries are added, entries that left
    the file (or became invalid: their model folder deleted) are removed. Entries of models.yaml are never
    touched. Reads the file only when its modification time or size changed."""

    def __init__(self, registry: Registry, base: AppConfig, runs_root: Optional[Path] = None,
                 every_s: float = FOLLOW_EVERY_S) -> None:
        from backend.training.overlay import overlay_path

        self.registry = registry
        self.path = overlay_path(runs_root)
        self.runs_root = runs_root
        self.every_s = every_s
        self._fixed = {spec.id for spec in base.models}  # models.yaml's ids
        self._seen = self._stamp()
        self._from_overlay = registry.all_ids() - self._fixed

    def _stamp(self) -> Optional[tuple[int, int]]:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def sync(self) -> bool:
        """One look at the file; True when the registry changed."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        from backend.training.overlay import read_entries, valid_specs

        specs = valid_specs(read_entries(self.runs_root), set(self._fixed), self.path)
        wanted = {spec.id for spec in specs}
        changed = False
        for spec in specs:
            if not self.registry.taken(spec.id):
                try:
                    self.registry.add(spec)
                    changed = True
                except ValueError:  # added meanwhile (the Train tab registers in this process too)
                    pass
        for gone in self._from_overlay - wanted:
            if self.registry.taken(gone):
                with self.registry.viewing_as(None):  # the follower's own upkeep: every model
                    self.registry.remove(gone)
                changed = True
        self._from_overlay = frozenset(wanted)
        return changed

    def start(self) -> threading.Thread:
        """Follows the file in a daemon thread until the registry is closed (reads no model, loads nothing)."""
        thread = threading.Thread(target=self._run, name="registry-overlay-follower", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while not self.registry.wait_closed(self.every_s):
            try:
                self.sync()
            except Exception as error:  # noqa: BLE001 - a bad file must not end the following for good
                import sys

                print(f"note: {self.path}: not followed this time ({type(error).__name__}: {error})",
                      file=sys.stderr)
