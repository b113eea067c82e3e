"""Grouping rows of different lengths into dense forward passes (plain integers in, index groups out).

Its own module because label scoring, prompt scoring (token_ops) and the local classifier all batch this way, and
token_ops sits below decode.py, which label scoring builds on: a shared home keeps the imports one-directional.
"""

from __future__ import annotations

from typing import Sequence


def length_groups(lengths: Sequence[int], max_items: int, max_waste: float = 1.25) -> list[list[int]]:
    """Indices grouped for forward passes: similar lengths together, at most `max_items` per group.

    Right padding makes every row of a pass as long as its longest: mixing a 10-token and a 120-token prompt
    costs the short one 110 tokens of padding. Sorting by length and closing a group when padding would exceed
    `max_waste` times the real tokens keeps batches dense (results go back in the caller's order).
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        length = lengths[index]
        # Sorted ascending, so this item is the group's longest: the padded size is length x (count + 1).
        if current and (len(current) >= max_items or length * (len(current) + 1) > max_waste * (real + length)):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        groups.append(current)
    return groups
