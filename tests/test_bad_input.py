"""Bad input, through the UI handlers, the Gradio API and the OpenAI-compatible API; bad files; bad models.yaml.

Every case either works (emoji, right-to-left text, control characters: real people send these) or gets a
specific message that names the field and what to do. The app keeps serving after each.

    python -m tests.test_bad_input      prints the tables of cases and actual answers (docs/RELIABILITY.md)
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest
from tests.tiers import full_tier

CHAT = "tiny-chat"
MB_MESSAGE = "a " * 500_000  # 1,000,000 characters


@dataclass(frozen=True)
class Case:
    """One chat request. `expect` is a regex the error must match in every channel; None: it must work."""

    name: str
    message: Any = "Hello"
    expect: Optional[str] = None
    history: Any = None
    model: str = CHAT
    params: dict[str, Any] = field(default_factory=dict)
    ui_expect: Optional[str] = None  # the UI says it in plain words (ui/i18n/error_words.py); default: `expect`


CASES = [
    Case("empty message", "", r"message: is empty; type something first", ui_expect=r"^says: Type a message first\.$"),
    Case("whitespace-only message", " \n\t  ", r"message: is empty; type something first",
         ui_expect=r"^says: Type a message first\.$"),
    Case("1 MB message", MB_MESSAGE, r"is 1,000,000 characters; the limit is 100,000"),
    Case("message longer than the model's context (20k chars)", "word " * 4000,
         r"tokens, but model 'tiny-chat' has a context of 512 tokens"),
    Case("emoji", "Hello 👋🏽 🎉 — ça va? 你好"),
    Case("right-to-left text", "مرحبا بالعالم שלום עולם"),
    Case("control characters (bell, escape codes, backspace, CR)", "\x07bell \x1b[31mred\x1b[0m back\x08 \r\nline"),
    Case("NUL character", "hi\x00there", r"message: contains a NUL character; remove it",
         ui_expect=r"Your message contains a NUL character; remove it"),
    Case("negative temperature", params={"temperature": -1.0}, expect=r"temperature: must be in \[0\.0, 5\.0\], got -1",
         ui_expect=r"^error: Temperature must be in \[0\.0, 5\.0\], got -1"),
    Case("huge max_new_tokens", params={"max_new_tokens": 10**9},
         expect=r"max_new_tokens|max_tokens.*between 1 and 8192",
         ui_expect=r"^error: Max new tokens must be between 1 and 8192"),
    Case("max_new_tokens 0", params={"max_new_tokens": 0}, expect=r"between 1 and 8192, got 0"),
    Case("top_p 1.5", params={"top_p": 1.5}, expect=r"top_p: must be in \(0\.0, 1\.0\], got 1\.5",
         ui_expect=r"^error: Top p must be in \(0\.0, 1\.0\], got 1\.5"),
    Case("negative seed", params={"seed": -5}, expect=r"seed: .*-5",
         ui_expect=r"^error: Seed: give a whole number.*-5"),
    Case("20 stop sequences", params={"stop": [f"s{i}" for i in range(20)]},
         expect=r"stop: at most 8 stop sequences, got 20",
         ui_expect=r"^error: Stop sequences: at most 8 stop sequences, got 20"),
    Case("unknown model id", model="no-such-model",
         expect=r"unknown model 'no-such-model'; models in this registry: tiny-chat, tiny-classifier, tiny-nli"),
    Case("a classifier asked to chat", model="tiny-classifier",
         expect=r"model 'tiny-classifier' does not do 'chat' \(it does: classify\); models that do: tiny-chat"),
    Case("history item with an unknown role", history=[{"role": "wizard", "content": "x"}],
         expect=r"role:? must be 'system', 'user',? (or )?'assistant'( or 'tool')?, not 'wizard'"),
    Case("history item without content", history=[{"role": "user"}],
         expect=r"content must be text|content: must be a string"),
    Case("history item that is not an object", history=["just a string"],
         expect=r"must be an object with 'role' and 'content'"),
    Case("history with a number as content", history=[{"role": "user", "content": 5}],
         expect=r"content must be text|content: must be a string"),
]


# -------------------------------------------------------------------------------------------- channels


class Channels:
    """The same case through the Chat tab's handler, gradio_client and /v1. Each returns 'works: ...' or
    the error text the user would see."""

    def __init__(self, registry: Any, url: str) -> None:
        import gradio as gr
        from gradio_client import Client

        from ui.chat.tab import ChatTab

        self.registry = registry
        self.url = url
        with gr.Blocks():
            self.tab = ChatTab.build(registry)
        self.client = Client(url, verbose=False)
        self.http = httpx.Client(base_url=url, timeout=120)

    def close(self) -> None:
        self.client.close()
        self.http.close()

    def ui(self, case: Case) -> str:
        import gradio as gr

        tab, panel = self.tab, self.tab.params
        values = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                  "seed": -1, "stop": "", **case.params}
        data = {tab.model: case.model, tab.system: "", tab.history: case.history or [], tab.input: case.message,
                panel.max_new_tokens: values["max_new_tokens"], panel.temperature: values["temperature"],
                panel.top_p: values["top_p"], panel.top_k: values["top_k"],
                panel.repetition_penalty: values["repetition_penalty"], panel.seed: values["seed"],
                panel.stop: values["stop"]}
        try:
            updates = list(tab.send(data))
        except gr.Error as error:
            return f"error: {error.message}"
        if not updates:
            return "nothing happens"
        if len(updates) == 1:  # a note on the stats line, nothing else changed (ui/chat/tab.py: _noted)
            return f"says: {updates[0][2]}"
        reply = updates[-2][1][-1]["content"]
        return f"works: {len(reply)} chars back"

    def api(self, case: Case) -> str:
        from gradio_client.exceptions import AppError

        params = {"max_new_tokens": 8, "temperature": 0, **case.params}
        try:
            reply = self.client.predict(message=case.message, model=case.model, history=case.history,
                                        api_name="/chat", **params)
        except AppError as error:
            return f"error: {error}"
        return f"works: {len(reply)} chars back"

    def v1(self, case: Case) -> str:
        params = {"max_new_tokens": 8, "temperature": 0, **case.params}
        body: dict[str, Any] = {"model": case.model, "max_tokens": params.pop("max_new_tokens")}
        body.update(params)
        history = case.history if case.history is not None else []
        body["messages"] = (history if isinstance(history, list) else history) + [
            {"role": "user", "content": case.message}]
        answer = self.http.post("v1/chat/completions", json=body)
        if answer.status_code == 200:
            return f"works: {len(answer.json()['choices'][0]['message']['content'])} chars back"
        return f"HTTP {answer.status_code}: {answer.json()['error']['message']}"


@pytest.fixture(scope="module")
@full_tier
def channels(tiny_config) -> Iterator[Channels]:
    with running_app(tiny_config) as url_and_registry:
        url, registry = url_and_registry
        chans = Channels(registry, url)
        try:
            yield chans
        finally:
            chans.close()


class running_app:  # noqa: N801 - used like a function in `with`
    """The app in-process over `config`: UI, Gradio API and /v1 on one port."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def __enter__(self) -> tuple[str, Any]:
        import ui
        from backend.api import add_openai_routes
        from backend.core.registry import Registry
        from backend.engines import create_engine
        from tests.conftest import free_port

        self.registry = Registry(self.config, create_engine)
        self.demo = ui.build_app(self.registry)
        port = free_port()
        ui.launch(self.demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True,
                  on_app=lambda app: add_openai_routes(app, self.registry))
        return f"http://127.0.0.1:{port}/", self.registry

    def __exit__(self, *exc: Any) -> None:
        self.demo.close()
        self.registry.close()


