"""Memory of the app (RSS before / peak / after) for the largest inputs the default limits allow, and for refused ones.

    python -m bench.limits_memory            # builds the tiny test models in a temp folder, starts app.py

Peak is VmHWM from /proc, reset before each case (writing 5 to /proc/PID/clear_refs). Figures go to
docs/RELIABILITY.md ("Limits").
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_process import AppProcess  # noqa: E402
from tests.tiny_models import build_tiny_models  # noqa: E402

MB = 1024 * 1024


def memory(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    value = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return value["VmRSS"], value["VmHWM"]


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def declared_only(port: int, path: str, declared: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {declared}\r\n\r\n{{".encode())
        return sock.recv(65536).decode("latin-1").split("\r\n")[0]


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    models = build_tiny_models(scratch / "models")
    # The app's uploads go to the scratch folder, removed at the end (a stopped process leaves its uploads behind).
    with AppProcess(models, env={"GRADIO_TEMP_DIR": str(scratch / "uploads")}) as app, \
            httpx.Client(base_url=app.url.rstrip("/"), timeout=300) as http:
        http.post("/v1/chat/completions", json={"model": "tiny-chat", "max_tokens": 1,
                                                "messages": [{"role": "user", "content": "warm up"}]})
        pid = app.popen.pid
        cases = {
            "upload 50 MB file (one 51 MB request, the largest allowed)":
                lambda: http.post("/gradio_api/upload",
                                  files={"files": ("big.csv", b"text\n" + b"a" * (50 * MB - 64))}),
            "/v1 chat body 3.9 MB (largest allowed: 4 MB)":
                lambda: http.post("/v1/chat/completions", json={"model": "tiny-chat", "max_tokens": 1, "messages": [
                    {"role": "user", "content": "word " * int(3.9 * MB / 5)}]}),
            "/v1 body declared 100 MB (refused)": lambda: declared_only(app.port, "/v1/chat/completions", 100 * MB),
            "queue body declared 100 MB (refused)": lambda: declared_only(app.port, "/gradio_api/queue/join", 100 * MB),
        }
        for name, run in cases.items():
            before, _ = memory(pid)
            reset_peak(pid)
            answer = run()
            after, peak = memory(pid)
            status = answer if isinstance(answer, str) else f"{answer.status_code} {answer.text[:160]}"
            print(json.dumps({"case": name, "answer": status, "rss_before_mb": round(before),
                              "peak_mb": round(peak), "rss_after_mb": round(after)}))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
