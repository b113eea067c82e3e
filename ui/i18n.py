"""The UI's words in English and Simplified Chinese, through Gradio's own i18n (`gr.I18n`).

Gradio translates in the browser: a component's label, value or placeholder given as `t(key)` is shown in the
language of the browser (`navigator.language`: zh, zh-CN, zh-Hans... get Chinese, anything else English), and
Gradio's Settings panel (footer link) has a Language switch that changes it for the page. Lines a handler
returns (statuses) are sent as `text(key)`: the same translation key as a string, translated in the browser too.
Lines with numbers in them ("Imported 3 message(s).") follow the request's Accept-Language (`say`), since a
translation key carries no values.

Keys are stable names, not English text: the frontend also looks plain strings up in its dictionary, and a key
must never be mistaken for one of Gradio's own.
"""

from __future__ import annotations

from typing import Any, Optional

import gradio as gr

from ui.i18n_strings import STRINGS

ENGLISH = "en"
CHINESE = "zh-CN"
# Browsers say zh-CN, zh, or zh-Hans(-CN); Gradio matches the exact tag, so each gets the Chinese table.
CHINESE_TAGS = ("zh-CN", "zh", "zh-Hans", "zh-Hans-CN", "zh-SG")

_EN = {key: en for key, (en, _zh) in STRINGS.items()}
_ZH = {key: zh for key, (_en, zh) in STRINGS.items()}
I18N = gr.I18n(en=_EN, **{tag: _ZH for tag in CHINESE_TAGS})


def t(key: str) -> Any:
    """A translatable static string (label, button, tab name, placeholder)."""
    if key not in STRINGS:
        raise KeyError(f"no translation for {key!r}: add it to ui/i18n_strings.py")
    return I18N(key)


def text(key: str) -> str:
    """A translatable string a handler returns (the browser translates it on display)."""
    return str(t(key))


def english(key: str) -> str:
    return STRINGS[key][0]


def language(request: Optional[gr.Request]) -> str:
    """"zh-CN" when the browser asks for Chinese first (Accept-Language), else "en"."""
    headers = getattr(request, "headers", None) or {}
    accepted = headers.get("accept-language", "") if hasattr(headers, "get") else ""
    first = accepted.split(",")[0].split(";")[0].strip().lower()
    return CHINESE if first.startswith("zh") else ENGLISH


def say(key: str, request: Optional[gr.Request] = None, **values: Any) -> str:
    """A line with values in it, in the request's language: STRINGS[key] is a str.format template."""
    english_template, chinese_template = STRINGS[key]
    template = chinese_template if language(request) == CHINESE else english_template
    return template.format(**values)
