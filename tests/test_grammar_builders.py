"""The grammar builders (backend/api/grammar.py) never outlive the server that started them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

SERVER = f"""
import asyncio, sys, time
sys.path.insert(0, {str(ROOT)!r})
from backend.api import grammar
asyncio.run(grammar.schema_grammar({{"type": "object", "properties": {{"name": {{"type": "string"}}}}}}))
print("built", flush=True)
time.sleep(600)
"""


def test_grammar_builders_end_when_their_server_is_killed() -> None:
    """A server stopped by a signal runs no atexit: its idle builders must still end (they watch their parent)."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "built"
        builders = [child for child in psutil.Process(server.pid).children(recursive=True)
                    if "spawn_main" in " ".join(child.cmdline())]
        assert builders, "the build ran in no worker process"
    finally:
        server.kill()  # SIGKILL: no atexit, no shutdown of the pool
        server.wait()
    _, alive = psutil.wait_procs(builders, timeout=15)
    assert not alive, f"builders outlived their server: {[process.pid for process in alive]}"
