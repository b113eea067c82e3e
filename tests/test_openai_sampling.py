"""Chat `logprobs` / `top_logprobs`, `n` with a seed stream per choice, `presence_penalty` / `frequency_penalty`
and `logit_bias` through the API, checked with the openai SDK against transformers on the same tiny model.
"""

from __future__ import annotations

import json
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Literal

import httpx
import openai
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from backend.api import add_openai_routes
from backend.core.registry import Registry
from backend.engines import create_engine
from tests.app_process import openai_api_served
from tests.tiers import full_tier

MODEL = "tiny-chat"
TOLERANCE = 1e-4
CHAT = [{"role": "user", "content": "Write a haiku about the sea."}]


@pytest.fixture(scope="module")
@full_tier
def app_url(tiny_config) -> Iterator[str]:
    registry = Registry(tiny_config, create_engine)
    with openai_api_served(registry) as url:
        yield url
    registry.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def hf(tiny_config) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = next(spec.source for spec in tiny_config.models if spec.id == MODEL)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), \
        AutoTokenizer.from_pretrained(folder)


def reference(hf: tuple, ids: list[int], new_tokens: int, processor: Any = None) -> tuple[list[int], list[Any]]:
    """Greedy ids and each step's log-softmax (after `processor`), from transformers' own generate."""
    from transformers import LogitsProcessorList

    model, tokenizer = hf
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
                             logits_processor=LogitsProcessorList([processor] if processor else []))
    generated = out.sequences[0, len(ids):].tolist()
    return generated, [torch.log_softmax(score[0].float(), dim=-1) for score in out.scores]


def chat_ids(tokenizer: Any) -> list[int]:
    text = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_chat_logprobs_are_the_models_log_softmax(client: openai.OpenAI, hf: tuple) -> None:
    _, tokenizer = hf
    reply = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=6, temperature=0,
                                           logprobs=True, top_logprobs=3)
    generated, steps = reference(hf, chat_ids(tokenizer), 6)
    content = reply.choices[0].logprobs.content
    assert [entry.token for entry in content] == [tokenizer.decode([token]) for token in generated]
    for entry, token, expected in zip(content, generated, steps):
        assert entry.logprob == pytest.approx(expected[token].item(), abs=TOLERANCE)
        best = torch.topk(expected, 3)
        assert [alt.logprob for alt in entry.top_logprobs] == pytest.approx(best.values.tolist(), abs=TOLERANCE)
        assert entry.bytes == list(entry.token.encode())
    streamed = [c for c in client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=6, temperature=0,
                                                         logprobs=True, top_logprobs=1, stream=True)]
    tokens = [entry.token for c in streamed if c.choices and c.choices[0].logprobs
              for entry in c.choices[0].logprobs.content]
    assert tokens == [entry.token for entry in content]


def test_n_choices_each_with_its_own_seed_stream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=10, temperature=1.0, n=3, seed=7)
    texts = [choice.message.content for choice in sorted(reply.choices, key=lambda c: c.index)]
    assert len(set(texts)) > 1, "each choice samples from its own random stream"
    for index, text in enumerate(texts):  # choice i is what seed 7 + i gives alone
        alone = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=10, temperature=1.0,
                                               seed=7 + index)
        assert alone.choices[0].message.content == text
    assert reply.usage.completion_tokens == sum(10 for _ in texts) or reply.usage.completion_tokens <= 30
    streamed: dict[int, str] = {}
    for chunk in client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=10, temperature=1.0, n=3,
                                                seed=7, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
    assert [streamed[index] for index in range(3)] == texts


class OpenAIPenalties:
    """The reference: vLLM's rule, written independently over transformers' generate (counts of generated ids)."""

    def __init__(self, prompt_length: int, presence: float, frequency: float, bias: dict[int, float]) -> None:
        self.prompt_length, self.presence, self.frequency, self.bias = prompt_length, presence, frequency, bias

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for token, value in self.bias.items():
            scores[0, token] += value
        for token in set(input_ids[0, self.prompt_length:].tolist()):
            count = input_ids[0, self.prompt_length:].tolist().count(token)
            scores[0, token] -= self.frequency * count + self.presence
        return scores


def test_presence_and_frequency_penalties_and_logit_bias_follow_the_openai_rule(client: openai.OpenAI,
                                                                               hf: tuple) -> None:
    _, tokenizer = hf
    ids = tokenizer("Once upon a time")["input_ids"]
    plain = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0)
    bias = {5: 3.0, 40: -2.0}
    penalised = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0,
                                          presence_penalty=0.8, frequency_penalty=1.5,
                                          logit_bias={str(token): value for token, value in bias.items()})
    expected, _ = reference(hf, ids, 16, OpenAIPenalties(len(ids), 0.8, 1.5, bias))
    assert penalised.choices[0].text == tokenizer.decode(expected, skip_special_tokens=True)
    assert penalised.choices[0].text != plain.choices[0].text  # the penalties changed something
    forced = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=5, temperature=0,
                                            logit_bias={"100": 100})
    assert forced.choices[0].message.content == tokenizer.decode([100] * 5)


