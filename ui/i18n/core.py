"""The UI's words in English and Simplified Chinese, through Gradio's own i18n (`gr.I18n`).

Gradio translates in the browser: a component's label, value or placeholder given as `t(key)` is shown in the
language of the browser (`navigator.language`: zh, zh-CN, zh-Hans... get Chinese, anything else English), and
Gradio's Settings panel (footer link) has a Language switch that changes it for the page. Lines a handler
returns (statuses) are sent as `text(key)`: the same translation key as a string, translated in the browser too.
Lines with numbers in them ("Imported 3 message(s).") follow the request's Accept-Language (`say`), since a
translation key carries no values.

Keys are stable names, not English text: the frontend also looks plain strings up in its dictionary, and a key
must never be mistaken for one of Gradio's own, nor for a data value (a column named "text"): in the browser every
key carries the prefix PREFIX.

`t(key, **values)` fills a template's values at build time (a label with a number in it): it registers the filled
line under a key of its own, so it must only be called while the app is built (a page learns the dictionary when
it loads). The frontend translates a marker inside a longer string too (one marker per string), so
`text(key) + ": " + name` shows the translated words followed by a name.

Table headers are the exception to browser-side translation: Gradio's Dataframe shows them as given, so the
tables the app makes are built with English column names and `headed` words them in the request's language
just before they reach the page (ui/i18n/strings_headers.py).

The table lives in several modules (ui/i18n_strings*.py, one per group of tabs), merged here.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence

import gradio as gr
from gradio.context import LocalContext
from gradio.i18n import I18nData

from backend.guard.table_limits import SHOWN_COLUMN_NAMES
from ui.i18n.strings import STRINGS as _BASE
from ui.i18n.strings_arena import STRINGS as _ARENA
from ui.i18n.strings_errors import STRINGS as _ERRORS
from ui.i18n.strings_headers import STRINGS as _HEADERS
from ui.i18n.strings_tabs import STRINGS as _TABS
from ui.i18n.strings_work import STRINGS as _WORK

MARKER = "__i18n__"  # how gr.I18nData writes itself into a string (gradio/i18n.py)


def _merged(*tables: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    merged: dict[str, tuple[str, str]] = {}
    for table in tables:
        clash = merged.keys() & table.keys()
        if clash:
            raise ValueError(f"translation keys defined twice: {sorted(clash)}")
        merged.update(table)
    return merged


STRINGS = _merged(_BASE, _TABS, _WORK, _ERRORS, _HEADERS, _ARENA)
# A column header's English (today's column name) -> its key: tables are built with English names, and `headed`
# words them for the request just before they go to the page.
HEADER_KEYS = {english: key for key, (english, _zh) in _HEADERS.items()}

ENGLISH = "en"
CHINESE = "zh-CN"
# Browsers say zh-CN, zh, or zh-Hans(-CN); Gradio matches the exact tag, so each gets the Chinese table.
CHINESE_TAGS = ("zh-CN", "zh", "zh-Hans", "zh-Hans-CN", "zh-SG")

# The frontend also looks every plain string it shows up in the dictionary (a choice, a cell, a value): a key
# "text" turned a data column named "text" into "Text" / "文本". Keys therefore go to the browser with a prefix
# no data value or Gradio key has.
PREFIX = "wb:"
_EN = {PREFIX + key: en for key, (en, _zh) in STRINGS.items()}
_ZH = {PREFIX + key: zh for key, (_en, zh) in STRINGS.items()}
I18N = gr.I18n(en=_EN, **{tag: _ZH for tag in CHINESE_TAGS})


def t(key: str, **values: Any) -> Any:
    """A translatable static string (label, button, tab name, placeholder); `values` fill a template (build time
    only: see the module's docstring)."""
    if key not in STRINGS:
        raise KeyError(f"no translation for {key!r}: add it to ui/i18n_strings*.py")
    if not values:
        return I18N(PREFIX + key)
    filled = PREFIX + key + "|" + ",".join(f"{name}={values[name]}" for name in sorted(values))
    english_template, chinese_template = STRINGS[key]
    _EN[filled] = english_template.format(**values)
    _ZH[filled] = chinese_template.format(**values)
    return I18N(filled)


def text(key: str, **values: Any) -> str:
    """A translatable string a handler returns (the browser translates it on display)."""
    return str(t(key, **values))


def is_translated(value: Any) -> bool:
    """Whether the frontend translates `value` (an I18nData, or a string carrying one's marker)."""
    return isinstance(value, I18nData) or (isinstance(value, str) and MARKER in value)


def english(key: str) -> str:
    return STRINGS[key][0]


def language(request: Optional[gr.Request] = None) -> str:
    """"zh-CN" when the browser asks for Chinese first (Accept-Language), else "en". Without `request`, the one
    Gradio is serving in this context (set around every event handler), if any."""
    if request is None:
        request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    accepted = headers.get("accept-language", "") if hasattr(headers, "get") else ""
    first = accepted.split(",")[0].split(";")[0].strip().lower()
    return CHINESE if first.startswith("zh") else ENGLISH


def say(key: str, request: Optional[gr.Request] = None, **values: Any) -> str:
    """A line with values in it, in the request's language: STRINGS[key] is a str.format template."""
    english_template, chinese_template = STRINGS[key]
    template = chinese_template if language(request) == CHINESE else english_template
    return template.format(**values)


def file_summary(name: str, rows: int, names: Sequence[Any], request: Optional[gr.Request] = None) -> str:
    """"reviews.csv: 20 rows · columns: id, review" in the request's language: the line every upload (Classify,
    the pipeline tasks, Evaluate) shows; at most SHOWN_COLUMN_NAMES names, then how many more."""
    shown = ", ".join(str(column)[:80] for column in names[:SHOWN_COLUMN_NAMES])
    if len(names) > SHOWN_COLUMN_NAMES:
        shown += say("columns_more", request, count=len(names) - SHOWN_COLUMN_NAMES)
    return say("file_rows_columns", request, name=name, rows=rows, columns=shown)


def plain_text(value: Any, request: Optional[gr.Request] = None) -> str:
    """`value` as plain text in the request's language: an I18nData (a component's label) becomes its words, which
    a message built on the server needs (str() of one is its JSON marker, which only the page translates)."""
    if isinstance(value, I18nData):
        table = _ZH if language(request) == CHINESE else _EN
        return table.get(value.key, value.key.removeprefix(PREFIX))
    return "" if value is None else str(value)


def columns(*names: str, request: Optional[gr.Request] = None) -> list[str]:
    """Column headers in the request's language (see `language`): each name is an English header of
    ui/i18n/strings_headers.py; a name the table does not know (a metric, a user's column) stays as it is.

    Gradio's Dataframe translates no i18n marker in its headers, so they are worded on the server."""
    chinese = language(request) == CHINESE
    return [STRINGS[HEADER_KEYS[name]][1] if chinese and name in HEADER_KEYS else name for name in names]


def headed(table: Any, names: Optional[Iterable[str]] = None, request: Optional[gr.Request] = None) -> Any:
    """`table` (a pandas DataFrame, or a Dataframe value {"headers", "data"}) with its app-made headers in the
    request's language; `names` limits that to those columns (a table mixing the app's columns with a user's,
    whose names stay as they are). English requests get `table` itself. Never for a frame that feeds a plot
    (its x / y name the columns) nor one read back by column name."""
    if table is None or language(request) != CHINESE:
        return table
    if isinstance(table, dict):
        return {**table, "headers": _renamed(table["headers"], names, request)}
    return table.set_axis(_renamed([str(c) for c in table.columns], names, request), axis=1)


def _renamed(headers: list[str], names: Optional[Iterable[str]], request: Optional[gr.Request]) -> list[str]:
    wanted = None if names is None else set(names)
    return [columns(h, request=request)[0] if wanted is None or h in wanted else h for h in headers]


def toast_titles_head() -> str:
    """A script for the page's <head>: a toast's title word ("Error", "Warning") in Chinese for a browser that asks
    for Chinese first, the same rule as `language` applies to Accept-Language.

    Gradio 6.31 draws the title from the toast's type, capitalised, with no i18n and no way to set it from the
    server (gr.Error's `title` does not reach the toast), so the page rewrites the word once it is drawn.
    """
    words = {english: chinese for key, (english, chinese) in STRINGS.items() if key.startswith("toast_")}
    return """<script>
(() => {
  const words = %s;
  const first = ((navigator.languages && navigator.languages[0]) || navigator.language || "").toLowerCase();
  if (!first.startsWith("zh")) return;
  const rename = () => document.querySelectorAll(".toast-title").forEach((title) => {
    const word = title.firstChild;
    if (word && word.nodeType === Node.TEXT_NODE && words[word.data.trim()]) word.data = words[word.data.trim()] + " ";
  });
  new MutationObserver(rename).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>""" % json.dumps(words, ensure_ascii=False)
