"""Errors are values: every code the backend and the UI raise has its English template (backend/core/error_codes.py)
and its wording in both languages (ui/i18n/strings_errors.py), the wording asks only for values the error
carries, and no module of ui/ or backend/ reads an error's message back with a regular expression."""

from __future__ import annotations

import ast
import pickle
import string
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from backend.core.error_codes import MESSAGES, refuse
from backend.core.types import ConfigError, InvalidInputError, WorkbenchError
from ui.i18n.error_words import DERIVED, worded
from ui.i18n.core import STRINGS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "backend").rglob("*.py"), *(ROOT / "ui").rglob("*.py")])


class Headers:
    def __init__(self, accept_language: str) -> None:
        self.headers = {"accept-language": accept_language}


CHINESE = Headers("zh-CN,zh;q=0.9")


def names_in(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _subclasses(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_subclasses(sub) for sub in cls.__subclasses__()))


ERROR_CLASSES = _subclasses(WorkbenchError)  # the API's own ApiError(code=...) holds OpenAI's codes, not ours


def codes_in_source() -> Iterator[tuple[str, str]]:
    """(file:line, code) of every `refuse("code", ...)` and `...Error(..., code="code")` in ui/ and backend/."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name == "refuse" and node.args and isinstance(node.args[0], ast.Constant):
                yield where, node.args[0].value
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant) and name in ERROR_CLASSES \
                        and isinstance(keyword.value.value, str):
                    yield where, keyword.value.value


def test_every_code_raised_has_a_template_and_wording_in_both_languages() -> None:
    raised = list(codes_in_source())
    assert len({code for _, code in raised}) >= 60  # the scan finds the raise sites (not an empty walk)
    for where, code in raised:
        assert code in MESSAGES, f"{where}: code {code!r} has no English template in backend/core/error_codes.py"
    for code, template in MESSAGES.items():
        keys = [key for key in STRINGS if key == f"err_{code}" or key.startswith(f"err_{code}__")]
        assert f"err_{code}" in STRINGS, f"code {code!r} has no wording in ui/i18n/strings_errors.py"
        for key in keys:
            english, chinese = STRINGS[key]
            assert english.strip() and chinese.strip(), key
            # The wording may use the error's params, the worded field and what the UI derives; nothing else.
            known = names_in(template) | {"field"} | set(DERIVED.get(code, lambda p, c: {})({}, 0))
            assert names_in(english) <= known and names_in(chinese) <= known, (key, names_in(english) - known)


def test_refuse_builds_the_message_from_the_template_and_keeps_the_values() -> None:
    error = refuse("between", "max_new_tokens", low=1, high=8192, got=0)
    assert isinstance(error, InvalidInputError)
    assert str(error) == "max_new_tokens: must be between 1 and 8192, got 0"
    assert (error.code, error.field, error.params) == ("between", "max_new_tokens", {"low": 1, "high": 8192, "got": 0})
    shown = refuse("nul", "history", shown="history item 2", item=2)
    assert str(shown) == "history item 2: contains a NUL character; remove it" and shown.field == "history"
    assert isinstance(refuse("whole_at_least", "X", kind=ConfigError, low=1, got="0"), ConfigError)
    copied = pickle.loads(pickle.dumps(error))  # errors cross process boundaries (data jobs, training)
    assert (copied.code, copied.field, copied.params, str(copied)) == \
        (error.code, error.field, error.params, str(error))


def test_real_refusals_are_worded_in_both_languages() -> None:
    from backend.services.generation import build_messages
    from backend.core.types import GenerationParams
    from ui.common.components import parse_seed, parse_whole

    def caught(action) -> WorkbenchError:  # type: ignore[no-untyped-def]
        with pytest.raises(WorkbenchError) as error:
            action()
        return error.value

    cases = [
        (caught(lambda: build_messages("  ")), "请先输入消息。", "Type a message first."),
        (caught(lambda: build_messages("hi", [{"role": "user", "content": "a"}, {"role": "user", "content": 5}])),
         "对话中的第 2 条消息：内容必须是文本。", "Message 2 of the conversation: content must be text"),
        (caught(lambda: build_messages("hi", [{"role": "user", "content": "a\x00"}])),
         "对话中的第 1 条消息包含 NUL 字符，请删除它。", "Message 1 of the conversation contains a NUL character; remove it"),
        (caught(lambda: GenerationParams(temperature=6.0).validated()),
         "温度必须在 [0.0, 5.0] 范围内（当前为 6.0）。", "Temperature must be in [0.0, 5.0], got 6.0"),
        (caught(lambda: GenerationParams(stop=tuple("abcdefghij")).validated()),
         "停止序列：最多 8 个停止序列（当前为 10 个）。", "Stop sequences: at most 8 stop sequences, got 10"),
        (caught(lambda: parse_whole("abc", "max new tokens")),
         "最大新 token 数必须是整数（当前为 'abc'）。", "Max new tokens must be a whole number, got 'abc'"),
        (caught(lambda: parse_whole(0, "batch size", low=1)),
         "批大小必须是不小于 1 的整数（当前为 0）。", "Batch size must be a whole number of at least 1, got 0"),
        (caught(lambda: parse_seed(-5)), "随机种子：请填写不小于 0 的整数，或留空（-1）表示随机（当前为 -5）。",
         "Seed: give a whole number >= 0, or leave it blank (-1) for random; got -5"),
    ]
    for error, chinese, english in cases:
        assert worded(error, CHINESE) == chinese, str(error)
        assert worded(error) == english, str(error)
        assert worded(error, plain=False) == str(error)  # API handlers: the field-named English message


def test_an_error_without_a_code_shows_its_message() -> None:
    error = InvalidInputError("model: some new complaint", field="model")
    assert worded(error) == worded(error, CHINESE) == "model: some new complaint"


def test_the_evaluate_refusal_names_the_column_for_a_person(tmp_path: Path) -> None:
    import pandas as pd

    from backend.evaluation.data import ColumnMapping, select_examples

    table = pd.DataFrame({"a": ["x"], "b": ["y"]})
    with pytest.raises(WorkbenchError) as error:
        select_examples(table, "classification", ColumnMapping(input="a"))
    assert str(error.value).startswith("reference column: classification needs one (--reference-column)")
    assert worded(error.value) == "Pick the label column: classification needs one. The columns are 'a', 'b'."
    assert worded(error.value, CHINESE) == "请选择标签列：分类任务需要它。现有的列：'a', 'b'。"


# ------------------------------------------------------------------------------ no regex over a message

REGEX_CALLS = {"match", "fullmatch", "search", "sub", "subn", "findall", "finditer", "split"}


def _is_exception_annotation(annotation: ast.expr | None) -> bool:
    text = ast.unparse(annotation) if annotation is not None else ""
    return text.endswith(("Error", "Exception", "BaseException")) or text == "gr.Error"


class _Taint(ast.NodeVisitor):
    """Per function: names bound to an error (except ... as e, a parameter typed as one) and names holding its
    message (str(e), e.message, e.args, anything built from those)."""

    def __init__(self, errors: set[str]) -> None:
        self.errors = set(errors)
        self.messages: set[str] = set()

    def tainted(self, node: ast.AST) -> bool:
        pending = [node]
        while pending:
            child = pending.pop()
            if isinstance(child, ast.Attribute) and child.attr in STRUCTURED and \
                    isinstance(child.value, ast.Name) and child.value.id in self.errors:
                continue  # error.field / .code / .params: the error's values, not its message
            if isinstance(child, ast.Name) and (child.id in self.messages or child.id in self.errors):
                return True
            if isinstance(child, ast.Attribute) and child.attr in ("message", "args") and \
                    isinstance(child.value, ast.Name) and child.value.id in self.errors:
                return True
            pending.extend(ast.iter_child_nodes(child))
        return False


STRUCTURED = frozenset({"code", "field", "params"})  # WorkbenchError's values (backend/core/types.py)


def _names_read(node: ast.AST) -> set[str]:
    """The names an expression reads, except a name read only for its structured values (`error.field`)."""
    names, pending = set(), [node]
    while pending:
        child = pending.pop()
        if isinstance(child, ast.Attribute) and child.attr in STRUCTURED and isinstance(child.value, ast.Name):
            continue
        if isinstance(child, ast.Name):
            names.add(child.id)
        pending.extend(ast.iter_child_nodes(child))
    return names


def _compiled_patterns(tree: ast.Module) -> set[str]:
    """Names a module binds to `re.compile(...)`."""
    names = set()
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Call) \
                and ast.unparse(value.func) == "re.compile":
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def _called_name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


# Functions that run a regex over any text on its way out, errors' messages included, and read nothing back:
# backend/guard/security.py's `redact` replaces passwords and API keys with "***" before a log line or a reply leaves.
OUTPUT_FILTERS = frozenset({"redact"})


def regex_reads_of_messages(sources: dict[str, str]) -> dict[str, list[int]]:
    """{module: lines} where `sources` apply a regex to an error's message, directly or through functions of any
    of the modules (the old ui/common/events.py passed str(error) to ui/i18n_errors.py's pattern table)."""
    functions: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, set[str]]] = []
    for name, source in sources.items():
        tree = ast.parse(source)
        compiled = _compiled_patterns(tree)
        functions += [(name, node, compiled) for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def is_regex(call: ast.Call, compiled: set[str]) -> bool:
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr in REGEX_CALLS and isinstance(func.value, ast.Name)):
            return False
        # re.match(...), a compiled pattern, or one taken from a table (`for pattern, say in PATTERNS`)
        return func.value.id in ("re", *compiled) or func.value.id.lower().endswith(("pattern", "regex"))

    # Functions that apply a regex to one of their parameters (the old `chinese_error(message)`), by the index of
    # that parameter in a call; followed through functions that pass the parameter on, to the fixpoint.
    regex_params: dict[str, set[int]] = {}

    def read_positions(call: ast.Call, compiled: set[str]) -> set[int]:
        if _called_name(call) in OUTPUT_FILTERS:  # masks secrets on the way out; reads nothing back
            return set()
        if is_regex(call, compiled):
            return set(range(len(call.args)))
        return regex_params.get(_called_name(call), set())

    changed = True
    while changed:
        changed = False
        for _, function, compiled in functions:
            if function.name.startswith("__"):  # functions are matched by name: `super().__init__` is not all
                continue
            params = [arg.arg for arg in function.args.args]
            offset = 1 if params[:1] in (["self"], ["cls"]) else 0
            for call in (node for node in ast.walk(function) if isinstance(node, ast.Call)):
                for index in sorted(read_positions(call, compiled)):
                    if index >= len(call.args):
                        continue
                    used = _names_read(call.args[index])
                    hit = {i - offset for i, name in enumerate(params) if name in used and i >= offset}
                    if hit - regex_params.get(function.name, set()):
                        regex_params.setdefault(function.name, set()).update(hit)
                        changed = True
    found: dict[str, list[int]] = {}
    for module, function, compiled in functions:
        errors = {arg.arg for arg in function.args.args if _is_exception_annotation(arg.annotation)}
        errors |= {handler.name for handler in ast.walk(function) if isinstance(handler, ast.ExceptHandler)
                   and handler.name}
        taint = _Taint(errors)
        for node in ast.walk(function):  # names assigned from a message (message = str(error))
            if isinstance(node, ast.Assign) and taint.tainted(node.value):
                taint.messages |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for call in (node for node in ast.walk(function) if isinstance(node, ast.Call)):
            if any(index < len(call.args) and taint.tainted(call.args[index])
                   for index in read_positions(call, compiled)):
                found.setdefault(module, []).append(call.lineno)
    return {module: sorted(set(lines)) for module, lines in found.items()}


