"""The pipeline tasks (backend/tasks/) on tiny real models: registry validation, each task's results, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from backend.core.config import load_config
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.tasks import service
from backend.core.types import ConfigError, Delta, Final, GenerationParams, InvalidInputError, UnsupportedTaskError

GREEDY = GenerationParams(max_new_tokens=6, temperature=0.0)


def write_registry(tmp_path: Path, models: list[dict]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def local(tiny_models_yaml: Path, model_id: str) -> str:
    return str(tiny_models_yaml.parent / model_id)


# ----------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("task, source, needs", [
    ("ner", "tiny-classifier", "ForTokenClassification"),
    ("question_answering", "tiny-ner", "ForQuestionAnswering"),
    ("fill_mask", "tiny-qa", "ForMaskedLM"),
    ("summarize", "tiny-mlm", "ForConditionalGeneration"),
    ("embed", "tiny-seq2seq", "an encoder"),
])
def test_a_task_the_checkpoint_cannot_do_is_refused_naming_entry_and_field(
        tmp_path: Path, tiny_models_yaml: Path, task: str, source: str, needs: str) -> None:
    path = write_registry(tmp_path, [{"id": "x", "tasks": [task], "source": local(tiny_models_yaml, source)}])
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "entry 'x' (models[0]), field 'tasks'" in message and f"'{task}'" in message and needs in message


def test_pipeline_tasks_need_their_own_entry_but_summarize_and_translate_share(tmp_path: Path,
                                                                               tiny_models_yaml: Path) -> None:
    source = local(tiny_models_yaml, "tiny-ner")
    path = write_registry(tmp_path, [{"id": "x", "tasks": ["ner", "fill_mask"], "source": source}])
    with pytest.raises(ConfigError, match="field 'tasks'.*needs its own entry"):
        load_config(path)
    path = write_registry(tmp_path, [{"id": "x", "tasks": ["summarize", "chat"], "source": source}])
    with pytest.raises(ConfigError, match="needs its own entry"):
        load_config(path)
    seq2seq = local(tiny_models_yaml, "tiny-seq2seq")
    assert load_config(write_registry(tmp_path, [{"id": "x", "tasks": ["summarize", "translate"],
                                                  "source": seq2seq}])).models[0].tasks == ("summarize", "translate")


def test_runtime_onnx_only_for_encoder_tasks(tmp_path: Path, tiny_models_yaml: Path) -> None:
    path = write_registry(tmp_path, [{"id": "x", "tasks": ["summarize"], "runtime": "onnx",
                                      "source": local(tiny_models_yaml, "tiny-seq2seq")}])
    with pytest.raises(ConfigError, match="entry 'x'.*field 'runtime'.*not 'summarize'"):
        load_config(path)


def test_the_tiny_registry_lists_every_task_model(tiny_config) -> None:
    ids = {spec.id: spec.tasks for spec in tiny_config.models}
    assert ids["tiny-ner"] == ("ner",) and ids["tiny-qa"] == ("question_answering",)
    assert ids["tiny-mlm"] == ("fill_mask",) and ids["tiny-embed"] == ("embed",)
    assert ids["tiny-seq2seq"] == ("summarize", "translate")


# --------------------------------------------------------------------------------------------- tasks


def test_ner_offsets_point_into_the_text_and_aggregation_groups_tokens(shared_registry: Registry) -> None:
    text = "Dr. Smith met Anna in Paris."
    tokens = service.recognise_entities(shared_registry, "tiny-ner", text, aggregation="none")[0]
    grouped = service.recognise_entities(shared_registry, "tiny-ner", text, aggregation="simple")[0]
    labels = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    assert tokens and all(entity.entity in labels - {"O"} for entity in tokens)
    assert grouped and all(entity.entity in {"PER", "LOC", "ORG"} for entity in grouped)
    assert len(grouped) <= len(tokens)
    for entity in tokens + grouped:
        assert 0 <= entity.start < entity.end <= len(text) and 0 < entity.score <= 1
    with pytest.raises(InvalidInputError, match="aggregation: one of none, simple"):
        service.recognise_entities(shared_registry, "tiny-ner", text, aggregation="mean")


def test_batched_ner_equals_the_token_classification_pipeline(tiny_models_yaml: Path) -> None:
    """The NER handler tokenizes a batch in one call and runs one padded forward pass; every text's entities must
    still be exactly what the pipeline's own call gives, for every aggregation strategy, whatever the padding."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from backend.tasks.ner import SPEC

    folder = tiny_models_yaml.parent / "tiny-ner"
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    task = SPEC.handler_for(model, AutoTokenizer.from_pretrained(folder))
    texts = ["Anna.", "Dr. Smith met Anna in Paris on Monday, then flew to Berlin with Tom.", "Paris is big.",
             "The weather today is sunny with a light breeze, around 21 degrees, in London and in Rome."]
    for aggregation in ("none", "simple", "first", "average", "max"):
        want = task.pipe(texts, aggregation_strategy=aggregation, batch_size=1)
        have = task(SPEC.local_request(texts, aggregation=aggregation, batch_size=3))  # a padded 3, then 1
        assert len(have) == len(texts)
        for found, expected in zip(have, want):
            assert [(e.entity, e.word, e.start, e.end) for e in found] == \
                   [(x.get("entity_group") or x["entity"], x["word"], x["start"], x["end"]) for x in expected]
            assert found == [] or max(abs(e.score - float(x["score"])) for e, x in zip(found, expected)) < 1e-5
        assert any(have), aggregation  # random weights still tag some tokens: the comparison is not vacuous


