"""Augmentation of text rows: nlpaug's random word deletion / swap, WordNet synonym replacement and insertion
(WordNet read offline, backend/data/wordnet.py), and paraphrases by a chat model of the registry.

Each method makes exactly `copies` new rows per row; the label and every other column are kept, and the new
rows say how they were made in the `augmented` column ("" on original rows). Seeded: nlpaug draws from Python's
and NumPy's global generators, which are seeded before each method, so the same seed gives the same rows.
"""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Optional

from backend.core.json_types import JSONObject
from backend.data.recipe import Recipe

if TYPE_CHECKING:
    import datasets
    import nlpaug.augmenter.word as naw

    from backend.core.registry import Registry

AUGMENTED = "augmented"  # the marker column: the method that made the row, "" for an original row
PARAPHRASE_WORKERS = 8  # concurrent requests, which the engine batches into shared forward passes
PARAPHRASE_MAX_NEW_TOKENS = 128
MAX_AUGMENTED_ROWS = 500_000  # rows x copies x methods: beyond this the output, not the input, is the problem
MAX_PARAPHRASES = 5_000  # model generations in one run; a bigger set is better paraphrased in parts


def word_augmenter(method: str, rate: float) -> Callable[[str], str]:
    """text -> one augmented text, for delete / swap / insert / synonym."""
    import nlpaug.augmenter.word as naw

    least = 1 if rate > 0 else 0
    if method in ("delete", "swap"):
        augmenter = naw.RandomWordAug(action=method, aug_p=rate, aug_min=least, aug_max=None)
    elif method == "synonym":
        augmenter = _offline_synonym_aug(aug_p=rate, aug_min=least)
    elif method == "insert":
        return lambda text: insert_synonyms(text, rate)
    else:
        raise ValueError(f"not a word augmentation: {method}")

    def run(text: str) -> str:
        if not text.strip():
            return text
        result = augmenter.augment(text)
        return result[0] if isinstance(result, list) else result

    return run


def _offline_synonym_aug(aug_p: float, aug_min: int) -> naw.SynonymAug:
    """nlpaug's SynonymAug over the local WordNet. Its own WordNet model calls nltk.download when the NLTK data
    is missing, and its part-of-speech step needs a downloaded tagger; this one reads /usr/share/wordnet and
    considers every part of speech."""
    import nlpaug.augmenter.word as naw
    from nlpaug.model.word_dict import WordDictionary

    from backend.data.wordnet import synonyms

    class LocalWordNet(WordDictionary):
        def __init__(self) -> None:
            super().__init__(cache=True)

        def predict(self, word: str, pos: Optional[str] = None) -> list[str]:
            return synonyms(word)

        @classmethod
        def pos_tag(cls, tokens: list[str]) -> list[tuple[str, str]]:
            return [(token, "") for token in tokens]  # "": no tag, so every sense of the word counts

    class LocalSynonymAug(naw.SynonymAug):
        @classmethod
        def get_model(cls, aug_src: str, lang: str, dict_path: Optional[str], force_reload: bool) -> WordDictionary:
            return LocalWordNet()

    return LocalSynonymAug(aug_src="wordnet", aug_p=aug_p, aug_min=aug_min, aug_max=None)


def insert_synonyms(text: str, rate: float) -> str:
    """Random insertion (EDA): a synonym of a random word, inserted at a random place, for `rate` of the words.
    nlpaug only inserts with embedding or language models, so this one is written out with the same WordNet."""
    from backend.data.wordnet import synonyms

    words = text.split()
    if not words or rate <= 0:
        return text
    for _ in range(max(1, round(rate * len(words)))):
        candidates = [word for word in words if synonyms(word.strip(".,;:!?\"'()").lower())]
        if not candidates:
            break
        word = random.choice(candidates)
        words.insert(random.randrange(len(words) + 1), random.choice(synonyms(word.strip(".,;:!?\"'()").lower())))
    return " ".join(words)


