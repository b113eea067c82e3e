"""models.yaml: the schema of the registry and its validation.

Every error names the file, the entry and the field, so a typo is fixed in one look instead of being
discovered on the first request. Only the standard library, pydantic and yaml are imported here: validating
the registry must not pull torch in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.tasks import catalog as task_catalog
from backend.types import TASKS, ConfigError, GenerationParams, Task

Backend = Literal["transformers", "openai"]  # in-process weights, or an OpenAI-compatible server
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Quantization = Literal["4bit", "8bit"]

# Architectures (from a checkpoint's config.json) grouped by the tasks they can serve. Suffix matching on
# the class name is how transformers itself names heads, so it covers new model families without a list.
_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
_CLASSIFIER_SUFFIXES = ("ForSequenceClassification",)
_TASK_FAMILY: dict[Task, tuple[str, ...]] = {
    "chat": _GENERATIVE_SUFFIXES,
    "generate": _GENERATIVE_SUFFIXES,
    "classify": _CLASSIFIER_SUFFIXES,
    "zero_shot": _CLASSIFIER_SUFFIXES,
}


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
    tasks: tuple[Task, ...]
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
    runtime: Literal["torch", "onnx"] = "torch"

    # backend: openai (vLLM, TGI, `transformers serve`, HF Inference Endpoints, any OpenAI-compatible server)
    base_url: Optional[str] = Field(default=None, pattern=r"^https?://")  # e.g. http://localhost:8000/v1
    model: Optional[str] = None  # the model name the server expects; default: the entry's id
    api_key_env: Optional[str] = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # env var NAME
    timeout_s: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    # A PEFT (LoRA) adapter folder applied over `source`, the base model (a fine-tuned model of the Train tab);
    # relative to models.yaml like `source`. Loaded with peft and merged into the base at load time.
    adapter: Optional[str] = Field(default=None, min_length=1)

    # Filled in by the loader, not by users: the folder models.yaml lives in, to resolve relative sources.
    base_dir: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("tasks")
    @classmethod
    def _tasks_known_and_compatible(cls, tasks: tuple[Task, ...]) -> tuple[Task, ...]:
        if not tasks:
            raise ValueError(f"list at least one task ({', '.join(TASKS)})")
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
        else:
            if not self.base_url:
                raise ValueError("field 'base_url': required for backend openai (e.g. http://localhost:8000/v1)")
            if set(self.tasks) - {"chat", "generate"}:
                raise ValueError("field 'tasks': backend openai serves chat and generate only")
            if self.quantization or self.trust_remote_code or self.chat_template:
                raise ValueError("fields quantization / trust_remote_code / chat_template apply to backend "
                                 "transformers only; the server decides these")
            if self.runtime != "torch":
                raise ValueError("field 'runtime': only for backend transformers")
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
        return self

    @property
    def remote_model(self) -> str:
        return self.model or self.id

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
        if candidate.is_dir() or looks_like_path:
            return candidate
        return None

    def default_params(self) -> GenerationParams:
        return self.generation.to_params()


class RegistrySettings(_Strict):
    """How many models may stay loaded, and when idle ones are released."""

    max_loaded_models: int = Field(default=2, ge=1)
    max_loaded_memory_gb: Optional[float] = Field(default=None, gt=0)
    idle_unload_seconds: Optional[float] = Field(default=None, gt=0)


LOGO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
LOGO_MAX_BYTES = 1024 * 1024


class PresenterGeneration(_Strict):
    """Generation settings the presenter locks; a field left out keeps the model's default."""

    max_new_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    repetition_penalty: Optional[float] = None
    seed: Optional[int] = None  # fixed seed: the same prompt gets the same reply in every rehearsal
    stop: Optional[tuple[str, ...]] = None

    @model_validator(mode="after")
    def _in_range(self) -> "PresenterGeneration":
        self.over(GenerationParams())  # the same range checks as a request
        return self

    def over(self, base: GenerationParams) -> GenerationParams:
        """`base` (the model's defaults) with the fields set here replaced."""
        try:
            return base.with_overrides(**self.model_dump())
        except Exception as error:  # InvalidInputError: surface through pydantic with its message
            raise ValueError(str(error)) from None


