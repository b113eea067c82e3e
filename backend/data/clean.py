"""Cleaning steps over a `datasets.Dataset`, each reporting how many rows it changed and dropped.

Every step is a batched `map` or `filter` (1,000 rows a batch), so a 100,000-row table is processed in bounded
pieces; duplicate detection keeps only 16-byte digests (exact) or LSH band keys (near-duplicates) per row kept.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
import uuid
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from backend.core.json_types import JSONObject
from backend.data.recipe import Recipe
from backend.data.tokens import TokenCounter

if TYPE_CHECKING:
    import datasets

# A batch of rows as `Dataset.map` / `filter` hand it over: column -> the cells (of any Arrow type; the steps read
# them as text through `_text`), and what a map gives back: column -> new cells.
Batch = dict[str, list[object]]
Columns = dict[str, Sequence[object]]

BATCH = 1000
CHANGED = "__changed"
_SPACES = re.compile(r"\s+")
_TAG_HINT = re.compile(r"<[A-Za-z/!]|&[#A-Za-z0-9]+;")
_WORD = re.compile(r"\w+")
NUM_PERM = 64  # 64 permutations: a Jaccard estimate within about +-0.06, at 512 bytes a row during the pass


@dataclass(frozen=True)
class StepReport:
    """What one step did: `changed` rows edited in place, `dropped` rows removed."""

    step: str
    detail: str
    rows_before: int
    rows_after: int
    changed: int = 0
    dropped: int = 0

    def summary(self) -> str:
        counts = [f"{self.changed:,} row(s) changed"] if self.changed or not self.dropped else []
        if self.dropped or not self.changed:
            counts.append(f"{self.dropped:,} dropped")
        return f"{self.step}: {', '.join(counts)} ({self.detail}); {self.rows_after:,} rows left"

    def to_dict(self) -> JSONObject:
        return asdict(self)


def normalize_text(text: str) -> str:
    """Unicode NFKC, then runs of white space as one space, trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment, leaving out script and style content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """The text of an HTML fragment (tags removed, entities decoded); plain text is returned unchanged."""
    if not _TAG_HINT.search(text):
        return text
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    return html.unescape(_SPACES.sub(" ", "".join(parser.parts)).strip())


def run_steps(dataset: "datasets.Dataset", recipe: Recipe, counter: Optional[TokenCounter] = None,
              progress: Callable[[str], None] = lambda message: None) -> tuple["datasets.Dataset", list[StepReport]]:
    """Applies the recipe's cleaning steps, in CLEAN_STEPS order; returns the dataset and one report per step."""
    from backend.data.recipe import CLEAN_STEPS

    reports = []
    for step in CLEAN_STEPS:
        if step not in recipe.clean:
            continue
        progress(f"cleaning: {step}")
        dataset, report = STEPS[step](dataset, recipe, counter)
        reports.append(report)
    return dataset, reports


# ------------------------------------------------------------------------------------------------ steps


def _rewrite(dataset: "datasets.Dataset", column: str, fn: Callable[[str], str], step: str,
             detail: str) -> tuple["datasets.Dataset", StepReport]:
    def batch(rows: Batch) -> Columns:
        old = [_text(value) for value in rows[column]]
        new = [fn(value) for value in old]
        return {column: new, CHANGED: [a != b for a, b in zip(old, new)]}

    out = _map(dataset, batch)
    changed = sum(out[CHANGED])
    out = out.remove_columns(CHANGED)
    return out, StepReport(step, detail, len(dataset), len(out), changed=changed)


def _keep(dataset: "datasets.Dataset", predicate: Callable[[Batch], list[bool]], step: str,
          detail: str) -> tuple["datasets.Dataset", StepReport]:
    out = dataset.filter(predicate, batched=True, batch_size=BATCH, load_from_cache_file=False,
                         new_fingerprint=uuid.uuid4().hex)
    return out, StepReport(step, detail, len(dataset), len(out), dropped=len(dataset) - len(out))


def _normalize(dataset, recipe, counter):  # noqa: ANN001, ANN202 - the STEPS signature
    return _rewrite(dataset, recipe.text_column, normalize_text, "normalize", "white space trimmed and collapsed, "
                    "Unicode NFKC")


def _html(dataset, recipe, counter):  # noqa: ANN001, ANN202
    return _rewrite(dataset, recipe.text_column, strip_html, "html", "HTML tags removed, entities decoded")


