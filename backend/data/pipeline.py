"""The one code path of a data preparation (the Data tab's job process and `python app.py data` both call
`prepare`): load -> clean -> split -> augment, with a card that records the source and every step in order with
its row counts, so the same recipe and seed give the same rows again."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from backend.core.json_types import JSONObject, JSONValue, json_object
from backend.data.clean import run_steps
from backend.data.recipe import Recipe
from backend.data.store import now
from backend.core.error_codes import refuse
from backend.evaluation.data import load_table
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import datasets
    import pandas as pd

    from backend.core.registry import Registry

Progress = Callable[[str], None]


@dataclass
class Prepared:
    splits: dict[str, "datasets.Dataset"]
    card: JSONObject  # card.json without what writing adds (format, files, rows)


def to_dataset(table: "pd.DataFrame", recipe: Recipe) -> "datasets.Dataset":
    """The table as a `datasets.Dataset`, its text and label columns as text (CSV cells already are)."""
    import datasets

    from backend.data.files import column_texts
    from backend.evaluation.data import column_list

    datasets.disable_progress_bars()  # per-step progress goes to the caller's `progress`, not to stderr bars

    for field, column in (("text_column", recipe.text_column), ("label_column", recipe.label_column)):
        if column and column not in table.columns:
            raise refuse("no_column", field, shown=f"{field} (--{field.replace('_', '-')})", name=column,
                         columns=column_list(table))
    table = table.copy()
    for column in (recipe.text_column, recipe.label_column):
        if column:
            table[column] = column_texts(table, column)
    try:
        return datasets.Dataset.from_pandas(table, preserve_index=False)
    except (TypeError, ValueError):  # pyarrow's ArrowTypeError / ArrowInvalid: a JSONL column mixes kinds
        for column in table.columns:
            if table[column].dtype == object:
                table[column] = column_texts(table, str(column))
        return datasets.Dataset.from_pandas(table, preserve_index=False)


def describe_source(recipe: Recipe, rows: int) -> JSONObject:
    source = recipe.source
    if source.path:
        digest = hashlib.sha256()
        with open(source.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"file": os.path.basename(source.path), "sha256": digest.hexdigest(), "rows": rows}
    return {"hub_id": source.hub_id, "config": source.hub_config, "split": source.split, "rows": rows}


def prepare(recipe: Recipe, registry: Optional["Registry"] = None, progress: Progress = lambda message: None,
            table: Optional["pd.DataFrame"] = None, display_name: Optional[str] = None) -> Prepared:
    """Runs the recipe; `table` skips loading when the caller has it already (the tab's preview)."""
    recipe.validated()
    needs_registry = recipe.min_tokens is not None or recipe.max_tokens is not None or "paraphrase" in recipe.augment
    if needs_registry and registry is None:
        raise InvalidInputError("models: counting tokens and paraphrasing need the model registry (--models)",
                                field="models")
    progress("loading")
    if table is None:
        table = load_table(recipe.source)
    dataset = to_dataset(table, recipe)
    source = describe_source(recipe, len(dataset))
    if display_name and "file" in source:
        source["file"] = display_name
    steps: list[JSONValue] = [{"step": "load", "detail": recipe.source.describe() if not display_name else
                                    display_name, "rows_before": 0, "rows_after": len(dataset)}]
    counter = None
    if recipe.min_tokens is not None or recipe.max_tokens is not None:
        from backend.data.tokens import token_counter

        counter = token_counter(registry.spec(recipe.token_model or ""))  # type: ignore[union-attr]
    dataset, reports = run_steps(dataset, recipe, counter, progress)
    steps.extend(report.to_dict() for report in reports)
    if len(dataset) == 0:
        raise refuse("all_dropped", "clean", why="; ".join(r.summary() for r in reports))
    if recipe.split:
        from backend.data.split import split_dataset

        progress("splitting")
        splits = split_dataset(dataset, recipe.split, recipe.seed, recipe.label_column)
        steps.append({"step": "split", "detail": "stratified by label" if recipe.label_column else "random",
                      "fractions": [*recipe.split], "seed": recipe.seed,
                      "rows": {name: len(part) for name, part in splits.items()}})
    else:
        splits = {"data": dataset}
    if recipe.augment:
        from backend.data.augment import AUGMENTED, augment_dataset

        target = "train" if "train" in splits else "data"
        splits[target], added = augment_dataset(splits[target], recipe, registry, progress)
        for name in splits:  # every split gets the marker column, so they share one schema
            if name != target:
                splits[name] = splits[name].add_column(AUGMENTED, [""] * len(splits[name]))
        steps.extend({**report, "split": target} for report in added)
    card: JSONObject = {
        "kind": "text",
        "created": now(),
        "source": source,
        "text_column": recipe.text_column,
        "label_column": recipe.label_column,
        "columns": [*next(iter(splits.values())).column_names],
        "steps": steps,
        "recipe": recipe.to_dict(),
        "reproduce": reproduce_command(recipe, file if isinstance(file := source.get("file"), str) else None),
    }
    return Prepared(splits, card)


def reproduce_command(recipe: Recipe, file_name: Optional[str] = None) -> str:
    """The `python app.py data` command that redoes this preparation (OUT_DIR left for the user to choose)."""
    source = recipe.source
    args = ["python", "app.py", "data"]
    if source.path:
        args += ["--data", file_name or str(Path(source.path).name)]
    else:
        args += ["--data", source.hub_id or ""]
        if source.hub_config:
            args += ["--hub-config", source.hub_config]
        args += ["--hub-split", source.split]
    args += ["--text-column", recipe.text_column]
    if recipe.label_column:
        args += ["--label-column", recipe.label_column]
    if recipe.clean:
        args += ["--clean", ",".join(recipe.clean)]
    for name in ("min_chars", "max_chars", "min_tokens", "max_tokens"):
        if getattr(recipe, name) is not None:
            args += [f"--{name.replace('_', '-')}", str(getattr(recipe, name))]
    if recipe.token_model:
        args += ["--model", recipe.token_model]
    if "near-dedupe" in recipe.clean:
        args += ["--near-threshold", f"{recipe.near_threshold:g}"]
    if recipe.allowed_labels:
        args += ["--labels", ",".join(recipe.allowed_labels)]
    if recipe.split:
        args += ["--split", ",".join(f"{part:g}" for part in recipe.split)]
    if recipe.augment:
        args += ["--augment", ",".join(recipe.augment), "--copies", str(recipe.copies), "--rate", f"{recipe.rate:g}"]
    if recipe.paraphrase_model:
        args += ["--paraphrase-model", recipe.paraphrase_model, "--paraphrase-prompt", recipe.paraphrase_prompt]
    args += ["--seed", str(recipe.seed), "--out", "OUT_DIR"]
    return shlex.join(args)


def describe_step(step: JSONObject) -> str:
    """One line per card step, e.g. "dedupe: 0 row(s) changed, 19 dropped (...); 6 rows left"."""
    name = str(step["step"])
    if name == "load":
        return f"load: {step['rows_after']:,} rows from {step['detail']}"
    if name == "split":
        return "split: " + ", ".join(f"{split} {rows:,}" for split, rows in json_object(step["rows"]).items()) + \
            f" ({step['detail']}, seed {step['seed']})"
    if name.startswith("augment:"):
        return f"{name}: {step['rows_added']:,} rows added to {step['split']} ({step['copies']} per row)"
    if "changed" not in step:  # steps of datasets built from chat ratings
        return f"{name}: {step.get('rows_after', 0):,} rows" + (f" ({step['detail']})" if step.get("detail") else "")
    return f"{name}: {step['changed']:,} row(s) changed, {step['dropped']:,} dropped ({step['detail']}); " \
           f"{step['rows_after']:,} rows left"
