"""Compare models on a suite: a judge's grades per model, A vs B pairwise, "compare with base", diffs.

`judge_models` runs after a generation run's models (backend/evaluation/runner.py, when the run names a judge):
each model's replies are graded (backend/evaluation/judge.py: `judge_score` with its interval, `n_unparsed`),
and with exactly two models the pair is judged in both orders (backend/evaluation/pairwise.py), the first model
being A. `base_of` finds the model a fine-tuned model was trained from; `example_diffs` and `side_by_side` are
what the CLI and the Evaluate tab show.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from backend.core.error_codes import refuse
from backend.evaluation.conversation import prompt_messages
from backend.evaluation.judge import SCORE_NAME, engine_generate, grade
from backend.evaluation.pairwise import PairwiseSummary, compare_pair
from backend.evaluation.types import INPUT_SLOT, EvalConfig, ModelResult, RunResult

if TYPE_CHECKING:
    import pandas as pd

    from backend.core.registry import Registry
    from backend.evaluation.data import Examples

Note = Callable[[str], None]


def check_judge(registry: "Registry", config: EvalConfig) -> None:
    """The judge exists and can chat or generate (checked before a run; EvalConfig checks it is no candidate)."""
    if not config.judge:
        return
    spec = registry.spec(config.judge)
    if not spec.is_generative:
        from backend.core.types import UnsupportedTaskError

        raise UnsupportedTaskError(f"judge: model '{config.judge}' cannot generate text (its tasks: "
                                   f"{', '.join(spec.tasks)})")


def questions(config: EvalConfig, examples: "Examples") -> list[str]:
    """What each model was asked, as the judge reads it: the conversation as "role: text" lines, or the prompt."""
    template = config.prompt_template or INPUT_SLOT
    asked = [template.replace(INPUT_SLOT, text) for text in examples.inputs]
    if examples.conversations is None:
        return asked
    with_input = config.columns.input is not None
    return ["\n".join(f"{m.role}: {m.content}" for m in prompt_messages(history, prompt if with_input else None))
            for history, prompt in zip(examples.conversations, asked)]


def judge_models(registry: "Registry", config: EvalConfig, examples: "Examples", results: dict[str, ModelResult],
                 cancel: threading.Event, note: Note) -> Optional[PairwiseSummary]:
    """Grades every model's replies with `config.judge` (into its `ModelResult`), then A vs B for two models."""
    judge_id = config.judge or ""
    asked = questions(config, examples)
    spec = registry.spec(judge_id)
    with registry.lease(judge_id, "chat" if "chat" in spec.tasks else "generate") as engine:
        generate = engine_generate(engine, batch_size=config.batch_size, max_new_tokens=config.judge_max_new_tokens,
                                   cancel=cancel)
        for model_id, result in results.items():
            if result.status not in ("complete", "cancelled") or cancel.is_set():
                continue
            note(f"{judge_id} grades {model_id}'s replies")
            summary = grade(generate, judge_id, asked, examples.references, result.predictions, config.judge_rubric,
                            bootstrap=config.bootstrap, confidence=config.confidence, seed=config.seed, cancel=cancel)
            result.metrics[SCORE_NAME] = summary.mean
            if summary.interval is not None:
                result.intervals[SCORE_NAME] = summary.interval
            result.example_scores[SCORE_NAME] = summary.scores()
            result.details["judge"] = summary.to_dict()
            if summary.n_unparsed:
                result.notices.append(f"the judge's answer was out of format for {summary.n_unparsed:,} of "
                                      f"{summary.n_unparsed + summary.scored:,} replies (not scored)")
        ran = [model_id for model_id, result in results.items() if result.status in ("complete", "cancelled")]
        if len(config.models) != 2 or len(ran) != 2 or cancel.is_set():
            return None
        model_a, model_b = config.models
        note(f"{judge_id} compares {model_a} with {model_b} (both orders)")
        return compare_pair(generate, judge_id, model_a, model_b, asked, examples.references,
                            results[model_a].predictions, results[model_b].predictions, config.pair_rubric,
                            config.confidence)


