"""Whether the Hugging Face Hub can be reached: asked once with a short timeout, and remembered for a while.

Why: with the Hub unreachable, huggingface_hub retries for about 50 s before every failing download, and
nothing remembers the failure, so each request hung that long. One short probe answers instead; its answer is
kept for REMEMBER_S, so later loads fail at once (or load cached weights without asking the Hub), and the app
says at start-up that the Hub cannot be reached. HF_HUB_OFFLINE=1 means "do not ask" and is never probed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

import httpx

PROBE_TIMEOUT_S = float(os.environ.get("WORKBENCH_HUB_TIMEOUT_S", "3"))
REMEMBER_S = float(os.environ.get("WORKBENCH_HUB_REMEMBER_S", "300"))
OFFLINE_HELP = "README.md, section 'Run it offline, on tiny local models'"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_by_choice() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def probe(url: str, timeout_s: float) -> tuple[bool, str]:
    """(reachable, why not): any HTTP answer at all means reachable."""
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            client.head(url)
        return True, ""
    except httpx.TimeoutException:
        return False, f"no answer from {url} within {timeout_s:g} s"
    except httpx.HTTPError as error:
        return False, f"cannot connect to {url} ({type(error).__name__})"


class HubCheck:
    """The remembered answer to "can the Hub be reached?" (thread-safe; one probe at a time)."""

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S, remember_s: float = REMEMBER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.remember_s = remember_s
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: Optional[tuple[bool, str]] = None
        self._asked_at = 0.0
        self.probes = 0  # how many times the Hub was actually asked

    def reachable(self) -> tuple[bool, str]:
        if offline_by_choice():
            return False, "HF_HUB_OFFLINE is set"
        with self._lock:
            if self._answer is None or self._clock() - self._asked_at >= self.remember_s:
                self.probes += 1
                self._answer = probe(hub_endpoint(), self.timeout_s)
                self._asked_at = self._clock()
            return self._answer


HUB = HubCheck()  # the process's


def download_hint(source: Optional[str]) -> str:
    """What to do about weights that are not on this machine."""
    return (f"download them on a connected machine (`hf download {source}`, then copy the Hugging Face cache "
            f"folder over) or point 'source' at a local folder; working without the Hub: {OFFLINE_HELP}")
