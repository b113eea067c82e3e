"""`python app.py train ...`: a headless fine-tuning run through the same service as the Train tab.

    python app.py train --models models.yaml --base tiny-classifier --task classification --data train.csv \
        --text-column text --label-column label --method full --epochs 3 --out out/ [--register my-model]
    python app.py train --base tiny-chat --task dpo --data pairs.jsonl --prompt-column prompt \
        --chosen-column chosen --rejected-column rejected --max-steps 50 --out out/

It writes OUT/config.yaml, OUT/metrics.json, OUT/progress.jsonl, OUT/model/ (full model or LoRA adapter) and
OUT/README.md (the model card). Ctrl-C stops the run at the next step with a checkpoint (exit 130); `--resume`
continues it. Bad input exits 2 with one `error:` line naming the field; a failed run exits 1.
Only argparse (and the recipes' table, which imports no torch) at import time: app.py builds its parser from
`add_arguments` for an instant `--help`. The tasks and their column options come from the recipes' table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from backend.core.json_types import JSONObject
from backend.training.recipes import RECIPES, TASKS, column_fields

if TYPE_CHECKING:
    from backend.training.runfiles import ProgressRow, RunMetrics
    from backend.training.service import TrainingService

# The registry's task names, accepted where the commands say it another way.
_TASK_ALIASES = {"classify": "classification"}
# CLI option -> TrainConfig field, for the options that map one to one (plus every task's column options).
_FIELDS = {"data": "data", "validation": "validation", "method": "method", "epochs": "epochs",
           "max_steps": "max_steps", "learning_rate": "learning_rate", "batch_size": "batch_size",
           "max_length": "max_length", "seed": "seed", "register": "register_as", "eval_steps": "eval_steps",
           "logging_steps": "logging_steps", "gradient_accumulation": "gradient_accumulation",
           "early_stopping_patience": "early_stopping_patience", "lora_r": "lora_r", "num_gpus": "num_gpus",
           "dpo_beta": "dpo_beta", "share": "share", **{field.name: field.name for field in column_fields()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from backend.training.config import TrainConfig  # pydantic only: --help stays instant

    def default(field: str) -> str:
        """`(default: X)` from TrainConfig, the one place defaults live."""
        return f"(default: {TrainConfig.model_fields[field].default})"

    parser.add_argument("--models", default=os.environ.get("WORKBENCH_MODELS", "models.yaml"),
                        help="the model registry file (default: models.yaml, or $WORKBENCH_MODELS)")
    parser.add_argument("--config", metavar="FILE", help="a train.yaml with any of the settings below (the "
                        "options given here override it)")
    parser.add_argument("--base", metavar="ID", help="a registry id, or a local model folder")
    parser.add_argument("--task", choices=TASKS, type=lambda task: _TASK_ALIASES.get(task, task),
                        help="; ".join(f"{task}: {recipe.title}" for task, recipe in RECIPES.items())
                        + " (`classify`, the registry's word, means classification)")
    parser.add_argument("--data", metavar="FILE", help="training data: .csv, .jsonl or .parquet")
    parser.add_argument("--validation", metavar="FILE", help="validation data (default: 20%% of --data, "
                        "stratified by label for classification)")
    for field in column_fields():
        parser.add_argument("--" + field.name.replace("_", "-"), metavar="C", help=field.help or None)
    parser.add_argument("--method", choices=("full", "lora", "qlora"),
                        help=f"what is trained: every weight, LoRA adapters, or LoRA over 4-bit weights (CUDA) "
                        f"{default('method')}")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, metavar="N", help=f"passes over the data {default('epochs')}")
    length.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps; overrides --epochs")
    parser.add_argument("--learning-rate", type=float, metavar="X", help=default("learning_rate"))
    parser.add_argument("--batch-size", type=int, metavar="N", help=f"examples per step and device "
                        f"{default('batch_size')}")
    parser.add_argument("--gradient-accumulation", type=int, metavar="N",
                        help=f"steps whose gradients add up before one update {default('gradient_accumulation')}")
    parser.add_argument("--max-length", type=int, metavar="N", help=f"tokens per example (longer ones are cut) "
                        f"{default('max_length')}")
    parser.add_argument("--eval-steps", type=int, metavar="N", help=f"evaluate (and checkpoint) every N steps "
                        f"{default('eval_steps')}")
    parser.add_argument("--early-stopping-patience", type=int, metavar="N",
                        help="stop after N evaluations without improvement; 0 = never "
                        f"{default('early_stopping_patience')}")
    parser.add_argument("--logging-steps", type=int, metavar="N", help="log the training loss every N steps "
                        "(default: about ten points per run, at most every 10 steps)")
    parser.add_argument("--lora-r", type=int, metavar="N", help=f"LoRA rank {default('lora_r')}")
    parser.add_argument("--dpo-beta", type=float, metavar="X", help="dpo: how far the model may move from the "
                        "reference (default 0.1; higher stays closer)")
    parser.add_argument("--num-gpus", type=int, metavar="N", help="> 1: launched with accelerate launch")
    parser.add_argument("--seed", type=int, metavar="N", help=f"for shuffling, the split and initial weights "
                        f"{default('seed')}")
    parser.add_argument("--out", metavar="DIR", help="the run folder, new or empty (default: a new folder under the "
                        "runs folder)")
    parser.add_argument("--register", metavar="ID", help="add the result to the registry overlay under this id "
                        "(the app lists it in every tab)")
    parser.add_argument("--share", action="store_true", default=None, help="with logins on, every user of the app "
                        "may use the registered model (default: only the owner of the run's folder and the admins)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                        "(with --register ID, a finished run that is not registered is registered under ID)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def settings_from(args: argparse.Namespace) -> JSONObject:
    """--config's settings with the command line's options over them."""
    import yaml

    settings: JSONObject = {}
    if args.config:
        from backend.core.types import InvalidInputError

        try:
            loaded = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
            raise InvalidInputError(f"--config: cannot read {args.config}: {error}") from None
        if not isinstance(loaded, dict):
            raise InvalidInputError(f"--config: {args.config} is not a mapping of settings")
        settings.update(_absolute_paths(loaded, Path(args.config).resolve().parent))
    for option, field in _FIELDS.items():
        value = getattr(args, option, None)
        if value is not None:
            settings[field] = _absolute_paths({field: value}, Path.cwd())[field]
    for option in ("base", "task"):
        if getattr(args, option):
            settings[option] = getattr(args, option)
    if args.max_steps is not None:
        settings.pop("epochs", None)
    return settings


_PATH_FIELDS = ("data", "validation")


def _absolute_paths(settings: JSONObject, folder: Path) -> JSONObject:
    """File settings resolved where the user wrote them: the command line's against the current folder, a
    --config file's against that file's folder (the training process runs elsewhere, from the app's folder)."""
    resolved = dict(settings)
    for field in _PATH_FIELDS:
        value = resolved.get(field)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            resolved[field] = str((folder / value).resolve())
    return resolved


def main(args: argparse.Namespace) -> int:
    from backend.core.registry_source import open_registry
    from backend.engines import create_engine
    from backend.training import runfiles
    from backend.training.config import load_train_config, parse_train_config
    from backend.training.service import TrainingService
    from backend.core.types import WorkbenchError

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    service = None
    try:
        registry = open_registry(args.models, engine_factory=create_engine) if Path(args.models).is_file() else None
        service = TrainingService(registry, auto_register=False)
        if args.resume:
            if not args.out or not (Path(args.out) / runfiles.CONFIG).is_file():
                raise WorkbenchError("--resume: give --out, the folder of the run to continue (with its config.yaml)")
            run_dir = Path(args.out)
            load_train_config(run_dir / runfiles.CONFIG)
            finished = runfiles.read_metrics(run_dir)
            if finished.get("status") == "completed" and args.register and not finished.get("registered_as"):
                # A finished run whose name was taken meanwhile (or that was never registered): register it now.
                say(f"registered as '{service.register(run_dir, args.register)}' in the registry overlay")
                return 0
            service.resume(run_dir)
        else:
            settings = settings_from(args)
            for needed in ("base", "task", "data"):
                if not settings.get(needed):
                    raise WorkbenchError(f"--{needed}: required (or set '{needed}' in --config)")
            resolved = service.base_settings(str(settings["base"]), str(settings["task"]))
            settings.update({key: value for key, value in resolved.items() if value is not None})
            config = parse_train_config(settings, "train")
            plan = service.plan(config)
            say(plan.describe())
            run_dir = service.start(config, out=Path(args.out).resolve() if args.out else None, plan=plan)
        say(f"run folder: {run_dir}")
        metrics = follow(service, run_dir, say)
    except WorkbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if service is not None:
            service.close()
    status = metrics.get("status")
    say(f"{status}: {metrics.get('reason') or metrics.get('final')}")
    if status == "completed":
        registered = metrics.get("registered_as")
        unregistered = service.info(run_dir).not_registered() if service is not None else None
        if unregistered is not None:  # the name was taken while the run trained
            say(f"{unregistered} (python app.py train --resume --out {run_dir} --register OTHER_NAME)")
        else:
            say(f"registered as '{registered}' in the registry overlay" if registered else
                "not registered (add --register ID to list it in the app)")
    return {"completed": 0, "stopped": 130}.get(str(status), 1)


def follow(service: TrainingService, run_dir: Path, say: Callable[[str], None]) -> RunMetrics:
    """Prints progress lines until the run ends; Ctrl-C asks it to stop at the next step."""
    from backend.training import runfiles

    shown = 0
    while True:
        try:
            rows = runfiles.read_progress(run_dir)
            for row in rows[shown:]:
                say(progress_line(row))
            shown = len(rows)
            metrics = runfiles.read_metrics(run_dir)
            if metrics.get("status") in runfiles.FINAL_STATUSES and not service.runs.queue():
                return service.runs.wait(run_dir)
            time.sleep(0.5)
        except KeyboardInterrupt:
            say("stopping at the next step (a checkpoint is saved; --resume continues)...")
            service.stop(run_dir)
            return service.runs.wait(run_dir)


def progress_line(row: ProgressRow) -> str:
    parts = [f"step {row.get('step')}/{row.get('max_steps')}"]
    task_keys = tuple(pair for recipe in RECIPES.values() for pair in recipe.progress_keys)
    for key, label in (("loss", "loss"), ("eval_loss", "eval loss"), *task_keys,
                       ("learning_rate", "lr"), ("samples_per_s", "samples/s"), ("eta_s", "eta s")):
        if key in row:
            value = row[key]
            parts.append(f"{label} {value:.3g}" if isinstance(value, float) else f"{label} {value}")
    return ", ".join(parts)
