"""A tiny reasoning model: real Llama weights, set by hand so that greedy decoding writes a fixed script with a
<think> … </think> block, the way reasoning models (Qwen3, DeepSeek-R1) answer.

Why: tiny-chat's random weights never write `<think>`, and the thinking panel must be shown from what a model
really streams through the app's whole path (engine, registry, Chat tab), not from an injected handler.

How: every layer's output projections are zero, so the last hidden state is the RMS-normalised embedding of
the current token; each lm_head row of a script token is the normalised embedding of the token before it, so
the logit of "the token that follows t" is |norm(E[t])|² while every other logit is a dot product of nearly
orthogonal vectors (or 0). The script's tokens are all distinct (one successor each) and it ends with eos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REASONER_ID = "tiny-reasoner"
REASONER_NAME = "Tiny reasoner (scripted weights)"
THOUGHT = "Plan: greet back."
ANSWER = "Hello there!"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SCRIPT = [THINK_OPEN, THOUGHT, THINK_CLOSE, ANSWER]


def build_reasoner(model_dir: Path) -> Path:
    """Saves the scripted model (tiny-chat's tokenizer plus <think> / </think> tokens) into model_dir."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import BOS, EOS, PAD, make_chat_tokenizer, save_model_and_tokenizer

    tokenizer = make_chat_tokenizer()
    tokenizer.add_tokens([THINK_OPEN, THINK_CLOSE])  # plain added tokens (kept when decoding), as in Qwen3
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (BOS, EOS, PAD)}
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, bos_token_id=ids[BOS], eos_token_id=ids[EOS],
                         pad_token_id=ids[PAD])
    torch.manual_seed(7)
    model = LlamaForCausalLM(config).eval()
    # The generation prompt ends with "<|assistant|>\n": its last token starts the script.
    start = tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"][-1]
    chain = [start] + [token for part in SCRIPT for token in tokenizer(part, add_special_tokens=False)["input_ids"]]
    assert len(set(chain)) == len(chain), "the script repeats a token: it would have two successors"
    chain.append(ids[EOS])
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        embeddings = model.model.embed_tokens.weight
        normed = embeddings / embeddings.pow(2).mean(-1, keepdim=True).add(config.rms_norm_eps).sqrt()
        model.lm_head.weight.zero_()
        for before, after in zip(chain, chain[1:]):
            model.lm_head.weight[after] = normed[before]
    model.generation_config = GenerationConfig(bos_token_id=ids[BOS], eos_token_id=ids[EOS], pad_token_id=ids[PAD])
    save_model_and_tokenizer(model, tokenizer, model_dir)
    return model_dir


def reasoner_entry(model_dir: Path) -> dict[str, Any]:
    """The models.yaml entry for the scripted model."""
    return {"id": REASONER_ID, "name": REASONER_NAME, "tasks": ["chat"], "backend": "transformers",
            "source": str(model_dir), "dtype": "float32", "device": "cpu", "max_context": 512,
            "generation": {"max_new_tokens": 64, "temperature": 0.0}}
