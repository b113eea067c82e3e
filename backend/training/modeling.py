"""The model and tokenizer of a run: the base checkpoint (with what the task's recipe adds, e.g. a new
classification head), LoRA or QLoRA adapters from peft, and the saved result (a full model, or an adapter over
its base). Imported by the training process and by memory estimates; transformers / peft are imported inside the
functions."""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer
from pathlib import Path
from typing import TYPE_CHECKING

from backend.core.error_codes import refuse
from backend.training.config import TrainConfig
from backend.training.recipes import recipe_for
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from peft import LoraConfig

    from backend.training.recipes import PreparedData
    from backend.training.recipes.base import TrainableModel


def peft_config(config: TrainConfig, model: HFModel = None) -> LoraConfig:
    """LoRA settings; target modules default to peft's choice for the architecture."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType[recipe_for(config.task).peft_task_type()],
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules, modules_to_save=config.lora_modules_to_save,
    )


def check_qlora_possible() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; say so before anything is loaded."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise refuse("qlora_gpu", "method")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidInputError("field 'method': qlora needs the bitsandbytes package (pip install bitsandbytes)",
                                field="method")


def load_tokenizer(config: TrainConfig) -> HFTokenizer:
    from transformers import AutoTokenizer

    # An adapter run saved its tokenizer (and chat template) next to the adapter: continue with that one.
    source = config.adapter if config.adapter and (Path(config.adapter) / "tokenizer_config.json").is_file() \
        else config.base
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:  # causal LMs often ship without one; padding with eos is the usual choice
        tokenizer.pad_token = tokenizer.eos_token
    if recipe_for(config.task).needs_chat_template and not tokenizer.chat_template:
        raise refuse("no_chat_template", "base", base=config.base)
    return tokenizer


def load_model(config: TrainConfig, device: str, data: PreparedData) -> TrainableModel:
    """The base model ready to train: fp32 on CPU, bf16 / fp16 base weights under LoRA on a GPU. `data` is the
    recipe's prepared data (a classifier's labels size its head)."""
    import torch

    recipe = recipe_for(config.task)
    kwargs: dict[str, object] = {"trust_remote_code": config.trust_remote_code, **recipe.model_kwargs(data)}
    if device == "cuda" and config.uses_peft:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32  # full fine-tuning: fp32 master weights, autocast does the rest
    if config.method == "qlora":
        check_qlora_possible()
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kwargs["dtype"])
    model = recipe.model_class().from_pretrained(config.base, **kwargs)
    if not recipe.generative and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id  # batches of several texts need a pad id
    if not config.uses_peft:
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(model)
    if config.adapter:  # continued training: the fine-tuned adapter's weights, trainable, instead of a new one
        from peft import PeftModel

        return PeftModel.from_pretrained(model, config.adapter, is_trainable=True)
    return get_peft_model(model, peft_config(config, model))


def trained_model(model: object) -> TrainableModel:
    """The trainer's model (typed as any torch module) as what `load_model` handed it."""
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return model
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model
    raise TypeError(f"a transformers or peft model expected, got {type(model).__name__}")


def save_result(model: TrainableModel, tokenizer: HFTokenizer, config: TrainConfig, folder: Path) -> str:
    """Saves what the registry will load; returns its kind: "adapter" (LoRA over the base) or "full".

    A classifier is always saved whole (LoRA merged in): its new head and labels belong to the model, and
    encoders are small. A chat model's LoRA run is saved as the adapter alone, loaded over its base with peft.
    """
    folder.mkdir(parents=True, exist_ok=True)
    kind = "full"
    if config.uses_peft and recipe_for(config.task).merge_lora_on_save():
        model = model.merge_and_unload()  # type: ignore[operator]  # a PeftModel here (uses_peft)
    elif config.uses_peft:
        kind = "adapter"
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return kind


def merge_adapter(base: str, adapter: str | Path, out: str | Path, trust_remote_code: bool = False) -> Path:
    """An adapter merged into its base model, saved as a full safetensors folder (export, or faster loading)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto", trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter if (Path(adapter) / "tokenizer_config.json").is_file() else base,
                                  trust_remote_code=trust_remote_code).save_pretrained(out)
    return out
