"""One entry of models.yaml (`ModelSpec`) and its per-model generation defaults, with the checks a single entry
can make on its own (fields per backend, tasks that go together, runtime). backend/core/config.py loads the file and
checks entries against their checkpoints; backend/core/app_settings.py holds the file-wide settings.

Only pydantic and backend.core.types / backend.tasks.catalog / backend.engines.table are imported: validating the
registry must not pull torch in. The `backend` and `runtime` values are the engine table's (backend/engines/table.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from backend.engines import table as engine_table
from backend.tasks import catalog as task_catalog
from backend.core.types import TASKS, GenerationParams

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
# 4bit / 8bit: bitsandbytes on a CUDA GPU; int8: PyTorch dynamic int8 on the linear layers, for the CPU.
Quantization = Literal["4bit", "8bit", "int8"]
GGUF_TASKS = ("chat", "generate")  # what a GGUF checkpoint (a causal LM) serves


def known_tasks() -> tuple[str, ...]:
    """The tasks an entry may list: chat, generate and the classifiers, then every task of the pipeline task
    table (backend/tasks/table.py; a task registered there is accepted at once)."""
    return (*(task for task in TASKS if task not in task_catalog.PIPELINE_TASKS), *task_catalog.PIPELINE_TASKS)


def _known_task(name: str) -> str:  # after pydantic's own check that it is a string
    known = known_tasks()
    if name not in known:  # worded as pydantic words a Literal, which this was before tasks came from the table
        expected = ", ".join(repr(task) for task in known[:-1]) + f" or {known[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return name


KnownTask = Annotated[str, AfterValidator(_known_task)]


def _one_of(name: str, known: tuple[str, ...]) -> str:
    if name not in known:  # worded as pydantic words a Literal, which these were before they came from the table
        expected = " or ".join(repr(value) for value in known) if len(known) < 3 else \
            ", ".join(repr(value) for value in known[:-1]) + f" or {known[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return name


# In-process weights (transformers), or another backend of the engine table (an OpenAI-compatible server, ...).
Backend = Annotated[str, AfterValidator(lambda name: _one_of(name, engine_table.backends()))]
# What runs in-process weights: torch, onnx, llama_cpp, or another runtime of the engine table.
Runtime = Annotated[str, AfterValidator(lambda name: _one_of(name, engine_table.runtimes()))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationDefaults(_Strict):
    """Per-model defaults for the generation parameters; the UI starts from these."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    @model_validator(mode="after")
    def _in_range(self) -> "GenerationDefaults":
        self.to_params()  # the same range checks as a request, so a default can never be refused later
        return self

    def to_params(self) -> GenerationParams:
        try:
            return GenerationParams(**self.model_dump()).validated()
        except Exception as error:  # InvalidInputError: surface through pydantic with its message
            raise ValueError(str(error)) from None


