"""Training for the app and the CLI: check a config against its data and model (a clear error before any
training), preview what the model will see, estimate memory, start / stop / resume runs, and register a
finished model in the registry and its overlay file. The tab and `python app.py train` both go through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from backend.core.config import ModelSpec
from backend.core.error_codes import refuse, refuse_as
from backend.training import overlay, runfiles
from backend.training.config import TrainConfig, load_train_config
from backend.training.recipes import recipe_for
from backend.training.runs import RunInfo, TrainingRuns
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from backend.core.hf_types import HFTokenizer
    from backend.core.registry import Registry
    from backend.training.data import Preview
    from backend.training.memory import MemoryEstimate


@dataclass
class Plan:
    """What a run will do, known before it starts."""

    config: TrainConfig
    preview: Preview
    memory: MemoryEstimate
    train_examples: int
    val_examples: int

    def describe(self) -> str:
        stats = f"{self.preview.stats.describe()}. " if self.preview.stats is not None else ""
        return (f"{self.train_examples} training and {self.val_examples} validation examples. {stats}"
                f"{self.memory.describe()}")


class TrainingService:
    def __init__(self, registry: Optional[Registry] = None, root: Optional[Path] = None, python: Optional[str] = None,
                 env: Optional[dict[str, str]] = None, auto_register: bool = True) -> None:
        self.registry = registry
        self.auto_register = auto_register  # register every finished model (the app), or only `register_as`
        self.root = root
        self.runs = TrainingRuns(python=python, on_finished=self._finished, env=env)

    # --------------------------------------------------------------------------------------- the base

    def resolve_base(self, base: str, task: str, allow_paths: bool = True) -> tuple[str, Optional[ModelSpec]]:
        """A registry id becomes its weights' folder (or Hub id); a local folder is taken as is (CLI only)."""
        if self.registry is not None and base in {spec.id for spec in self.registry.specs()}:
            spec = self.registry.spec(base)
            if spec.backend != "transformers":
                raise InvalidInputError(f"field 'base': '{base}' is served by a remote server; training needs "
                                        "local weights", field="base")
            if spec.adapter and task != "sft":
                raise InvalidInputError(f"field 'base': '{base}' is a LoRA adapter over a chat model; {task} "
                                        "needs a full model", field="base")
            wanted = recipe_for(task).base_tasks
            if not set(wanted) & set(spec.tasks):
                raise InvalidInputError(f"field 'base': '{base}' does {', '.join(spec.tasks)}; {task} needs a "
                                        f"model that does '{wanted[0]}'" + (
                                            " (or an encoder: one that does embed, fill_mask, ner or "
                                            "question_answering gets a new classification head; from the command "
                                            "line --base also takes a model folder)"
                                            if len(wanted) > 1 else ""), field="base")
            local = spec.local_path()
            return (str(local) if local is not None else spec.source or base), spec
        path = Path(base).expanduser()
        if allow_paths and (path / "config.json").is_file():
            return str(path.resolve()), None
        known = ", ".join(spec.id for spec in self.registry.specs()) if self.registry is not None else ""
        raise InvalidInputError(f"field 'base': '{base}' is neither a model of the registry ({known or 'none'}) "
                                "nor a model folder", field="base")

    def base_settings(self, base: str, task: str, allow_paths: bool = True) -> dict[str, Optional[str]]:
        """The config's `base`, `base_id` and `adapter` for a registry id or a folder. A fine-tuned model that
        is a LoRA adapter (an SFT run's) continues training that adapter over its base."""
        folder, spec = self.resolve_base(base, task, allow_paths)
        adapter = spec.adapter_path() if spec is not None else None
        return {"base": folder, "base_id": spec.id if spec is not None else None,
                "adapter": str(adapter) if adapter is not None else None}

    # ----------------------------------------------------------------------------------------- planning

    def plan(self, config: TrainConfig) -> Plan:
        """Reads and checks the data, tokenizes it for the preview, estimates memory; raises on any problem."""
        from backend.training.memory import estimate_memory
        from backend.training.modeling import check_qlora_possible, load_tokenizer

        if config.method == "qlora":
            check_qlora_possible()
        recipe = recipe_for(config.task)
        prepared = recipe.prepare(config)
        tokenizer = _tokenizer(config, load_tokenizer)
        preview = recipe.preview(tokenizer, prepared, config)
        memory = estimate_memory(config, recipe.memory_shape(prepared))
        train_count, val_count = prepared.train_count, prepared.val_count
        return Plan(config=config, preview=preview, memory=memory, train_examples=train_count,
                    val_examples=val_count)

    # ------------------------------------------------------------------------------------------- runs

    def start(self, config: TrainConfig, username: Optional[str] = None, out: Optional[Path] = None,
              plan: Optional[Plan] = None) -> Path:
        """Checks, then creates the run folder and queues the training process; returns the run folder."""
        plan = plan or self.plan(config)
        if plan.memory.verdict == "too_big" and not config.auto_find_batch_size:
            raise InvalidInputError(f"field 'batch_size': {plan.memory.describe()}", field="batch_size")
        if config.register_as and self.registry is not None and self.registry.taken(config.register_as):
            raise refuse("register_taken", "register_as", name=config.register_as)
        run_dir = TrainingRuns.create(config, username, out, self.root)
        self.runs.start(run_dir)
        return run_dir

    def resume(self, run_dir: Path) -> int:
        return self.runs.start(run_dir, resume=True)

    def stop(self, run_dir: Path) -> str:
        return self.runs.stop(run_dir)

    def info(self, run_dir: Path) -> RunInfo:
        return self.runs.info(run_dir)

    def close(self) -> None:
        self.runs.close()

    def merge(self, run_dir: Path, timeout_s: float = 3600) -> Path:
        """The run's adapter merged into its base as a full safetensors folder (RUN/merged), in a process of its
        own (it loads the whole base model)."""
        import subprocess
        import sys

        from backend.training.merge import MERGED
        from backend.training.publish import finished

        if finished(run_dir).get("model_kind") != "adapter":
            raise refuse("merge_not_adapter", "run", run=run_dir.name)
        result = subprocess.run([sys.executable, "-m", "backend.training.merge", str(run_dir)], capture_output=True,
                                text=True, timeout=timeout_s, cwd=str(Path(__file__).resolve().parents[2]))
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise InvalidInputError(f"merge: {lines[-1].removeprefix('error: ') if lines else 'failed'}", field="merge")
        return run_dir / MERGED

    # ------------------------------------------------------------------------------------ registering

    def _finished(self, run_dir: Path, metrics: runfiles.RunMetrics) -> None:
        if metrics.get("status") != "completed" or metrics.get("registered_as"):
            return
        if self.auto_register or load_train_config(run_dir / runfiles.CONFIG).register_as:
            try:
                self.register(run_dir)
            except InvalidInputError as error:
                if error.code != "register_taken":
                    raise
                # The name was free when the run started and another model took it since: the run's status says
                # so (RunInfo.registration), and `register(run_dir, other_name)` still can.
                problem = refuse_as("register_taken_meanwhile", "register_as", error.params)
                runfiles.write_json_atomic(run_dir / runfiles.METRICS, {**runfiles.read_metrics(run_dir),
                                                                       "registration_error": {
                    "code": problem.code, "field": problem.field, "params": problem.params}})

    def merge_and_register(self, run_dir: Path, model_id: Optional[str] = None) -> tuple[Path, str]:
        """Merge (unless RUN/merged is there already), then register the merged full model (default id: the
        run's model id + "-merged"); returns the folder and the id."""
        from backend.training.merge import MERGED

        metrics = runfiles.read_metrics(run_dir)
        stem = metrics.get("registered_as") or default_model_id(self._config(run_dir), run_dir)
        model_id = model_id or f"{stem}-merged"
        if self.registry is not None and self.registry.taken(model_id):
            raise refuse("register_taken", "register_as", name=model_id)
        merged = run_dir / MERGED
        if not (merged / "config.json").is_file():
            merged = self.merge(run_dir)
        return merged, self.register(run_dir, model_id, merged=True)

    def register(self, run_dir: Path, model_id: Optional[str] = None, merged: bool = False) -> str:
        """Adds the run's model (`merged`: its merged full model) to the overlay file and to the live registry;
        returns its id."""
        from backend.training.merge import MERGED

        config = self._config(run_dir)
        metrics = runfiles.read_metrics(run_dir)
        model_id = model_id or config.register_as or default_model_id(config, run_dir)
        if (self.registry is not None and self.registry.taken(model_id)) or \
                any(entry.get("id") == model_id for entry in overlay.read_entries(self.root)):
            raise refuse("register_taken", "register_as", name=model_id)  # by the app or another command
        base_spec = None
        if self.registry is not None and config.base_id:
            try:
                with self.registry.viewing_as(None):  # the run's owner could use its base
                    base_spec = self.registry.spec(config.base_id)
            except Exception:  # noqa: BLE001 - the base entry may be gone; register without its settings
                base_spec = None
        entry = overlay.entry_for_run(run_dir, config, metrics, model_id, base_spec,
                                      run_dir / MERGED if merged else None)
        if self.registry is not None:
            from backend.core.config import ModelSpec

            self.registry.add(ModelSpec.model_validate(entry))
        overlay.add_entry(entry, self.root)
        key = "merged_as" if merged else "registered_as"
        if not merged:
            metrics.pop("registration_error", None)
        runfiles.write_json_atomic(run_dir / runfiles.METRICS, {**metrics, key: model_id})
        return model_id

    @staticmethod
    def _config(run_dir: Path) -> TrainConfig:
        return load_train_config(run_dir / runfiles.CONFIG)


def default_model_id(config: TrainConfig, run_dir: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", config.base_id or Path(config.base).name)[:40].strip("-._") or "model"
    return f"{stem}-ft-{run_dir.name[-6:]}"


def _tokenizer(config: TrainConfig, load: Callable[[TrainConfig], HFTokenizer]) -> HFTokenizer:
    try:
        return load(config)
    except InvalidInputError:
        raise
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"field 'base': cannot read the tokenizer of {config.base}: {error}",
                                field="base") from None