def short(text: str, limit: int = 170) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_chat_input_through_every_channel(channels: Channels, case: Case) -> None:
    answers = {"UI": channels.ui(case), "Gradio API": channels.api(case), "/v1": channels.v1(case)}
    for channel, answer in answers.items():
        expect = (case.ui_expect or case.expect) if channel == "UI" else case.expect
        if expect is None:
            assert answer.startswith("works:"), (channel, answer)
        else:
            assert not answer.startswith("works"), (channel, answer)
            assert re.search(expect, answer), (channel, answer)
            assert "internal error" not in answer and "Traceback" not in answer, (channel, answer)
            if channel == "/v1":
                assert answer.startswith(("HTTP 400", "HTTP 404")), answer
    # The app keeps serving after each.
    assert channels.api(Case("afterwards")).startswith("works")


GENERATE_CASES = [
    ("empty prompt (generates from the start token)", "", None),
    ("emoji and right-to-left prompt", "👋🏽 مرحبا שלום", None),
    ("NUL in the prompt", "a\x00b", r"prompt: contains a NUL character; remove it"),
    ("1 MB prompt", MB_MESSAGE, r"prompt: is 1,000,000 characters; the limit is 100,000"),
]


@pytest.mark.parametrize(("name", "prompt", "expect"), GENERATE_CASES, ids=[c[0] for c in GENERATE_CASES])
def test_bad_generate_input(channels: Channels, name: str, prompt: str, expect: Optional[str]) -> None:
    from gradio_client.exceptions import AppError

    try:
        answer = "works: " + channels.client.predict(prompt=prompt, model=CHAT, max_new_tokens=4, temperature=0,
                                                     api_name="/generate")
    except AppError as error:
        answer = f"error: {error}"
    if expect is None:
        assert answer.startswith("works: ") and len(answer) > len("works: "), answer
    else:
        assert re.search(expect, answer), answer


