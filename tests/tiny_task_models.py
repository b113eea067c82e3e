"""Tiny real models for the pipeline tasks (backend/tasks/), built offline like the others in tiny_models.py:

- `tiny-ner`: BertForTokenClassification with BIO labels for PER / LOC / ORG.
- `tiny-qa`: BertForQuestionAnswering.
- `tiny-mlm`: BertForMaskedLM (mask token `[MASK]`).
- `tiny-seq2seq`: T5ForConditionalGeneration with a byte-level BPE tokenizer and T5's `task_specific_params`
  (a summarization prefix, English → German and English → French translation prefixes).
- `tiny-embed`: BertModel saved as a sentence-transformers folder (modules.json, 1_Pooling/config.json with CLS
  pooling, 2_Normalize), so the pooling is read from the folder, not assumed.

Random weights: outputs are arbitrary but deterministic and go through the real `from_pretrained` path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tiny_models import MAX_CONTEXT, make_chat_tokenizer, make_classifier_tokenizer, save_model_and_tokenizer

NER_ID = "tiny-ner"
QA_ID = "tiny-qa"
MLM_ID = "tiny-mlm"
SEQ2SEQ_ID = "tiny-seq2seq"
EMBED_ID = "tiny-embed"
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG", 6: "I-ORG"}
TRANSLATION_PAIRS = {("en", "de"): "translate English to German: ", ("en", "fr"): "translate English to French: "}
SUMMARY_PREFIX = "summarize: "


def _bert_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=MAX_CONTEXT, type_vocab_size=2,
                      initializer_range=0.3, pad_token_id=tokenizer.pad_token_id, **extra)


def build_task_models(out: Path) -> None:
    """Builds the five models into out/<id>."""
    import torch
    from transformers import BertForMaskedLM, BertForQuestionAnswering, BertForTokenClassification, BertModel

    tokenizer = make_classifier_tokenizer()
    torch.manual_seed(4567)
    config = _bert_config(tokenizer, id2label=dict(NER_LABELS), label2id={v: k for k, v in NER_LABELS.items()})
    save_model_and_tokenizer(BertForTokenClassification(config).eval(), tokenizer, out / NER_ID)
    torch.manual_seed(5678)
    save_model_and_tokenizer(BertForQuestionAnswering(_bert_config(tokenizer)).eval(), tokenizer, out / QA_ID)
    torch.manual_seed(6789)
    save_model_and_tokenizer(BertForMaskedLM(_bert_config(tokenizer)).eval(), tokenizer, out / MLM_ID)
    torch.manual_seed(7890)
    save_model_and_tokenizer(BertModel(_bert_config(tokenizer)).eval(), tokenizer,
                             out / EMBED_ID)
    _write_sentence_transformers_files(out / EMBED_ID, dimension=32)
    build_seq2seq(out / SEQ2SEQ_ID, seed=8901)


def _write_sentence_transformers_files(folder: Path, dimension: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dimension, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (folder / "2_Normalize").mkdir()
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))


def build_seq2seq(model_dir: Path, seed: int) -> None:
    """Random-weight T5 with a byte-level BPE tokenizer that appends </s>, and T5's task prefixes."""
    import torch
    from tokenizers import processors
    from transformers import GenerationConfig, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    chat = make_chat_tokenizer()
    backend = chat.backend_tokenizer
    eos_id = chat.convert_tokens_to_ids(chat.eos_token)
    backend.post_processor = processors.TemplateProcessing(single="$A <|eos|>", pair="$A <|eos|> $B <|eos|>",
                                                           special_tokens=[("<|eos|>", eos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=chat.eos_token, pad_token=chat.pad_token,
                                        model_max_length=MAX_CONTEXT, clean_up_tokenization_spaces=False)
    pad_id = tokenizer.pad_token_id
    task_params = {"summarization": {"prefix": SUMMARY_PREFIX}}
    for (source, target), prefix in TRANSLATION_PAIRS.items():
        task_params[f"translation_{source}_to_{target}"] = {"prefix": prefix}
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=pad_id, eos_token_id=eos_id, decoder_start_token_id=pad_id,
                      task_specific_params=task_params, initializer_factor=1.0)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # never pick eos or pad greedily, so tests can count generated tokens exactly
        model.lm_head.weight[[eos_id, pad_id]] = 0.0
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, decoder_start_token_id=pad_id)
    save_model_and_tokenizer(model, tokenizer, model_dir)


def task_model_entries(out: Path) -> list[dict[str, Any]]:
    """models.yaml entries for the five models."""
    def entry(model_id: str, name: str, tasks: list[str], **extra: Any) -> dict[str, Any]:
        return {"id": model_id, "name": name, "description": f"{name}; random weights, for tests.", "tasks": tasks,
                "backend": "transformers", "source": str(out / model_id), "dtype": "float32", "device": "cpu", **extra}

    return [
        entry(NER_ID, "Tiny NER tagger", ["ner"], examples=["Dr. Smith met Anna in Paris."]),
        entry(QA_ID, "Tiny extractive QA", ["question_answering"]),
        entry(MLM_ID, "Tiny masked LM", ["fill_mask"], examples=["The cat sat on the [MASK]."]),
        entry(SEQ2SEQ_ID, "Tiny T5 summarizer / translator", ["summarize", "translate"],
              generation={"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
                          "repetition_penalty": 1.0}),
        entry(EMBED_ID, "Tiny sentence embedder", ["embed"]),
    ]
