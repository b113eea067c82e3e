"""WordNet read offline from Debian's `wordnet-base` files, through NLTK's own reader: never a download.

Debian ships the WordNet 3.0 database (data.*, index.*, *.exc) in /usr/share/wordnet but not the small
`lexnames` table that NLTK's `WordNetCorpusReader` also opens. That table is fixed for WordNet 3.0 (it is
printed in the lexnames(5WN) manual page), so a reader folder is assembled once in the temp folder: copies of
the Debian files (NLTK refuses symbolic and hard links there) plus the table. NLTK also refuses corpus folders
outside `nltk.data.path`, so the folder is added to it: that only authorises reading it; nothing is fetched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

WORDNET_DIR = Path(os.environ.get("WORKBENCH_WORDNET_DIR", "/usr/share/wordnet"))
_FILES = ("adj.exc", "adv.exc", "noun.exc", "verb.exc", "data.adj", "data.adv", "data.noun", "data.verb",
          "index.adj", "index.adv", "index.noun", "index.verb", "cntlist.rev")
# lexnames(5WN): file number, lexicographer file name, syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
_LEXNAMES = ["adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
             "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1", "noun.communication 1",
             "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1", "noun.location 1", "noun.motive 1",
             "noun.object 1", "noun.person 1", "noun.phenomenon 1", "noun.plant 1", "noun.possession 1",
             "noun.process 1", "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1",
             "noun.substance 1", "noun.time 1", "verb.body 2", "verb.change 2", "verb.cognition 2",
             "verb.communication 2", "verb.competition 2", "verb.consumption 2", "verb.contact 2",
             "verb.creation 2", "verb.emotion 2", "verb.motion 2", "verb.perception 2", "verb.possession 2",
             "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3"]
_lock = threading.Lock()


@lru_cache(maxsize=1)
def wordnet() -> WordNetCorpusReader:
    """NLTK's WordNetCorpusReader over the local WordNet 3.0 files (a clear error when they are missing)."""
    missing = [name for name in _FILES if not (WORDNET_DIR / name).is_file()]
    if missing:
        raise InvalidInputError(
            f"augment: WordNet is not installed at {WORDNET_DIR} (missing {', '.join(missing[:3])}); install "
            "Debian's 'wordnet-base' package (apt-get install wordnet-base) or set WORKBENCH_WORDNET_DIR"
        , field="augment")
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class LocalWordNet(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            # The reader maps synsets to NLTK's downloadable 'wordnet' corpus for the multilingual data; this IS
            # WordNet 3.0 and English only, so there is nothing to map (and nothing may be downloaded).
            return None

    with _lock:
        folder = _reader_folder()
        if str(folder) not in nltk.data.path:
            nltk.data.path.append(str(folder))
        import warnings

        with warnings.catch_warnings():  # "multilingual functions are not available": English only, as intended
            warnings.simplefilter("ignore")
            return LocalWordNet(str(folder), None)


def synonyms(word: str) -> list[str]:
    """WordNet synonyms of `word` (every sense), without the word itself, multi-word lemmas with spaces."""
    seen: dict[str, None] = {}
    for synset in wordnet().synsets(word):
        for lemma in synset.lemmas():
            name = lemma.name().replace("_", " ")
            if name.lower() != word.lower():
                seen.setdefault(name, None)
    return list(seen)


def _reader_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"workbench-wordnet-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder.mkdir(exist_ok=True)
    for name in _FILES:
        link = folder / name
        if not link.exists():
            # NLTK refuses symbolic links out of the reader's folder and hard-linked files: a copy (28 MB, once).
            partial = folder / f".{name}.{os.getpid()}"
            shutil.copyfile(WORDNET_DIR / name, partial)
            os.replace(partial, link)
    lexnames = folder / "lexnames"
    if not lexnames.exists():
        text = "".join(f"{number:02d}\t{name.split()[0]}\t{name.split()[1]}\n"
                       for number, name in enumerate(_LEXNAMES))
        partial = folder / f".lexnames.{os.getpid()}"
        partial.write_text(text)
        os.replace(partial, lexnames)
    return folder
