"""The table of training tasks: one recipe per task (backend/training/recipes/base.py says what a recipe is).

Adding a task is a module here with a `Recipe` subclass and one line in `RECIPES`; the config, the CLI, the
Train tab, the training process, the model card and registration read it from this table.
"""

from __future__ import annotations

from backend.training.recipes.base import (ColumnField, Datasets, MemoryShape, PreparedData, Recipe,
                                           TrainerSettings)
from backend.training.recipes.classification import ClassificationRecipe
from backend.training.recipes.dpo import DPORecipe
from backend.training.recipes.sft import SFTRecipe
from backend.core.types import InvalidInputError

RECIPES: dict[str, Recipe] = {recipe.task: recipe for recipe in (ClassificationRecipe(), SFTRecipe(), DPORecipe())}
TASKS: tuple[str, ...] = tuple(RECIPES)


def recipe_for(task: str) -> Recipe:
    try:
        return RECIPES[task]
    except KeyError:
        raise InvalidInputError(f"field 'task': one of {', '.join(RECIPES)}, got {task!r}", field="task") from None


def column_fields() -> tuple[ColumnField, ...]:
    """Every task's column fields, each name once (the first task's guesses), in table order."""
    seen: dict[str, ColumnField] = {}
    for recipe in RECIPES.values():
        for field in recipe.columns:
            seen.setdefault(field.name, field)
    return tuple(seen.values())


__all__ = ["RECIPES", "TASKS", "ColumnField", "Datasets", "MemoryShape", "PreparedData", "Recipe", "TrainerSettings",
           "column_fields", "recipe_for"]
