"""Builds tiny but real Hugging Face models for tests and smoke runs, fully offline.

Why: these machines (and CI) cannot reach the Hugging Face Hub, yet the app must be exercised through the same
`from_pretrained` code path users hit. So we build, in a few seconds on CPU, small models with random weights
and tokenizers trained locally on a corpus embedded below, save them with `save_pretrained`, and write a
`models.yaml` that points the app at them:

- `tiny-chat`: LlamaForCausalLM + byte-level BPE tokenizer with a chat template.
- `tiny-classifier`: BertForSequenceClassification (negative / positive).
- `tiny-nli`: BertForSequenceClassification (entailment / neutral / contradiction), usable by the
  zero-shot-classification pipeline.

Usage: `python tests/tiny_models.py OUT_DIR`, or `build_tiny_models(out_dir)` from conftest.
Builds are deterministic (fixed seeds) and idempotent (a complete build is detected and reused).
torch / transformers are imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Bump whenever what gets built changes, so stale builds in reused directories are rebuilt.
BUILD_VERSION = 2  # 2: the pipeline-task models (tests/tiny_task_models.py)
COMPLETE_MARKER = ".tiny_models_complete.json"
LOCK_FILE = ".tiny_models.lock"
MODELS_YAML = "models.yaml"

CHAT_ID = "tiny-chat"
CLASSIFIER_ID = "tiny-classifier"
NLI_ID = "tiny-nli"

MAX_CONTEXT = 512
CHAT_VOCAB_SIZE = 1000
CLASSIFIER_VOCAB_SIZE = 1000

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_SPECIAL_TOKENS = [BOS, EOS, PAD, *ROLE_TOKENS]

# Accepts content as a plain string or as a list of {"type": "text", "text": ...} parts (Gradio 6 style).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
SENTIMENT_LABELS = {0: "negative", 1: "positive"}

# Small, varied corpus: prose, dialogue, reviews, code, numbers, punctuation and some non-ASCII text,
# so the trained vocabularies cover what tests typically send.
CORPUS = [
    "Hello! Who are you? I am a small language model built for testing.",
    "Write a haiku about the sea: waves fold into foam, salt wind hums a quiet song, the tide keeps its time.",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a village by the river, there lived an old clockmaker.",
    "What is the capital of France? The capital of France is Paris.",
    "Please summarize the following text in two sentences.",
    "I loved this film. The acting was wonderful and the story was moving.",
    "Terrible service. The food was cold and the waiter was rude.",
    "This product is great, I would buy it again!",
    "Worst purchase ever; it broke after two days.",
    "The weather today is sunny with a light breeze, around 21 degrees.",
    "Can you explain how neural networks learn? They adjust weights to reduce a loss.",
    "A person is playing a guitar on the stage. Someone is making music.",
    "The man is sleeping. The man is running a marathon.",
    "Sports, politics, technology, business, health and science are news topics.",
    "The new phone has a great camera and a long battery life.",
    "def add(a: int, b: int) -> int:\n    return a + b\n",
    "for i in range(10):\n    print(f\"value = {i * 2}\")\n",
    "import numpy as np\nx = np.array([1, 2, 3])\nprint(x.mean())",
    "if (count > 0 && ready) { return items[0]; } else { return null; }",
    "SELECT name, email FROM users WHERE id = 42 ORDER BY name;",
    '{"key": "value", "list": [1, 2, 3], "ok": true}',
    "Prices rose 3.5% in March; analysts expect $1,200 by Q4 (maybe).",
    "Dr. Smith's e-mail is smith@example.com -- reply by 5:30 p.m., okay?",
    "Café, naïve, résumé, jalapeño and über are borrowed words.",
    "Grüße aus München! ¿Cómo estás? Très bien, merci.",
    "Emoji test: 🙂 🚀 ✨ and symbols like © ® ™ € £ ¥.",
    "日本語のテキストと中文文本 are also bytes to a byte-level tokenizer.",
    "User: tell me a joke. Assistant: Why did the scarecrow win an award? He was outstanding in his field.",
    "The assistant answers questions politely, briefly and accurately.",
    "Translate to German: good morning. Guten Morgen.",
    "Step 1: open the file. Step 2: read each line. Step 3: close the file.",
    "She said, \"It's fine,\" but her eyes told a different story...",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 -7 +12",
    "Mountains, rivers, forests and deserts cover the surface of the Earth.",
    "The meeting was moved to Tuesday at 10 a.m. in room B-204.",
    "Learning rate, batch size and number of epochs are hyperparameters.",
    "I am not sure; it depends on the context and the question.",
    "The cat sat on the mat, and the dog slept by the warm fire.",
    "Thank you very much! You're welcome. Have a nice day.",
]


# ------------------------------------------------------------------------------------------ public API


def build_tiny_models(out_dir: str | Path) -> Path:
    """Builds the tiny models into out_dir (unless a complete build is already there); returns models.yaml."""
    out = Path(out_dir).resolve()
    yaml_path = out / MODELS_YAML
    if is_complete_build(out):
        return yaml_path

    from filelock import FileLock  # installed with transformers / huggingface_hub

    out.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may share out_dir: one builds, the others wait and then reuse its build.
    with FileLock(str(out / LOCK_FILE)):
        if is_complete_build(out):
            return yaml_path
        # Drop the marker first: a build interrupted from here on must not be taken for a complete one.
        (out / COMPLETE_MARKER).unlink(missing_ok=True)
        build_chat_model(out / CHAT_ID, seed=1234)
        build_classifier(out / CLASSIFIER_ID, SENTIMENT_LABELS, seed=2345)
        build_classifier(out / NLI_ID, NLI_LABELS, seed=3456)
        from tests.tiny_task_models import build_task_models

        build_task_models(out)
        write_models_yaml(out, yaml_path)
        (out / COMPLETE_MARKER).write_text(json.dumps(expected_marker(out)))
    return yaml_path


def is_complete_build(out: Path) -> bool:
    """True when out holds a finished build of this BUILD_VERSION made for this very path (sources are absolute)."""
    marker = out / COMPLETE_MARKER
    if not marker.is_file() or not (out / MODELS_YAML).is_file():
        return False
    try:
        return json.loads(marker.read_text()) == expected_marker(out)
    except ValueError:
        return False


def expected_marker(out: Path) -> dict[str, Any]:
    return {"build_version": BUILD_VERSION, "out_dir": str(out)}


# ----------------------------------------------------------------------------------------- chat model


def build_chat_model(model_dir: Path, seed: int) -> None:
    """Random-weight LlamaForCausalLM plus a byte-level BPE tokenizer with a chat template."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = make_chat_tokenizer()
    special_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in CHAT_SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_CONTEXT,
        tie_word_embeddings=False,
        bos_token_id=special_ids[BOS],
        eos_token_id=special_ids[EOS],
        pad_token_id=special_ids[PAD],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    silence_special_token_logits(model, list(special_ids.values()))
    model.generation_config = GenerationConfig(
        bos_token_id=special_ids[BOS], eos_token_id=special_ids[EOS], pad_token_id=special_ids[PAD]
    )
    save_model_and_tokenizer(model, tokenizer, model_dir)


