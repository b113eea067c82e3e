"""The Models tab: every registry entry with its state, and explicit Load / Unload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import gradio as gr

from backend.core.registry import Registry
from backend.engines import probe
from backend.core.types import ModelStatus
from ui.common.components import live_choices, live_value, ui_errors, ui_event
from ui.i18n.core import headed, say, t

# "state" right after "id": on a phone the table scrolls sideways and the first two columns are what shows.
COLUMNS = ["id", "state", "tasks", "weights", "device", "dtype", "parameters", "memory", "load time",
           "generated tokens", "last error", "owner"]
MODELS_CONCURRENCY_ID = "models"


def status_rows(statuses: Sequence[ModelStatus],
                reachability: Optional[dict[str, tuple[bool, str]]] = None) -> dict[str, Any]:
    """The Dataframe value for `registry.status()`: one readable row per model; remote entries show whether
    their server answered the last probe. Headers in the language of the request being served (English when
    built, before any request: the tab refreshes the table whenever it is opened)."""
    reachability = reachability or {}

    def weights(status: ModelStatus) -> str:
        if status.id not in reachability:
            return status.weights
        reachable, detail = reachability[status.id]
        return "remote: reachable" if reachable else f"remote: unreachable ({detail})"

    rows = [
        [
            status.id,
            status.state,
            ", ".join(status.tasks),
            weights(status),
            status.device or "",
            status.dtype or "",
            _count(status.parameters),
            _bytes(status.memory_bytes),
            f"{status.load_time_s:.2f} s" if status.load_time_s is not None else "",
            f"{status.generated_tokens_total:,}",
            status.last_error or "",
            _owner(status),
        ]
        for status in statuses
    ]
    return headed({"headers": COLUMNS, "data": rows})


def _owner(status: ModelStatus) -> str:
    """Whose fine-tuned model it is: blank for everyone's entries, "alice (shared)" / "alice (private)"."""
    if status.owner is None:
        return ""
    return f"{status.owner} ({'shared' if status.shared else 'private'})"


def _count(value: Optional[int]) -> str:
    if value is None:
        return ""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return str(value)


def _bytes(value: Optional[int]) -> str:
    if value is None:
        return ""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


@dataclass(frozen=True)
class ModelsTab:
    registry: Registry
    table: gr.Dataframe

    @classmethod
    def build(cls, registry: Registry) -> "ModelsTab":
        gr.Markdown(t("models_intro"))
        # Refreshed whenever the tab is opened (see ui/__init__.py): models load from every other tab.
        table = gr.Dataframe(status_rows(registry.status()), headers=COLUMNS, interactive=False,
                             elem_id="models-table", label=t("models_registry"), max_chars=80)
        with gr.Row(equal_height=True, elem_classes=["button-row"]):
            ids = [spec.id for spec in registry.specs()]
            select = gr.Dropdown(ids, value=ids[0] if ids else None, label=t("model"), elem_id="models-select",
                                 scale=3)
            live_choices(select, lambda: [spec.id for spec in registry.specs()])
            load = gr.Button(t("models_load"), variant="primary", elem_id="models-load", scale=1)
            unload = gr.Button(t("models_unload"), elem_id="models-unload", scale=1)
            refresh = gr.Button(t("refresh"), elem_id="models-refresh", scale=1)
        message = gr.Markdown("", elem_id="models-message", elem_classes=["stats-line"])
        tab = cls(registry, table)
        live_value(table, lambda: status_rows(registry.status()))  # no probe of remote servers on every change
        busy: dict[str, Any] = dict(concurrency_limit=4, concurrency_id=MODELS_CONCURRENCY_ID)
        load.click(tab.load, api_name="ui_load", inputs=select, outputs=[table, message], **busy,
                   **ui_event(message, progress=True))
        unload.click(tab.unload, api_name="ui_unload", inputs=select, outputs=[table, message], **busy,
                     **ui_event(message))
        refresh.click(tab.rows, outputs=table, **ui_event(message, queue=False))
        return tab

    def rows(self) -> dict[str, Any]:
        statuses = self.registry.status()
        # Remote servers are probed on every refresh (short timeout), so the table says whether they answer now.
        reachability = {status.id: probe(self.registry.spec(status.id))
                        for status in statuses if status.weights == "remote"}
        return status_rows(statuses, reachability)

    @ui_errors
    def load(self, model_id: str) -> Iterator[tuple[Any, str]]:
        self.registry.spec(model_id)
        yield gr.skip(), say("models_loading", model=model_id)
        try:
            status = self.registry.load(model_id)
        except Exception:
            yield self.rows(), ""  # the table shows the failure ('last error') next to the error message
            raise
        yield self.rows(), say("models_loaded", model=status.id, device=status.device, seconds=status.load_time_s or 0)

    @ui_errors
    def unload(self, model_id: str) -> tuple[Any, str]:
        status = self.registry.unload(model_id)
        key = "models_unloaded_busy" if status.state == "loaded" else "models_unloaded"
        return self.rows(), say(key, model=status.id)
