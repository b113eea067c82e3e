"""The Evaluate tab served for real (in this process, on a free port, logins on or off) and driven with
gradio_client: a test calls the tab's UI events exactly as the browser does, by their function's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import gradio as gr
from gradio_client import Client

from tests.conftest import free_port


class EvalServer:
    """`build_evaluate_tab` (or any other tab's `build`) in a Blocks of its own, launched with `ui.launch` (the
    app's own options)."""

    def __init__(self, registry: Any, runs_dir: Path, users: Sequence[tuple[str, str]] = (),
                 build: Optional[Callable[[], Any]] = None) -> None:
        import ui
        from backend.guard.security import SecuritySettings
        from ui.evaluate import build_evaluate_tab

        with gr.Blocks() as demo:
            with gr.Tabs():
                with gr.Tab("Tab", id="tab", elem_id="tab-under-test"):
                    self.ctl = build() if build else build_evaluate_tab(registry, runs_dir=runs_dir)
        self.demo = demo
        self.users = dict(users)
        self.fn_index: dict[str, int] = {}
        for index, fn in demo.fns.items():
            self.fn_index.setdefault(fn.name, index)
        port = free_port()
        ui.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True,
                  security=SecuritySettings(users=tuple(users)))
        self.url = f"http://127.0.0.1:{port}/"

    def client(self, user: Optional[str] = None) -> Client:
        """A new browser session (of `user` when logins are on)."""
        auth = (user, self.users[user]) if user else None
        client = Client(self.url, auth=auth, verbose=False, download_files=False)
        # The tab's events are private (off the API page), which gradio_client marks as not callable; the
        # server serves them like any event (the browser calls them), so call them the way the browser does.
        for endpoint in client.endpoints.values():
            endpoint.is_valid = True
        return client

    def call(self, client: Client, name: str, *args: Any) -> Any:
        """Runs the UI event whose handler is `name` in `client`'s session; its result, or AppError."""
        return client.predict(*args, fn_index=self.fn_index[name])

    def call_form(self, client: Client, name: str, values: dict[str, Any]) -> Any:
        """Runs the event `name` with its inputs given by elem_id (a handler that takes a set of inputs); the
        session's State inputs are the server's, as for a browser."""
        dependency = next(d for d in client.config["dependencies"] if d["id"] == self.fn_index[name])
        components = {c["id"]: c for c in client.config["components"]}
        args = [values[components[i]["props"].get("elem_id")] for i in dependency["inputs"]
                if components[i]["type"] != "state"]
        return client.predict(*args, fn_index=self.fn_index[name])

    def close(self) -> None:
        self.demo.close()
