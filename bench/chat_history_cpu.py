"""CPU-seconds the app spends on a long chat history (issue 15 item 3: fitting it to the context was quadratic).

    python -m bench.chat_history_cpu       # builds the tiny test models in a temp folder, starts app.py

Each case is one `/v1/chat/completions` request (max_tokens 1) to tiny-chat (a 512-token context, so nearly the
whole history is dropped); the app process's CPU time (user + system, from /proc) is read before and after, with
its RSS before / peak / after. The largest history the limits allow is 1,000 messages (MAX_HISTORY_MESSAGES)
under the 4 MB body limit (WORKBENCH_MAX_BODY_MB). Figures go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.limits_memory import memory, reset_peak  # noqa: E402
from tests.app_process import AppProcess  # noqa: E402
from tests.tiny_models import build_tiny_models  # noqa: E402

WORDS = "the printing press spread news and ideas across europe within decades".split()


def history(messages: int, words: int, seed: int = 0) -> list[dict[str, str]]:
    """`messages` alternating user / assistant messages of about `words` words each, ending with a user one."""
    rng = random.Random(seed)
    chat = [{"role": "user" if index % 2 == 0 else "assistant",
             "content": " ".join(rng.choice(WORDS) for _ in range(words))} for index in range(messages - 1)]
    return chat + [{"role": "user", "content": "and so?"}]


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-history-"))
    models = build_tiny_models(scratch / "models")
    cases = {"400 turns of ~15 words (the issue's slowest case: ~85 s before)": history(400, 15),
             "1,000 messages of ~15 words": history(1_000, 15),
             "1,000 messages of ~650 words, 3.9 MB (the largest history allowed)": history(1_000, 650)}
    with AppProcess(models, env={"GRADIO_TEMP_DIR": str(scratch / "uploads")}) as app, \
            httpx.Client(base_url=app.url.rstrip("/"), timeout=600) as http:
        deadline = time.monotonic() + 120  # the port answers before the /v1 routes are mounted
        while http.get("/v1/models").status_code != 200:
            assert time.monotonic() < deadline, "the app's /v1 routes did not come up"
            time.sleep(0.5)
        warm = http.post("/v1/chat/completions", json={"model": "tiny-chat", "max_tokens": 1,
                                                       "messages": [{"role": "user", "content": "warm up"}]})
        assert warm.status_code == 200, warm.text[:300]
        pid = app.popen.pid
        for name, messages in cases.items():
            body = {"model": "tiny-chat", "max_tokens": 1, "messages": messages}
            size_mb = len(json.dumps(body)) / 2**20
            before, _ = memory(pid)
            reset_peak(pid)
            cpu, wall = app.cpu_seconds(), time.perf_counter()
            answer = http.post("/v1/chat/completions", json=body)
            cpu, wall = app.cpu_seconds() - cpu, time.perf_counter() - wall
            after, peak = memory(pid)
            usage = answer.json().get("usage", {}) if answer.status_code == 200 else answer.text[:160]
            print(json.dumps({"case": name, "body_mb": round(size_mb, 2), "status": answer.status_code,
                              "usage": usage, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                              "rss_before_mb": round(before), "peak_mb": round(peak), "rss_after_mb": round(after)}))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
