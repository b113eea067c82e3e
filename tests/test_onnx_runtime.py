"""`runtime: onnx`: every encoder task gives PyTorch's outputs within float tolerance, the export is cached next
to the weights and reused, and the registry refuses it for tasks it cannot serve."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from backend.services.classification import classify_texts
from backend.core.config import parse_config
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.tasks import service

TEXTS = ["Dr. Smith met Anna in Paris.", "The weather today is sunny with a light breeze, around 21 degrees."]
ENCODERS = {"tiny-classifier": "classify", "tiny-nli": "zero_shot", "tiny-ner": "ner", "tiny-qa": "question_answering",
            "tiny-embed": "embed"}


@pytest.fixture(scope="module")
def registries(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Registry]]:
    """(PyTorch, ONNX) registries over copies of the tiny encoders (the export is written next to the copies)."""
    folder = tmp_path_factory.mktemp("onnx-models")
    torch_entries, onnx_entries = [], []
    for model_id, task in ENCODERS.items():
        copy = folder / model_id
        shutil.copytree(tiny_models_yaml.parent / model_id, copy)
        entry = {"id": model_id, "tasks": [task], "source": str(copy), "dtype": "float32", "device": "cpu"}
        torch_entries.append(entry)
        onnx_entries.append({**entry, "runtime": "onnx"})
    settings = {"max_loaded_models": 5}
    plain = Registry(parse_config({"models": torch_entries, "settings": settings}, folder / "torch.yaml"),
                     create_engine)
    onnx = Registry(parse_config({"models": onnx_entries, "settings": settings}, folder / "onnx.yaml"), create_engine)
    yield plain, onnx
    plain.close()
    onnx.close()


def test_classify_and_zero_shot_equal_pytorch(registries: tuple[Registry, Registry]) -> None:
    plain, onnx = registries
    for model_id, labels in (("tiny-classifier", None), ("tiny-nli", "sports, weather, travel")):
        expected = classify_texts(plain, model_id, TEXTS, labels).scores
        got = classify_texts(onnx, model_id, TEXTS, labels).scores
        for want, have in zip(expected, got):
            assert [s.label for s in want] == [s.label for s in have]
            assert np.allclose([s.score for s in want], [s.score for s in have], atol=1e-5)
    assert "runtime: ONNX Runtime" not in " ".join(onnx.status_of("tiny-nli").notes)  # classifier notes: labels
    assert (Path(onnx.spec("tiny-nli").source) / "onnx" / "model.onnx").is_file()


def test_ner_qa_and_embeddings_equal_pytorch(registries: tuple[Registry, Registry]) -> None:
    plain, onnx = registries
    for aggregation in ("none", "simple"):
        want = service.recognise_entities(plain, "tiny-ner", TEXTS, aggregation=aggregation)
        have = service.recognise_entities(onnx, "tiny-ner", TEXTS, aggregation=aggregation)
        assert [[(e.entity, e.start, e.end) for e in row] for row in want] == \
               [[(e.entity, e.start, e.end) for e in row] for row in have]
        assert np.allclose([e.score for row in want for e in row], [e.score for row in have for e in row], atol=1e-5)
    context = " ".join(TEXTS * 40)  # several stride windows in one padded batch
    want = service.answer_question(plain, "tiny-qa", "Where did they meet?", context, top_k=3, stride=32)
    have = service.answer_question(onnx, "tiny-qa", "Where did they meet?", context, top_k=3, stride=32)
    assert [(a.start, a.end) for a in want] == [(a.start, a.end) for a in have]
    assert np.allclose([a.score for a in want], [a.score for a in have], atol=1e-5)
    want_vectors = service.embed_texts(plain, "tiny-embed", TEXTS).vectors
    have_vectors = service.embed_texts(onnx, "tiny-embed", TEXTS).vectors
    assert np.allclose(want_vectors, have_vectors, atol=1e-5)
    # One text (no padding at all), unlike the padded batch the export was traced with.
    assert np.allclose(service.embed_texts(plain, "tiny-embed", TEXTS[1]).vectors,
                       service.embed_texts(onnx, "tiny-embed", TEXTS[1]).vectors, atol=1e-5)
    assert "runtime: ONNX Runtime" in onnx.status_of("tiny-embed").notes


def test_the_export_is_cached_and_reused(registries: tuple[Registry, Registry]) -> None:
    _, onnx = registries
    service.embed_texts(onnx, "tiny-embed", TEXTS)
    exported = Path(onnx.spec("tiny-embed").source) / "onnx" / "model.onnx"
    before = exported.stat().st_mtime_ns
    onnx.unload("tiny-embed")
    service.embed_texts(onnx, "tiny-embed", TEXTS)
    assert onnx.load_count("tiny-embed") == 2 and exported.stat().st_mtime_ns == before


def test_fused_graph_on_request_equals_pytorch(tiny_models_yaml: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKBENCH_ONNX_FUSE=1: ONNX Runtime's transformer fusions apply to a tiny BERT encoder (attention,
    LayerNorm, GELU fused) and it still gives PyTorch's vectors; without it the plain export runs."""
    import json

    import onnx as onnx_format

    copy = tmp_path / "tiny-embed"
    shutil.copytree(tiny_models_yaml.parent / "tiny-embed", copy)
    entry = {"id": "e", "tasks": ["embed"], "source": str(copy), "dtype": "float32", "device": "cpu"}
    registry = Registry(parse_config({"models": [entry, {**entry, "id": "o", "runtime": "onnx"}]},
                                     tmp_path / "m.yaml"), create_engine)
    try:
        want = service.embed_texts(registry, "e", TEXTS).vectors
        stamp = copy / "onnx" / "export.json"
        service.embed_texts(registry, "o", TEXTS)
        assert json.loads(stamp.read_text())["fused"] is False  # the default: plain export
        registry.unload("o")
        monkeypatch.setenv("WORKBENCH_ONNX_FUSE", "1")
        have = service.embed_texts(registry, "o", TEXTS).vectors
        assert json.loads(stamp.read_text())["fused"] is True
        kinds = {node.op_type for node in onnx_format.load(str(copy / "onnx" / "model.opt.onnx")).graph.node}
        assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= kinds
        assert np.allclose(want, have, atol=1e-5)
    finally:
        registry.close()


def test_onnx_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.engines.onnx_runtime import onnx_threads
    from backend.core.types import ModelLoadError

    monkeypatch.setenv("WORKBENCH_ONNX_THREADS", "3")
    assert onnx_threads() == 3
    monkeypatch.setenv("WORKBENCH_ONNX_THREADS", "0")
    with pytest.raises(ModelLoadError, match="WORKBENCH_ONNX_THREADS"):
        onnx_threads()
    monkeypatch.delenv("WORKBENCH_ONNX_THREADS")
    assert 1 <= onnx_threads() <= (os.cpu_count() or 1)


def test_export_leaves_the_model_as_it_was(tiny_models_yaml: Path, tmp_path: Path) -> None:
    """The exporter restores its wrapper's training flag recursively; the model must come back in eval mode with
    its attention setting, giving the same outputs as before the export."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from backend.engines.onnx_runtime import export

    folder = tiny_models_yaml.parent / "tiny-embed"
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    attention = model.config._attn_implementation
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        before = model(**encoded).last_hidden_state
    export(model, tokenizer, tmp_path / "model.onnx")
    assert not model.training and model.config._attn_implementation == attention
    with torch.inference_mode():
        assert torch.allclose(before, model(**encoded).last_hidden_state)