@pytest.mark.parametrize(
    "overrides, param, words",
    [
        ({"top_logprobs": 2}, "top_logprobs", "top_logprobs: needs logprobs: true"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "top_logprobs: must be between 0 and 20"),
        ({"n": 9}, "n", "n: must be between 1 and 8"),
        ({"logit_bias": {"x": 1}}, "logit_bias", "logit_bias: must be an object mapping token ids"),
        ({"logit_bias": {"5": 200}}, "logit_bias[5]", "logit_bias[5]: must be a number from -100 to 100"),
        ({"logit_bias": {"999999": 1}}, "logit_bias", "token id 999999 is not in model 'tiny-chat''s vocabulary"),
        ({"presence_penalty": 3}, "presence_penalty", "presence_penalty: must be in [-2.0, 2.0]"),
        ({"frequency_penalty": "x"}, "frequency_penalty", "frequency_penalty: must be a number"),
    ],
)
def test_bad_sampling_fields_name_the_field(app_url: str, overrides: dict, param: str, words: str) -> None:
    body = {"model": MODEL, "messages": CHAT, "max_tokens": 2, **overrides}
    answer = httpx.post(f"{app_url}/v1/chat/completions", json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert words in error["message"] and error["param"] == param


class Person(BaseModel):
    """The schema a json_schema request sends; replies are validated by pydantic against the same model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    pets: list[Literal["cat", "dog", "fish"]] = Field(max_length=3)


def test_json_schema_replies_always_parse_and_validate_even_from_random_weights(client: openai.OpenAI) -> None:
    schema = {"name": "person", "strict": True, "schema": Person.model_json_schema()}
    def ask(seed: int) -> Any:
        return client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=120, temperature=1.0, seed=seed,
                                              response_format={"type": "json_schema", "json_schema": schema})

    with ThreadPoolExecutor(10) as pool:  # at once: the engine decodes constrained rows in one batch
        replies = list(pool.map(ask, range(20)))
    people = [Person.model_validate_json(reply.choices[0].message.content) for reply in replies]  # 20 out of 20
    assert len({person.model_dump_json() for person in people}) > 1  # sampled: not one canned answer
    assert all(reply.choices[0].finish_reason == "stop" for reply in replies)
    # json_object bounds nothing, so a random model may still be writing when max_tokens runs out (then, as with
    # OpenAI, finish_reason is "length" and the text is a prefix of an object); every finished one parses.
    finished = 0
    with ThreadPoolExecutor(4) as pool:
        objects = list(pool.map(lambda seed: client.chat.completions.create(
            model=MODEL, messages=CHAT, max_tokens=150, temperature=1.0, seed=seed,
            response_format={"type": "json_object"}), range(4)))
    for anything in objects:
        content = anything.choices[0].message.content
        assert content.startswith("{")
        if anything.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(content), dict)
            finished += 1
    assert finished


def test_bad_response_format_names_the_field(app_url: str) -> None:
    for response_format, words in (({"type": "xml"}, "response_format: give {'type': 'text'}"),
                                   ({"type": "json_schema", "json_schema": {"name": "x"}},
                                    "response_format.json_schema.schema: required")):
        answer = httpx.post(f"{app_url}/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": CHAT, "response_format": response_format})
        assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
        assert answer.json()["error"]["param"].startswith("response_format")


def test_remote_entries_pass_openai_sampling_fields_through_and_refuse_local_only_ones(tiny_config) -> None:
    """A remote (`backend: openai`) entry: penalties and logit_bias reach the server as sent; logprobs and
    response_format, which this app would compute itself, are refused by name rather than ignored."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backend.core.config import parse_config
    from tests.remote_server import FakeServer, chat_chunk, stream_of

    server = FakeServer()
    server.script = [stream_of([chat_chunk("hi"), chat_chunk(finish="stop", usage={
        "prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})])]
    entry = {"id": "remote", "tasks": ["chat"], "backend": "openai", "base_url": f"http://127.0.0.1:{server.port}/v1",
             "model": "fake-model", "timeout_s": 10}
    registry = Registry(parse_config({"models": [entry]}, Path("models.yaml")), create_engine)
    app = FastAPI()
    add_openai_routes(app, registry)
    try:
        with TestClient(app) as http:
            answer = http.post("/v1/chat/completions", json={
                "model": "remote", "messages": CHAT, "temperature": 0.5, "presence_penalty": 0.5,
                "frequency_penalty": -0.25, "logit_bias": {"7": -100}})
            assert answer.status_code == 200, answer.text
            sent = [exchange.body for exchange in server.requests if isinstance(exchange.body, dict)][-1]
            assert sent["presence_penalty"] == 0.5 and sent["frequency_penalty"] == -0.25
            assert sent["logit_bias"] == {"7": -100.0}
            for extra, param in (({"logprobs": True}, "logprobs"),
                                 ({"response_format": {"type": "json_object"}}, "response_format")):
                refused = http.post("/v1/chat/completions", json={"model": "remote", "messages": CHAT, **extra})
                assert refused.status_code == 400 and refused.json()["error"]["param"] == param
                assert "runs on a remote server" in refused.json()["error"]["message"]
    finally:
        registry.close()
        server.close()