def test_fill_mask_on_masked_rows_equals_the_fill_mask_pipeline(tiny_models_yaml: Path) -> None:
    """The fill-mask handler projects only the masked positions onto the vocabulary; its candidates, scores and
    sequences must be exactly the plain fill-mask pipeline's, for one and several masks, alone and in a batch."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    from backend.tasks.fill_mask import SPEC

    folder = tiny_models_yaml.parent / "tiny-mlm"
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    texts = ["The [MASK] sat.", "[MASK] met Anna in [MASK] on Monday, then flew to [MASK] with Tom.",
             "The weather today is sunny with a light breeze, around 21 degrees, in [MASK] and in Rome."]
    want = [plain(text, top_k=4) for text in texts]  # before the handler hooks the model
    want = [[w] if text.count("[MASK]") == 1 else w for w, text in zip(want, texts)]
    task = SPEC.handler_for(model, tokenizer)
    projected: list[int] = []  # rows the vocabulary projection computed, per forward pass
    model.get_output_embeddings().register_forward_hook(lambda _m, _a, out: projected.append(out.shape[-2]))
    for batch_size in (1, 2):
        have = task(SPEC.local_request(texts, top_k=4, batch_size=batch_size))
        assert sum(projected) == 5, projected  # the five masks, not every token
        projected.clear()
        assert [[[(c.token, c.sequence) for c in per_mask] for per_mask in text] for text in have] == \
               [[[(x["token_str"], x["sequence"]) for x in per_mask] for per_mask in text] for text in want]
        assert max(abs(c.score - x["score"]) for h, w in zip(have, want) for hm, wm in zip(h, w)
                   for c, x in zip(hm, wm)) < 1e-5
    # The model stays usable by other callers: a plain forward pass still projects every position.
    ids = tokenizer("The [MASK] sat.", return_tensors="pt")
    assert model(**ids).logits.shape[:2] == ids["input_ids"].shape


def test_qa_answers_are_spans_of_the_context_ranked_by_score_over_stride_windows(shared_registry: Registry) -> None:
    context = " ".join(f"Item {n} is stored in room B-{n}." for n in range(120))  # far beyond 512 tokens
    answers = service.answer_question(shared_registry, "tiny-qa", "Where is item 7?", context, top_k=4, stride=32)
    assert len(answers) == 4
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)
    for answer in answers:
        assert context[answer.start:answer.end] == answer.answer and 0 < answer.score <= 1
    assert len({(a.start, a.end) for a in answers}) == 4
    # Windows after the first are read too: an answer may come from anywhere, but never beyond the context.
    assert max(a.end for a in answers) <= len(context)


def test_qa_question_without_context_is_refused_before_loading(registry: Registry) -> None:
    with pytest.raises(InvalidInputError, match="context: is empty; paste the text"):
        service.answer_question(registry, "tiny-qa", "Where is it?", "   ")
    assert registry.status_of("tiny-qa").state == "unloaded"


def test_fill_mask_gives_top_k_per_mask_and_names_the_mask_token(registry: Registry) -> None:
    with pytest.raises(InvalidInputError, match=r"put \[MASK\] where a word should be predicted"):
        service.fill_masks(registry, "tiny-mlm", "The cat sat on the mat.")
    assert registry.status_of("tiny-mlm").state == "unloaded"
    result = service.fill_masks(registry, "tiny-mlm", "The [MASK] sat on the [MASK].", top_k=3)[0]
    assert len(result) == 2 and all(len(candidates) == 3 for candidates in result)
    for candidates in result:
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


def test_summaries_stream_and_the_final_event_has_the_stats(shared_registry: Registry) -> None:
    events = list(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize",
                                           "The quick brown fox jumps over the lazy dog.", GREEDY))
    final = events[-1]
    assert isinstance(final, Final) and all(isinstance(e, Delta) for e in events[:-1])
    assert "".join(e.text for e in events[:-1]) == final.text and final.text
    # eos can never win greedily (tiny_task_models), so it generates exactly max_new_tokens.
    assert final.stats.generated_tokens == 6 and final.stats.finish_reason == "length"
    assert final.stats.prompt_tokens > 10 and final.stats.total_s > 0


def test_translation_uses_the_declared_pairs_and_refuses_others(registry: Registry) -> None:
    assert service.language_pairs(registry, "tiny-seq2seq") == [("en", "de"), ("en", "fr")]
    with pytest.raises(InvalidInputError, match="does not translate en → es; it translates en → de, en → fr"):
        service.stream_text_task(registry, "tiny-seq2seq", "translate", "Good morning.", GREEDY, "en", "es")
    assert registry.status_of("tiny-seq2seq").state == "unloaded"
    german = list(service.stream_text_task(registry, "tiny-seq2seq", "translate", "Good morning.", GREEDY, "en", "de"))
    french = list(service.stream_text_task(registry, "tiny-seq2seq", "translate", "Good morning.", GREEDY, "en", "fr"))
    assert german[-1].text != french[-1].text  # the prefix reached the model


def test_closing_a_stream_releases_the_model(registry: Registry) -> None:
    stream = service.stream_text_task(registry, "tiny-seq2seq", "summarize", "Hello there, general.",
                                      GenerationParams(max_new_tokens=400, temperature=1.0, seed=3))
    next(stream)
    assert registry.status_of("tiny-seq2seq").active_requests == 1
    stream.close()
    assert registry.status_of("tiny-seq2seq").active_requests == 0


def test_embeddings_pool_as_the_sentence_transformers_folder_says(shared_registry: Registry,
                                                                  tiny_models_yaml: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["The cat sat on the mat.", "Prices rose 3.5% in March."]
    result = service.embed_texts(shared_registry, "tiny-embed", texts)
    assert result.pooling == "cls" and result.normalized and result.dimensions == 32
    folder = tiny_models_yaml.parent / "tiny-embed"
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    expected = torch.nn.functional.normalize(hidden[:, 0], dim=1)
    assert torch.allclose(torch.tensor(result.vectors), expected, atol=1e-5)
    assert result.tokens == encoded["attention_mask"].sum(dim=1).tolist()

    # Without the sentence-transformers files: attention-masked mean pooling, normalised.
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain, ignore=shutil.ignore_patterns("modules.json", "1_Pooling", "2_Normalize"))
    reg = Registry(load_config(write_registry(tmp_path, [{"id": "plain", "tasks": ["embed"], "source": str(plain),
                                                          "device": "cpu"}])), create_engine)
    try:
        mean = service.embed_texts(reg, "plain", texts)
    finally:
        reg.close()
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    assert mean.pooling == "mean" and torch.allclose(torch.tensor(mean.vectors), pooled, atol=1e-5)


def test_search_finds_the_identical_text_first(shared_registry: Registry) -> None:
    texts = ["The weather today is sunny.", "The cat sat on the mat.", "Prices rose in March."]
    hits = service.search(shared_registry, "tiny-embed", "The cat sat on the mat.", texts, top_k=2)
    assert hits[0][0] == 1 and hits[0][1] == pytest.approx(1.0, abs=1e-5) and len(hits) == 2


def test_a_task_the_model_does_not_do(shared_registry: Registry) -> None:
    with pytest.raises(UnsupportedTaskError, match="does not do 'ner'.*models that do: tiny-ner"):
        service.recognise_entities(shared_registry, "tiny-qa", "Anna in Paris.")
