"""`python app.py eval ...`: a headless evaluation run that writes DIR/results.json and DIR/predictions.csv.

    python app.py eval --models models.yaml --model tiny-chat --data qa.csv --task generation \
        --input-column question --reference-column answer --prompt-template "Q: {input}\nA:" --out out/
    python app.py eval --model my-finetune --model my-base --judge judge-model --data suite.jsonl \
        --task generation --input-column input --reference-column reference --conversation-column context
    python app.py eval --model my-finetune --with-base --judge judge-model --data suite.jsonl --task generation

With two models the summary shows them side by side (with --judge: each model's judge score and the pairwise
win / tie / loss rates with their intervals) and DIR/diffs.csv holds the per-example differences.

Only argparse and the standard library at import time: app.py builds its parser from `add_arguments` for
`--help`, which must stay instant. Bad input exits with status 2 and one clear `error:` line on stderr; a model
that failed while running makes the exit status 1 (the other models' results are still written); Ctrl-C stops
the run, scores and saves what was finished, and exits with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # imported where used: `--help` stays instant
    from backend.evaluation.types import EvalConfig, Progress, RunResult
    from backend.core.registry import Registry

TASK_CHOICES = ("classification", "generation", "perplexity",
                "ner", "question_answering", "summarization", "translation")  # the last four: pipeline task models
# The registry's task names (models.yaml `tasks:`), accepted for the evaluation task they measure.
TASK_ALIASES = {"classify": "classification", "summarize": "summarization", "translate": "translation"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=os.environ.get("WORKBENCH_MODELS", "models.yaml"),
                        help="the model registry file (default: models.yaml, or $WORKBENCH_MODELS)")
    parser.add_argument("--model", action="append", default=[], metavar="ID",
                        help="a model id from the registry; repeat for a leaderboard of several models")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE", help="a .csv, .jsonl or .parquet file")
    source.add_argument("--hub-dataset", metavar="ID", help="a Hugging Face Hub dataset id (needs internet, or "
                        "HF_HUB_OFFLINE=1 and a cached copy)")
    parser.add_argument("--hub-config", metavar="NAME", help="the Hub dataset's configuration, if it has several")
    parser.add_argument("--hub-split", "--split", dest="split", default="test", metavar="NAME",
                        help="the Hub dataset's split (default: test; `data` prepares train by default)")
    parser.add_argument("--task", required=True, choices=TASK_CHOICES, type=lambda task: TASK_ALIASES.get(task, task),
                        help="what is measured; the registry's task names are accepted too (classify, summarize, "
                        "translate)")
    parser.add_argument("--input-column", metavar="C", help="the text the model sees (scored text, for perplexity)")
    parser.add_argument("--reference-column", metavar="C", help="the expected text, or the true label")
    parser.add_argument("--context-column", metavar="C",
                        help="question_answering: the passage (--input-column is then the question)")
    parser.add_argument("--source-language", default="", metavar="L", help="translation: the source language (en)")
    parser.add_argument("--target-language", default="", metavar="L", help="translation: the target language (de)")
    parser.add_argument("--conversation-column", metavar="C",
                        help="generation: the turns before the input, a list of {role, content} messages (a suite "
                             "saved from Chat: context; an SFT file: messages, whose last assistant turn is then "
                             "the reference)")
    parser.add_argument("--with-base", action="store_true",
                        help="also evaluate the base model the first --model was fine-tuned from (compare with base)")
    parser.add_argument("--judge", metavar="ID",
                        help="generation: a registry model that grades each reply 1-10 against the reference; with "
                             "two models it also judges them pairwise, in both orders")
    parser.add_argument("--judge-rubric", metavar="FILE", help="the judge's rubric, a text file with {question}, "
                        "{reference} and {answer} (default: the built-in rubric)")
    parser.add_argument("--pair-rubric", metavar="FILE", help="the pairwise rubric, with {question}, {reference}, "
                        "{answer_1} and {answer_2} (default: the built-in rubric)")
    parser.add_argument("--judge-max-new-tokens", type=int, default=160, metavar="N",
                        help="the judge's answer length (default: 160)")
    parser.add_argument("--predictions-column", metavar="C",
                        help="score predictions already in the file (no --model needed; reported as 'predictions')")
    parser.add_argument("--prompt-template", metavar="T",
                        help="how an input becomes a prompt, with {input} where it goes (default: {input})")
    parser.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                        help="wrap prompts in the model's chat template (default: for models that chat)")
    parser.add_argument("--classification-mode", choices=("supervised", "zero_shot", "llm"),
                        help="how models classify (default: what each model does)")
    parser.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="generation length (default: 64)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate N rows (the first N, or a sample with --seed)")
    parser.add_argument("--seed", type=int, metavar="S", help="sample --limit rows at random with this seed")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="examples per forward pass (default: 8)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="resamples for 95%% confidence intervals, at most 10,000; 0 turns them off "
                             "(default: 1000)")
    parser.add_argument("--rouge-stemmer", action="store_true",
                        help="ROUGE with Porter stemming (default: off, as in evaluate's rouge)")
    parser.add_argument("--out", metavar="DIR", help="where results.json and predictions.csv go "
                        "(default: a new folder under --runs-dir)")
    parser.add_argument("--runs-dir", default=os.environ.get("WORKBENCH_RUNS_DIR", "runs"), metavar="DIR",
                        help="where runs are saved when --out is not given (default: runs, or $WORKBENCH_RUNS_DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def main(args: argparse.Namespace) -> int:
    """Runs the evaluation described by `args`; returns the process exit status."""
    from backend.core.types import WorkbenchError

    try:
        config = build_config(args)
        registry = _registry(args) if config.models else None
        try:
            if args.with_base and registry is not None:
                from backend.evaluation.compare import base_of

                first = config.models[0]
                config = config.with_overrides(models=(first, base_of(registry, first)))
            run = _run_interruptibly(config, registry, args)
        finally:
            if registry is not None:
                registry.close()
    except WorkbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_summary(run)
    for failed in run.failed:
        print(f"error: model '{failed.model_id}' failed: {failed.error}", file=sys.stderr)
    if run.cancelled:
        return 130  # what a shell reports for Ctrl-C
    return 1 if run.failed else 0


def _run_interruptibly(config: EvalConfig, registry: Optional[Registry], args: argparse.Namespace) -> RunResult:
    """Runs in a worker thread so that Ctrl-C cancels cleanly: finished examples are scored and saved."""
    from backend.evaluation.runner import EvaluationJob

    job = EvaluationJob(config, registry, progress=None if args.quiet else _ProgressPrinter(),
                        runs_dir=args.runs_dir, out_dir=args.out)
    try:
        while not job.done:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("interrupted: stopping; finished examples are scored and saved", file=sys.stderr, flush=True)
        job.cancel()
    return job.result()


def build_config(args: argparse.Namespace) -> EvalConfig:
    """The `EvalConfig` for the command line (validated: a bad option fails before any data is read)."""
    from backend.evaluation.data import ColumnMapping, DataSource
    from backend.evaluation.types import EvalConfig

    data = DataSource(path=args.data, hub_id=args.hub_dataset, hub_config=args.hub_config, split=args.split)
    columns = ColumnMapping(input=args.input_column, reference=args.reference_column,
                            predictions=args.predictions_column, context=args.context_column,
                            conversation=args.conversation_column)
    return EvalConfig(task=args.task, data=data, columns=columns, models=tuple(args.model),
                      prompt_template=args.prompt_template, chat_template=args.chat_template,
                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                      seed=args.seed, bootstrap=args.bootstrap, rouge_stemmer=args.rouge_stemmer,
                      classification_mode=args.classification_mode, source_language=args.source_language,
                      target_language=args.target_language, judge=args.judge,
                      judge_max_new_tokens=args.judge_max_new_tokens,
                      judge_rubric=_rubric(args.judge_rubric, "judge_rubric"),
                      pair_rubric=_rubric(args.pair_rubric, "pair_rubric")).validated()


def _rubric(path: Optional[str], field: str) -> Optional[str]:
    if not path:
        return None
    try:
        return open(path, encoding="utf-8").read()
    except OSError as error:
        from backend.core.types import InvalidInputError

        raise InvalidInputError(f"{field}: cannot read {path}: {error.strerror}", field=field) from None


def _registry(args: argparse.Namespace) -> Registry:
    """models.yaml plus the fine-tuned models registered by training runs (the app's own list of models)."""
    from backend.core.registry_source import open_registry
    from backend.engines import create_engine

    return open_registry(args.models, engine_factory=create_engine)


class _ProgressPrinter:
    """One stderr line per second at most (and the last one), so logs stay readable."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and progress.done < progress.total:
            return
        self.last = now
        eta = f", about {progress.eta_s:.0f}s left" if progress.eta_s is not None else ""
        print(f"[{progress.done}/{progress.total}] {progress.message}{eta}", file=sys.stderr, flush=True)


def _print_summary(run: RunResult) -> None:
    from backend.evaluation.metrics import HEADLINE

    headline = HEADLINE[run.task]
    for notice in run.examples.notices:
        print(f"note: {notice}", file=sys.stderr)
    print(f"{run.task} on {run.config.data.describe()}: {len(run.examples)} example(s)"
          f"{' (cancelled)' if run.cancelled else ''}")
    for result in run.models.values():
        value = result.metrics.get(headline)
        interval = result.intervals.get(headline)
        shown = "-" if value is None else f"{value:.4g}" + (f" [{interval[0]:.4g}, {interval[1]:.4g}]"
                                                               if interval else "")
        print(f"  {result.model_id}: {headline} {shown} ({result.status}, {result.completed} scored)")
        for notice in result.notices:
            print(f"note: {result.model_id}: {notice}", file=sys.stderr)
    if len(run.models) > 1 or run.config.judge:
        from backend.evaluation.compare import side_by_side

        print(side_by_side(run))
        if run.path is not None and len(run.models) > 1:
            from backend.evaluation.store import DIFFS_FILE

            print(f"per-example diffs: {run.path / DIFFS_FILE}")
    print(f"results: {run.path}")