class ModelSpec(_Strict):
    """One entry of models.yaml."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str = ""
    description: str = ""
    tasks: tuple[KnownTask, ...]  # a `Task` of backend/core/types.py, or a pipeline task registered in the task table
    backend: Backend = "transformers"
    source: Optional[str] = Field(default=None, min_length=1)  # a Hub repo id, or a local folder (relative
    # to models.yaml); required for backend transformers
    revision: Optional[str] = None
    dtype: Dtype = "auto"
    device: str = "auto"  # auto: cuda, then mps, then cpu
    max_context: Optional[int] = Field(default=None, ge=16)
    generation: GenerationDefaults = GenerationDefaults()
    trust_remote_code: bool = False
    quantization: Optional[Quantization] = None
    chat_template: Optional[str] = None  # Jinja text that replaces the tokenizer's own template
    examples: tuple[str, ...] = ()
    # Concurrent requests to a local model share forward passes, up to this many per batch; beyond
    # max_queued_requests waiting, new requests get a clear "busy, try again" error.
    max_batch_size: int = Field(default=16, ge=1, le=256)
    max_queued_requests: int = Field(default=256, ge=1)
    # ZeroGPU (Hugging Face Spaces): the longest one generation batch / forward pass may hold the GPU, in
    # seconds (spaces.GPU(duration=...)); shorter requests queue ahead. Ignored where `spaces` is not installed.
    gpu_duration_s: int = Field(default=60, ge=1, le=3600)
    # Encoder tasks only: `onnx` exports the model once (cached next to the weights) and runs it with ONNX Runtime.
    # `llama_cpp` runs a GGUF chat / generate model with llama-cpp-python (backend/engines/llama_cpp.py); a GGUF
    # entry that does not name a runtime gets it on CPU when llama-cpp-python is installed; any other entry without
    # one runs on torch (backend/engines/__init__.py: `resolved_runtime`).
    runtime: Optional[Runtime] = None
    # A GGUF checkpoint: `source` is a .gguf file (a local path), or a Hub repo / local folder and `gguf_file`
    # names the .gguf file in it (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).
    gguf_file: Optional[str] = None

    # backend: openai (vLLM, TGI, `transformers serve`, HF Inference Endpoints, any OpenAI-compatible server)
    base_url: Optional[str] = Field(default=None, pattern=r"^https?://")  # e.g. http://localhost:8000/v1
    model: Optional[str] = None  # the model name the server expects; default: the entry's id
    api_key_env: Optional[str] = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # env var NAME
    timeout_s: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    # A PEFT (LoRA) adapter folder applied over `source`, the base model (a fine-tuned model of the Train tab);
    # relative to models.yaml like `source`. Loaded with peft and merged into the base at load time.
    adapter: Optional[str] = Field(default=None, min_length=1)

    # A fine-tuned model's owner (the user folder of the run that made it, backend/guard/user_space.py) and whether
    # its owner shared it with everyone. With logins on, an owned model that is not shared is seen and used
    # only by its owner and the admins (Registry.visible); entries without an owner are everyone's.
    owner: Optional[str] = None
    shared: bool = False

    # Filled in by the loader, not by users: the folder models.yaml lives in, to resolve relative sources.
    base_dir: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("tasks")
    @classmethod
    def _tasks_known_and_compatible(cls, tasks: tuple[str, ...]) -> tuple[str, ...]:
        if not tasks:
            raise ValueError(f"list at least one task ({', '.join(known_tasks())})")
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        combination = task_catalog.combination_error(tasks)
        if combination:
            raise ValueError(combination)
        generative = {"chat", "generate"} & set(tasks)
        classifying = {"classify", "zero_shot"} & set(tasks)
        if generative and classifying:
            raise ValueError(
                "one entry cannot both generate (chat/generate) and classify (classify/zero_shot): "
                "they need different model heads; add a second entry with the same source"
            )
        return tasks

    @model_validator(mode="after")
    def _backend_fields(self) -> "ModelSpec":
        remote_only = ("base_url", "model", "api_key_env", "headers")
        if self.backend == "transformers":
            if not self.source:
                raise ValueError("field 'source': missing; required for backend transformers (a Hub repo id or "
                                 "a local folder)")
            extra = [name for name in remote_only if getattr(self, name)]
            if extra:
                raise ValueError(f"field '{extra[0]}': only for backend openai")
            return self
        if self.backend == "openai" and not self.base_url:
            raise ValueError("field 'base_url': required for backend openai (e.g. http://localhost:8000/v1)")
        served = engine_table.engine_kind(self.backend).tasks or tuple(self.tasks)  # the engine table's tasks
        if set(self.tasks) - set(served):
            raise ValueError(f"field 'tasks': backend {self.backend} serves {' and '.join(served)} only")
        # Any other backend holds no weights here: what only loading weights here means is refused.
        if self.quantization or self.trust_remote_code or self.chat_template:
            raise ValueError("fields quantization / trust_remote_code / chat_template apply to backend "
                             "transformers only; the server decides these")
        if self.runtime not in (None, "torch"):
            raise ValueError("field 'runtime': only for backend transformers")
        if self.gguf_file:
            raise ValueError("field 'gguf_file': only for backend transformers (weights loaded here)")
        if "gpu_duration_s" in self.model_fields_set:
            raise ValueError("field 'gpu_duration_s': only for backend transformers (the GPU is the server's)")
        return self

    @model_validator(mode="after")
    def _adapter_is_local(self) -> "ModelSpec":
        if self.adapter and self.backend != "transformers":
            raise ValueError("field 'adapter': only for backend transformers (the adapter is applied here)")
        return self

    def adapter_path(self) -> Optional[Path]:
        """The adapter folder, resolved against models.yaml's folder; None without an adapter."""
        if not self.adapter:
            return None
        path = Path(self.adapter).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    @model_validator(mode="after")
    def _runtime_fits_tasks(self) -> "ModelSpec":
        if self.runtime == "onnx":
            outside = [task for task in self.tasks if task not in task_catalog.ONNX_TASKS]
            if outside:
                raise ValueError(f"field 'runtime': onnx runs encoder tasks only ({', '.join(task_catalog.ONNX_TASKS)}"
                                 f"), not '{outside[0]}'")
            if self.quantization:
                raise ValueError("field 'runtime': onnx does not combine with quantization")
        if self.backend != "transformers":
            return self
        if self.runtime == "llama_cpp" and not self.is_gguf:
            raise ValueError("field 'runtime': llama_cpp runs GGUF checkpoints; point 'source' at a .gguf file, or "
                             "name the file in a Hub repo or folder with 'gguf_file'")
        if self.is_gguf:
            outside = [task for task in self.tasks if task not in GGUF_TASKS]
            if outside:
                raise ValueError(f"field 'tasks': a GGUF checkpoint serves {' and '.join(GGUF_TASKS)}, not "
                                 f"'{outside[0]}'")
            if self.runtime == "onnx":
                raise ValueError("field 'runtime': a GGUF checkpoint runs on llama_cpp or torch, not onnx")
            if self.quantization:
                raise ValueError("field 'quantization': a GGUF checkpoint is quantized already (bitsandbytes "
                                 "applies to safetensors weights)")
            if self.adapter and self.runtime == "llama_cpp":
                raise ValueError("field 'adapter': runtime llama_cpp cannot apply a PEFT adapter; use runtime: torch")
        if self.quantization == "int8":
            if self.device not in ("auto", "cpu"):
                raise ValueError(f"field 'quantization': int8 is dynamic quantization for the CPU, not {self.device!r};"
                                 " on a GPU use quantization: 8bit (bitsandbytes)")
            if self.dtype not in ("auto", "float32"):
                raise ValueError("field 'dtype': quantization int8 computes in float32 around its int8 weights; "
                                 "remove the field or set float32")
        if self.runtime == "llama_cpp":
            if self.device not in ("auto", "cpu"):
                raise ValueError(f"field 'device': runtime llama_cpp runs on the CPU here, not {self.device!r}; use "
                                 "device: auto or cpu (or runtime: torch for the GPU)")
            if self.dtype != "auto":
                raise ValueError("field 'dtype': runtime llama_cpp uses the GGUF file's own types; remove the field")
        return self

    @property
    def is_gguf(self) -> bool:
        """A GGUF checkpoint: a .gguf source, or a repo / folder with `gguf_file`."""
        return bool(self.gguf_file) or (self.source or "").lower().endswith(".gguf")

    @property
    def remote_model(self) -> str:
        return self.model or self.id

    @field_validator("gguf_file")
    @classmethod
    def _gguf_file_name(cls, name: Optional[str]) -> Optional[str]:
        parts = name.replace("\\", "/").split("/") if name is not None else []
        if name is not None and (not name.lower().endswith(".gguf") or name.startswith("/") or ".." in parts):
            raise ValueError(f"a .gguf file inside the repo or folder of 'source' (e.g. "
                             f"SmolLM2-135M-Instruct.Q4_1.gguf), got {name!r}")
        return name

    @field_validator("device")
    @classmethod
    def _device_known(cls, device: str) -> str:
        if device in ("auto", "cpu", "mps", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit()
        ):
            return device
        raise ValueError("use auto, cpu, mps, cuda or cuda:N")

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def is_generative(self) -> bool:
        return bool({"chat", "generate"} & set(self.tasks))

    def local_path(self) -> Optional[Path]:
        """The folder holding the weights when the source is local, else None (a Hub repo id or remote)."""
        if not self.source:
            return None
        source = Path(self.source).expanduser()
        if not source.is_absolute() and self.base_dir is not None:
            candidate = self.base_dir / source
        else:
            candidate = source
        looks_like_path = self.source.startswith((".", "/", "~")) or source.is_absolute()
        if candidate.is_dir() or looks_like_path or (candidate.is_file() and self.is_gguf):
            return candidate
        return None

    def default_params(self) -> GenerationParams:
        return self.generation.to_params()
