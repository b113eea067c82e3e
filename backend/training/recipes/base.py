"""The recipe protocol: what one training task (classification, sft, dpo) contributes to a run.

A recipe holds everything that differs between tasks: which columns it reads and how it checks them, how its
data is prepared and previewed, which model class and trainer it uses, its metrics, how its result is saved and
registered, and its model card text. Everything else (the run folder, the training process, progress lines,
Stop / Resume, memory arithmetic, registration) is shared and asks the recipe instead of branching on the task.

Importing a recipe imports no torch, transformers or pandas: the CLI's `--help` and the UI read the table.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, NotRequired, Optional, Protocol, TypeAlias, TypedDict, TypeVar

if TYPE_CHECKING:
    from datasets import Dataset
    from peft import PeftModel
    from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
    from transformers.data.data_collator import DataCollator
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from backend.core.config import ModelSpec
    from backend.training.config import TrainConfig
    from backend.training.data import Preview
    from backend.training.runfiles import ProgressRow

    # What a trainer trains: the base model, or (LoRA, QLoRA) peft's wrapper around it.
    TrainableModel: TypeAlias = HFModel | PeftModel


@dataclass(frozen=True)
class ColumnField:
    """A TrainConfig field that names a column of the data file (the UI's picker, the CLI's option)."""

    name: str  # the TrainConfig field, e.g. "text_column"
    guesses: tuple[str, ...]  # column names the pickers choose by themselves, in order
    help: str = ""  # the CLI option's help
    yields_to: Optional[str] = None  # left unguessed when this other field was guessed (sft: messages wins)


@dataclass(frozen=True)
class MemoryShape:
    """What the memory estimate needs to know about a task beyond the config."""

    num_labels: int = 2  # classification head size (the model is built with it)
    sequences_per_example: int = 1  # dpo: chosen and rejected go through the model together
    lm_logits: bool = False  # logits over the vocabulary are materialised (causal LM loss)
    reference_copy: bool = False  # full fine-tuning holds a frozen copy of the base (dpo's reference model)


class PreparedData(Protocol):
    """What every recipe's prepared data (`Recipe.prepare`) tells the shared code: the size of each split."""

    @property
    def train_count(self) -> int: ...

    @property
    def val_count(self) -> int: ...


Own = TypeVar("Own")


