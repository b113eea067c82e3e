"""/v1/completions at the level of tokens, as lm-evaluation-harness and vLLM clients use it: `echo`, `logprobs`,
`max_tokens: 0`, token-id prompts and lists of prompts; and vLLM's /tokenize, /detokenize, /tokenizer_info.

Log-probabilities are checked against the model's own log-softmax, computed here with transformers directly on
the same tiny model folder, through the openai SDK against a real server.
"""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import openai
import pytest
import torch

from backend.core.registry import Registry
from backend.engines import create_engine
from tests.app_process import openai_api_served
from tests.tiers import full_tier

MODEL = "tiny-chat"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def registry(tiny_config) -> Iterator[Registry]:
    reg = Registry(tiny_config, create_engine)
    yield reg
    reg.close()


@pytest.fixture(scope="module")
@full_tier
def app_url(registry: Registry) -> Iterator[str]:
    with openai_api_served(registry) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def hf(tiny_config) -> tuple[Any, Any]:
    """The same weights and tokenizer, loaded by transformers itself: the reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = next(spec.source for spec in tiny_config.models if spec.id == MODEL)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def log_softmax_of(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def test_echo_scores_every_prompt_token_like_the_models_own_log_softmax(client: openai.OpenAI, hf: tuple) -> None:
    model, tokenizer = hf
    prompts = [tokenizer("The quick brown fox jumps", add_special_tokens=False)["input_ids"],
               tokenizer("Once upon a time, in a village", add_special_tokens=False)["input_ids"],
               tokenizer("Hi", add_special_tokens=False)["input_ids"]]
    assert len({len(ids) for ids in prompts}) == 3  # different lengths share one padded pass
    reply = client.completions.create(model=MODEL, prompt=prompts, echo=True, logprobs=3, max_tokens=0,
                                      temperature=0)
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    for ids, choice in zip(prompts, reply.choices):
        expected = log_softmax_of(model, ids)
        logprobs = choice.logprobs
        assert logprobs.tokens == [tokenizer.decode([token]) for token in ids]  # no BOS was added
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        for position in range(1, len(ids)):
            assert logprobs.token_logprobs[position] == pytest.approx(
                expected[position - 1, ids[position]].item(), abs=TOLERANCE)
            best = torch.topk(expected[position - 1], 3)
            top = logprobs.top_logprobs[position]
            for token, value in zip(best.indices.tolist(), best.values.tolist()):
                assert top[tokenizer.decode([token])] == pytest.approx(value, abs=TOLERANCE)
        assert choice.text == tokenizer.decode(ids)  # echo: the prompt itself; max_tokens 0: nothing more
        assert choice.finish_reason == "length"
        assert logprobs.text_offset[0] == 0
        assert logprobs.text_offset[-1] == len("".join(logprobs.tokens[:-1]))
    assert reply.usage.prompt_tokens == sum(map(len, prompts)) and reply.usage.completion_tokens == 0


def test_lm_eval_loglikelihood_request_adds_the_greedy_token(client: openai.OpenAI, hf: tuple) -> None:
    """lm-eval's exact request: echo, logprobs 1, max_tokens 1, temperature 0, token ids, a batch."""
    model, tokenizer = hf
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("Hello there", "The sea is")]
    reply = client.completions.create(model=MODEL, prompt=prompts, echo=True, logprobs=1, max_tokens=1,
                                      temperature=0, seed=1234)
    for ids, choice in zip(prompts, reply.choices):
        expected = log_softmax_of(model, ids)
        greedy = int(torch.argmax(expected[-1]))
        logprobs = choice.logprobs
        assert len(logprobs.tokens) == len(ids) + 1 and logprobs.tokens[-1] == tokenizer.decode([greedy])
        assert logprobs.token_logprobs[-1] == pytest.approx(expected[-1, greedy].item(), abs=TOLERANCE)
        # lm-eval's is_greedy: the token's logprob is the best of its top_logprobs
        assert logprobs.token_logprobs[-1] == max(logprobs.top_logprobs[-1].values())
        assert choice.text == tokenizer.decode(ids) + tokenizer.decode([greedy], skip_special_tokens=True)
    assert reply.usage.completion_tokens == 2


