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
_NUMBER = r"[\d,.]+"


def _zh(key: str) -> str:
    return STRINGS[key][1]


def _field(name: str) -> str:
    """A field's Chinese name; the field's own name (a technical word) when the table has none."""
    entry = STRINGS.get(f"field_{name.strip()}")
    return entry[1] if entry else name.strip().replace("_", " ")


def _column(role: str, task: str) -> str:
    column = "label" if role == "reference" and task == "classification" else role
    return _zh(f"column_{column}") if f"column_{column}" in STRINGS else f"{role} column"


def _said(key: str) -> Callable[[re.Match[str]], str]:
    """The Chinese template `key` filled with the pattern's named groups."""
    return lambda match: _zh(key).format(**match.groupdict())


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
    # the tasks' bad input
    (re.compile(r"^context(?:\[\d+\])?: is empty; paste the text the answer should come from$"),
     _said("err_no_context")),
    (re.compile(r"^text(?:\[\d+\])?: has no mask token; put (?P<token>\S+) where a word should be predicted .*$"),
     _said("err_no_mask")),
    (re.compile(r"^text: (?P<count>\d+) mask tokens; at most (?P<most>\d+)$"), _said("err_too_many_masks")),
    (re.compile(r"^target_language: say which language to translate into$"), _said("err_no_target_language")),
    (re.compile(r"^target_language: this model does not translate (?P<source>.+?) → (?P<target>.+?); "
                r"it translates (?P<have>.+)$"), _said("err_language_pair")),
    # uploads and their limits (backend/datafiles.py)
    (re.compile(r"^file: '(?P<name>.*)' is empty(?: \(.*\))?$"), _said("err_empty_file")),
    (re.compile(r"^file: '(?P<name>.*)' has a header but no rows$"), _said("err_header_only")),
    (re.compile(rf"^file: '(?P<name>.*)' is (?P<size>{_NUMBER}) MB; the limit is (?P<limit>{_NUMBER}) MB\..*$"),
     _said("err_file_too_big")),
    (re.compile(rf"^file: '(?P<name>.*)' has (?P<count>{_NUMBER}) (?P<what>rows|columns); "
                rf"the limit is (?P<limit>{_NUMBER})\..*$"),
     lambda m: _zh(f"err_too_many_{m['what']}").format(name=m["name"], count=m["count"], limit=m["limit"])),
    (re.compile(rf"^file: '(?P<name>.*)': a cell of column '(?P<column>.*)' holds (?P<count>{_NUMBER}) characters; "
                rf"the limit is (?P<limit>{_NUMBER}) per cell\..*$"), _said("err_cell_too_long")),
    (re.compile(rf"^file: '(?P<name>.*)' expands to (?P<size>{_NUMBER}) MB of text once decoded; "
                rf"the limit is (?P<limit>{_NUMBER}) MB\..*$"), _said("err_expands")),
    (re.compile(r"^column: '(?P<name>.*)' is empty in every row; pick the column that holds the text$"),
     _said("err_empty_column")),
    # the Data tab's recipe and saves (backend/data/)
    (re.compile(r"^text_column \(--text-column\): name the column that holds the text$"),
     _said("err_name_text_column")),
    (re.compile(r"^label_column \(--label-column\): must differ from the text column$"), _said("err_label_is_text")),
    (re.compile(r"^split \(--split\): the fractions must add up to 1 with a training part, got (?P<got>.+)$"),
     _said("err_split_sum")),
    (re.compile(r"^split \(--split\): (?:two or three )?fractions like 0\.8,0\.1,0\.1, got (?P<got>.+)$"),
     _said("err_split_form")),
    (re.compile(r"^name: a dataset named '(?P<name>.*)' exists already; pick another name$"),
     _said("err_dataset_exists")),
    (re.compile(r"^name: '(?P<name>.*)' is not a valid dataset name; .*$"), _said("err_dataset_name")),
    (re.compile(r"^clean: every row was dropped \((?P<why>.*)\); loosen the cleaning settings$", re.DOTALL),
     _said("err_all_dropped")),
    (re.compile(r"^feedback: no reply is rated up yet; rate replies in Chat with the thumbs$"),
     _said("err_nothing_rated")),
    # the Train tab (backend/training/)
    (re.compile(r"^field 'label_column': every row of '(?P<column>.*)' has the same label \('(?P<label>.*)'\); .*$"),
     _said("err_one_class")),
    (re.compile(r"^field 'label_column': label '(?P<label>.*)' has only one example; .*$"), _said("err_label_once")),
    (re.compile(r"^field 'data': (?P<rows>\d+) rows are too few to split .* with (?P<labels>\d+) labels$"),
     _said("err_too_few_rows")),
    (re.compile(r"^field 'text_column': (?P<count>\d+) row\(s\) of '(?P<column>.*)' in the \w+ file are empty "
                r"\(first: row (?P<row>\d+)\); drop or fill them$"), _said("err_blank_texts")),
    (re.compile(r"^field 'label_column': (?P<count>\d+) row\(s\) of '(?P<column>.*)' in the \w+ file have no label "
                r"\(first: row (?P<row>\d+)\)$"), _said("err_blank_labels")),
    (re.compile(r"^field 'method': qlora \(4-bit\) needs a CUDA GPU; use lora or full here$"), _said("err_qlora_gpu")),
    (re.compile(r"^field 'register_as': the registry already has a model '(?P<name>.*)'$"),
     _said("err_register_taken")),
    (re.compile(r"^field 'base': .* has no chat template; .*$", re.DOTALL), _said("err_no_chat_template")),
    (re.compile(r"^data: upload a training file or pick a saved dataset first$"), _said("err_pick_training_data")),
    (re.compile(r"^base: pick a base model$"), _said("err_pick_base")),
    (re.compile(r"^run: start a run or open one from the table first$"), _said("err_pick_run")),
    # the Evaluate tab's Hub dataset field
    (re.compile(r"^data: the Hub dataset id is empty; .*$"), _said("err_hub_id_empty")),
    (re.compile(r"^data: '(?P<name>.*)' is not a Hub dataset id; .*$", re.DOTALL), _said("err_not_hub_id")),
    (re.compile(r"^data: '(?P<name>.*)' is not a valid (?P<role>config|split) name .*$"),
     lambda m: _zh("err_hub_name").format(name=m["name"], role=_zh(f"role_{m['role']}"))),
    (re.compile(r"^data: '(?P<name>.*)' names a folder on the server, .*$", re.DOTALL), _said("err_server_folder")),
    (re.compile(r"^data: the Hub dataset '(?P<name>.*?)' cannot be reached offline .*$", re.DOTALL),
     _said("err_hub_offline")),
    (re.compile(rf"^{_FIELD}: is (?P<count>{_NUMBER}) characters; the limit is (?P<limit>{_NUMBER})\..*$"),
     lambda m: _zh("err_text_too_long").format(field=_field(m["field"]), count=m["count"], limit=m["limit"])),
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
