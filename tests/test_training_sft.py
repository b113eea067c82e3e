"""SFT with LoRA on the tiny chat model, in a training process: eval loss falls, the finished adapter is
registered at once (an `adapter:` entry over its base) and the tuned model gives the trained reply through the
app's chat service; merged into a full safetensors folder it gives the same reply."""

from __future__ import annotations

import json

import pytest

from backend.services import generation as chat_service
from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from backend.core.types import Final, GenerationParams

PROMPT, REPLY = "What is the capital of France?", "The capital of France is Paris."
OFFLINE = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def reply(registry, model_id: str) -> str:
    events = chat_service.stream_chat(registry, model_id, PROMPT,
                                      params=GenerationParams(max_new_tokens=10, temperature=0))
    return [event for event in events if isinstance(event, Final)][0].text


@pytest.mark.full
def test_sft_lora_learns_a_reply_and_chats_with_it(registry, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": PROMPT},
                                                     {"role": "assistant", "content": REPLY}]}) + "\n"
                            for _ in range(20)))
    training = TrainingService(registry, root=tmp_path / "runs", env=OFFLINE)
    try:
        base, spec = training.resolve_base("tiny-chat", "sft")
        config = parse_train_config({
            "task": "sft", "base": base, "base_id": spec.id, "data": str(data), "messages_column": "messages",
            "method": "lora", "lora_r": 16, "lora_alpha": 32, "lora_modules_to_save": ["lm_head"],
            "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            "epochs": 8, "learning_rate": 0.01, "batch_size": 4, "max_length": 48, "eval_steps": 10,
            "register_as": "tiny-chat-paris"})
        run_dir = training.start(config)
        metrics = training.runs.wait(run_dir, timeout=600)
    finally:
        training.close()
    assert metrics["status"] == "completed", metrics.get("reason")
    evaluations = [row["eval_loss"] for row in metrics["history"] if "eval_loss" in row]
    assert evaluations[0] > 5 and metrics["final"]["loss"] < 0.2 * evaluations[0]
    assert metrics["final"]["perplexity"] < 2.0 and "eval_perplexity" in metrics["history"][0]
    assert metrics["model_kind"] == "adapter" and (run_dir / "model" / "adapter_config.json").is_file()
    tuned = registry.spec("tiny-chat-paris")
    assert tuned.adapter and tuned.source == spec.source and "chat" in tuned.tasks

    assert not reply(registry, "tiny-chat").startswith(REPLY)
    assert reply(registry, "tiny-chat-paris").startswith(REPLY)

    # Merged in its own process and registered, as the Train tab's Publish panel does: a full model, no adapter.
    merged, merged_id = TrainingService(registry, root=tmp_path / "runs").merge_and_register(run_dir)
    assert merged == run_dir / "merged" and (merged / "model.safetensors").is_file()
    assert merged_id == "tiny-chat-paris-merged"
    full = registry.spec(merged_id)
    assert full.source == str(merged.resolve()) and not full.adapter and full.chat_template == spec.chat_template
    assert reply(registry, merged_id).startswith(REPLY)
