"""The registry overlay: fine-tuned models registered by training runs, kept in a file next to the runs
(`<runs root>/registry-overlay.yaml`) and merged into the registry at start-up. The user's models.yaml is never
edited. An overlay entry that is no longer valid (its run folder deleted, an id now taken by models.yaml) is
left out with a note, so a stale overlay can never keep the app from starting.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Optional

import yaml

from backend.guard import user_space
from backend.core.config import AppConfig, ModelSpec, check_adapter
from backend.core.json_types import JSONObject
from backend.training import runfiles
from backend.training.config import TrainConfig
from backend.training.recipes import recipe_for
from backend.core.types import ConfigError, InvalidInputError

OVERLAY_FILE = "registry-overlay.yaml"
_lock = threading.Lock()


def overlay_path(root: Optional[Path] = None) -> Path:
    return (root if root is not None else user_space.runs_root()) / OVERLAY_FILE


def read_entries(root: Optional[Path] = None) -> list[JSONObject]:
    path = overlay_path(root)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        print(f"note: {path} is unreadable ({error}); fine-tuned models in it are not registered", file=sys.stderr)
        return []
    entries = raw.get("models") if isinstance(raw, dict) else None
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def valid_specs(entries: list[JSONObject], taken: set[str], where: Path) -> list[ModelSpec]:
    specs = []
    for index, entry in enumerate(entries):
        try:
            spec = ModelSpec.model_validate(entry)
            check_adapter(spec, index, where)
            if spec.id in taken:
                raise ConfigError(f"id '{spec.id}' is already used")
            local = spec.local_path()
            if local is not None and not (local / "config.json").is_file():
                raise ConfigError(f"field 'source': {local} is not a model folder any more")
        except (ConfigError, ValueError) as error:
            print(f"note: {where}: entry {entry.get('id')!r} left out: {error}".replace("\n", " "), file=sys.stderr)
            continue
        specs.append(spec)
        taken.add(spec.id)
    return specs


def with_overlay(config: AppConfig, root: Optional[Path] = None) -> AppConfig:
    """`config` plus the overlay's valid entries (models.yaml wins on an id clash)."""
    specs = valid_specs(read_entries(root), {spec.id for spec in config.models}, overlay_path(root))
    return config.model_copy(update={"models": config.models + tuple(specs)}) if specs else config


def add_entry(entry: JSONObject, root: Optional[Path] = None) -> None:
    """Appends (or replaces by id) an entry in the overlay file, atomically."""
    path = overlay_path(root)
    with _lock:
        entries = [old for old in read_entries(root) if old.get("id") != entry["id"]] + [entry]
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(yaml.safe_dump({"models": entries}, sort_keys=False, allow_unicode=True),
                             encoding="utf-8")
        os.replace(temporary, path)


def entry_for_run(run_dir: Path, config: TrainConfig, metrics: runfiles.RunMetrics, model_id: str,
                  base_spec: Optional[ModelSpec] = None, model_dir: Optional[Path] = None) -> JSONObject:
    """The registry entry of a finished run: a full model folder, or the adapter over its base. `model_dir`: a
    full model made from the run other than its own `model/` (its merged model)."""
    merged = model_dir is not None
    model_dir = (model_dir or run_dir / runfiles.MODEL).resolve()
    if metrics.get("status") != "completed" or not (model_dir / "config.json").is_file() and \
            not (model_dir / "adapter_config.json").is_file():
        raise InvalidInputError(f"run {run_dir.name} has no finished model to register")
    recipe = recipe_for(config.task)
    tasks = recipe.registry_tasks(base_spec)
    score = recipe.score(metrics.get("final") or {})
    entry: JSONObject = {
        "id": model_id, "name": f"{model_id} (fine-tuned)",
        "description": f"Fine-tuned from {config.base_id or Path(config.base).name} by run {run_dir.name}"
                       + (" (adapter merged into a full model)" if merged else "")
                       + (f"; {score}" if score else ""),
        "tasks": [*tasks], "backend": "transformers", "dtype": base_spec.dtype if base_spec is not None else "auto",
    }
    if metrics.get("model_kind") == "adapter" and not merged:
        entry.update(source=str(Path(config.base).resolve()) if Path(config.base).is_dir() else config.base,
                     adapter=str(model_dir))
    else:
        entry["source"] = str(model_dir)
    owner = owner_of(run_dir)
    if owner is not None:  # a run of a user's own folder: their model, shared with everyone only when asked
        entry.update(owner=owner, shared=bool(config.share))
    if base_spec is not None:
        for name in ("device", "max_context", "chat_template", "examples"):
            value = getattr(base_spec, name)
            if value and (name != "examples" or recipe.generative):
                entry[name] = list(value) if isinstance(value, tuple) else value
        if recipe.generative:
            entry["generation"] = base_spec.generation.model_dump()
    return entry


def owner_of(run_dir: Path) -> Optional[str]:
    """The user folder a run lives in (`<root>/users/<user>/train/<run>`), or None for a run elsewhere (`--out`
    of the CLI: the operator's, everyone's)."""
    parts = run_dir.resolve().parts
    if len(parts) >= 4 and parts[-2] == "train" and parts[-4] == "users":
        return parts[-3]
    return None
