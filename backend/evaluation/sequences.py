"""Lists stored in a table cell, as text: tokens and tags for NER, several gold answers for QA.

A cell may hold a JSON list (`["B-PER", "O"]`), a Python list's repr (CSV exports of pandas), a numpy array's
repr (Parquet list columns read by pandas: `['B-PER' 'O']`), a SQuAD answers dict (`{"text": [...], ...}`), or
plain text (tags separated by spaces). `parse_list` turns each of those into a list of strings.
"""

from __future__ import annotations

import ast
import json
import re

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def parse_list(text: str, split: bool = True) -> list[str]:
    """The strings in `text` (see the module doc); plain text is split on whitespace when `split`, else kept whole."""
    stripped = text.strip()
    if stripped[:1] in "[{":
        value: object = None
        # Not ast.literal_eval for lists: it would glue numpy's "['B-PER' 'O']" into one string.
        parsers = (json.loads, ast.literal_eval) if stripped.startswith("{") else (json.loads,)
        for parse in parsers:
            try:
                value = parse(stripped)
                break
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, dict):  # SQuAD's answers: {"text": [...], "answer_start": [...]}
            value = value.get("text", [])
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value]
        if stripped.startswith("["):  # a Python or numpy repr: the quoted items
            return [single or double for single, double in _QUOTED.findall(stripped)]
    return stripped.split() if split else [stripped]