# --------------------------------------------------------------------------------------------- files


def file_cases(folder: Path) -> list[tuple[str, Callable[[], Any], str]]:
    """(name, call, expected message regex) for the classification upload readers."""
    from backend.data import files as datafiles

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    def huge() -> Path:
        path = folder / "huge.csv"
        with path.open("wb") as out:
            out.write(b"text\n")
            out.truncate(datafiles.MAX_FILE_BYTES + 1024)  # sparse: refused by size before it is read
        return path

    def table(name: str, data: bytes) -> Callable[[], Any]:
        return lambda: datafiles.read_table(write(name, data))

    return [
        ("empty file (0 bytes)", table("empty.csv", b""), r"'empty\.csv' is empty"),
        ("only blank space", table("blank.csv", b"  \n\n "), r"'blank\.csv' is empty \(only blank space\)"),
        ("header but no rows", table("header.csv", b"text,label\n"), r"'header\.csv' has a header but no rows"),
        ("huge (50 MB + 1 KB)", lambda: datafiles.read_table(huge()), r"'huge\.csv' is 50\.0 MB; the limit is 50 MB"),
        ("Latin-1 encoded", table("latin1.csv", "text\ncafé crème\n".encode("latin-1")),
         r"'latin1\.csv' is not UTF-8 text \(byte 0xe9 on line 2.*Latin-1"),
        ("UTF-16 encoded", table("utf16.csv", "text\nhello\n".encode("utf-16")), r"'utf16\.csv' looks like UTF-16"),
        ("wrong type (.xlsx)", table("data.xlsx", b"PK\x03\x04"), r"'data\.xlsx' is not a supported type"),
        ("JSONL with a broken line", table("bad.jsonl", b'{"text": "ok"}\n{"text": oops}\n'),
         r"'bad\.jsonl' line 2 is not valid JSON"),
        ("damaged Parquet", table("bad.parquet", b"PAR1 not really"), r"'bad\.parquet' is not a readable Parquet file"),
        ("missing text column", lambda: datafiles.column_texts(datafiles.read_table(
            write("cols.csv", b"review,label\ngood,pos\n")), "text"),
         r"there is no column 'text'; the file's columns are 'review', 'label'"),
    ]


def test_bad_upload_files_get_specific_messages(tmp_path: Path) -> None:
    from backend.core.types import InvalidInputError

    for name, call, expect in file_cases(tmp_path):
        with pytest.raises(InvalidInputError) as refused:
            call()
        assert re.search(expect, str(refused.value)), (name, str(refused.value))


# --------------------------------------------------------------------------------------- models.yaml