class PresenterSettings(_Strict):
    """The `presenter:` block: one model and its settings locked on a clean screen, for demos."""

    enabled: bool = True  # the block turns presenter mode on; false keeps it for `--presenter` only
    title: Optional[str] = None  # default: the model's name
    description: Optional[str] = None  # Markdown; default: the model's description
    logo: Optional[str] = None  # an image file (relative to models.yaml) or an https:// URL
    model: Optional[str] = None  # a chat model's id; default: the first chat model
    system_prompt: str = ""
    generation: PresenterGeneration = PresenterGeneration()
    examples: Optional[tuple[str, ...]] = None  # default: the model's examples; [] for none

    def logo_file(self, base_dir: Path) -> Optional[Path]:
        """The logo as a local file (resolved against models.yaml's folder), or None for a URL / no logo."""
        if not self.logo or self.logo.startswith(("https://", "http://")):
            return None
        path = Path(self.logo).expanduser()
        return path if path.is_absolute() else base_dir / path


class AppConfig(_Strict):
    settings: RegistrySettings = RegistrySettings()
    models: tuple[ModelSpec, ...]
    presenter: Optional[PresenterSettings] = None
    source_file: Optional[Path] = Field(default=None, exclude=True)

    @field_validator("models")
    @classmethod
    def _at_least_one(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        if not models:
            raise ValueError("list at least one model")
        return models

    @model_validator(mode="after")
    def _presenter_refers_to_what_exists(self) -> "AppConfig":
        presenter = self.presenter
        if presenter is None:
            return self
        if presenter.model is not None:
            spec = self.spec(presenter.model)
            if spec is None:
                raise ValueError(f"field 'presenter.model': no entry has id '{presenter.model}'; ids: "
                                 f"{', '.join(s.id for s in self.models)}")
            if "chat" not in spec.tasks:
                raise ValueError(f"field 'presenter.model': '{presenter.model}' does not do 'chat' "
                                 f"(its tasks: {', '.join(spec.tasks)})")
        elif not any("chat" in spec.tasks for spec in self.models):
            raise ValueError("field 'presenter': presenter mode needs a model with the 'chat' task")
        logo = presenter.logo_file(self.base_dir)
        if logo is not None:
            if logo.suffix.lower() not in LOGO_SUFFIXES:
                raise ValueError(f"field 'presenter.logo': {logo.name} is not an image "
                                 f"({', '.join(LOGO_SUFFIXES)}); give an image file or an https:// URL")
            if not logo.is_file():
                raise ValueError(f"field 'presenter.logo': {logo} does not exist (paths are relative to "
                                 "models.yaml)")
            if logo.stat().st_size > LOGO_MAX_BYTES:
                raise ValueError(f"field 'presenter.logo': {logo.name} is over {LOGO_MAX_BYTES // 1024} KiB")
        return self

    @property
    def base_dir(self) -> Path:
        """The folder of models.yaml: relative paths in it (sources, the logo) start here."""
        return Path(self.source_file).resolve().parent if self.source_file else Path.cwd()

    def spec(self, model_id: str) -> Optional[ModelSpec]:
        return next((spec for spec in self.models if spec.id == model_id), None)


# --------------------------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> AppConfig:
    """Reads and validates models.yaml; raises ConfigError naming the file, entry and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; pass --models PATH to a registry file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> AppConfig:
    """Validates already-parsed YAML (a dict) as the registry defined in `path`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'models' list at the top")
    base_dir = path.resolve().parent
    entries = raw.get("models")
    if isinstance(entries, list):
        _check_duplicate_ids(entries, path)
        raw = {
            **raw,
            "models": [
                {**entry, "base_dir": base_dir} if isinstance(entry, dict) else entry for entry in entries
            ],
        }
    try:
        config = AppConfig(**raw, source_file=path)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, raw, path)) from None
    except TypeError as error:
        raise ConfigError(f"{path}: {error}") from None
    for index, spec in enumerate(config.models):
        _check_tasks_against_checkpoint(spec, index, path)
        check_adapter(spec, index, path)
    return config


