"""Which checkpoints can serve each pipeline task, and which tasks may share one registry entry.

Only the standard library here: backend/config.py validates models.yaml with it, before torch is imported.
"""

from __future__ import annotations

from typing import Optional

from backend.error_codes import refuse
from backend.types import InvalidInputError

PIPELINE_TASKS = ("ner", "question_answering", "fill_mask", "summarize", "translate", "embed")
# Summaries and translations are both text-to-text generation with one model: they may share an entry. Every
# other pipeline task needs its own head, hence its own entry.
SHAREABLE = frozenset({"summarize", "translate"})
# Encoder tasks whose forward pass can be exported to ONNX (`runtime: onnx`).
ONNX_TASKS = ("classify", "zero_shot", "ner", "question_answering", "embed")

# Architecture class-name suffixes (config.json `architectures`) per task; transformers names heads this way.
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "ner": ("ForTokenClassification",),
    "question_answering": ("ForQuestionAnswering",),
    "fill_mask": ("ForMaskedLM",),
    "summarize": ("ForConditionalGeneration", "ForCausalLM", "LMHeadModel"),
    "translate": ("ForConditionalGeneration", "ForCausalLM", "LMHeadModel"),
}
# Decoder-only and text-to-text classes: not encoders, so `embed` refuses them.
_NOT_ENCODERS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
# Any encoder embeds: a bare model (BertModel) or one with a head, whose base AutoModel loads.
_ENCODERS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def serves(task: str, architecture: str) -> bool:
    """Whether a checkpoint of class `architecture` can do the pipeline task `task`."""
    if task == "embed":
        return architecture.endswith(_ENCODERS) and not architecture.endswith(_NOT_ENCODERS)
    return architecture.endswith(ARCHITECTURES[task])


def needs(task: str) -> str:
    """What `task` needs, in words, for error messages."""
    if task == "embed":
        return "an encoder (*Model, *ForMaskedLM, ...; not a decoder-only or text-to-text model)"
    return "a model of type *" + " / *".join(ARCHITECTURES[task])


def combination_error(tasks: tuple[str, ...]) -> Optional[str]:
    """Why these tasks cannot share one entry, or None when they can."""
    pipeline = set(tasks) & set(PIPELINE_TASKS)
    if not pipeline:
        return None
    others = set(tasks) - pipeline
    if others or (len(pipeline) > 1 and not pipeline <= SHAREABLE):
        return (f"'{sorted(pipeline)[0]}' needs its own entry (only summarize and translate may share one): each "
                "task uses a different model head; add a second entry with the same source")
    return None


def translation_pairs(task_specific_params: Optional[dict]) -> Optional[list[tuple[str, str]]]:
    """The (source, target) pairs a checkpoint declares in config.json (`translation_en_to_de`: T5 and the like);
    None when it declares none (causal LMs and single-pair models translate whatever they are asked to)."""
    found = []
    for key in task_specific_params or {}:
        if key.startswith("translation_") and "_to_" in key:
            source, target = key[len("translation_"):].split("_to_", 1)
            found.append((source, target))
    return found or None


def pair_error(pairs: Optional[list[tuple[str, str]]], source: str, target: str) -> Optional[InvalidInputError]:
    """The error to raise when (source, target) cannot be translated with a model declaring `pairs`, or None."""
    if pairs is None or (source, target) in pairs:
        return None
    have = ", ".join(f"{s} → {t}" for s, t in pairs)
    return refuse("language_pair", "target_language", source=source or "?", target=target or "?", have=have)
