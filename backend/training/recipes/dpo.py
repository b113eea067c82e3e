"""Direct Preference Optimization with TRL's DPOTrainer: pairs of a prompt, a chosen and a rejected reply.

The data is a preference dataset saved by the Data tab (`prompt` a list of messages, `chosen` / `rejected` one
assistant message each: TRL's conversational format), or any file with prompt / chosen / rejected text columns,
or chosen / rejected conversations that share their opening turns (the prompt is that shared part). Every pair is
rendered through the model's own chat template. LoRA by default: the reference model is then the same model with
its adapters disabled (TRL does that when `ref_model` is None and the model is a peft model), so no second copy
of the weights is held. Progress lines carry TRL's reward metrics: reward margin (chosen minus rejected implicit
reward) and reward accuracy (the share of pairs whose chosen reply has the higher reward).
"""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.training.recipes.base import (ColumnField, Datasets, MemoryShape, PreparedData, Recipe,
                                           TrainerSettings, own_data)
from backend.training.recipes.sft import Conversation, SFTRecipe, messages_of, train_and_validation
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from backend.training.recipes.base import TrainableModel

    from backend.training.config import TrainConfig
    from backend.training.data import Preview

Pair = dict[str, Conversation]  # {"prompt": [...], "chosen": [...], "rejected": [...]}


@dataclass
class PreferenceData:
    train: list[Pair]
    val: list[Pair]

    @property
    def train_count(self) -> int:
        return len(self.train)

    @property
    def val_count(self) -> int:
        return len(self.val)


def prepare_preferences(config: "TrainConfig") -> PreferenceData:
    train, val = train_and_validation(config, pairs_from_table, "preference pairs")
    return PreferenceData(train=train, val=val)


def pairs_from_table(table: "pd.DataFrame", config: "TrainConfig", what: str) -> list[Pair]:
    """Every row as {prompt, chosen, rejected} conversations, checked cell by cell."""
    names = [("chosen_column", config.chosen_column), ("rejected_column", config.rejected_column)]
    if config.prompt_column:
        names.insert(0, ("prompt_column", config.prompt_column))
    for field, column in names:
        if column not in table.columns:
            raise InvalidInputError(f"field '{field}' ({what} file): there is no column '{column}'; the columns are "
                                    f"{list(table.columns)[:20]}", field=field)
    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    pairs = []
    for row, record in enumerate(table.to_dict("records"), start=1):
        chosen = _turns(record[config.chosen_column], row, "chosen_column", what)
        rejected = _turns(record[config.rejected_column], row, "rejected_column", what)
        if config.prompt_column:
            prompt = _turns(record[config.prompt_column], row, "prompt_column", what, role="user")
        else:  # conversations that share their opening turns: those are the prompt
            shared = 0
            while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
                shared += 1
            if shared == 0:
                raise InvalidInputError(f"field 'prompt_column': row {row} of the {what} file: without a prompt "
                                        "column, chosen and rejected must be conversations that start with the same "
                                        "prompt messages", field="prompt_column")
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        for field, reply in (("chosen_column", chosen), ("rejected_column", rejected)):
            if reply[-1]["role"] != "assistant":
                raise InvalidInputError(f"field '{field}': row {row} of the {what} file does not end with an "
                                        "assistant reply", field=field)
        if chosen == rejected:
            raise InvalidInputError(f"field 'rejected_column': row {row} of the {what} file: the rejected reply is "
                                    "the same as the chosen one (nothing to prefer)", field="rejected_column")
        if prompt[0]["role"] != "system":
            prompt = system + prompt
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def _turns(value: object, row: int, field: str, what: str, role: str = "assistant") -> Conversation:
    """A cell as messages: plain text is one message of `role`; a list (or JSON text of one) is checked."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        if not value.strip():
            raise InvalidInputError(f"field '{field}': row {row} of the {what} file is empty", field=field)
        return [{"role": role, "content": value}]
    if value is None or isinstance(value, float):  # pandas reads an empty cell as None or NaN
        raise InvalidInputError(f"field '{field}': row {row} of the {what} file is empty", field=field)
    messages = messages_of(value, row, field, what)
    if not any(message["content"].strip() for message in messages):
        raise InvalidInputError(f"field '{field}': row {row} of the {what} file is empty", field=field)
    return messages


@dataclass
class PairTokens:
    prompt: list[int]
    chosen: list[int]  # the completion's tokens, after the prompt
    rejected: list[int]


def tokenize_pair(tokenizer: HFTokenizer, pair: Pair) -> PairTokens:
    """As TRL tokenizes a conversational pair: the prompt with the generation prompt, the completions as what
    prompt + reply adds after the tokens they share."""

    def ids(messages: Conversation, generation_prompt: bool = False) -> list[int]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    prompt = ids(pair["prompt"], generation_prompt=True)
    chosen = ids(pair["prompt"] + pair["chosen"])
    rejected = ids(pair["prompt"] + pair["rejected"])
    shared = 0
    while shared < min(len(prompt), len(chosen), len(rejected)) and \
            prompt[shared] == chosen[shared] == rejected[shared]:
        shared += 1
    return PairTokens(prompt=prompt[:shared], chosen=chosen[shared:], rejected=rejected[shared:])


def preview_preferences(tokenizer: HFTokenizer, data: PreferenceData, max_length: int) -> "Preview":
    """The first pair (prompt, then the chosen and the rejected reply, which carry the loss) and length
    statistics over all pairs; the longer of each pair's two sequences counts."""
    from backend.training.data import Preview, length_stats, marked_segments

    tokens = [tokenize_pair(tokenizer, pair) for pair in data.train]
    if all(len(pair.prompt) >= max_length for pair in tokens):
        raise InvalidInputError(f"field 'max_length': every prompt is at least {max_length} tokens long, so no reply "
                                "would be left to compare; raise max length", field="max_length")
    first = tokens[0]
    segments = marked_segments(tokenizer, first.prompt + first.chosen,
                               [False] * len(first.prompt) + [True] * len(first.chosen))
    segments.append(("\n  ✗ rejected: ", False))
    segments += marked_segments(tokenizer, first.rejected, [True] * len(first.rejected))
    lengths = [len(pair.prompt) + max(len(pair.chosen), len(pair.rejected)) for pair in tokens]
    loss_tokens = sum(max(0, min(len(pair.prompt) + len(reply), max_length) - len(pair.prompt))
                      for pair in tokens for reply in (pair.chosen, pair.rejected))
    return Preview(segments=segments, stats=length_stats(lengths, max_length, loss_tokens))


