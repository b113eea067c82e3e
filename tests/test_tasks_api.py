"""The pipeline tasks' named endpoints, through gradio_client against the real app on tiny real models."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterator

import pytest

from backend.tasks import service
from backend.core.types import GenerationParams
from tests.conftest import free_port
from tests.tiers import full_tier


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


def test_every_task_has_a_named_endpoint(app: SimpleNamespace) -> None:
    names = set(app.client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/ner", "/question_answering", "/fill_mask", "/summarize", "/translate", "/embed"} <= names


def test_ner_endpoint_equals_the_backend(app: SimpleNamespace) -> None:
    text = "Dr. Smith met Anna in Paris."
    answer = app.client.predict(text=text, model="tiny-ner", aggregation="none", api_name="/ner")
    expected = service.recognise_entities(app.registry, "tiny-ner", text, aggregation="none")[0]
    assert [(e["entity"], e["start"], e["end"]) for e in answer] == [(e.entity, e.start, e.end) for e in expected]


def test_qa_endpoint(app: SimpleNamespace) -> None:
    context = "The meeting was moved to Tuesday at 10 a.m. in room B-204."
    answers = app.client.predict(question="When is the meeting?", context=context, top_k=2,
                                 api_name="/question_answering")
    assert len(answers) == 2 and all(context[a["start"]:a["end"]] == a["answer"] for a in answers)
    with pytest.raises(Exception, match="context: is empty"):
        app.client.predict(question="When?", context="", api_name="/question_answering")


def test_fill_mask_endpoint_and_its_missing_mask_error(app: SimpleNamespace) -> None:
    per_mask = app.client.predict(text="The [MASK] sat on the [MASK].", top_k=2, api_name="/fill_mask")
    assert len(per_mask) == 2 and all(len(candidates) == 2 for candidates in per_mask)
    with pytest.raises(Exception, match=r"put \[MASK\] where"):
        app.client.predict(text="No mask here.", api_name="/fill_mask")


def test_summarize_streams_and_ends_with_stats(app: SimpleNamespace) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    job = app.client.submit(text=text, model="tiny-seq2seq", max_new_tokens=5, temperature=0,
                            api_name="/summarize")
    final = job.result(timeout=120)
    expected = list(service.stream_text_task(app.registry, "tiny-seq2seq", "summarize", text,
                                             GenerationParams(max_new_tokens=5, temperature=0.0)))[-1]
    assert final["text"] == expected.text and final["stats"]["generated_tokens"] == 5
    assert final["stats"]["finish_reason"] == "length"


def test_translate_refuses_a_pair_the_model_lacks(app: SimpleNamespace) -> None:
    done = app.client.predict(text="Good morning.", source_language="en", target_language="fr", max_new_tokens=3,
                              temperature=0, api_name="/translate")
    assert done["text"] and done["stats"]["generated_tokens"] == 3
    with pytest.raises(Exception, match="does not translate en → ja; it translates en → de, en → fr"):
        app.client.predict(text="Good morning.", source_language="en", target_language="ja", api_name="/translate")


def test_embed_endpoint(app: SimpleNamespace) -> None:
    result = app.client.predict(texts=["one", "two words"], api_name="/embed")
    assert result["dimensions"] == 32 and len(result["embeddings"]) == 2 and result["pooling"] == "cls"
