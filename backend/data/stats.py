"""Statistics of a table: column types, empty values, duplicates, text lengths (characters and tokens), label
balance and a length histogram. pandas and NumPy over the whole table (at most datafiles.MAX_ROWS rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from backend.data.tokens import TokenCounter
from backend.data.files import column_texts
from backend.core.error_codes import refuse

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

HISTOGRAM_BINS = 20
MAX_LABELS_SHOWN = 50


def column_type(values: "pd.Series") -> str:
    """text / number / boolean / list / empty, from the values (CSV cells all arrive as text)."""
    import pandas as pd

    present = [value for value in values.tolist() if not _is_empty(value)]
    if not present:
        return "empty"
    if all(isinstance(value, bool) for value in present):
        return "boolean"
    if all(isinstance(value, (list, tuple, dict)) or hasattr(value, "tolist") and not isinstance(value, str)
           for value in present):
        return "list"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "number"
    numbers = pd.to_numeric(pd.Series([str(value) for value in present]), errors="coerce")
    return "number" if not numbers.isna().any() else "text"


def table_stats(table: "pd.DataFrame", text_column: Optional[str] = None, label_column: Optional[str] = None,
                counter: Optional[TokenCounter] = None) -> dict[str, Any]:
    """{"rows", "columns": [...], "text": {...} | None, "labels": [...] | None}."""
    import numpy as np

    for role, column in (("text column", text_column), ("label column", label_column)):
        if column and column not in table.columns:
            raise refuse("no_column", role.replace(" ", "_"), shown=role, name=column,
                         columns=", ".join(map(repr, map(str, table.columns))))
    columns = []
    for name in table.columns:
        texts = [str(value) if not _is_empty(value) else "" for value in table[name].tolist()]
        present = [text for text in texts if text.strip()]
        columns.append({"column": str(name), "type": column_type(table[name]), "empty": len(texts) - len(present),
                        "duplicates": len(present) - len(set(present)), "unique": len(set(present))})
    result: dict[str, Any] = {"rows": len(table), "columns": columns, "text": None, "labels": None}
    if text_column:
        texts = column_texts(table, text_column)
        chars = np.array([len(text) for text in texts])
        result["text"] = {"column": text_column, "chars": _summary(chars),
                          "histogram": _histogram(chars, "chars")}
        if counter is not None:
            tokens = np.array(counter(texts))
            result["text"]["tokens"] = _summary(tokens)
            result["text"]["histogram"] = _histogram(tokens, "tokens")
    if label_column:
        labels = [text.strip() or "(missing)" for text in column_texts(table, label_column)]
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        result["labels"] = [{"label": label, "rows": count, "share": count / len(labels)}
                            for label, count in ranked[:MAX_LABELS_SHOWN]]
    return result


def _summary(values: np.ndarray) -> dict[str, float]:
    import numpy as np

    if len(values) == 0:
        return {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}
    return {"min": int(values.min()), "mean": round(float(values.mean()), 1),
            "median": float(np.median(values)), "max": int(values.max())}


def _histogram(values: np.ndarray, unit: str) -> list[dict[str, int | str]]:
    import numpy as np

    if len(values) == 0:
        return []
    counts, edges = np.histogram(values, bins=min(HISTOGRAM_BINS, max(1, int(values.max() - values.min()) + 1)))
    return [{"from": int(edges[i]), "to": int(edges[i + 1]), "rows": int(count), "unit": unit}
            for i, count in enumerate(counts)]


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()
