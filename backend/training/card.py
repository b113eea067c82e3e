"""The model card (README.md) of a finished run: base model, data, hyperparameters, final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.training.config import TrainConfig

HYPERPARAMETERS = ("method", "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation",
                   "warmup_ratio", "weight_decay", "max_length", "seed", "lora_r", "lora_alpha", "lora_dropout")


def model_card(config: TrainConfig, metrics: dict[str, Any], kind: str, command: str) -> str:
    task = "text classification" if config.task == "classification" else "chat (supervised fine-tuning)"
    lines = [
        "---",
        f"base_model: {config.base_id or Path(config.base).name}",
        f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
        f"pipeline_tag: {'text-classification' if config.task == 'classification' else 'text-generation'}",
        "tags: [llm-workbench]",
        "---",
        "",
        f"# {config.register_as or Path(config.base).name + '-finetuned'}",
        "",
        f"Fine-tuned for {task} from `{config.base_id or config.base}` with LLM Workbench "
        f"({'a LoRA adapter over the base model' if kind == 'adapter' else 'a full model'}).",
        "",
        "## Data",
        f"- training file: `{Path(config.data).name}`",
        f"- validation: `{Path(config.validation).name}`" if config.validation else
        f"- validation: {config.validation_fraction:.0%} of the training file (seed {config.seed})",
    ]
    if config.task == "classification":
        lines.append(f"- columns: text `{config.text_column}`, label `{config.label_column}`")
    elif config.messages_column:
        lines.append(f"- conversations: column `{config.messages_column}`, loss on assistant tokens only")
    else:
        lines.append(f"- prompt `{config.prompt_column}`, response `{config.response_column}`, loss on the "
                     "response only")
    lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
    values = config.model_dump()
    lines += [f"| {name} | {values[name]} |" for name in HYPERPARAMETERS]
    lines += ["", "## Final evaluation", "", "| metric | value |", "|---|---|"]
    for name, value in sorted((metrics.get("final") or {}).items()):
        lines.append(f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |")
    lines += ["", "## Reproduce", "", "```", command, "```", ""]
    return "\n".join(lines)
