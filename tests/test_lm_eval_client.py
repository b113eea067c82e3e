"""EleutherAI's lm-evaluation-harness as a client of the app's API: its `local-completions` model, with batches of
prompts, runs a multiple-choice (log-likelihood) task and a generate-until task defined in a local task YAML over a
local JSONL file, and scores what lm-eval's own in-process `hf` model scores on the same tiny model.

The generate-until answers are half the model's own greedy continuations (from transformers directly) and half
not, so the score is neither 0 nor 1 and a client/server mismatch in tokens or text would show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from backend.core.registry import Registry
from backend.engines import create_engine
from tests.app_process import openai_api_served
from tests.tiers import full_tier

MODEL = "tiny-chat"
BATCH = 4
QUESTIONS = ["What is the capital of France?", "Which animal jumps over the lazy dog?", "What does the sea do?",
             "Who lived by the river?", "What is a haiku?", "How do networks learn?", "What is the weather?",
             "Which phone has a great camera?", "What did the waiter do?", "Is this product great?"]
CHOICES = [["Paris", "London", "Rome"], ["fox", "cat", "cow"], ["waves", "sings", "sleeps"],
           ["clockmaker", "king", "fisher"], ["poem", "car", "song"], ["weights", "magic", "luck"],
           ["sunny", "snowy", "stormy"], ["new phone", "old radio", "lamp"], ["rude", "kind", "fast"],
           ["yes", "no", "maybe"]]


@pytest.fixture(scope="module")
def folder(tiny_config) -> str:
    return str(next(spec.source for spec in tiny_config.models if spec.id == MODEL))


@pytest.fixture(scope="module")
@full_tier
def app_url(tiny_config) -> Iterator[str]:
    registry = Registry(tiny_config, create_engine)
    with openai_api_served(registry) as url:
        yield url
    registry.close()


def greedy_continuation(folder: str, context: str, max_tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer(context, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0]


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory, folder: str) -> Path:
    root = tmp_path_factory.mktemp("lm-eval-tasks")
    with (root / "mc.jsonl").open("w") as out:
        for question, choices in zip(QUESTIONS, CHOICES):
            out.write(json.dumps({"question": question, "choices": choices, "label": 0}) + "\n")
    with (root / "gen.jsonl").open("w") as out:
        for index, question in enumerate(QUESTIONS):
            answer = greedy_continuation(folder, f"Q: {question}\nA:", 6) if index % 2 == 0 else "not this"
            out.write(json.dumps({"question": question, "answer": answer}) + "\n")
    (root / "wb_mc.yaml").write_text(f"""task: wb_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    (root / "wb_gen.yaml").write_text(f"""task: wb_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'gen.jsonl'}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
""")
    return root


_MANAGERS: dict[Path, Any] = {}


def evaluate(model: str, model_args: dict[str, Any], tasks_dir: Path, tasks: list[str]) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    if tasks_dir not in _MANAGERS:  # indexing lm-eval's own task folders takes seconds: once
        _MANAGERS[tasks_dir] = TaskManager(include_path=str(tasks_dir))
    results = simple_evaluate(model=model, model_args=model_args, tasks=tasks, batch_size=BATCH,
                              task_manager=_MANAGERS[tasks_dir], log_samples=False,
                              bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0)
    return results["results"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("datasets-cache")))
    yield
    patch.undo()


def test_lm_eval_local_completions_scores_like_its_in_process_hf_model(app_url: str, folder: str,
                                                                      tasks_dir: Path, offline: None) -> None:
    tasks = ["wb_mc", "wb_gen"]
    reference = evaluate("hf", {"pretrained": folder, "dtype": "float32", "device": "cpu"}, tasks_dir, tasks)
    # The multiple-choice run finds the server's tokenizer itself (/tokenizer_info, /tokenize: "auto" picks
    # "remote"); the generation run uses the model folder's tokenizer, as with a Hub repo id.
    mc = evaluate("local-completions", {"model": MODEL, "base_url": f"{app_url}/v1/completions",
                                        "tokenizer_backend": "auto", "max_retries": 1}, tasks_dir, ["wb_mc"])
    gen = evaluate("local-completions", {"model": MODEL, "base_url": f"{app_url}/v1/completions",
                                         "tokenizer_backend": "huggingface", "tokenizer": folder,
                                         "max_retries": 1}, tasks_dir, ["wb_gen"])
    assert mc["wb_mc"]["acc,none"] == reference["wb_mc"]["acc,none"]
    assert mc["wb_mc"]["acc_norm,none"] == reference["wb_mc"]["acc_norm,none"]
    assert gen["wb_gen"]["exact_match,none"] == reference["wb_gen"]["exact_match,none"]
    assert 0 < reference["wb_gen"]["exact_match,none"] < 1  # half the answers are the model's own
