"""What one Gradio session costs (issue 27 item 5), measured two ways in one run:

    python bench/session_memory.py [--sessions 300] [--out bench/results/session_memory.json]

- in process, side by side: tracemalloc growth per new `SessionState` of the real app with Gradio's own
  `__init__` (every component's config copied) and with ui/server/session_memory.py's lazy one;
- through the real server: RSS of `python app.py` before and after N new sessions (each a POST to
  /gradio_api/run/models with a new session_hash), WORKBENCH_MAX_SESSIONS above N so none is dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def in_process(models_yaml: Path, count: int = 50) -> dict[str, float]:
    from gradio import state_holder

    import ui
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from ui.server import session_memory

    registry = Registry(load_config(models_yaml), create_engine)
    demo = ui.build_app(registry)
    figures = {}
    for name, init in (("gradio_mb", session_memory.original_session_init()), ("lazy_mb", session_memory._lazy_init)):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(count):
            session = state_holder.SessionState.__new__(state_holder.SessionState)
            init(session, demo)
            kept.append(session)
        figures[name] = round((tracemalloc.get_traced_memory()[0] - before) / count / 1e6, 3)
        tracemalloc.stop()
    figures["blocks"] = len(demo.blocks)
    registry.close()
    return figures


def through_the_server(models_yaml: Path, sessions: int) -> dict[str, float]:
    import httpx

    from tests.app_process import AppProcess

    with AppProcess(models_yaml, env={"WORKBENCH_MAX_SESSIONS": str(sessions * 2)}) as app:
        with httpx.Client(base_url=app.url, timeout=60) as client:
            for warm in range(20):  # imports, caches and the first sessions' one-off costs
                client.post("/gradio_api/run/models", json={"data": [], "session_hash": f"warm{warm}"})
            before = app.rss_mb()
            for index in range(sessions):
                answer = client.post("/gradio_api/run/models", json={"data": [], "session_hash": f"s{index}"})
                answer.raise_for_status()
            after = app.rss_mb()
    return {"sessions": sessions, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "per_session_mb": round((after - before) / sessions, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--out", default="bench/results/session_memory.json")
    args = parser.parse_args()
    from tests.tiny_models import build_tiny_models

    models_yaml = Path(build_tiny_models(tempfile.mkdtemp(prefix="session-memory-")))
    result = {"in_process": in_process(models_yaml), "server": through_the_server(models_yaml, args.sessions)}
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
