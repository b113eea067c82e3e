"""The file-wide parts of models.yaml: how many models stay loaded (`RegistrySettings`), the presenter block
(`PresenterSettings`), and `AppConfig`, the whole validated file. Entries themselves: backend/core/model_spec.py."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field, field_validator, model_validator

from backend.core.model_spec import ModelSpec, _Strict
from backend.core.types import GenerationParams


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
