"""The training process: `python -m backend.training.worker --config RUN_DIR/config.yaml [--resume]`.

It owns its memory (GPU included): a crash or an out-of-memory here never touches the app. It reports only
through files in the run folder (backend/training/runfiles.py): progress lines while training, then
metrics.json with status completed / stopped / failed. Training is `transformers.Trainer` (with peft for
LoRA), evaluation, checkpoints, resuming and early stopping included; nothing here is a hand-written loop.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from backend.training import runfiles
from backend.training.config import TrainConfig, load_train_config
from backend.types import InvalidInputError, WorkbenchError


def classification_metrics(eval_prediction: Any) -> dict[str, float]:
    """Accuracy and macro F1 from scikit-learn."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predicted = np.argmax(logits, axis=-1)
    return {"accuracy": float(accuracy_score(labels, predicted)),
            "f1_macro": float(f1_score(labels, predicted, average="macro"))}


def build_datasets(config: TrainConfig, tokenizer: Any) -> tuple[Any, Any, Optional[dict[int, str]], Any]:
    """(train dataset, validation dataset, id2label or None, data collator)."""
    from datasets import Dataset

    if config.task == "classification":
        from transformers import DataCollatorWithPadding

        from backend.training.data import prepare_classification

        data = prepare_classification(config)

        def encode(texts: list[str], labels: list[int]) -> Any:
            encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
            return Dataset.from_dict({**encoded, "labels": labels})

        return (encode(data.train_texts, data.train_labels), encode(data.val_texts, data.val_labels),
                data.id2label, DataCollatorWithPadding(tokenizer))
    from transformers import DataCollatorForSeq2Seq

    from backend.training.data import prepare_sft, tokenize_sft

    sft = prepare_sft(config)

    def encode_all(conversations: list[list[dict[str, str]]]) -> Any:
        rows = []
        for messages in conversations:
            example = tokenize_sft(tokenizer, messages, config.max_length)
            rows.append({"input_ids": example.input_ids, "labels": example.labels,
                         "attention_mask": [1] * len(example.input_ids)})
        return Dataset.from_list(rows)

    # Pads input_ids with the pad id and labels with -100, so padding never carries loss.
    return encode_all(sft.train), encode_all(sft.val), None, DataCollatorForSeq2Seq(tokenizer, padding=True)


def training_arguments(config: TrainConfig, run_dir: Path, device: str) -> Any:
    import torch
    from transformers import TrainingArguments

    half: dict[str, Any] = {}
    if device == "cuda":
        half = {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    classification = config.task == "classification"
    return TrainingArguments(
        output_dir=str(run_dir / runfiles.CHECKPOINTS),
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, seed=config.seed,
        eval_strategy="steps", eval_steps=config.eval_steps, save_strategy="steps",
        save_steps=config.effective_save_steps, logging_steps=config.logging_steps,
        save_total_limit=2, load_best_model_at_end=True, eval_on_start=True,
        metric_for_best_model="accuracy" if classification else "eval_loss", greater_is_better=classification,
        auto_find_batch_size=config.auto_find_batch_size, include_num_input_tokens_seen="non_padding",
        use_cpu=device == "cpu", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        **half,
    )


def run(config: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Trains; returns (and writes) metrics.json. Exceptions propagate (main() records them as "failed")."""
    from transformers import EarlyStoppingCallback, Trainer, set_seed

    from backend.training.callbacks import ProgressWriter, StopOnRequest
    from backend.training.memory import training_device
    from backend.training.modeling import load_model, load_tokenizer, save_result

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
    set_seed(config.seed)
    tokenizer = load_tokenizer(config)
    train_set, val_set, id2label, collator = build_datasets(config, tokenizer)
    set_seed(config.seed)  # the new head's initial weights must not depend on how much data preparation drew
    model = load_model(config, device, id2label)
    arguments = training_arguments(config, run_dir, device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    progress = ProgressWriter(run_dir, config.batch_size * config.gradient_accumulation * world)
    stopper = StopOnRequest(run_dir)
    callbacks = [progress, stopper]
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = Trainer(model=model, args=arguments, train_dataset=train_set, eval_dataset=val_set,
                      data_collator=collator, processing_class=tokenizer, callbacks=callbacks,
                      compute_metrics=classification_metrics if config.task == "classification" else None)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    history = runfiles.read_progress(run_dir)
    metrics: dict[str, Any] = {"history": history, "started": started, "finished": time.time(),
                               "step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
                               "train": {key: value for key, value in output.metrics.items()
                                         if isinstance(value, (int, float))}}
    if stopper.stopped_at is not None:
        last = runfiles.last_checkpoint(run_dir)
        metrics.update(status="stopped", reason=f"stopped at step {stopper.stopped_at}; checkpoint saved "
                                                f"({last.name if last else 'none'}): Resume continues from it")
    else:
        final = {key.removeprefix("eval_"): float(value) for key, value in trainer.evaluate().items()
                 if isinstance(value, (int, float)) and not key.endswith(("_runtime", "_per_second"))}
        if config.task == "sft":
            final["perplexity"] = math.exp(min(final["loss"], 50.0))
        metrics.update(status="completed", final=final,
                       best_checkpoint=trainer.state.best_model_checkpoint,
                       early_stopped=trainer.state.global_step < trainer.state.max_steps)
        if trainer.is_world_process_zero():
            kind = save_result(trainer.model, tokenizer, config, run_dir / runfiles.MODEL)
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


def _error_value(error: BaseException) -> dict[str, Any]:
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
