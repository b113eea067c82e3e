"""How much memory a run needs (weights, gradients, optimizer states, activations) against what the device has.

The model is built on the `meta` device from its config.json (no weights read, no memory used), so the parameter
counts are exact, LoRA's included (peft wraps the meta model). Activations use the usual transformer estimate
(per layer: batch x length x hidden x 34 bytes at 16 bits, plus the attention scores) plus the logits; it is an
estimate, said as one, with a margin before "does not fit".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional

from backend.training.config import TrainConfig
from backend.training.recipes import MemoryShape, recipe_for

if TYPE_CHECKING:
    from transformers import PretrainedConfig

Verdict = Literal["fits", "tight", "too_big"]
TIGHT_FRACTION = 0.8  # above this share of the device's memory a run may still fit, or may not
GIB = 1024 ** 3


@dataclass
class MemoryEstimate:
    parameters: int
    trainable: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    available_bytes: int
    device: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes

    @property
    def verdict(self) -> Verdict:
        if self.total_bytes > self.available_bytes:
            return "too_big"
        return "tight" if self.total_bytes > TIGHT_FRACTION * self.available_bytes else "fits"

    def describe(self) -> str:
        parts = ", ".join(f"{name} {_size(value)}" for name, value in (
            ("weights", self.weights_bytes), ("gradients", self.gradients_bytes),
            ("optimizer", self.optimizer_bytes), ("activations", self.activations_bytes)))
        head = (f"Estimated {_size(self.total_bytes)} of {_size(self.available_bytes)} available on {self.device} "
                f"({parts}); {self.trainable:,} of {self.parameters:,} parameters trained.")
        if self.verdict == "too_big":
            return head + " It does not fit: lower the batch size or max length, use LoRA, or a bigger device."
        if self.verdict == "tight":
            return head + " It may not fit: consider a smaller batch size or 'find the batch size automatically'."
        return head + " It fits."

    def as_dict(self) -> dict[str, int | str]:
        return {"parameters": self.parameters, "trainable": self.trainable, "weights_bytes": self.weights_bytes,
                "gradients_bytes": self.gradients_bytes, "optimizer_bytes": self.optimizer_bytes,
                "activations_bytes": self.activations_bytes, "total_bytes": self.total_bytes,
                "available_bytes": self.available_bytes, "device": self.device, "verdict": self.verdict}


def _size(value: int) -> str:
    return f"{value / GIB:.2f} GiB" if value >= GIB / 10 else f"{value / 1024 ** 2:.1f} MiB"


def training_device(config: TrainConfig) -> str:
    import torch

    if config.device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def available_memory(device: str) -> int:
    """Total memory of the first GPU, or the memory the system has free for a CPU run."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[1])
    import psutil

    return int(psutil.virtual_memory().available)


def count_parameters(config: TrainConfig, shape: Optional[MemoryShape] = None) -> tuple[int, int, PretrainedConfig]:
    """(all parameters, trainable parameters, model config) of the run's model, built on the meta device."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    from backend.training.modeling import peft_config

    recipe = recipe_for(config.task)
    shape = shape or MemoryShape()
    model_config = AutoConfig.from_pretrained(config.base, trust_remote_code=config.trust_remote_code)
    if not recipe.generative:
        model_config.num_labels = shape.num_labels
    with init_empty_weights():
        model = recipe.model_class().from_config(model_config, trust_remote_code=config.trust_remote_code)
    total = sum(parameter.numel() for parameter in model.parameters())
    if not config.uses_peft:
        return total, total, model_config
    from peft import get_peft_model

    with init_empty_weights():
        wrapped = get_peft_model(model, peft_config(config, model))
    trainable = sum(parameter.numel() for parameter in wrapped.parameters() if parameter.requires_grad)
    return sum(parameter.numel() for parameter in wrapped.parameters()), trainable, model_config


def estimate_memory(config: TrainConfig, shape: Optional[MemoryShape] = None,
                    device: Optional[str] = None) -> MemoryEstimate:
    """`shape` comes from the task's recipe and its data (`Recipe.memory_shape`); default: one sequence per
    example, two labels."""
    device = device or training_device(config)
    shape = shape or MemoryShape()
    total, trainable, model_config = count_parameters(config, shape)
    half = device == "cuda"
    frozen = total - trainable
    if config.method == "qlora":
        weights = frozen // 2 + trainable * 4  # 4-bit base, fp32 adapters
    elif config.uses_peft:
        weights = frozen * (2 if half else 4) + trainable * 4
    else:
        weights = total * 4  # full fine-tuning keeps fp32 master weights (mixed precision computes in 16 bits)
        if shape.reference_copy:  # a frozen reference model next to the trained one
            weights += total * (2 if half else 4)
    gradients = trainable * 4
    optimizer = trainable * 8  # AdamW: two fp32 moments per trained parameter
    activations = _activation_bytes(config, model_config, half, shape)
    return MemoryEstimate(parameters=total, trainable=trainable, weights_bytes=weights, gradients_bytes=gradients,
                          optimizer_bytes=optimizer, activations_bytes=activations,
                          available_bytes=available_memory(device), device=device)


def _activation_bytes(config: TrainConfig, model_config: PretrainedConfig, half: bool, shape: MemoryShape) -> int:
    text_config = getattr(model_config, "text_config", None) or model_config
    hidden = int(getattr(text_config, "hidden_size", 768))
    layers = int(getattr(text_config, "num_hidden_layers", 12))
    heads = int(getattr(text_config, "num_attention_heads", 12))
    vocab = int(getattr(text_config, "vocab_size", 32000))
    batch, length = config.batch_size * shape.sequences_per_example, config.max_length
    scale = 1 if half else 2  # the 34-byte figure is for 16-bit activations
    per_layer = batch * length * hidden * 34 + 5 * batch * heads * length * length
    logits = batch * length * vocab * 4 * 2 if shape.lm_logits else 0  # fp32 logits and their gradient
    return layers * per_layer * scale + logits
