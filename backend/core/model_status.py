"""What the Models tab and /v1/models say about one registry entry: its state, where its weights are, its facts.

Read from a registry slot under the registry's lock (backend/core/registry.py); nothing here loads or probes.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from backend.core.config import ModelSpec, checkpoint_file
from backend.core.hub import download_hint
from backend.core.types import ModelStatus, WeightsAvailability
from backend.engines.base import CountsGeneratedTokens, Engine
from backend.guard.security import redact


def slot_status(slot: Any) -> ModelStatus:
    """The status of a registry slot (its spec, engine, facts, load state, leases)."""
    engine = slot.engine
    facts = dict(slot.described)
    if engine is not None:
        facts.update(_live_counters(engine))
    state: Literal["unloaded", "loading", "loaded", "failed"]
    if engine is not None:
        state = "loaded"
    elif slot.loading is not None:
        state = "loading"
    elif slot.last_error:
        state = "failed"
    else:
        state = "unloaded"
    weights, detail = weights_availability(slot.spec)
    return ModelStatus(
        id=slot.spec.id,
        name=slot.spec.display_name,
        tasks=slot.spec.tasks,
        backend=slot.spec.backend,
        state=state,
        weights=weights,
        # A remote server's error or probe text may quote the API key it was sent.
        weights_detail=redact(detail),
        device=facts.get("device"),
        dtype=facts.get("dtype"),
        parameters=facts.get("parameters"),
        memory_bytes=facts.get("memory_bytes"),
        load_time_s=facts.get("load_time_s"),
        last_error=redact(slot.last_error) if slot.last_error else None,
        active_requests=slot.leases,
        generated_tokens_total=facts.get("generated_tokens_total", 0),
        max_context=facts.get("max_context") or slot.spec.max_context,
        notes=tuple(facts.get("notes", ())),
        owner=slot.spec.owner,
        shared=slot.spec.shared,
    )


def weights_availability(spec: ModelSpec) -> tuple[WeightsAvailability, str]:
    """Whether the weights can be loaded here, without touching the network."""
    if spec.backend == "openai":
        return "remote", f"served by {spec.base_url} as '{spec.remote_model}'"
    if spec.backend != "transformers":  # another backend of the engine table: no weights here either
        return "remote", f"served by backend {spec.backend}"
    local = spec.local_path()
    if local is not None:
        if (local / "config.json").is_file():
            return "local", f"local folder {local}"
        return "unavailable", f"local folder {local} does not exist or has no config.json; fix 'source'"
    if checkpoint_file(spec, "config.json") is not None:
        return "cached", f"{spec.source} is in the Hugging Face cache"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "unavailable", (
            f"{spec.source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {download_hint(spec.source)}"
        )
    return "download", f"{spec.source} will be downloaded from the Hub on first use (needs internet)"


def _live_counters(engine: Engine) -> dict:
    if isinstance(engine, CountsGeneratedTokens):
        return {"generated_tokens_total": engine.generated_tokens_total}
    return {}