def base_of(registry: "Registry", model_id: str) -> str:
    """The registry id of the model `model_id` was fine-tuned from (its training run's config records it)."""
    from backend.training import runfiles
    from backend.training.config import load_train_config
    from backend.core.types import InvalidInputError

    spec = registry.spec(model_id)
    weights = spec.adapter or spec.source
    run_dir = Path(str(weights)).parent if weights else None
    if run_dir is not None and not run_dir.is_absolute() and spec.base_dir is not None:
        run_dir = spec.base_dir / run_dir
    base: Optional[str] = None
    if run_dir is not None and (run_dir / runfiles.CONFIG).is_file():
        try:
            base = load_train_config(run_dir / runfiles.CONFIG).base_id
        except InvalidInputError:
            base = None
    if not base or base == model_id or base not in {s.id for s in registry.specs()}:
        raise refuse("no_base_model", "models", model=model_id)
    return base


def example_diffs(run: RunResult) -> "pd.DataFrame":
    """One row per example: input, reference, and per model its reply and scores side by side (wide format);
    with a pairwise comparison, its outcome and both orders' picks."""
    import pandas as pd

    columns: dict[str, Sequence[object]] = {"row": run.examples.rows, "input": run.examples.inputs,
                                            "reference": run.examples.references}
    count = len(run.examples)
    for model_id, result in run.models.items():
        columns[f"{model_id}: reply"] = (result.predictions + [None] * count)[:count]
        for name, values in result.example_scores.items():
            if name in ("length",):
                continue
            columns[f"{model_id}: {name}"] = values
        reasons = (result.details.get("judge") or {}).get("reasons")
        if reasons:
            columns[f"{model_id}: judge reason"] = reasons
    if run.comparison is not None:
        columns["pairwise"] = [{"A": run.comparison.model_a, "B": run.comparison.model_b, "tie": "tie"}.get(o or "", "")
                               for o in run.comparison.outcomes]
        columns["picked (A shown first)"] = run.comparison.a_first
        columns["picked (B shown first)"] = run.comparison.b_first
    return pd.DataFrame(columns)


def side_by_side(run: RunResult) -> str:
    """The models' metrics in columns, and the pairwise result with its intervals: what the CLI prints."""
    models = list(run.models.values())
    names = sorted({name for result in models for name in result.metrics}, key=_metric_order)
    width = max([len(name) for name in names] + [6])
    lines = [" " * width + "".join(f"  {result.model_id:>24}" for result in models)]
    for name in names:
        cells = []
        for result in models:
            value = result.metrics.get(name)
            interval = result.intervals.get(name)
            shown = "-" if value is None else f"{value:.4g}" + (f" [{interval[0]:.3g}, {interval[1]:.3g}]"
                                                                   if interval else "")
            cells.append(f"  {shown:>24}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    for result in models:
        judged = result.details.get("judge")
        if judged:
            lines.append(f"judge {judged['judge']} on {result.model_id}: {judged['scored']} scored, "
                         f"{judged['n_unparsed']} out of format")
    if run.comparison is not None:
        lines.append(pairwise_line(run.comparison))
    return "\n".join(lines)


def pairwise_line(pair: PairwiseSummary) -> str:
    rates, intervals = pair.rates(), pair.intervals()

    def shown(name: str) -> str:
        low, high = intervals[name]
        return f"{rates[name]:.0%} [{low:.0%}, {high:.0%}]" if pair.counted else "-"

    return (f"{pair.model_a} vs {pair.model_b} (judge {pair.judge}, both orders): {pair.count('A')} win / "
            f"{pair.count('tie')} tie / {pair.count('B')} loss of {pair.counted}; win {shown('win_rate')}, "
            f"tie {shown('tie_rate')}, loss {shown('loss_rate')} ({pair.confidence:.0%} Wilson); "
            f"{pair.n_unparsed} out of format")


def _metric_order(name: str) -> tuple[int, str]:
    first = ("judge_score", "contains", "normalized_exact_match", "exact_match", "bleu", "chrf", "rougeL")
    return (first.index(name), name) if name in first else (len(first), name)
