"""The engine seam stays a seam: callers use typed protocols, never reach for attributes an engine may lack,
and the engine modules stay small (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_nothing_in_the_backend_reaches_for_engine_attributes() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}" for path in (ROOT / "backend").rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1) if "getattr(engine" in line]
    assert found == []


def test_the_local_engine_s_partners_depend_on_the_runtime_not_the_engine() -> None:
    """Batcher, evaluation inference and label scoring name no engine class and read no engine internals."""
    for name in ("backend/engines/batching.py", "backend/evaluation/inference.py",
                 "backend/engines/label_scoring.py"):
        text = (ROOT / name).read_text()
        assert "LocalGenerativeEngine" not in text, name
        assert not re.search(r"engine\.(model|tokenizer|batcher|generate_lock|resident_key|decoding)\b", text), name


def test_engine_and_stream_modules_stay_small() -> None:
    modules = [*(ROOT / "backend" / "engines").glob("*.py"), ROOT / "backend" / "core" / "streams.py",
               ROOT / "backend" / "services" / "generation.py", ROOT / "backend" / "evaluation" / "inference.py"]
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in modules}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}
