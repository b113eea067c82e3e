"""`POST /v1/embeddings` served next to a Gradio app, driven by the `openai` client; real similarity with the real
all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.core.config import parse_config
from backend.api import add_embeddings_route
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.tasks import service
from tests.real_minilm import MINILM_ID, minilm_entry, minilm_folder
from tests.remote_server import free_port
from tests.tiers import full_tier

PARAPHRASES = [
    ("A man is playing a guitar.", "Someone is playing an instrument."),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
    ("How do I reset my password?", "What are the steps to change my login password?"),
    ("The stock market fell sharply today.", "Share prices dropped a lot this afternoon."),
]


@pytest.fixture(scope="module")
@full_tier
def registry(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    entries = [spec.model_dump(exclude_none=True) for spec in tiny_config.models]
    entries.append(minilm_entry(minilm_folder(tmp_path_factory.mktemp("minilm"))))
    reg = Registry(parse_config({"models": entries, "settings": {"max_loaded_models": 3}}, Path("models.yaml")),
                   create_engine)
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def app_url(registry: Registry) -> Iterator[str]:
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Textbox()
    app, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    add_embeddings_route(app, registry)
    yield url.rstrip("/")
    demo.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_openai_client_gets_the_backends_vectors_and_usage(client: openai.OpenAI, registry: Registry) -> None:
    texts = ["The cat sat on the mat.", "Prices rose 3.5% in March."]
    answer = client.embeddings.create(model="tiny-embed", input=texts)  # the client asks for base64
    expected = service.embed_texts(registry, "tiny-embed", texts)
    assert [item.index for item in answer.data] == [0, 1] and answer.model == "tiny-embed"
    assert np.allclose([item.embedding for item in answer.data], expected.vectors, atol=1e-6)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == sum(expected.tokens)
    single = client.embeddings.create(model="tiny-embed", input="The cat sat on the mat.", dimensions=32)
    assert len(single.data) == 1 and np.allclose(single.data[0].embedding, expected.vectors[0], atol=1e-6)


def test_float_encoding_over_plain_http(app_url: str) -> None:
    body = httpx.post(f"{app_url}/v1/embeddings", json={"model": "tiny-embed", "input": ["hello"],
                                                         "encoding_format": "float"}, timeout=60).json()
    vector = body["data"][0]["embedding"]
    assert isinstance(vector, list) and len(vector) == 32 and abs(np.linalg.norm(vector) - 1) < 1e-5


@pytest.mark.parametrize("body, status, param, words", [
    ({"model": "tiny-embed", "input": "x", "dimensions": 16}, 400, "dimensions", "cannot shorten them"),
    ({"model": "tiny-ner", "input": "x"}, 400, "model", "does not do 'embed'"),
    ({"model": "nope", "input": "x"}, 404, "model", "unknown model"),
    ({"model": "tiny-embed", "input": ""}, 400, "input", "is empty"),
    ({"model": "tiny-embed", "input": [1, 2, 3]}, 400, "input", "token arrays are not supported"),
    ({"model": "tiny-embed", "input": "x", "encoding_format": "hex"}, 400, "encoding_format", "'float' or 'base64'"),
    ({"input": "x"}, 400, "model", "model: required"),
])
def test_bad_requests_name_the_field(app_url: str, body: dict, status: int, param: str, words: str) -> None:
    response = httpx.post(f"{app_url}/v1/embeddings", json=body, timeout=60)
    error = response.json()["error"]
    assert response.status_code == status and error["param"] == param and words in error["message"]


def test_the_token_check_guards_the_route(registry: Registry) -> None:
    app = FastAPI()
    add_embeddings_route(app, registry, check_token=lambda token: token == "s3cret")
    with TestClient(app) as http:
        refused = http.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"})
        allowed = http.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"},
                            headers={"Authorization": "Bearer s3cret"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert allowed.status_code == 200


def test_real_minilm_paraphrases_are_closer_than_unrelated_pairs(client: openai.OpenAI) -> None:
    texts = [text for pair in PARAPHRASES for text in pair]
    answer = client.embeddings.create(model=MINILM_ID, input=texts)
    vectors = np.array([item.embedding for item in answer.data])
    assert vectors.shape == (8, 384)
    similarity = vectors @ vectors.T  # normalised by the folder's Normalize module
    for i in range(len(PARAPHRASES)):
        paraphrase = similarity[2 * i, 2 * i + 1]
        unrelated = max(similarity[2 * i, 2 * j + 1] for j in range(len(PARAPHRASES)) if j != i)
        assert paraphrase > unrelated + 0.2, (PARAPHRASES[i], paraphrase, unrelated)