def check_adapter(spec: ModelSpec, index: int, path: Path) -> None:
    """An `adapter:` must be a PEFT adapter folder (adapter_config.json) on this machine."""
    folder = spec.adapter_path()
    if folder is not None and not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{path}: entry '{spec.id}' (models[{index}]), field 'adapter': {folder} is not a PEFT "
                          "adapter folder (no adapter_config.json there)")


def _check_duplicate_ids(entries: list[Any], path: Path) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        model_id = entry["id"]
        if model_id in seen:
            raise ConfigError(
                f"{path}: entry '{model_id}' (models[{index}]), field 'id': duplicate id, already used by "
                f"models[{seen[model_id]}]; every id must be unique"
            )
        seen[model_id] = index


def _describe_validation_error(error: ValidationError, raw: dict[str, Any], path: Path) -> str:
    """One line per problem: file, entry (by id when it has one) and field, then what is wrong."""
    lines = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = f"{path}:"
        if len(location) >= 2 and location[0] == "models" and isinstance(location[1], int):
            index = location[1]
            entry = raw["models"][index] if index < len(raw.get("models", [])) else None
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            label = f"entry '{entry_id}' (models[{index}])" if entry_id else f"models[{index}]"
            field_path = ".".join(str(part) for part in location[2:])
            # Checks across fields name their field in the message itself.
            where += f" {label}, field '{field_path}':" if field_path else f" {label},"
        elif location:
            where += f" field '{'.'.join(str(part) for part in location)}':"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see models.yaml in the repository for the fields)"
        elif problem["type"] == "missing":
            message = "required field is missing"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{where} {message}")
    return "\n".join(lines)


def _check_tasks_against_checkpoint(spec: ModelSpec, index: int, path: Path) -> None:
    """Refuses a task the checkpoint's architecture cannot do, when its config.json is at hand."""
    architectures = read_checkpoint_config(spec).get("architectures") or []
    if not architectures:
        return  # not downloaded yet, or no architecture recorded: checked again when loading
    for task in spec.tasks:
        if task in task_catalog.PIPELINE_TASKS:
            if not any(task_catalog.serves(task, arch) for arch in architectures):
                raise ConfigError(
                    f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': task '{task}' needs "
                    f"{task_catalog.needs(task)}, but {spec.source} is {', '.join(architectures)}"
                )
            continue
        if not any(arch.endswith(_TASK_FAMILY[task]) for arch in architectures):
            raise ConfigError(
                f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': task '{task}' needs a model of "
                f"type *{' / *'.join(_TASK_FAMILY[task])}, but {spec.source} is {', '.join(architectures)}"
            )
    if "zero_shot" in spec.tasks:
        labels = {str(label).lower() for label in (read_checkpoint_config(spec).get("label2id") or {})}
        if not any(label.startswith("entail") for label in labels):
            raise ConfigError(
                f"{path}: entry '{spec.id}' (models[{index}]), field 'tasks': 'zero_shot' needs an NLI model "
                f"with an 'entailment' label; {spec.source} has labels {sorted(labels)}"
            )


def read_checkpoint_config(spec: ModelSpec) -> dict[str, Any]:
    """The checkpoint's config.json if it is on this machine (local folder or Hub cache), else {}."""
    config_file = checkpoint_file(spec, "config.json")
    if config_file is None:
        return {}
    try:
        return json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def checkpoint_file(spec: ModelSpec, filename: str) -> Optional[Path]:
    """Where `filename` of the checkpoint is on disk without downloading, or None."""
    if not spec.source:
        return None
    local = spec.local_path()
    if local is not None:
        candidate = local / filename
        return candidate if candidate.is_file() else None
    from huggingface_hub import try_to_load_from_cache  # light import; no network

    try:
        cached = try_to_load_from_cache(spec.source, filename, revision=spec.revision)
    except Exception:  # malformed repo ids raise here; the loader gives the full error later
        return None
    return Path(cached) if isinstance(cached, str) else None
