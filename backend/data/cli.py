"""`python app.py data ...`: prepare a dataset headless, writing the split files and DIR/card.json.

    python app.py data --data reviews.csv --text-column text --label-column label \
        --clean normalize,html,empty,dedupe,near-dedupe --split 0.8,0.1,0.1 \
        --augment delete,synonym --copies 2 --rate 0.2 --seed 0 --out prepared/

The same code path as the Data tab (backend/data/pipeline.py). Only argparse and the standard library at import
time (app.py builds its parser from `add_arguments` for `--help`). Bad input exits with status 2, one `error:`
line on stderr and nothing written; Ctrl-C exits with 130, also leaving nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from backend.core.json_types import JSONObject, json_list, json_object

if TYPE_CHECKING:  # imported where used: `--help` stays instant
    from backend.data.recipe import Recipe
    from backend.core.registry import Registry

FILE_SUFFIXES = (".csv", ".jsonl", ".parquet")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE_OR_ID",
                        help="a .csv / .jsonl / .parquet file, or a Hugging Face Hub dataset id")
    source.add_argument("--hub-dataset", metavar="ID", help="a Hugging Face Hub dataset id (as in `eval`)")
    parser.add_argument("--hub-config", metavar="NAME", help="the Hub dataset's configuration")
    parser.add_argument("--hub-split", default="train", metavar="NAME",
                        help="the Hub dataset's split to load (default: train, the split one prepares; `eval` "
                        "reads test by default)")
    parser.add_argument("--text-column", required=True, metavar="C", help="the column with the texts")
    parser.add_argument("--label-column", metavar="C", help="the column with the labels, if any")
    parser.add_argument("--clean", default="", metavar="STEPS",
                        help="comma-separated: normalize, html, empty, length, dedupe, near-dedupe, labels "
                             "(length and labels are added when their options are given)")
    for name in ("min-chars", "max-chars", "min-tokens", "max-tokens"):
        bound, unit = name.split("-")
        more_or_fewer = "fewer" if bound == "min" else "more"
        counted = " (counted by --model's tokenizer)" if unit == "tokens" else ""
        parser.add_argument(f"--{name}", type=int, metavar="N",
                            help=f"length: drop rows with {more_or_fewer} than N {unit}{counted}")
    parser.add_argument("--model", metavar="ID", help="registry model whose tokenizer counts tokens (and, unless "
                        "--paraphrase-model is given, which paraphrases)")
    parser.add_argument("--models", default=os.environ.get("WORKBENCH_MODELS", "models.yaml"),
                        help="the model registry file (default: models.yaml, or $WORKBENCH_MODELS)")
    parser.add_argument("--near-threshold", type=float, default=0.8, metavar="X",
                        help="near-dedupe: similarity (0..1] above which rows count as near-duplicates")
    parser.add_argument("--labels", metavar="A,B", help="keep only rows with one of these labels")
    parser.add_argument("--split", metavar="FRACTIONS", help="train,validation,test fractions, e.g. 0.8,0.1,0.1")
    parser.add_argument("--augment", default="", metavar="METHODS",
                        help="comma-separated: delete, swap, insert, synonym, paraphrase (training split only)")
    parser.add_argument("--copies", type=int, default=1, metavar="N", help="augmented rows per row and method")
    parser.add_argument("--rate", type=float, default=0.3, metavar="X", help="fraction of words changed (0..1)")
    parser.add_argument("--paraphrase-model", metavar="ID", help="chat model that paraphrases")
    parser.add_argument("--paraphrase-prompt", metavar="T", help="prompt with {text} where each row goes")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="for the split, near-dedupe and augmentation: the same seed, the same files (default: 0)")
    parser.add_argument("--format", default="jsonl", choices=("csv", "jsonl", "parquet"),
                        help="the written files' format (default: jsonl)")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder for the files")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_recipe(args: argparse.Namespace) -> Recipe:
    """The validated `Recipe` for the command line (a bad option fails before any data is read)."""
    from backend.data.recipe import DEFAULT_PARAPHRASE_PROMPT, Recipe, parse_fractions
    from backend.evaluation.data import DataSource

    data = args.data or args.hub_dataset
    is_file = args.hub_dataset is None and (Path(data).exists() or Path(data).suffix.lower() in FILE_SUFFIXES)
    source = DataSource(path=data) if is_file else DataSource(hub_id=data, hub_config=args.hub_config,
                                                              split=args.hub_split)
    clean = [step.strip() for step in args.clean.split(",") if step.strip()]
    if any(v is not None for v in (args.min_chars, args.max_chars, args.min_tokens, args.max_tokens)) and \
            "length" not in clean:
        clean.append("length")
    labels = tuple(label.strip() for label in (args.labels or "").split(",") if label.strip())
    if labels and "labels" not in clean:
        clean.append("labels")
    augment = tuple(method.strip() for method in args.augment.split(",") if method.strip())
    return Recipe(
        source=source, text_column=args.text_column, label_column=args.label_column, clean=tuple(clean),
        min_chars=args.min_chars, max_chars=args.max_chars, min_tokens=args.min_tokens, max_tokens=args.max_tokens,
        token_model=args.model if args.min_tokens is not None or args.max_tokens is not None else None,
        near_threshold=args.near_threshold, allowed_labels=labels,
        split=parse_fractions(args.split) if args.split else None, augment=augment, rate=args.rate,
        copies=args.copies,
        paraphrase_model=(args.paraphrase_model or args.model) if "paraphrase" in augment else None,
        paraphrase_prompt=args.paraphrase_prompt or DEFAULT_PARAPHRASE_PROMPT, seed=args.seed,
    ).validated()


def main(args: argparse.Namespace) -> int:
    """Runs the preparation described by `args`; returns the process exit status."""
    from backend.core.types import ConfigError, WorkbenchError

    registry = None
    try:
        recipe = build_recipe(args)
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise WorkbenchError(f"out (--out): '{out}' already exists and is not an empty folder")
        needs_models = recipe.token_model or recipe.paraphrase_model
        registry = _registry(args.models) if needs_models else None
        card = run(recipe, out, args.format, registry, None if args.quiet else _progress)
    except (WorkbenchError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    finally:
        if registry is not None:
            registry.close()
    from backend.data.pipeline import describe_step

    for step in json_list(card["steps"]):
        print(describe_step(json_object(step)))
    print(f"wrote {', '.join(f'{split} ({rows:,} rows)' for split, rows in json_object(card['rows']).items())} and "
          f"card.json "
          f"to {out}")
    return 0


def run(recipe: Recipe, out: Path, fmt: str, registry: Optional[Registry] = None,
        progress: Optional[Callable[[str], None]] = None) -> JSONObject:
    """Prepares and writes; returns the card written."""
    from backend.data.pipeline import prepare
    from backend.data.store import read_card, write_splits

    prepared = prepare(recipe, registry, progress or (lambda message: None))
    write_splits(prepared.splits, prepared.card, out, fmt)
    return read_card(out)


def _registry(models: str) -> Registry:
    from backend.core.registry_source import open_registry
    from backend.engines import create_engine

    # models.yaml plus the fine-tuned models of the runs' overlay
    return open_registry(models, engine_factory=create_engine)


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)
