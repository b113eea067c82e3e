"""The public API, driven through gradio_client against the real app serving tiny real models.

One app per module (launching and the first model load cost seconds); tests that change what is loaded put
it back. tiny-chat has random weights and never emits eos, so token counts are exact.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest

from tests.conftest import free_port
from tests.tiers import full_tier

CHAT = "tiny-chat"
PUBLIC_ENDPOINTS = {"/chat", "/generate", "/generate_with_probs", "/compare", "/models", "/load_model",
                    "/unload_model", "/count_tokens", "/classify",
                    # the pipeline tasks (ui/tasks/api.py)
                    "/ner", "/question_answering", "/fill_mask", "/summarize", "/translate", "/embed"}


@pytest.fixture(scope="module")
@full_tier
def app(tiny_config) -> Iterator[SimpleNamespace]:
    from gradio_client import Client

    import ui
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    demo = ui.build_app(registry)
    port = free_port()
    ui.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        yield SimpleNamespace(client=client, registry=registry)
    finally:
        client.close()
        demo.close()
        registry.close()


def status(app: SimpleNamespace, model: str = CHAT) -> dict[str, Any]:
    statuses = app.client.predict(api_name="/models")
    return next(entry for entry in statuses if entry["id"] == model)


def stream(app: SimpleNamespace, api_name: str, **kwargs: Any) -> tuple[Any, list[Any]]:
    job = app.client.submit(api_name=api_name, **kwargs)
    result = job.result(timeout=60)
    return result, job.outputs()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------------------------------ tests


def test_api_lists_exactly_the_public_endpoints(app: SimpleNamespace) -> None:
    endpoints = app.client.view_api(print_info=False, return_format="dict")
    assert set(endpoints["named_endpoints"]) == PUBLIC_ENDPOINTS  # UI events stay off the API page
    chat_params = [p["parameter_name"] for p in endpoints["named_endpoints"]["/chat"]["parameters"]]
    assert chat_params[:4] == ["message", "model", "history", "system_prompt"]
    assert {"max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop"} <= set(chat_params)


def test_nothing_is_loaded_at_start(app: SimpleNamespace) -> None:
    statuses = app.client.predict(api_name="/models")
    assert {entry["id"] for entry in statuses} == {"tiny-chat", "tiny-classifier", "tiny-nli",
        "tiny-ner", "tiny-qa", "tiny-mlm", "tiny-seq2seq", "tiny-embed"}  # + the pipeline-task models
    assert all(entry["state"] == "unloaded" for entry in statuses)
    assert status(app)["max_context"] == 512


def test_chat_streams_partial_replies_and_loads_the_model(app: SimpleNamespace) -> None:
    reply, outputs = stream(app, "/chat", message="Hello! Who are you?", model=CHAT, max_new_tokens=64,
                            temperature=0)
    assert len(outputs) >= 2
    assert reply == outputs[-1] and reply
    assert all(later.startswith(earlier) for earlier, later in zip(outputs, outputs[1:]))  # it grows
    assert status(app)["state"] == "loaded"


def test_chat_accepts_history_and_system_prompt(app: SimpleNamespace) -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    reply = app.client.predict(message="And now?", model=CHAT, history=history, system_prompt="Be brief.",
                               max_new_tokens=8, temperature=0, api_name="/chat")
    without = app.client.predict(message="And now?", model=CHAT, max_new_tokens=8, temperature=0, api_name="/chat")
    assert reply and without and reply != without  # the history reached the model
    # A reply holding a NUL (a byte-level tokenizer can emit one) is accepted back, the NUL dropped: the same
    # answer as the history without it, never "contains a NUL character".
    with_nul = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel\x00lo."}]
    assert app.client.predict(message="And now?", model=CHAT, history=with_nul, system_prompt="Be brief.",
                              max_new_tokens=8, temperature=0, api_name="/chat") == reply


def test_generate_is_deterministic_when_greedy_and_respects_max_new_tokens(app: SimpleNamespace) -> None:
    before = status(app)["generated_tokens_total"]
    first, outputs = stream(app, "/generate", prompt="Once upon a time", model=CHAT, max_new_tokens=12,
                            temperature=0)
    assert status(app)["generated_tokens_total"] - before == 12
    assert outputs and first == outputs[-1]
    second = app.client.predict(prompt="Once upon a time", model=CHAT, max_new_tokens=12, temperature=0,
                                api_name="/generate")
    assert first == second and not first.startswith("Once upon a time")  # the completion only


def test_seed_makes_sampling_reproducible(app: SimpleNamespace) -> None:
    def sample(seed: int) -> str:
        return app.client.predict(prompt="The weather", model=CHAT, max_new_tokens=16, temperature=1.0,
                                  top_k=0, top_p=1.0, seed=seed, api_name="/generate")

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_generate_with_probs_reports_every_token(app: SimpleNamespace) -> None:
    result = app.client.predict(prompt="Hello", model=CHAT, max_new_tokens=5, temperature=0, top_alternatives=3,
                                api_name="/generate_with_probs")
    assert len(result["tokens"]) == 5 and result["stats"]["generated_tokens"] == 5
    for token in result["tokens"]:
        assert 0 < token["probability"] <= 1
        assert len(token["alternatives"]) == 3
        # greedy: the chosen token is the most likely one
        assert token["probability"] == pytest.approx(token["alternatives"][0]["probability"])


def test_cancelling_a_stream_stops_the_model(app: SimpleNamespace) -> None:
    before = status(app)["generated_tokens_total"]
    job = app.client.submit(prompt="Hello", model=CHAT, max_new_tokens=400, temperature=0, api_name="/generate")
    assert wait_until(lambda: len(job.outputs()) >= 1), "no output streamed"
    job.cancel()
    assert wait_until(lambda: status(app)["active_requests"] == 0), "the stream still holds the model"
    stopped_at = status(app)["generated_tokens_total"]
    time.sleep(1.0)
    assert status(app)["generated_tokens_total"] == stopped_at  # the model really stopped
    assert stopped_at - before < 300


def test_compare_streams_both_models(app: SimpleNamespace) -> None:
    (reply_a, reply_b), outputs = stream(app, "/compare", message="Hello", model_a=CHAT, model_b=CHAT,
                                         max_new_tokens=16, temperature=0)
    assert len(outputs) >= 2
    assert reply_a and reply_a == reply_b  # the same greedy model gives the same reply on both sides


def test_count_tokens(app: SimpleNamespace) -> None:
    short = app.client.predict(text="Hello", model=CHAT, api_name="/count_tokens")
    longer = app.client.predict(text="Hello " * 20, model=CHAT, api_name="/count_tokens")
    assert short["max_context"] == 512 and 0 < short["tokens"] < longer["tokens"]


def test_unload_and_load(app: SimpleNamespace) -> None:
    unloaded = app.client.predict(model=CHAT, api_name="/unload_model")
    assert unloaded["state"] == "unloaded" and status(app)["state"] == "unloaded"
    loaded = app.client.predict(model=CHAT, api_name="/load_model")
    assert loaded["state"] == "loaded" and loaded["device"] == "cpu" and loaded["parameters"] > 0


@pytest.mark.parametrize(
    ("api_name", "kwargs", "named"),
    [
        ("/chat", {"message": "   ", "model": CHAT}, "message"),
        ("/chat", {"message": "Hi", "model": "no-such-model"}, "no-such-model"),
        ("/chat", {"message": "Hi", "model": CHAT, "temperature": -0.5}, "temperature"),
        ("/chat", {"message": "Hi", "model": CHAT, "history": [{"role": "robot", "content": "x"}]}, "history"),
        ("/chat", {"message": "Hi", "model": CHAT, "history": ["not a message"]}, "history"),
        ("/chat", {"message": "Hi", "model": "tiny-classifier"}, "tiny-classifier"),
        ("/generate", {"prompt": "Hi", "model": CHAT, "max_new_tokens": 0}, "max_new_tokens"),
        ("/compare", {"message": "Hi", "model_a": CHAT, "model_b": "nope"}, "nope"),
        ("/load_model", {"model": "nope"}, "nope"),
    ],
)
def test_bad_input_names_the_problem_and_the_app_keeps_serving(app: SimpleNamespace, api_name: str,
                                                               kwargs: dict[str, Any], named: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as raised:
        app.client.predict(api_name=api_name, **kwargs)
    assert named in str(raised.value)
    assert app.client.predict(message="Hi", model=CHAT, max_new_tokens=2, temperature=0, api_name="/chat")
