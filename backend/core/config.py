"""models.yaml: loading, and the checks that need more than one entry or the checkpoint on disk.

Every error names the file, the entry and the field, so a typo is fixed in one look instead of being
discovered on the first request. Only the standard library, pydantic and yaml are imported here: validating
the registry must not pull torch in. The schema lives in backend/core/model_spec.py (one entry) and
backend/core/app_settings.py (the whole file); its names are re-exported here, where the rest of the app imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from backend.core.app_settings import (  # noqa: F401 - re-exported: `from backend.core.config import AppConfig`
    LOGO_MAX_BYTES,
    LOGO_SUFFIXES,
    AppConfig,
    PresenterGeneration,
    PresenterSettings,
    RegistrySettings,
)
from backend.core.checkpoint import checkpoint_file, read_checkpoint_config  # noqa: F401 - re-exported
from backend.core.model_spec import Backend, Dtype, GenerationDefaults, ModelSpec, Quantization  # noqa: F401
from backend.tasks import catalog as task_catalog
from backend.core.types import ConfigError, Task

# Architectures (from a checkpoint's config.json) grouped by the tasks they can serve. Suffix matching on
# the class name is how transformers itself names heads, so it covers new model families without a list.
_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
_CLASSIFIER_SUFFIXES = ("ForSequenceClassification",)
_TASK_FAMILY: dict[Task, tuple[str, ...]] = {
    "chat": _GENERATIVE_SUFFIXES,
    "generate": _GENERATIVE_SUFFIXES,
    "classify": _CLASSIFIER_SUFFIXES,
    "zero_shot": _CLASSIFIER_SUFFIXES,
}


# --------------------------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> AppConfig:
    """Reads and validates models.yaml; raises ConfigError naming the file, entry and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; pass --models PATH to a registry file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(raw, path)


def parse_config(raw: object, path: Path) -> AppConfig:
    """Validates already-parsed YAML (a dict) as the registry defined in `path`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'models' list at the top")
    base_dir = path.resolve().parent
    entries = raw.get("models")
    if isinstance(entries, list):
        _check_duplicate_ids(entries, path)
        raw = {
            **raw,
            "models": [
                {**entry, "base_dir": base_dir} if isinstance(entry, dict) else entry for entry in entries
            ],
        }
    try:
        config = AppConfig(**raw, source_file=path)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, raw, path)) from None
    except TypeError as error:
        raise ConfigError(f"{path}: {error}") from None
    for index, spec in enumerate(config.models):
        _check_tasks_against_checkpoint(spec, index, path)
        check_adapter(spec, index, path)
    return config


def check_adapter(spec: ModelSpec, index: int, path: Path) -> None:
    """An `adapter:` must be a PEFT adapter folder (adapter_config.json) on this machine."""
    folder = spec.adapter_path()
    if folder is not None and not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{path}: entry '{spec.id}' (models[{index}]), field 'adapter': {folder} is not a PEFT "
                          "adapter folder (no adapter_config.json there)")


def _check_duplicate_ids(entries: list[object], path: Path) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        model_id = entry["id"]
        if model_id in seen:
            raise ConfigError(
                f"{path}: entry '{model_id}' (models[{index}]), field 'id': duplicate id, already used by "
                f"models[{seen[model_id]}]; every id must be unique"
            )
        seen[model_id] = index


def _describe_validation_error(error: ValidationError, raw: Mapping[str, object], path: Path) -> str:
    """One line per problem: file, entry (by id when it has one) and field, then what is wrong."""
    lines = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = f"{path}:"
        if len(location) >= 2 and location[0] == "models" and isinstance(location[1], int):
            index = location[1]
            entries = raw.get("models")
            entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            label = f"entry '{entry_id}' (models[{index}])" if entry_id else f"models[{index}]"
            field_path = ".".join(str(part) for part in location[2:])
            # Checks across fields name their field in the message itself.
            where += f" {label}, field '{field_path}':" if field_path else f" {label},"
        elif location:
            where += f" field '{'.'.join(str(part) for part in location)}':"
        message = problem_message(problem, "unknown field (check the spelling; see models.yaml in the repository for "
                                           "the fields)")
        lines.append(f"{where} {message}")
    return "\n".join(lines)


def problem_message(problem: ErrorDetails, unknown_field: str) -> str:
    """What a pydantic validation problem says, in plain words: `unknown_field` for a field the model does not
    have, and a validator's own message without pydantic's "Value error, " prefix."""
    message = problem["msg"]
    if problem["type"] == "extra_forbidden":
        return unknown_field
    if problem["type"] == "missing":
        return "required field is missing"
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    return message


def _check_tasks_against_checkpoint(spec: ModelSpec, index: int, path: Path) -> None:
    """Refuses a task the checkpoint's architecture cannot do, when its config.json is at hand."""
    architectures = read_checkpoint_config(spec).get("architectures") or []
    if not architectures:
        return  # not downloaded yet, or no architecture recorded: checked again when loading
    for task in spec.tasks:
        if task in task_catalog.PIPELINE_TASKS:
            if not any(task_catalog.serves(task, arch) for arch in architectures):
                raise ConfigError(
                    f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': task '{task}' needs "
                    f"{task_catalog.needs(task)}, but {spec.source} is {', '.join(architectures)}"
                )
            continue
        if not any(arch.endswith(_TASK_FAMILY[task]) for arch in architectures):
            raise ConfigError(
                f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': task '{task}' needs a model of "
                f"type *{' / *'.join(_TASK_FAMILY[task])}, but {spec.source} is {', '.join(architectures)}"
            )
    if "zero_shot" in spec.tasks:
        labels = {str(label).lower() for label in (read_checkpoint_config(spec).get("label2id") or {})}
        if not any(label.startswith("entail") for label in labels):
            raise ConfigError(
                f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': 'zero_shot' needs an NLI model "
                f"with an 'entailment' label; {spec.source} has labels {sorted(labels)}"
            )