def silence_special_token_logits(model: Any, token_ids: list[int]) -> None:
    """Zeroes the lm_head rows of special tokens so their logits are exactly 0.

    With random weights some ordinary token always scores above 0, so greedy decoding never picks eos (tests
    count generated tokens exactly) nor pad / role markers (which would decode to empty text).
    """
    import torch

    with torch.no_grad():
        model.lm_head.weight[token_ids] = 0.0


def make_chat_tokenizer() -> Any:
    """Byte-level BPE trained on CORPUS: every UTF-8 string (accents, emoji) encodes and decodes losslessly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=CHAT_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=CHAT_SPECIAL_TOKENS,
        # All 256 byte symbols, so no input byte can ever be unknown.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    # No post-processor adding bos: decode(encode(text)) must give text back; the chat template adds bos.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_CONTEXT,
        clean_up_tokenization_spaces=False,
    )


# ---------------------------------------------------------------------------------------- classifiers


def build_classifier(model_dir: Path, id2label: dict[int, str], seed: int) -> None:
    """Random-weight BertForSequenceClassification with the given labels and a locally trained tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = make_classifier_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_CONTEXT,
        type_vocab_size=2,  # sentence pairs (premise, hypothesis) for zero-shot classification
        # At BERT's default 0.02 every input gets the same scores to 3 decimals; 0.3 makes scores depend
        # visibly on the text (so tests and demos can tell inputs apart) without saturating at 0 / 1.
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(id2label),
        label2id={label: index for index, label in id2label.items()},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    save_model_and_tokenizer(model, tokenizer, model_dir)


