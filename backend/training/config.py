"""TrainConfig: everything one training run needs, validated before anything is loaded or trained.

A config is written to `run_dir/config.yaml` and is the only input of the training process
(`python -m backend.training.worker --config run_dir/config.yaml`), so a run can always be reproduced from its
folder. Errors name the field (`field 'label_column': ...`), the same wording in the UI, the CLI and the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.core.config import problem_message
from backend.training.recipes import RECIPES, column_fields, recipe_for
from backend.core.types import InvalidInputError

TrainTask = str  # a key of backend.training.recipes.RECIPES
Method = Literal["full", "lora", "qlora"]
CONFIG_FILE = "config.yaml"


class TrainConfig(BaseModel):
    """One fine-tuning run: base model, data and column mapping, method and hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    task: TrainTask
    base: str = Field(min_length=1)  # a local model folder (the server resolves registry ids to it)
    base_id: Optional[str] = None  # the registry id it came from, for the model card and registration
    adapter: Optional[str] = None  # a LoRA adapter folder over `base` to continue training (a fine-tuned model)
    data: str = Field(min_length=1)  # a .csv / .jsonl / .parquet file
    validation: Optional[str] = None  # a separate validation file; else `validation_fraction` of `data`
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    # classification
    text_column: Optional[str] = None
    label_column: Optional[str] = None
    # sft: a `messages` column (list of {role, content}) or a prompt and a response column
    messages_column: Optional[str] = None
    prompt_column: Optional[str] = None  # sft and dpo
    response_column: Optional[str] = None
    # dpo: the preferred and the less preferred reply (text, or messages)
    chosen_column: Optional[str] = None
    rejected_column: Optional[str] = None
    system_prompt: str = ""

    method: Method = "lora"
    epochs: float = Field(default=3.0, gt=0, le=1000)
    max_steps: int = Field(default=-1, ge=-1, le=1_000_000)  # > 0 overrides epochs; bounded like epochs
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    batch_size: int = Field(default=8, ge=1, le=4096)
    gradient_accumulation: int = Field(default=1, ge=1, le=1024)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, lt=1)
    max_length: int = Field(default=256, ge=8, le=131072)
    seed: int = Field(default=42, ge=0)
    eval_steps: int = Field(default=50, ge=1)
    save_steps: Optional[int] = Field(default=None, ge=1)  # default: eval_steps (the best checkpoint is kept)
    # None: about every tenth of the run, at most every 10 steps (a short run still draws a training-loss line)
    logging_steps: Optional[int] = Field(default=None, ge=1)
    early_stopping_patience: int = Field(default=0, ge=0)  # evaluations without improvement; 0 = off
    auto_find_batch_size: bool = False
    lora_r: int = Field(default=8, ge=1, le=1024)
    lora_alpha: int = Field(default=16, ge=1, le=4096)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: Optional[list[str]] = None  # default: peft's choice for the architecture
    # Modules trained in full next to the adapters and saved with them (e.g. lm_head); a classifier's head
    # always is (peft does that for sequence classification).
    lora_modules_to_save: Optional[list[str]] = None
    dpo_beta: float = Field(default=0.1, gt=0, le=100)  # dpo: how far the model may move from the reference
    device: str = "auto"  # auto, cpu, cuda
    num_gpus: int = Field(default=1, ge=1, le=64)  # > 1: launched with `accelerate launch`
    accelerate_config: Optional[str] = None  # an accelerate config file (DeepSpeed / FSDP)
    register_as: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    share: bool = False  # with logins on: the registered model is everyone's, not only its owner's
    trust_remote_code: bool = False

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in RECIPES:  # the table itself, so a recipe added to it is a task at once
            raise ValueError(f"field 'task': one of {', '.join(RECIPES)}")
        return task

    @model_validator(mode="after")
    def _columns_for_task(self) -> "TrainConfig":
        recipe = recipe_for(self.task)
        mine = {field.name for field in recipe.columns}
        foreign = [field.name for field in column_fields() if field.name not in mine and getattr(self, field.name)]
        if foreign:
            raise ValueError(f"field '{foreign[0]}': not read by {self.task} (it reads "
                             f"{', '.join(field.name for field in recipe.columns)})")
        recipe.check_columns(self)
        recipe.check_config(self)
        if self.adapter and not self.uses_peft:
            raise ValueError("field 'method': the base is a LoRA adapter; continue it with lora or qlora (or merge "
                             "it first for full fine-tuning)")
        if self.lora_target_modules is not None and not self.lora_target_modules:
            raise ValueError("field 'lora_target_modules': leave it out or name at least one module")
        if self.save_steps is not None and self.save_steps % self.eval_steps:
            raise ValueError("field 'save_steps': must be a multiple of 'eval_steps' (the best evaluated "
                             "checkpoint is kept)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("field 'device': use auto, cpu or cuda")
        return self

    @property
    def effective_save_steps(self) -> int:
        return self.save_steps or self.eval_steps

    def logging_steps_for(self, total_steps: int) -> int:
        """`logging_steps`, or by default about ten training-loss points per run (at most every 10 steps)."""
        return self.logging_steps or max(1, min(10, total_steps // 10))

    @property
    def uses_peft(self) -> bool:
        return self.method in ("lora", "qlora")


def parse_train_config(raw: object, where: str = "config") -> TrainConfig:
    """Validates a mapping as a TrainConfig; raises InvalidInputError naming each bad field."""
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where}: expected a mapping of training settings", field=where)
    try:
        return TrainConfig(**raw)
    except ValidationError as error:
        raise InvalidInputError(describe_errors(error, where)) from None


def describe_errors(error: ValidationError, where: str) -> str:
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = problem_message(problem, "unknown field (check the spelling)")
        # Checks across fields carry their field name in the message already.
        lines.append(f"{where}: {message}" if message.startswith("field '") or not field
                     else f"{where}: field '{field}': {message}")
    return "\n".join(lines)


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidInputError(f"{path}: not a valid YAML file: {error}") from None
    return parse_train_config(raw, str(path))


def save_train_config(config: TrainConfig, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
