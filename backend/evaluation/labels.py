"""Matching a file's reference labels to the labels a classifier knows.

Files spell labels in their own way: "Positive" for the model's "positive", or class ids (0 / 1, as most Hub
datasets store them) for its id2label names. Both are mapped; anything else is an error naming the labels the
model does not know and the ones it does, instead of a silent accuracy of 0.
"""

from __future__ import annotations

from typing import Optional, Sequence

from backend.core.types import InvalidInputError


def align_references(references: Sequence[str], known: Sequence[str], model_id: str,
                     column: Optional[str] = None) -> list[str]:
    """`references` spelled as the model spells its labels, or InvalidInputError naming the unknown ones."""
    known = list(known)
    known_set = set(known)
    references = [reference.strip() for reference in references]
    if set(references) <= known_set:
        return references
    folded = {label.casefold(): label for label in known}
    if all(reference in known_set or reference.casefold() in folded for reference in references):
        return [reference if reference in known_set else folded[reference.casefold()] for reference in references]
    if all(_is_index(reference, len(known)) for reference in references):
        return [known[int(reference)] for reference in references]
    unknown = sorted({reference for reference in references
                      if reference not in known_set and reference.casefold() not in folded})
    shown = ", ".join(f"'{label}'" for label in unknown[:10]) + (f" and {len(unknown) - 10} more"
                                                                   if len(unknown) > 10 else "")
    where = f"the reference column '{column}'" if column else "the references"
    raise InvalidInputError(
        f"labels: {where} has label(s) model '{model_id}' does not know: {shown}. It knows: "
        f"{', '.join(repr(label) for label in known)} (class ids 0-{len(known) - 1} also work)"
    , field="labels")


def _is_index(value: str, classes: int) -> bool:
    return value.isdigit() and int(value) < classes