OLD_SHAPES = {
    # ui/i18n_errors.py: a table of patterns over the message handle_errors passed in
    "pattern table": '''
        import re
        PATTERNS = [(re.compile(r"^message: is empty"), "empty")]
        def chinese_error(message: str):
            for pattern, say in PATTERNS:
                match = pattern.match(message.strip())
        def as_user_error(error: Exception):
            message = str(error)
            return chinese_error(message)
        ''',
    # ui/plain_errors.py: a gr.Error's message reworded through regexes
    "gr.Error message": '''
        import re
        _FLAG = re.compile(r"--[a-z-]+")
        def plain_words(message: str) -> str:
            return _FLAG.sub("", message)
        def rewrite(error: gr.Error):
            return plain_words(str(error.message))
        ''',
    # a caught exception searched in place
    "except clause": '''
        import re
        def call():
            try:
                run()
            except ValueError as exc:
                if re.search("out of memory", str(exc)):
                    raise
        ''',
}


@pytest.mark.parametrize("shape", OLD_SHAPES)
def test_the_scan_finds_a_regex_over_an_error_message(shape: str) -> None:
    assert regex_reads_of_messages({shape: textwrap.dedent(OLD_SHAPES[shape])})


def test_the_scan_leaves_regexes_over_other_text_alone() -> None:
    # A remote server's error body (text from another program, not one of our errors) and a user's file name.
    assert regex_reads_of_messages({"remote": textwrap.dedent('''
        import re
        _CONTEXT = re.compile("too long")
        def status_error(status: int, message: str):
            return _CONTEXT.search(message)
        def on_reply(response):
            return status_error(response.status_code, response.text)
        def safe(name: str):
            return re.sub("[^a-z]", "_", name)
        ''')}) == {}


