"""GGUF entries end to end: models.yaml validation, the error when llama-cpp-python is missing, transformers' own
GGUF path (`runtime: torch`), and the OpenAI client against the real app (`python app.py`) serving the GGUF on
llama.cpp: streaming chat, completions, logprobs and a JSON-Schema `response_format`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
import yaml

from backend.core.config import parse_config
from backend.core.types import ConfigError, GenerationParams, Message, ModelLoadError
from tests.app_process import AppProcess, wait_until
from tests.engine_contract import drain
from tests.real_smollm2 import GGUF_ID, gguf_entry, smollm2_gguf

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py).
pytestmark = pytest.mark.full

# A system prompt of its own: see tests/test_engine_contract_llama_cpp.py's test_a_real_chat_answer.
QUESTION = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def smollm2_gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2_gguf(tmp_path_factory.getbasetemp().parent / "smollm2-gguf")


def spec_of(entry: dict):
    return parse_config({"models": [entry]}, Path("models.yaml")).models[0]


# ------------------------------------------------------------------------------------------- models.yaml


@pytest.mark.parametrize("entry, field, words", [
    ({"source": "/models/a.gguf", "tasks": ["classify"]}, "tasks", "GGUF checkpoint serves chat and generate"),
    ({"source": "owner/repo", "runtime": "llama_cpp"}, "runtime", "llama_cpp runs GGUF checkpoints"),
    ({"source": "owner/repo", "gguf_file": "model.bin"}, "gguf_file", "a .gguf file inside the repo"),
    ({"source": "owner/repo", "gguf_file": "../x.gguf"}, "gguf_file", "a .gguf file inside the repo"),
    ({"source": "/models/a.gguf", "runtime": "llama_cpp", "device": "cuda"}, "device", "runs on the CPU"),
    ({"source": "/models/a.gguf", "runtime": "onnx"}, "runtime", ""),
    ({"source": "/models/a.gguf", "quantization": "4bit"}, "quantization", "quantized already"),
    ({"source": "/models/a.gguf", "runtime": "llama_cpp", "dtype": "float16"}, "dtype", "GGUF file's own types"),
    ({"backend": "openai", "base_url": "http://x/v1", "gguf_file": "a.gguf"}, "gguf_file", "only for backend"),
])
def test_bad_gguf_entries_name_the_entry_and_field(entry: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        spec_of({"id": "bad-gguf", "tasks": ["chat"], **entry})
    message = str(raised.value)
    assert "entry 'bad-gguf'" in message and f"field '{field}'" in message
    assert words in message


def test_a_hub_gguf_entry_names_its_file() -> None:
    spec = spec_of({"id": "hub-gguf", "tasks": ["chat"], "source": "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                    "gguf_file": "smollm2-135m-instruct-q8_0.gguf"})
    from backend.engines.llama_cpp_source import gguf_location, resolved_runtime

    assert spec.is_gguf and spec.local_path() is None
    assert gguf_location(spec) == ("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-135m-instruct-q8_0.gguf")
    assert resolved_runtime(spec) == "llama_cpp"  # this machine has no GPU
    assert resolved_runtime(spec_of({"id": "safetensors", "tasks": ["chat"], "source": "owner/repo"})) == "torch"


def test_without_llama_cpp_the_error_says_what_to_install(smollm2_gguf_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.engines import create_engine
    from backend.engines import llama_cpp_source

    monkeypatch.setattr(llama_cpp_source, "llama_cpp_available", lambda: False)  # as on a machine without it
    with pytest.raises(ModelLoadError) as raised:
        create_engine(spec_of(gguf_entry(smollm2_gguf_file, runtime="llama_cpp")))
    assert "pip install -r requirements-llama-cpp.txt" in str(raised.value)
    assert "runtime: torch" in str(raised.value)
    assert raised.value.field == "runtime"
    # Without a runtime of its own, the entry falls back to transformers (and its status will say why it is slow).
    assert llama_cpp_source.resolved_runtime(spec_of(gguf_entry(smollm2_gguf_file))) == "torch"


def test_a_missing_gguf_file_is_a_load_error_naming_the_field(tmp_path: Path) -> None:
    from backend.engines import create_engine

    with pytest.raises(ModelLoadError, match="field 'source'.*is not a file"):
        create_engine(spec_of(gguf_entry(tmp_path / "absent.gguf")))


def test_transformers_runs_the_same_gguf_dequantized(smollm2_gguf_file: Path) -> None:
    """`runtime: torch`: transformers reads the GGUF (gguf_file=) into float32 and answers the same question."""
    from backend.engines import create_engine
    from backend.engines.local import LocalGenerativeEngine

    engine = create_engine(spec_of(gguf_entry(smollm2_gguf_file, runtime="torch")))
    try:
        assert isinstance(engine, LocalGenerativeEngine)
        _, final = drain(engine.stream_chat([Message(item["role"], item["content"]) for item in QUESTION],
                                            GenerationParams(max_new_tokens=24, temperature=0.0)))
        assert "Paris" in final.text
        assert engine.describe()["dtype"] == "float32"
    finally:
        engine.close()


# ------------------------------------------------------------------------------------- the real app server


@pytest.fixture(scope="module")
def client(smollm2_gguf_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    models = tmp_path_factory.mktemp("gguf-app") / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [gguf_entry(smollm2_gguf_file)]}))
    # One llama.cpp thread on this shared machine: see the engine fixture of tests/test_engine_contract_llama_cpp.py.
    with AppProcess(models, env={"WORKBENCH_LLAMA_CPP_THREADS": "1"}).wait_ready() as app:
        # The port opens before the API's routes are added to the server: wait for /v1/models.
        assert wait_until(lambda: httpx.get(f"{app.url}v1/models", timeout=5).status_code == 200, timeout=120)
        yield openai.OpenAI(base_url=f"{app.url}v1", api_key="unused", max_retries=0, timeout=300)


def test_openai_streaming_chat(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=GGUF_ID, messages=QUESTION, max_tokens=32, temperature=0,
                                            stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) >= 3
    assert "Paris" in "".join(pieces)


def test_openai_chat_with_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=GGUF_ID, messages=QUESTION, max_tokens=8, temperature=0,
                                           logprobs=True, top_logprobs=2)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert all(entry.logprob <= 0 and len(entry.top_logprobs) == 2 for entry in content)
    assert "".join(entry.token for entry in content) == reply.choices[0].message.content


def test_openai_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"],
              "additionalProperties": False}
    reply = client.chat.completions.create(
        model=GGUF_ID, messages=QUESTION, max_tokens=40, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
    value = json.loads(reply.choices[0].message.content)
    assert list(value) == ["capital"] and isinstance(value["capital"], str)


def test_openai_text_completion(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=GGUF_ID, prompt="The capital of France is", max_tokens=6,
                                      temperature=0)
    assert reply.choices[0].text.strip()
    assert reply.usage.completion_tokens == 6 or reply.choices[0].finish_reason == "stop"


def test_openai_echo_logprobs_scores_the_prompt(client: openai.OpenAI) -> None:
    """lm-evaluation-harness's log-likelihood request: the prompt's own token log-probabilities."""
    reply = client.completions.create(model=GGUF_ID, prompt="The capital of France is Paris", echo=True,
                                      logprobs=1, max_tokens=1, temperature=0)
    logprobs = reply.choices[0].logprobs
    assert logprobs.token_logprobs[0] is None
    assert all(value <= 0 for value in logprobs.token_logprobs[1:])
    assert reply.choices[0].text.startswith("The capital of France is Paris")
