"""The model card (README.md) of a finished run: base model, lineage, data, hyperparameters, final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from backend.training import runfiles
from backend.training.config import TrainConfig, load_train_config
from backend.training.recipes import recipe_for
from backend.core.types import InvalidInputError

MAX_LINEAGE = 64  # a chain of runs longer than this is cut (and a loop of folders can never hang a card)

HYPERPARAMETERS = ("method", "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation",
                   "warmup_ratio", "weight_decay", "max_length", "seed", "lora_r", "lora_alpha", "lora_dropout")


def model_card(config: TrainConfig, metrics: runfiles.RunMetrics, kind: str, command: str) -> str:
    recipe = recipe_for(config.task)
    lines = [
        "---",
        f"base_model: {config.base_id or Path(config.base).name}",
        f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
        f"pipeline_tag: {recipe.pipeline_tag}",
        "tags: [llm-workbench]",
        "---",
        "",
        f"# {config.register_as or Path(config.base).name + '-finetuned'}",
        "",
        f"Fine-tuned for {recipe.title} from `{config.base_id or config.base}` with LLM Workbench "
        f"({recipe.result_folder_note(kind)}).",
        "",
        "## Data",
        f"- training file: `{Path(config.data).name}`",
        f"- validation: `{Path(config.validation).name}`" if config.validation else
        f"- validation: {config.validation_fraction:.0%} of the training file (seed {config.seed})",
        *recipe.card_data_lines(config),
    ]
    lines += ["", "## Lineage", "", " → ".join(f"`{name}`" for name in lineage(config)) + " → this model"]
    lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
    values = config.model_dump()
    lines += [f"| {name} | {values[name]} |" for name in HYPERPARAMETERS]
    lines += ["", "## Final evaluation", "", "| metric | value |", "|---|---|"]
    for name, value in sorted((metrics.get("final") or {}).items()):
        lines.append(f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |")
    lines += ["", "## Reproduce", "", "```", command, "```", ""]
    return "\n".join(lines)


def lineage(config: TrainConfig) -> list[str]:
    """Where the model came from, oldest first: the first base model, then every run it was continued from (by
    the id that run registered, else its folder name). Read from the runs' own folders: a fine-tuned base is a
    run's `model/` (or `merged/`) folder, or its adapter is."""
    chain: list[str] = []
    seen: set[Path] = set()
    parent = parent_run(config)
    while parent is not None and parent not in seen and len(chain) < MAX_LINEAGE:
        seen.add(parent)
        try:
            earlier = load_train_config(parent / runfiles.CONFIG)
        except InvalidInputError:
            break  # an unreadable config: the chain ends at this run, named by its folder
        chain.append(runfiles.read_metrics(parent).get("registered_as") or parent.name)
        config, parent = earlier, parent_run(earlier)
    chain.append(config.base_id or Path(config.base).name)
    return chain[::-1]


def parent_run(config: TrainConfig) -> Optional[Path]:
    """The run folder whose result this config continues (its adapter, or its full model as the base), if any."""
    from backend.training.merge import MERGED

    folder = Path(config.adapter or config.base)
    run = folder.parent
    if folder.name in (runfiles.MODEL, MERGED) and (run / runfiles.CONFIG).is_file():
        return run.resolve()
    return None