class DPORecipe(Recipe):
    task = "dpo"
    title = "chat (direct preference optimization)"
    pipeline_tag = "text-generation"
    base_tasks = ("chat",)
    columns = (ColumnField("prompt_column", ("prompt", "instruction", "question", "input"),
                           "sft / dpo: the prompts (dpo: optional when chosen / rejected are whole conversations)"),
               ColumnField("chosen_column", ("chosen", "preferred", "accepted"), "dpo: the preferred replies"),
               ColumnField("rejected_column", ("rejected", "dispreferred"), "dpo: the replies to prefer less"))
    progress_keys = (("rewards/margins", "reward margin"), ("rewards/accuracies", "reward accuracy"),
                     ("eval_rewards/margins", "eval reward margin"),
                     ("eval_rewards/accuracies", "eval reward accuracy"))
    curves = (("rewards/margins", "reward margin"), ("rewards/accuracies", "reward accuracy"),
              ("eval_rewards/margins", "eval reward margin"), ("eval_rewards/accuracies", "eval reward accuracy"))
    final_keys = ("loss", "rewards/accuracies", "rewards/margins")
    settings = ("dpo_beta",)

    def check_columns(self, config: "TrainConfig") -> None:
        for name in ("chosen_column", "rejected_column"):
            if not getattr(config, name):
                raise ValueError(f"field '{name}': required for dpo")

    def check_config(self, config: "TrainConfig") -> None:
        # TRL computes log-probabilities from lm_head.weight directly: an adapter or a trained copy there is ignored.
        for name in ("lora_target_modules", "lora_modules_to_save"):
            if "lm_head" in (getattr(config, name) or []):
                raise ValueError(f"field '{name}': dpo reads the output layer's weights directly, so lm_head cannot "
                                 "be adapted or trained here; leave it out")

    def prepare(self, config: "TrainConfig") -> PreferenceData:
        return prepare_preferences(config)

    def preview(self, tokenizer: HFTokenizer, data: PreparedData, config: "TrainConfig") -> "Preview":
        return preview_preferences(tokenizer, own_data(data, PreferenceData), config.max_length)

    def datasets(self, config: "TrainConfig", tokenizer: HFTokenizer, data: PreparedData) -> Datasets:
        from datasets import Dataset

        data = own_data(data, PreferenceData)
        return Datasets(Dataset.from_list(data.train), Dataset.from_list(data.val))

    def model_class(self) -> type[_BaseAutoModelClass]:
        return SFTRecipe().model_class()

    def memory_shape(self, data: PreparedData) -> MemoryShape:
        # Chosen and rejected in one batch; TRL's fused head computes log-probabilities in chunks (no full logits).
        return MemoryShape(sequences_per_example=2, reference_copy=True)

    def training_arguments(self, config: "TrainConfig", common: TrainerSettings) -> TrainingArguments:
        from trl import DPOConfig

        settings: TrainerSettings = {"bf16": False, **common}
        return DPOConfig(**settings, beta=config.dpo_beta, max_length=config.max_length,
                         gradient_checkpointing=False)  # DPOConfig turns both on by default; the run decides

    def trainer(self, config: "TrainConfig", model: TrainableModel, tokenizer: HFTokenizer, data: PreparedData,
                arguments: TrainingArguments, callbacks: list[TrainerCallback]) -> Trainer:
        from trl import DPOConfig, DPOTrainer

        if not isinstance(arguments, DPOConfig):  # what training_arguments above returns
            raise TypeError(f"DPOConfig expected, got {type(arguments).__name__}")

        built = self.datasets(config, tokenizer, data)
        # ref_model None: with a peft model TRL's reference is the base with the adapters disabled; with full
        # fine-tuning it loads a frozen copy of the base.
        return DPOTrainer(model=model, ref_model=None, args=arguments, train_dataset=built.train,
                          eval_dataset=built.val, processing_class=tokenizer, callbacks=callbacks)

    def score(self, final: dict[str, float]) -> str:
        if "rewards/accuracies" in final:
            return f"reward accuracy {final['rewards/accuracies']:.3f}"
        return super().score(final)

    def card_data_lines(self, config: "TrainConfig") -> list[str]:
        prompt = f"prompt `{config.prompt_column}`, " if config.prompt_column else "prompt: the shared opening turns, "
        return [f"- preference pairs: {prompt}chosen `{config.chosen_column}`, rejected `{config.rejected_column}`",
                f"- DPO (sigmoid loss), beta {config.dpo_beta}; reference: "
                f"{'the base model (adapters disabled)' if config.uses_peft else 'a frozen copy of the base model'}"]