def test_choices_sharing_a_prefix_are_scored_like_each_whole_row(client: openai.OpenAI, hf: tuple,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A multiple-choice question as lm-eval sends it (the same context, one-token answers) shares one forward of
    the context (backend/engines/token_ops.py); every number equals scoring each row whole."""
    from backend.engines import token_ops

    model, tokenizer = hf
    context = tokenizer("The capital of France is", add_special_tokens=False)["input_ids"]
    answers = [tokenizer(word, add_special_tokens=False)["input_ids"][-1] for word in (" Paris", " London", " Rome")]
    prompts = [context + [answer] for answer in answers] + [tokenizer("An unrelated one", add_special_tokens=False)[
        "input_ids"]]
    shared_calls = []
    original = token_ops._shared_prefix_logprobs
    monkeypatch.setattr(token_ops, "_shared_prefix_logprobs",
                        lambda *args: shared_calls.append(len(args[2])) or original(*args))
    reply = client.completions.create(model=MODEL, prompt=prompts, echo=True, logprobs=2, max_tokens=1,
                                      temperature=0, seed=1234)
    assert shared_calls == [3]  # the three choices in one shared pass, the other prompt on its own
    for ids, choice in zip(prompts, reply.choices):
        expected = log_softmax_of(model, ids)
        logprobs = choice.logprobs
        for position in range(1, len(ids)):
            assert logprobs.token_logprobs[position] == pytest.approx(
                expected[position - 1, ids[position]].item(), abs=TOLERANCE)
        greedy = int(torch.argmax(expected[-1]))
        assert logprobs.tokens[-1] == tokenizer.decode([greedy])
        assert logprobs.token_logprobs[-1] == pytest.approx(expected[-1, greedy].item(), abs=TOLERANCE)


def test_generated_tokens_logprobs_match_transformers_greedy_scores(client: openai.OpenAI, hf: tuple) -> None:
    model, tokenizer = hf
    prompt = "Write a haiku about the sea:"
    reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6, logprobs=2, temperature=0)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=tokenizer.pad_token_id)
    generated = out.sequences[0, ids.shape[1]:].tolist()
    logprobs = reply.choices[0].logprobs
    assert logprobs.tokens == [tokenizer.decode([token]) for token in generated]
    for step, token in enumerate(generated):
        expected = torch.log_softmax(out.logits[step][0].float(), dim=-1)
        assert logprobs.token_logprobs[step] == pytest.approx(expected[token].item(), abs=TOLERANCE)
        # greedy: the chosen token is the best of its alternatives (two tokens may share a text, e.g. partial
        # UTF-8 bytes decode to the same '\ufffd', as with vLLM's decoded keys)
        assert max(logprobs.top_logprobs[step].values()) == pytest.approx(expected[token].item(), abs=TOLERANCE)
    assert logprobs.text_offset[0] == 0 and reply.choices[0].text.startswith(logprobs.tokens[0].strip() or "")


def test_a_list_of_prompts_is_one_choice_each_same_as_alone(client: openai.OpenAI) -> None:
    prompts = ["Once upon a time", "The weather today", "def add(a, b):"]
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=8, temperature=0).choices[0].text
             for p in prompts]
    together = client.completions.create(model=MODEL, prompt=prompts, max_tokens=8, temperature=0)
    assert [choice.text for choice in sorted(together.choices, key=lambda c: c.index)] == alone
    assert together.usage.completion_tokens == sum(1 for _ in prompts) * 8 or together.usage.completion_tokens <= 24
    streamed: dict[int, str] = {}
    finishes = {}
    for chunk in client.completions.create(model=MODEL, prompt=prompts, max_tokens=8, temperature=0, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert [streamed[index] for index in range(3)] == alone and set(finishes) == {0, 1, 2}


def test_token_id_prompt_generates_like_the_same_text(client: openai.OpenAI, hf: tuple) -> None:
    _, tokenizer = hf
    text = "The quick brown fox"
    ids = tokenizer(text)["input_ids"]  # as the engine tokenizes a text prompt
    by_text = client.completions.create(model=MODEL, prompt=text, max_tokens=8, temperature=0).choices[0].text
    by_ids = client.completions.create(model=MODEL, prompt=ids, max_tokens=8, temperature=0).choices[0].text
    assert by_ids == by_text
    echoed = client.completions.create(model=MODEL, prompt=text, max_tokens=0, echo=True)
    assert echoed.choices[0].text == text and echoed.usage.completion_tokens == 0


@pytest.mark.parametrize(
    "overrides, param, words",
    [
        ({"logprobs": 21}, "logprobs", "logprobs: must be between 0 and 20"),
        ({"prompt": [[1, 2, 10**7]]}, "prompt", "prompt: token 2 is 10000000, not a token id of this model"),
        ({"prompt": [[1, "a"]]}, "prompt[0]", "prompt[0]: must be a string or a non-empty list of token ids"),
        ({"prompt": []}, "prompt", "prompt: must be a string, a list of strings"),
        ({"prompt": ["x"] * 65}, "prompt", "at most 64 prompts per request"),
        ({"max_tokens": -1}, "max_tokens", "max_tokens: must be between 1"),
        ({"echo": "yes"}, "echo", "echo: must be true or false"),
    ],
)
def test_bad_token_level_requests_name_the_field(app_url: str, overrides: dict, param: str, words: str) -> None:
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 2, **overrides}
    answer = httpx.post(f"{app_url}/v1/completions", json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert words in error["message"] and error["param"] == param


def test_tokenize_detokenize_and_tokenizer_info(app_url: str, hf: tuple) -> None:
    _, tokenizer = hf
    info = httpx.get(f"{app_url}/tokenizer_info", params={"model": MODEL}, timeout=30).json()
    assert info["eos_token"] == tokenizer.eos_token and info["bos_token"] == tokenizer.bos_token
    assert info["chat_template"] == tokenizer.chat_template and info["model_max_length"] == 512
    text = "Hello there, general Kenobi"
    tokens = httpx.post(f"{app_url}/tokenize", json={"model": MODEL, "prompt": text, "add_special_tokens": False},
                        timeout=30).json()
    assert tokens["tokens"] == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokens["count"] == len(tokens["tokens"]) and tokens["max_model_len"] == 512
    back = httpx.post(f"{app_url}/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}, timeout=30).json()
    assert back["prompt"] == tokenizer.decode(tokens["tokens"])
    chat = httpx.post(f"{app_url}/tokenize", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                      timeout=30).json()
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                             tokenize=False)
    assert chat["tokens"] == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    bad = httpx.post(f"{app_url}/detokenize", json={"model": MODEL, "tokens": [10**7]}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
    unknown = httpx.post(f"{app_url}/tokenize", json={"model": "nope", "prompt": "x"}, timeout=30)
    assert unknown.status_code == 404
