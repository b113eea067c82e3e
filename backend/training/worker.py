"""The training process: `python -m backend.training.worker --config RUN_DIR/config.yaml [--resume]`.

It owns its memory (GPU included): a crash or an out-of-memory here never touches the app. It reports only
through files in the run folder (backend/training/runfiles.py): progress lines while training, then
metrics.json with status completed / stopped / failed. Training is the task's trainer from its recipe
(`transformers.Trainer`, or TRL's `DPOTrainer`; peft for LoRA), evaluation, checkpoints, resuming and early
stopping included; nothing here is a hand-written loop, and nothing here branches on the task.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from backend.training import runfiles
from backend.training.config import TrainConfig, load_train_config
from backend.training.recipes import TrainerSettings, recipe_for
from backend.core.types import InvalidInputError, WorkbenchError

if TYPE_CHECKING:
    from transformers import TrainerCallback, TrainingArguments


def training_arguments(config: TrainConfig, run_dir: Path, device: str, total_steps: int) -> TrainingArguments:
    """The trainer's arguments: the shared settings, in the class the task's trainer takes."""
    import torch

    recipe = recipe_for(config.task)
    common = TrainerSettings(
        output_dir=str(run_dir / runfiles.CHECKPOINTS),
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, seed=config.seed,
        eval_strategy="steps", eval_steps=config.eval_steps, save_strategy="steps",
        save_steps=config.effective_save_steps, logging_steps=config.logging_steps_for(total_steps),
        save_total_limit=2, load_best_model_at_end=True, eval_on_start=True,
        metric_for_best_model=recipe.best_metric, greater_is_better=recipe.greater_is_better,
        auto_find_batch_size=config.auto_find_batch_size, include_num_input_tokens_seen="non_padding",
        use_cpu=device == "cpu", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
    )
    if device == "cuda":
        common["bf16" if torch.cuda.is_bf16_supported() else "fp16"] = True
    return recipe.training_arguments(config, common)


def total_steps(config: TrainConfig, train_examples: int, world: int) -> int:
    """Optimizer steps of the whole run, as the Trainer will count them (for the logging interval)."""
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = math.ceil(train_examples / (config.batch_size * world)) // config.gradient_accumulation
    return max(1, math.ceil(config.epochs * max(1, per_epoch)))


def run(config: TrainConfig, run_dir: Path, resume: bool = False) -> runfiles.RunMetrics:
    """Trains; returns (and writes) metrics.json. Exceptions propagate (main() records them as "failed")."""
    from transformers import EarlyStoppingCallback, set_seed

    from backend.training.callbacks import ProgressWriter, StopOnRequest
    from backend.training.memory import training_device
    from backend.training.modeling import load_model, load_tokenizer, save_result, trained_model

    started = time.time()
    device = training_device(config)
    checkpoint = runfiles.last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise InvalidInputError("resume: this run has no saved checkpoint to resume from", field="resume")
    runfiles.write_json_atomic(run_dir / runfiles.METRICS, {"status": "running", "pid": os.getpid(),
                                                           "started": started, "resumed_from": str(checkpoint)
                                                           if checkpoint else None})
    # A STOP written while this process was starting stays: the run stops after its first step (the server
    # removes old STOP files when it queues a run).
    if not resume:
        (run_dir / runfiles.PROGRESS).unlink(missing_ok=True)
    recipe = recipe_for(config.task)
    set_seed(config.seed)
    tokenizer = load_tokenizer(config)
    data = recipe.prepare(config)
    set_seed(config.seed)  # the new head's initial weights must not depend on how much data preparation drew
    model = load_model(config, device, data)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    arguments = training_arguments(config, run_dir, device, total_steps(config, data.train_count, world))
    progress = ProgressWriter(run_dir, config.batch_size * config.gradient_accumulation * world, recipe.derived)
    stopper = StopOnRequest(run_dir)
    callbacks: list[TrainerCallback] = [progress, stopper]
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = recipe.trainer(config, model, tokenizer, data, arguments, callbacks)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    history = runfiles.read_progress(run_dir)
    metrics: runfiles.RunMetrics = {"history": history, "started": started, "finished": time.time(),
                               "step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
                               "train": {key: value for key, value in output.metrics.items()
                                         if isinstance(value, (int, float))}}
    if stopper.stopped_at is not None:
        last = runfiles.last_checkpoint(run_dir)
        metrics.update({"status": "stopped", "reason": f"stopped at step {stopper.stopped_at}; checkpoint saved "
                                                       f"({last.name if last else 'none'}): Resume continues from it"})
    else:
        final = recipe.final_metrics({key.removeprefix("eval_"): float(value)
                                      for key, value in trainer.evaluate().items()
                                      if isinstance(value, (int, float)) and not key.endswith(("_runtime",
                                                                                              "_per_second"))})
        metrics.update({"status": "completed", "final": final, "best_checkpoint": trainer.state.best_model_checkpoint,
                        "early_stopped": trainer.state.global_step < trainer.state.max_steps})
        if trainer.is_world_process_zero():
            kind = save_result(trained_model(trainer.model), tokenizer, config, run_dir / runfiles.MODEL)
            metrics["model_kind"] = kind
            from backend.training.card import model_card

            command = (run_dir / runfiles.COMMAND).read_text(encoding="utf-8").strip() \
                if (run_dir / runfiles.COMMAND).is_file() else ""
            (run_dir / runfiles.CARD).write_text(model_card(config, metrics, kind, command), encoding="utf-8")
    if trainer.is_world_process_zero():
        runfiles.write_json_atomic(run_dir / runfiles.METRICS, metrics)
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.training.worker")
    parser.add_argument("--config", required=True, help="RUN_DIR/config.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    args = parser.parse_args(argv)
    run_dir = Path(args.config).resolve().parent
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        config = load_train_config(args.config)
        metrics = run(config, run_dir, resume=args.resume)
    except BaseException as error:  # noqa: BLE001 - every way out must leave "failed" with the reason
        reason = _reason(error)
        traceback.print_exc()
        previous = runfiles.read_metrics(run_dir)
        runfiles.write_json_atomic(run_dir / runfiles.METRICS, {
            "status": "failed", "reason": reason, "history": runfiles.read_progress(run_dir),
            "started": previous.get("started"), "finished": time.time(), **_error_value(error)})
        print(f"training failed: {reason}", file=sys.stderr, flush=True)
        return 130 if isinstance(error, KeyboardInterrupt) else 1
    print(f"training {metrics['status']}: {metrics.get('reason') or metrics.get('final')}", flush=True)
    return 0


def _error_value(error: BaseException) -> runfiles.RunMetrics:
    """A refusal's code, field and params for metrics.json ("error"), so the Train tab words it in the browser's
    language; nothing for other failures."""
    if isinstance(error, WorkbenchError) and error.code:
        return {"error": {"code": error.code, "field": error.field, "params": error.params}}
    return {}


def _reason(error: BaseException) -> str:
    if isinstance(error, InvalidInputError):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGINT)"
    text = str(error)
    if "out of memory" in text.lower() or type(error).__name__ == "OutOfMemoryError":
        return ("out of memory: lower the batch size or max length, use LoRA, or turn on 'find the batch size "
                f"automatically' ({type(error).__name__})")
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:500]


if __name__ == "__main__":
    sys.exit(main())