def test_no_module_reads_an_error_message_with_a_regex() -> None:
    sources = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in SOURCES}
    assert regex_reads_of_messages(sources) == {}


def test_a_choice_refusal_names_a_translated_field_in_words() -> None:
    """A dropdown labelled through gr.I18n refused an unknown value with its label's JSON marker
    (`__i18n__{"__type__": "translation_metadata", ...}: 'x' is not one of the choices`), which only the page
    translates: API callers read the marker. The refusal names the field in words instead."""
    import gradio as gr

    from ui.i18n.core import STRINGS, t
    from ui.server.guards import escape_choice_errors

    escape_choice_errors()
    for component in (gr.Dropdown(["a", "b"], value="a", label=t("model")), gr.Radio(["a"], label=t("model")),
                      gr.CheckboxGroup(["a"], label=t("model"))):
        with pytest.raises(gr.Error) as refused:
            component.preprocess(["<b>x</b>"] if isinstance(component, gr.CheckboxGroup) else "<b>x</b>")
        assert "__i18n__" not in refused.value.message and "translation_metadata" not in refused.value.message
        shown = "['<b>x</b>']" if isinstance(component, gr.CheckboxGroup) else "<b>x</b>"
        assert refused.value.message == f"{STRINGS['model'][0]}: '{shown}' is not one of the choices".replace(
            "<", "&lt;").replace(">", "&gt;")
