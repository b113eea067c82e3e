"""Shared loading and unloading for local transformers engines: device, dtype, weights, memory release."""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer
import ctypes
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import torch

from backend.core import heap
from backend.core.config import ModelSpec, checkpoint_file
from backend.core.json_types import JSONObject
from backend.core.hub import HUB, download_hint
from backend.core.types import ModelLoadError

if TYPE_CHECKING:
    from backend.tasks.base import ModelClass


def resolve_device(spec: ModelSpec) -> str:
    """auto means cuda, then mps, then cpu; an explicit device that is not there is a clear error."""
    wanted = spec.device
    if spec.quantization == "int8":
        return "cpu"  # dynamic int8 kernels are CPU kernels (the entry's check refuses any other device)
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"model '{spec.id}', field 'device': {wanted} asked for, but no CUDA GPU is visible; "
                             "use device: auto or cpu")
    if wanted == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"model '{spec.id}', field 'device': mps asked for, but it is not available here")
    return wanted


def resolve_dtype(spec: ModelSpec, device: str) -> torch.dtype:
    """auto: float32 on CPU (half precision is slow or unsupported there), bf16 or fp16 on accelerators."""
    if spec.dtype != "auto":
        return getattr(torch, spec.dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def model_source(spec: ModelSpec) -> str:
    if spec.is_gguf:  # a GGUF checkpoint: its folder or repo; the file goes in as `gguf_file` (load_pretrained)
        from backend.engines.llama_cpp_source import gguf_location

        return gguf_location(spec)[0]
    local = spec.local_path()
    if local is not None:
        if not (local / "config.json").is_file():
            raise ModelLoadError(
                f"model '{spec.id}', field 'source': {local} is not a model folder (no config.json there)"
            )
        return str(local)
    assert spec.source is not None  # a local entry without a folder names a Hub repo (backend/core/config.py checks)
    return spec.source


def from_pretrained_kwargs(spec: ModelSpec, device: str, dtype: torch.dtype) -> dict[str, object]:
    """Keyword arguments shared by every `from_pretrained` call for this entry."""
    kwargs: dict[str, object] = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.quantization and spec.quantization != "int8":  # int8 is applied after loading: quantize_int8
        if not device.startswith("cuda"):
            raise ModelLoadError(
                f"model '{spec.id}', field 'quantization': {spec.quantization} quantization needs a CUDA GPU "
                f"(bitsandbytes), and this model runs on {device}; remove the field or run on a GPU"
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=spec.quantization == "4bit", load_in_8bit=spec.quantization == "8bit"
        )
    if device == "cuda" and (torch.cuda.device_count() > 1 or spec.quantization):
        # accelerate spreads a model over several GPUs (and places quantized weights); on one GPU a plain
        # .to("cuda") does the job without accelerate's per-module dispatch hooks.
        kwargs["device_map"] = "auto"
    elif device.startswith("cuda:") and spec.quantization:
        kwargs["device_map"] = device
    return kwargs


def explain_load_failure(spec: ModelSpec, error: BaseException) -> ModelLoadError:
    """Maps the common failures to what the user should do about them."""
    text = str(error)
    if "trust_remote_code" in text:
        return ModelLoadError(
            f"model '{spec.id}': {spec.source} needs custom code from its repository. It is refused because "
            "'trust_remote_code' is off; set trust_remote_code: true in models.yaml only for a repository you trust."
        )
    if isinstance(error, OSError) and ("offline" in text.lower() or "couldn't connect" in text.lower()
                                       or "cannot find the requested files" in text.lower()):
        return ModelLoadError(
            f"model '{spec.id}': the weights of {spec.source} are not on this machine and the Hub cannot be "
            f"reached; {download_hint(spec.source)}"
        )
    if type(error).__name__ == "SafetensorError" or "deserializ" in text.lower():
        return ModelLoadError(
            f"model '{spec.id}': the weights of {spec.source} are damaged or incomplete ({type(error).__name__}: "
            f"{text}); download them again or fix 'source'"
        )
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return ModelLoadError(
            f"model '{spec.id}': out of memory while loading. Unload other models, use a smaller dtype or "
            "quantization, or set max_loaded_models lower."
        )
    return ModelLoadError(f"model '{spec.id}': could not load {spec.source}: {type(error).__name__}: {text}")


def release_memory(device: str | None) -> None:
    """Returns freed memory to the system: collect cycles (the frozen long-lived objects included: an unloaded
    model may have been frozen with them, backend/core/heap.py), empty the CUDA cache, trim the C heap."""
    heap.collect_everything()
    if device and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()
    if sys.platform.startswith("linux"):
        # glibc keeps freed arenas mapped; without this RSS stays high after unloading.
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass


def memory_footprint(model: HFModel) -> int:
    try:
        return int(model.get_memory_footprint())
    except Exception:
        return sum(p.numel() * p.element_size() for p in model.parameters())


def device_of(model: HFModel) -> str:
    devices = getattr(model, "hf_device_map", None)
    if devices:
        distinct = sorted({f"cuda:{place}" if isinstance(place, int) else str(place) for place in devices.values()})
        return distinct[0] if len(distinct) == 1 else "+".join(distinct)
    return str(next(model.parameters()).device)


def prefer_shape_free_attention() -> None:
    """Turns off cuDNN's scaled-dot-product attention backend (flash and memory-efficient attention remain).

    cuDNN builds an execution plan for every new (batch size, sequence length) it sees: on an H200 that cost
    ~60 ms per new shape, so a batch size never seen before paid ~2 s in its first 32 decode steps, and batching
    makes batch sizes vary all the time. The other backends take any shape at full speed (docs/BENCHMARKS.md)."""
    torch.backends.cuda.enable_cudnn_sdp(False)


def load_pretrained(spec: ModelSpec, model_class: ModelClass) -> tuple[HFModel, HFTokenizer, str, float]:
    """Tokenizer and model for `spec` with `model_class` (an Auto* class), placed on the resolved device.

    Returns (model, tokenizer, device, load seconds); a failure frees what was allocated and becomes a
    ModelLoadError that says what to do.
    """
    from transformers import AutoTokenizer

    started = time.perf_counter()
    device = resolve_device(spec)
    dtype = resolve_dtype(spec, device)
    if device.startswith("cuda"):
        prefer_shape_free_attention()
    source = model_source(spec)
    kwargs = from_pretrained_kwargs(spec, device, dtype)
    if hub_checked_offline(spec):
        kwargs["local_files_only"] = True  # cached weights load without waiting on an unreachable Hub
    # A GGUF checkpoint is dequantized by transformers (float32 on the CPU; needs the `gguf` package).
    gguf = {"gguf_file": spec.gguf_file or Path(spec.source or "").name} if spec.is_gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision,
                                                  trust_remote_code=spec.trust_remote_code,
                                                  local_files_only=kwargs.get("local_files_only", False), **gguf)
        model = model_class.from_pretrained(source, **kwargs, **gguf)
        model = apply_adapter(spec, model)
        if "device_map" not in kwargs:
            model.to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) hides the bound signature
        model.eval()
        if spec.quantization == "int8":
            quantize_int8(model)
    except Exception as error:
        release_memory(device)
        raise explain_load_failure(spec, error) from error
    return model, tokenizer, device, time.perf_counter() - started