def _empty(dataset, recipe, counter):  # noqa: ANN001, ANN202
    column = recipe.text_column
    return _keep(dataset, lambda rows: [bool(_text(v).strip()) for v in rows[column]], "empty",
                 "rows with empty text dropped")


def _length(dataset, recipe, counter):  # noqa: ANN001, ANN202
    column = recipe.text_column
    bounds = {"chars": (recipe.min_chars, recipe.max_chars), "tokens": (recipe.min_tokens, recipe.max_tokens)}
    if any(value is not None for value in bounds["tokens"]) and counter is None:
        raise ValueError("a token counter is needed for token bounds")

    def inside(value: int, low: Optional[int], high: Optional[int]) -> bool:
        return (low is None or value >= low) and (high is None or value <= high)

    def predicate(rows: Batch) -> list[bool]:
        texts = [_text(value) for value in rows[column]]
        keep = [inside(len(text), *bounds["chars"]) for text in texts]
        if counter is not None and any(value is not None for value in bounds["tokens"]):
            keep = [k and inside(n, *bounds["tokens"]) for k, n in zip(keep, counter(texts))]
        return keep

    detail = "; ".join(f"{unit} {low if low is not None else 0}..{high if high is not None else 'any'}"
                       for unit, (low, high) in bounds.items() if low is not None or high is not None)
    if recipe.min_tokens is not None or recipe.max_tokens is not None:
        detail += f" (tokens of {recipe.token_model})"
    return _keep(dataset, predicate, "length", f"rows outside {detail} dropped")


def _dedupe(dataset, recipe, counter):  # noqa: ANN001, ANN202
    column, seen = recipe.text_column, set()

    def predicate(rows: Batch) -> list[bool]:
        keep = []
        for value in rows[column]:
            digest = hashlib.blake2b(_text(value).encode("utf-8"), digest_size=16).digest()
            keep.append(digest not in seen)
            seen.add(digest)
        return keep

    return _keep(dataset, predicate, "dedupe", "exact duplicate texts dropped (the first is kept)")


def shingles(text: str) -> list[bytes]:
    """Lower-cased word 3-grams (the words themselves for texts under three words)."""
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return [word.encode("utf-8") for word in words] or [b""]
    return [" ".join(words[i:i + 3]).encode("utf-8") for i in range(len(words) - 2)]


def _near_dedupe(dataset, recipe, counter):  # noqa: ANN001, ANN202
    from datasketch import MinHash, MinHashLSH

    column = recipe.text_column
    lsh = MinHashLSH(threshold=recipe.near_threshold, num_perm=NUM_PERM)
    next_key = iter(range(10**12))

    def predicate(rows: Batch) -> list[bool]:
        hashes = MinHash.bulk([shingles(_text(value)) for value in rows[column]], num_perm=NUM_PERM,
                              seed=recipe.seed)
        keep = []
        for minhash in hashes:
            duplicate = bool(lsh.query(minhash))
            if not duplicate:  # only kept rows are indexed: a chain a~b~c keeps a, and c if it is far from a
                lsh.insert(next(next_key), minhash)
            keep.append(not duplicate)
        return keep

    return _keep(dataset, predicate, "near-dedupe", f"near-duplicates dropped (MinHash LSH over word 3-grams, "
                 f"similarity >= {recipe.near_threshold:g}; the first is kept)")


def _labels(dataset, recipe, counter):  # noqa: ANN001, ANN202
    column, allowed = recipe.label_column, set(recipe.allowed_labels)

    def predicate(rows: Batch) -> list[bool]:
        labels = [_text(value).strip() for value in rows[column]]
        return [bool(label) and (not allowed or label in allowed) for label in labels]

    listed = f" or not one of {', '.join(recipe.allowed_labels)}" if allowed else ""
    return _keep(dataset, predicate, "labels", f"rows whose label is missing{listed} dropped")


STEPS: dict[str, Callable[..., tuple["datasets.Dataset", StepReport]]] = {
    "normalize": _normalize, "html": _html, "empty": _empty, "length": _length, "dedupe": _dedupe,
    "near-dedupe": _near_dedupe, "labels": _labels,
}


def _map(dataset: "datasets.Dataset", fn: Callable[[Batch], Columns]) -> "datasets.Dataset":
    return dataset.map(fn, batched=True, batch_size=BATCH, load_from_cache_file=False,
                       new_fingerprint=uuid.uuid4().hex)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    return value if isinstance(value, str) else str(value)