def augment_dataset(dataset: "datasets.Dataset", recipe: Recipe, registry: Optional["Registry"] = None,
                    progress: Callable[[str], None] = lambda message: None
                    ) -> tuple["datasets.Dataset", list[JSONObject]]:
    """The dataset followed by its augmented rows (every method's, in recipe order), and one report per method."""
    import datasets
    import numpy as np

    from backend.core.types import InvalidInputError

    planned = len(dataset) * recipe.copies * len(recipe.augment)
    if planned > MAX_AUGMENTED_ROWS:
        raise InvalidInputError(f"augment: {len(dataset):,} rows x {recipe.copies} copies x {len(recipe.augment)} "
                                f"method(s) would add {planned:,} rows; the limit is {MAX_AUGMENTED_ROWS:,}. Use fewer "
                                "copies or methods", field="augment")
    if "paraphrase" in recipe.augment and len(dataset) * recipe.copies > MAX_PARAPHRASES:
        raise InvalidInputError(f"augment: paraphrasing {len(dataset):,} rows x {recipe.copies} copies means "
                                f"{len(dataset) * recipe.copies:,} generations; the limit is {MAX_PARAPHRASES:,} a run",
        field="augment")
    base = dataset.add_column(AUGMENTED, [""] * len(dataset)) if AUGMENTED not in dataset.column_names else dataset
    texts = [str(value) if value is not None else "" for value in dataset[recipe.text_column]]
    parts = [base]
    reports: list[JSONObject] = []
    for number, method in enumerate(recipe.augment):
        progress(f"augmenting: {method}")
        if method == "paraphrase":
            new_texts = paraphrase(texts, recipe, registry)
        else:
            make = word_augmenter(method, recipe.rate)
            make("warm up")  # first use imports and builds things that draw random numbers: before the seed
            random.seed(recipe.seed + number)
            np.random.seed((recipe.seed + number) % 2**32)
            new_texts = [make(text) for text in texts for _ in range(recipe.copies)]
        rows = base.select([index for index in range(len(base)) for _ in range(recipe.copies)])
        # Only the text and the marker change: the label and every other column come along as they are.
        rows = rows.map(lambda batch, ids, new=new_texts, method=method: {
            recipe.text_column: [new[i] for i in ids], AUGMENTED: [method] * len(ids)},
            with_indices=True, batched=True, load_from_cache_file=False, new_fingerprint=uuid.uuid4().hex)
        parts.append(rows)
        reports.append({"step": f"augment:{method}", "rows_added": len(new_texts), "copies": recipe.copies,
                        "rate": recipe.rate if method != "paraphrase" else None})
    return (datasets.concatenate_datasets(parts) if len(parts) > 1 else base), reports


def paraphrase(texts: list[str], recipe: Recipe, registry: Optional["Registry"]) -> list[str]:
    """`copies` paraphrases of each text by the recipe's chat model, through the service (batched by the engine).
    Each request has its own seed (recipe seed, row, copy), so a rerun asks exactly the same questions."""
    from backend.services import generation as service
    from backend.core.types import Delta

    if registry is None:
        raise ValueError("paraphrasing needs a registry")
    spec = registry.spec(recipe.paraphrase_model or "", "chat")
    base = spec.default_params()

    def one(job: tuple[int, int]) -> str:
        row, copy = job
        params = base.with_overrides(seed=(recipe.seed * 1_000_003 + row * 97 + copy) % 2**31,
                                     max_new_tokens=min(base.max_new_tokens, PARAPHRASE_MAX_NEW_TOKENS))
        prompt = recipe.paraphrase_prompt.replace("{text}", texts[row])
        text = "".join(event.text for event in service.stream_chat(registry, spec.id, prompt, (), params)
                       if isinstance(event, Delta))
        return text.strip() or texts[row]

    jobs = [(row, copy) for row in range(len(texts)) for copy in range(recipe.copies)]
    with ThreadPoolExecutor(max_workers=PARAPHRASE_WORKERS) as pool:
        return list(pool.map(one, jobs))
