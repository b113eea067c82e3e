"""What a checkpoint says about itself, read from its files on this machine (a local folder or the Hub cache) without
loading it or downloading anything: its config.json, or where one of its files is.

Only the standard library here (huggingface_hub inside the function): models.yaml's validation (backend/core/config.py)
and the task modules (backend/tasks/) read checkpoints through it, and the task modules sit below the config, which
validates entries through the task table. backend/core/config.py re-exports both names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # annotations only: model_spec validates entries through the task table, which reads this module
    from backend.core.model_spec import ModelSpec


def read_checkpoint_config(spec: "ModelSpec") -> dict[str, Any]:
    """The checkpoint's config.json if it is on this machine (local folder or Hub cache), else {}."""
    config_file = checkpoint_file(spec, "config.json")
    if config_file is None:
        return {}
    try:
        return json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def checkpoint_file(spec: "ModelSpec", filename: str) -> Optional[Path]:
    """Where `filename` of the checkpoint is on disk without downloading, or None."""
    if not spec.source:
        return None
    local = spec.local_path()
    if local is not None:
        candidate = local / filename
        return candidate if candidate.is_file() else None
    from huggingface_hub import try_to_load_from_cache  # light import; no network

    try:
        cached = try_to_load_from_cache(spec.source, filename, revision=spec.revision)
    except Exception:  # malformed repo ids raise here; the loader gives the full error later
        return None
    return Path(cached) if isinstance(cached, str) else None