def make_classifier_tokenizer() -> Any:
    """BERT-style uncased tokenizer trained on CORPUS, with [CLS] A [SEP] (B [SEP]) framing.

    The subword model is BPE over Metaspace ("▁word") pieces rather than WordPiece: WordPieceTrainer (and any
    BpeTrainer with continuing_subword_prefix="##") gives a different vocabulary on each run, because it numbers
    the "##" tokens in hash-map order (huggingface/tokenizers#1794), which would break deterministic builds.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    # "first": only word starts after a space get "▁", so "film, it's" decodes back without extra spaces.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Punctuation(), pre_tokenizers.Metaspace(prepend_scheme="first")]
    )
    backend.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=CLASSIFIER_VOCAB_SIZE, min_frequency=1, special_tokens=specials, show_progress=False
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        # BERT needs segment ids for sentence pairs; the generic tokenizer class returns none by default.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        model_max_length=MAX_CONTEXT,
        clean_up_tokenization_spaces=False,
    )


# ---------------------------------------------------------------------------------------------- saving


def save_model_and_tokenizer(model: Any, tokenizer: Any, model_dir: Path) -> None:
    """Saves into a fresh directory, so files left over from an older build cannot leak in."""
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def write_models_yaml(out: Path, yaml_path: Path) -> None:
    import yaml

    config = {
        "settings": {"max_loaded_models": 3},
        "models": [
            {
                "id": CHAT_ID,
                "name": "Tiny chat (random weights)",
                "description": "Two-layer Llama with random weights and a locally trained BPE tokenizer; for tests.",
                "tasks": ["chat", "generate"],
                "backend": "transformers",
                "source": str(out / CHAT_ID),
                "dtype": "float32",
                "device": "cpu",
                "max_context": MAX_CONTEXT,
                "generation": {
                    "max_new_tokens": 32,
                    "temperature": 0.7,
                    "top_p": 0.95,
                    "top_k": 50,
                    "repetition_penalty": 1.0,
                },
                "examples": ["Hello! Who are you?", "Write a haiku about the sea."],
            },
            {
                "id": CLASSIFIER_ID,
                "name": "Tiny sentiment classifier (random weights)",
                "description": "Two-layer BERT with random weights, labels negative/positive; for tests.",
                "tasks": ["classify"],
                "backend": "transformers",
                "source": str(out / CLASSIFIER_ID),
                "dtype": "float32",
                "device": "cpu",
                "examples": ["I loved this film.", "Terrible service."],
            },
            {
                "id": NLI_ID,
                "name": "Tiny NLI zero-shot classifier (random weights)",
                "description": "Two-layer BERT with random weights, labels entailment/neutral/contradiction; "
                               "for tests.",
                "tasks": ["zero_shot"],
                "backend": "transformers",
                "source": str(out / NLI_ID),
                "dtype": "float32",
                "device": "cpu",
                "examples": [
                    "The new phone has a great camera and a long battery life.",
                    "The team won the championship last night.",
                ],
            },
        ],
    }
    from tests.tiny_task_models import task_model_entries

    config["models"].extend(task_model_entries(out))
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=Path(argv[0]).name, description="Builds the tiny real models (random "
                                     "weights, a locally trained tokenizer, a chat template) and a models.yaml "
                                     "listing them, for running the app offline.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the models and OUT_DIR/models.yaml")
    args = parser.parse_args(argv[1:])  # `--help` prints this and exits; it is never taken for a folder
    # "Writing model shards" progress bars are noise for three tiny files; read when transformers is imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: `tests` importable
    print(build_tiny_models(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


# A chat template that takes tools (Hermes style: the tools as JSON in a system turn, calls written as
# <tool_call>{"name": ..., "arguments": {...}}</tool_call>, results as <tool_response>), for the API's tool
# calling. Used over tiny-chat's weights by `tools_entry`: a registry entry, nothing more to build.
TOOLS_ID = "tiny-tools"
TOOLS_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}<|system|>\nYou may call these tools; to call one answer "
    "<tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}<|end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and message.get('tool_calls') %}<|assistant|>\n"
    "{% for call in message['tool_calls'] %}<tool_call>"
    "{{ {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson }}"
    "</tool_call>{% endfor %}<|end|>\n"
    "{% elif message['role'] == 'tool' %}<|user|>\n<tool_response>{{ message['content'] }}</tool_response><|end|>\n"
    "{% else %}{{ '<|' + message['role'] + '|>\n' }}{{ message['content'] }}<|end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def tools_entry(chat_entry: dict[str, Any]) -> dict[str, Any]:
    """A models.yaml entry: tiny-chat's weights with TOOLS_CHAT_TEMPLATE (its own template takes no tools)."""
    return {**chat_entry, "id": TOOLS_ID, "name": "Tiny chat with tools (random weights)",
            "chat_template": TOOLS_CHAT_TEMPLATE}