def quantize_int8(model: HFModel) -> None:
    """PyTorch dynamic int8 on every linear layer, in place: int8 weights with one scale per output channel,
    activations quantized on the fly (one scale per batch).

    Why dynamic: it needs no calibration data and works for any architecture. Why per channel: with one scale per
    weight tensor (torch's default) SmolLM2-135M's greedy answers went off topic on 4 of 5 prompts (bench/int8.py);
    per channel they stay on topic though not word for word float32's (docs/BENCHMARKS.md states both).
    torch marks these kernels deprecated in favour of torchao; the warnings are silenced because the user chose
    int8 knowingly.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    setattr(model, "workbench_quantization", "int8")  # read by describe_model: the packed weights are no Parameters


def _int8_linear_size(model: HFModel) -> tuple[int, int]:
    """(values, bytes) of the int8 linear layers, which `num_parameters` and `get_memory_footprint` miss."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    values = size = 0
    for module in model.modules():
        if isinstance(module, DynamicInt8Linear):
            weight, bias = module.weight(), module.bias()
            values += weight.numel() + (bias.numel() if bias is not None else 0)
            size += weight.numel() * weight.element_size() + (bias.numel() * bias.element_size() if bias is not None
                                                              else 0)
    return values, size


def apply_adapter(spec: ModelSpec, model: HFModel) -> HFModel:
    """The entry's PEFT adapter (field `adapter`) over the base model, merged in so every engine path (batching,
    ZeroGPU) sees a plain transformers model; unchanged without an adapter."""
    folder = getattr(spec, "adapter_path", lambda: None)()
    if folder is None:
        return model
    from peft import PeftModel

    # merge_and_unload gives back the base model it wrapped (annotated as a plain torch Module).
    return cast(HFModel, PeftModel.from_pretrained(model, str(folder)).merge_and_unload())


def hub_checked_offline(spec: ModelSpec) -> bool:
    """For a Hub id: True when the Hub cannot be reached (asked once, remembered; backend/core/hub.py), so only the
    cache may be used; a model that is not cached then fails at once, saying what to do."""
    if spec.local_path() is not None:
        return False
    reachable, why = HUB.reachable()
    if reachable:
        return False
    if checkpoint_file(spec, spec.gguf_file or "config.json") is None:
        raise ModelLoadError(f"model '{spec.id}': the weights of {spec.source} are not on this machine and the "
                             f"Hub cannot be reached ({why}); {download_hint(spec.source)}")
    return True


def describe_model(model: HFModel, max_context: Optional[int], load_time_s: float) -> JSONObject:
    """The status facts every local engine reports (None while unloaded)."""
    if model is None:
        return {"device": None, "dtype": None, "parameters": None, "memory_bytes": None, "max_context": max_context,
                "load_time_s": load_time_s}
    quantization = getattr(model, "workbench_quantization", None)
    int8_values, int8_bytes = _int8_linear_size(model) if quantization == "int8" else (0, 0)
    return {
        "device": device_of(model),
        "dtype": str(model.dtype).removeprefix("torch."),
        "parameters": model.num_parameters() + int8_values,
        "memory_bytes": memory_footprint(model) + int8_bytes,
        "max_context": max_context,
        "load_time_s": load_time_s,
        **({"quantization": quantization} if quantization else {}),
    }