def yaml_cases(tiny_models_yaml: Path) -> list[tuple[str, str, str]]:
    """(name, models.yaml text, expected message regex)."""
    chat = (tiny_models_yaml.parent / CHAT).as_posix()
    classifier = (tiny_models_yaml.parent / "tiny-classifier").as_posix()
    nli_less = classifier  # labels negative/positive: no entailment
    entry = f"  - id: a\n    tasks: [chat]\n    source: {chat}\n"
    ok = "models:\n" + entry
    return [
        ("not YAML", "models: [\n  - id: a\n", r"not valid YAML"),
        ("not a mapping", "- just\n- a list\n", r"expected a mapping with a 'models' list"),
        ("no models list", "settings: {}\n", r"field 'models': required field is missing"),
        ("empty models list", "models: []\n", r"field 'models': .*list at least one model"),
        ("unknown field (typo)", ok + "    temprature: 0.5\n",
         r"entry 'a' \(models\[0\]\), field 'temprature': unknown field"),
        ("duplicate id", ok + entry, r"entry 'a' \(models\[1\]\), field 'id': duplicate id"),
        ("missing source", "models:\n  - id: a\n    tasks: [chat]\n", r"field 'source': missing"),
        ("bad id", f"models:\n  - id: 'has space'\n    tasks: [chat]\n    source: {chat}\n",
         r"field 'id': String should match pattern"),
        ("unknown task", f"models:\n  - id: a\n    tasks: [translation]\n    source: {chat}\n",
         r"field 'tasks\.0': Input should be 'chat', 'generate', 'classify', 'zero_shot', 'ner'"),
        ("chat and classify in one entry", f"models:\n  - id: a\n    tasks: [chat, classify]\n    source: {chat}\n",
         r"cannot both generate .* and classify"),
        ("out-of-range default", ok + "    generation: {temperature: 9}\n",
         r"field 'generation': temperature: must be in \[0\.0, 5\.0\], got 9"),
        ("unknown device", ok + "    device: tpu\n", r"field 'device': use auto, cpu, mps, cuda or cuda:N"),
        ("wrong type", ok + "    max_batch_size: many\n", r"field 'max_batch_size': Input should be a valid integer"),
        ("task the checkpoint cannot do", f"models:\n  - id: a\n    tasks: [classify]\n    source: {chat}\n",
         r"task 'classify' needs a model of type \*ForSequenceClassification, but .* is LlamaForCausalLM"),
        ("zero_shot without an entailment label",
         f"models:\n  - id: a\n    tasks: [zero_shot]\n    source: {nli_less}\n",
         r"'zero_shot' needs an NLI model with an 'entailment' label"),
        ("remote entry without base_url", "models:\n  - id: r\n    backend: openai\n    tasks: [chat]\n",
         r"field 'base_url': required for backend openai"),
        ("remote entry asked to classify",
         "models:\n  - id: r\n    backend: openai\n    base_url: http://x/v1\n    tasks: [classify]\n",
         r"backend openai serves chat and generate only"),
        ("bad setting", "settings: {max_loaded_models: 0}\n" + ok,
         r"field 'settings\.max_loaded_models': Input should be greater than or equal to 1"),
    ]


def test_each_kind_of_models_yaml_error_names_the_entry_and_field(tiny_models_yaml: Path, tmp_path: Path) -> None:
    from backend.core.config import load_config
    from backend.core.types import ConfigError

    for index, (name, text, expect) in enumerate(yaml_cases(tiny_models_yaml)):
        path = tmp_path / f"models-{index}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as refused:
            load_config(path)
        assert str(path) in str(refused.value) and re.search(expect, str(refused.value)), (name, str(refused.value))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("models: []  # café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(latin)
    with pytest.raises(ConfigError, match="file not found; pass --models PATH"):
        load_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------------- the tables (docs)


def _table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return short(text).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    """Runs every case against a fresh app over freshly built tiny models and prints Markdown tables."""
    import logging
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.disable(logging.WARNING)
    from backend.core.config import load_config
    from backend.core.types import ConfigError, WorkbenchError
    from tests.tiny_models import build_tiny_models

    work = Path(tempfile.mkdtemp(prefix="bad-input-"))
    models_yaml = Path(build_tiny_models(work / "tiny"))
    with running_app(load_config(models_yaml)) as (url, registry):
        chans = Channels(registry, url)
        rows = [[case.name, chans.ui(case), chans.api(case), chans.v1(case)] for case in CASES]
        generate_rows = []
        for name, prompt, _ in GENERATE_CASES:
            try:
                text = chans.client.predict(prompt=prompt, model=CHAT, max_new_tokens=4, temperature=0,
                                            api_name="/generate")
                generate_rows.append([name, f"works: {len(text)} chars back"])
            except Exception as error:  # noqa: BLE001 - the message is the point
                generate_rows.append([name, f"error: {error}"])
        chans.close()
    print("### Chat input (the same case through each channel)\n")
    print(_table(["case", "Chat tab handler", "Gradio API (gradio_client)", "OpenAI API (/v1)"], rows))
    print("\n### Generate (Gradio API)\n")
    print(_table(["prompt", "answer"], generate_rows))
    file_rows = []
    for name, call, _ in file_cases(work):
        try:
            call()
            file_rows.append([name, "accepted"])
        except WorkbenchError as error:
            file_rows.append([name, str(error)])
    print("\n### Classification upload files (backend/data/files.py)\n")
    print(_table(["file", "message"], file_rows))
    yaml_rows = []
    for index, (name, text, _) in enumerate(yaml_cases(models_yaml)):
        path = work / f"models-{index}.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
            yaml_rows.append([name, "accepted"])
        except ConfigError as error:
            yaml_rows.append([name, str(error).replace(str(work), "…")])
    print("\n### models.yaml errors (the app refuses to start and prints this)\n")
    print(_table(["models.yaml", "message"], yaml_rows))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
