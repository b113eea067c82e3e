"""The model card (README.md) of a finished run: base model, data, hyperparameters, final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.training.config import TrainConfig
from backend.training.recipes import recipe_for

HYPERPARAMETERS = ("method", "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation",
                   "warmup_ratio", "weight_decay", "max_length", "seed", "lora_r", "lora_alpha", "lora_dropout")


def model_card(config: TrainConfig, metrics: dict[str, Any], kind: str, command: str) -> str:
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
    lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
    values = config.model_dump()
    lines += [f"| {name} | {values[name]} |" for name in HYPERPARAMETERS]
    lines += ["", "## Final evaluation", "", "| metric | value |", "|---|---|"]
    for name, value in sorted((metrics.get("final") or {}).items()):
        lines.append(f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |")
    lines += ["", "## Reproduce", "", "```", command, "```", ""]
    return "\n".join(lines)
