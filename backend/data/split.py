"""Seeded train / validation / test splits, stratified by label when there is one.

Each class is shuffled with the seed and cut by largest remainders, so every class's share of each split is
within one row of the requested fraction; rows keep their file order inside each split.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Optional, Sequence

from backend.data.recipe import SPLIT_NAMES

if TYPE_CHECKING:
    import datasets


def allocate(count: int, fractions: Sequence[float]) -> list[int]:
    """`count` split by `fractions` into whole numbers adding up to `count` (largest remainders, ties in order)."""
    exact = [count * fraction for fraction in fractions]
    sizes = [math.floor(value) for value in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: count - sum(sizes)]:
        sizes[i] += 1
    return sizes


def split_indices(labels: Optional[Sequence[str]], total: int, fractions: Sequence[float],
                  seed: int) -> list[list[int]]:
    """Row indices of each split; `labels` (one per row) or None for an unstratified split."""
    groups: dict[Optional[str], list[int]] = {}
    for index in range(total):
        groups.setdefault(labels[index] if labels is not None else None, []).append(index)
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for key in sorted(groups, key=str):  # a fixed order, so the same seed gives the same rows
        members = groups[key]
        rng.shuffle(members)
        start = 0
        for part, size in zip(parts, allocate(len(members), fractions)):
            part.extend(members[start:start + size])
            start += size
    return [sorted(part) for part in parts]


def split_dataset(dataset: "datasets.Dataset", fractions: Sequence[float], seed: int,
                  label_column: Optional[str] = None) -> dict[str, "datasets.Dataset"]:
    """{"train": ..., "validation": ..., "test": ...}, leaving out parts whose fraction is 0."""
    labels = None
    if label_column:
        labels = ["" if value is None else str(value) for value in dataset[label_column]]
    indices = split_indices(labels, len(dataset), fractions, seed)
    return {name: dataset.select(rows) for name, rows, fraction in zip(SPLIT_NAMES, indices, fractions)
            if fraction > 0}