def own_data(data: PreparedData, kind: type[Own]) -> Own:
    """`data` as the recipe's own prepared data (a recipe only ever gets back what its `prepare` returned; the
    shared code holds it as PreparedData, so each recipe names its own class here)."""
    if not isinstance(data, kind):
        raise TypeError(f"{kind.__name__} expected, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class Datasets:
    """What a transformers Trainer takes: datasets, collator and metrics."""

    train: Dataset
    val: Dataset
    collator: Optional[DataCollator] = None
    compute_metrics: Optional[Callable[[EvalPrediction], dict[str, float]]] = None


class TrainerSettings(TypedDict):
    """The TrainingArguments every task shares (backend/training/worker.py fills them from the config)."""

    output_dir: str
    num_train_epochs: float
    max_steps: int
    learning_rate: float
    per_device_train_batch_size: int
    per_device_eval_batch_size: int
    gradient_accumulation_steps: int
    warmup_steps: float  # a ratio below 1
    weight_decay: float
    seed: int
    eval_strategy: str
    eval_steps: int
    save_strategy: str
    save_steps: int
    logging_steps: int
    save_total_limit: int
    load_best_model_at_end: bool
    eval_on_start: bool
    metric_for_best_model: str
    greater_is_better: bool
    auto_find_batch_size: bool
    include_num_input_tokens_seen: str
    use_cpu: bool
    report_to: str
    disable_tqdm: bool
    dataloader_num_workers: int
    bf16: NotRequired[bool]  # on a GPU: bf16 where supported, else fp16
    fp16: NotRequired[bool]


class Recipe(ABC):
    """One training task. Subclasses set the class attributes and implement the abstract methods."""

    task: ClassVar[str]
    title: ClassVar[str]  # the model card's "Fine-tuned for ..."
    pipeline_tag: ClassVar[str]
    base_tasks: ClassVar[tuple[str, ...]]  # registry tasks a base model must offer (any one of them)
    columns: ClassVar[tuple[ColumnField, ...]]
    default_method: ClassVar[str] = "lora"
    generative: ClassVar[bool] = True  # a chat model: registered for chat / generate, LoRA saved as an adapter
    needs_chat_template: ClassVar[bool] = True
    best_metric: ClassVar[str] = "eval_loss"  # TrainingArguments.metric_for_best_model
    greater_is_better: ClassVar[bool] = False
    # (progress key, label) of the evaluation figures the status line and the CLI show, after the losses
    progress_keys: ClassVar[tuple[tuple[str, str], ...]] = ()
    # (progress key, series name) of the second chart; empty: no second chart
    curves: ClassVar[tuple[tuple[str, str], ...]] = ()
    final_keys: ClassVar[tuple[str, ...]] = ("loss",)  # final figures the status line shows
    settings: ClassVar[tuple[str, ...]] = ()  # TrainConfig fields only this task reads (the form shows them)

    # ------------------------------------------------------------------------------------------ config

    @abstractmethod
    def check_columns(self, config: "TrainConfig") -> None:
        """Raises ValueError("field '...': ...") when the column fields do not fit the task."""

    def check_config(self, config: "TrainConfig") -> None:
        """Checks beyond the columns (none by default); raises ValueError naming the field."""

    # -------------------------------------------------------------------------------------------- data

    @abstractmethod
    def prepare(self, config: "TrainConfig") -> PreparedData:
        """Reads and checks the data and splits it; raises InvalidInputError naming the field and row."""

    @abstractmethod
    def preview(self, tokenizer: HFTokenizer, data: PreparedData, config: "TrainConfig") -> "Preview":
        """The first example as the model sees it, and length statistics over all of them."""

    @abstractmethod
    def datasets(self, config: "TrainConfig", tokenizer: HFTokenizer, data: PreparedData) -> Datasets:
        """Tokenized datasets for the trainer."""

    # ------------------------------------------------------------------------------------------- model

    @abstractmethod
    def model_class(self) -> type[_BaseAutoModelClass]:
        """The transformers Auto class of the model trained."""

    def peft_task_type(self) -> str:
        return "CAUSAL_LM"

    def model_kwargs(self, data: PreparedData) -> dict[str, object]:
        """Extra from_pretrained arguments that depend on the data (a classifier's labels), forwarded as they are."""
        return {}

    def memory_shape(self, data: PreparedData) -> MemoryShape:
        return MemoryShape(lm_logits=self.generative)

    def training_arguments(self, config: "TrainConfig", common: TrainerSettings) -> TrainingArguments:
        """The trainer's arguments from the shared settings (TrainingArguments unless the trainer has its own)."""
        from transformers import TrainingArguments

        return TrainingArguments(**common)

    def trainer(self, config: "TrainConfig", model: TrainableModel, tokenizer: HFTokenizer, data: PreparedData,
                arguments: TrainingArguments, callbacks: list[TrainerCallback]) -> Trainer:
        """The trainer of this task; by default transformers' Trainer over `datasets(...)`."""
        from transformers import Trainer

        built = self.datasets(config, tokenizer, data)
        return Trainer(model=model, args=arguments, train_dataset=built.train, eval_dataset=built.val,
                       data_collator=built.collator, processing_class=tokenizer, callbacks=callbacks,
                       compute_metrics=built.compute_metrics)

    def derived(self, row: ProgressRow) -> dict[str, float]:
        """Figures a progress line gains from the logged ones (sft: eval perplexity from eval loss)."""
        return {}

    def final_metrics(self, evaluated: dict[str, float]) -> dict[str, float]:
        """The last evaluation's figures (names without "eval_") plus any derived ones."""
        return evaluated

    def merge_lora_on_save(self) -> bool:
        """Save a LoRA run merged into a full model (True) or as the adapter alone."""
        return not self.generative

    # -------------------------------------------------------------------------------------- registering

    def registry_tasks(self, base_spec: Optional["ModelSpec"]) -> list[str]:
        if self.generative:
            return list(base_spec.tasks) if base_spec is not None else ["chat", "generate"]
        return ["classify"]

    def score(self, final: dict[str, float]) -> str:
        """The headline figure of a finished run (registry description, runs table)."""
        return f"eval loss {final['loss']:.3f}" if "loss" in final else ""

    @abstractmethod
    def card_data_lines(self, config: "TrainConfig") -> list[str]:
        """The model card's lines about the columns and what carries the loss."""

    def result_folder_note(self, kind: str) -> str:
        return "a LoRA adapter over the base model" if kind == "adapter" else "a full model"
