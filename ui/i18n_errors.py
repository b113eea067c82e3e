"""The common validation errors in Chinese, for a request whose browser asks for Chinese (Accept-Language zh…).

Backend errors are English and name their field ("temperature: must be in [0, 2], got 3"); ui/wording.py and
ui/plain_errors.py word them for a person. A request that asks for Chinese gets the patterns below in Chinese
instead; a message no pattern knows stays in English (a half-translated sentence would read worse). API callers
(gradio_client, the OpenAI-compatible API) do not send a Chinese Accept-Language unless they ask for it, so they
keep the backend's field-named wording.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import gradio as gr

from ui.i18n import CHINESE, STRINGS, language

_FIELD = r"(?P<field>[A-Za-z][A-Za-z _-]{0,30}?)(?: item \d+)?"
_GOT = r",? got (?P<got>.+)"


def _zh(key: str) -> str:
    return STRINGS[key][1]


def _field(name: str) -> str:
    """A field's Chinese name; the field's own name (a technical word) when the table has none."""
    entry = STRINGS.get(f"field_{name.strip()}")
    return entry[1] if entry else name.strip().replace("_", " ")


def _column(role: str, task: str) -> str:
    column = "label" if role == "reference" and task == "classification" else role
    return _zh(f"column_{column}") if f"column_{column}" in STRINGS else f"{role} column"


def _task(task: str) -> str:
    return _zh(f"task_{task}") if f"task_{task}" in STRINGS else task


# (backend message pattern, how its match is said in Chinese); first match wins.
PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^message: is empty; type something first$"), lambda m: _zh("err_type_message")),
    (re.compile(r"^prompt: is empty; type something first$"), lambda m: _zh("err_type_text")),
    (re.compile(rf"^{_FIELD}: is empty; type something first$"),
     lambda m: _zh("err_empty").format(field=_field(m["field"]))),
    (re.compile(rf"^{_FIELD}: (?:content )?must be text(?:{_GOT})?$"),
     lambda m: _zh("err_not_text").format(field=_field(m["field"]))),
    (re.compile(rf"^{_FIELD}: contains a NUL character; remove it$"),
     lambda m: _zh("err_nul").format(field=_field(m["field"]))),
    (re.compile(r"^seed: give a whole number >= 0, or leave it blank \(-1\) for random; got (?P<got>.+)$"),
     lambda m: _zh("err_seed").format(got=m["got"])),
    (re.compile(rf"^{_FIELD}: must be a whole number between (?P<low>[^\s,]+) and (?P<high>[^\s,]+){_GOT}$"),
     lambda m: _zh("err_whole_between").format(field=_field(m["field"]), low=m["low"], high=m["high"], got=m["got"])),
    (re.compile(rf"^{_FIELD}: must be a whole number of at least (?P<low>[^\s,]+){_GOT}$"),
     lambda m: _zh("err_whole_at_least").format(field=_field(m["field"]), low=m["low"], got=m["got"])),
    (re.compile(rf"^{_FIELD}: must be a whole number{_GOT}$"),
     lambda m: _zh("err_whole").format(field=_field(m["field"]), got=m["got"])),
    (re.compile(rf"^{_FIELD}: must be (?:a number )?between (?P<low>[^\s,]+) and (?P<high>[^\s,]+){_GOT}$"),
     lambda m: _zh("err_between").format(field=_field(m["field"]), low=m["low"], high=m["high"], got=m["got"])),
    (re.compile(rf"^{_FIELD}: must be in (?P<range>[\[(]\S+, \S+[\])]){_GOT}$"),
     lambda m: _zh("err_in_range").format(field=_field(m["field"]), range=m["range"], got=m["got"])),
    (re.compile(r"^file: upload a CSV, JSONL or Parquet file first$"), lambda m: _zh("err_upload_file")),
    (re.compile(r"^file: no file received$"), lambda m: _zh("err_no_file")),
    (re.compile(r"^data: upload a CSV, JSONL or Parquet file, or load a Hub dataset, first$"),
     lambda m: _zh("err_upload_or_hub")),
    (re.compile(r"^data: load a file or a Hub dataset first$"), lambda m: _zh("err_load_data")),
    (re.compile(r"^models: pick at least one model\b.*$", re.DOTALL), lambda m: _zh("err_pick_models")),
    (re.compile(r"^predictions column: pick the column that holds the predictions to score$"),
     lambda m: _zh("err_pick_predictions")),
    (re.compile(r"^(?P<role>input|reference|predictions) column: (?P<task>\w+) needs one\b.*$", re.DOTALL),
     lambda m: _zh("err_needs_column").format(column=_column(m["role"], m["task"]), task=_task(m["task"]))),
    (re.compile(r"^columns: the input column and the reference column are both '(?P<name>.*)'; .*$", re.DOTALL),
     lambda m: _zh("err_same_column").format(name=m["name"])),
    (re.compile(r"^\w+ column: there is no column '(?P<name>.*?)'.*$", re.DOTALL),
     lambda m: _zh("err_no_such_column").format(name=m["name"])),
    (re.compile(r"^compare: pick two saved runs$"), lambda m: _zh("err_pick_two_runs")),
    (re.compile(r"^sentences: give at least two sentences, one per line$"), lambda m: _zh("err_two_sentences")),
    (re.compile(r"^model: no model in models\.yaml does .*$", re.DOTALL), lambda m: _zh("err_no_model")),
    (re.compile(r"^Hub dataset: type a dataset id\b.*$", re.DOTALL), lambda m: _zh("err_hub_id")),
    (re.compile(r"^column: '(?P<name>.*)' holds numbers, not text\b.*$", re.DOTALL),
     lambda m: _zh("err_numbers_column").format(name=m["name"])),
    (re.compile(r"^file: '(?P<name>.*)' has no text column\b.*$", re.DOTALL),
     lambda m: _zh("err_no_text_column").format(name=m["name"])),
    (re.compile(r"^training: this account may not start training\b.*$", re.DOTALL), lambda m: _zh("err_may_not_train")),
    (re.compile(r"^there is no saved dataset named '(?P<name>.*)'$"),
     lambda m: _zh("err_saved_dataset").format(name=m["name"])),
]


def chinese_error(message: str) -> Optional[str]:
    """`message` (a backend error) in Chinese, or None when no pattern knows it."""
    for pattern, say in PATTERNS:
        match = pattern.match(message.strip())
        if match:
            return say(match)
    return None


def localised(message: str, worded: str, request: Optional[gr.Request] = None) -> str:
    """What the UI shows for the backend error `message`: Chinese for a request that asks for it (and a message
    the table knows), else `worded` (the English the caller made of it)."""
    if language(request) == CHINESE:
        return chinese_error(message) or worded
    return worded
