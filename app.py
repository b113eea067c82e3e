"""LLM Workbench entry point.

    python app.py [serve] [--models models.yaml] [--host HOST] [--port PORT] [--presenter]
    python app.py eval --models models.yaml --model ID --data FILE --task TASK ... --out DIR
    python app.py data --data FILE --text-column C [--clean ...] [--split ...] [--augment ...] --out DIR
    python app.py train --models models.yaml --base ID --task {classification,sft} --data FILE ... --out DIR
    python app.py publish --run RUN_DIR [--merge [--register ID]] [--zip FILE] [--push OWNER/NAME]

Heavy libraries (gradio, torch, transformers) are imported only by the command that needs them, so
`python app.py --help` answers at once and a bad models.yaml is reported before anything else starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

COMMANDS = ("serve", "eval", "data", "train", "publish")
DEFAULT_PORT = 7860


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Chat with, generate with, classify with and evaluate Hugging Face models in the browser.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the web app (the default command)")
    serve.add_argument("--models", default=os.environ.get("WORKBENCH_MODELS", "models.yaml"),
                       help="the model registry file (default: models.yaml, or $WORKBENCH_MODELS)")
    serve.add_argument("--host", default=_env_host(),
                       help="interface to listen on (default: 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 on a "
                            "Hugging Face Space)")
    serve.add_argument("--port", type=int, default=_env_port(),
                       help=f"port (default: {DEFAULT_PORT}, or $GRADIO_SERVER_PORT / $PORT)")
    serve.add_argument("--presenter", action=argparse.BooleanOptionalAction, default=_env_flag("WORKBENCH_PRESENTER"),
                       help="a clean demo screen: one chat model with locked settings, set up by the `presenter:` "
                            "block of models.yaml (default: on when that block is there, or $WORKBENCH_PRESENTER)")
    # The eval options live with the evaluation code; that module imports only argparse at load time.
    from backend.evaluation.cli import add_arguments as add_eval_arguments

    add_eval_arguments(commands.add_parser("eval", help="evaluate models on a dataset, headless (writes "
                                           "results.json and predictions.csv)"))
    from backend.data.cli import add_arguments as add_data_arguments

    add_data_arguments(commands.add_parser("data", help="clean, split and augment a dataset, headless (writes the "
                                           "split files and card.json)"))
    from backend.training.cli import add_arguments as add_train_arguments

    add_train_arguments(commands.add_parser("train", help="fine-tune a model, headless (writes OUT/metrics.json, "
                                            "OUT/config.yaml, OUT/model and a model card)"))
    from backend.training.publish_cli import add_arguments as add_publish_arguments

    add_publish_arguments(commands.add_parser("publish", help="publish a finished run's model: merge a LoRA adapter "
                                              "into a full model, zip it, push it to the Hugging Face Hub"))
    return parser


def _env_host() -> str:
    # On a Hugging Face Space (SPACE_ID is set) the proxy reaches the app from outside its container.
    return os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")


def _env_flag(name: str) -> Optional[bool]:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None  # unset: decided by models.yaml


def _env_port() -> int:
    for name in ("GRADIO_SERVER_PORT", "PORT"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return DEFAULT_PORT


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    # `serve` is the default command: `python app.py --models X` means `python app.py serve --models X`.
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    return build_parser().parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    # pyarrow (under pandas) allocates from its bundled mimalloc by default, which keeps what short-lived request
    # threads freed: the app's RSS grew ~20 MB per identical round of 96 requests. glibc's heap, which
    # release_memory trims, does not (docs/RELIABILITY.md, issue 27 item 7). Read when pyarrow first allocates.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from backend.engines import zerogpu
    from backend.core.registry_source import open_registry
    from backend.engines import create_engine
    from backend.guard.limits import RequestLimits
    from backend.guard.security import SecuritySettings, install_log_redaction, model_secrets
    from backend.guard.throttle import LoginThrottle, ThrottleSettings
    from backend.core.types import ConfigError, WorkbenchError

    try:
        security = SecuritySettings.from_env()
        limits = RequestLimits.from_env(security.max_upload_mb)
        throttle = ThrottleSettings.from_env()
        # models.yaml plus the fine-tuned models of the runs' overlay, the list every command reads; followed
        # while the app runs, so a model `app.py train --register` adds elsewhere appears here too.
        registry = open_registry(args.models, follow=True, engine_factory=create_engine)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = registry.config
    # Passwords, the API token and remote API keys never reach stdout, stderr or the logs.
    install_log_redaction(security.secrets() + model_secrets(config))
    if zerogpu.on_zerogpu():
        # ZeroGPU patches torch when `spaces` is imported, and that must come before anything touches CUDA.
        zerogpu.spaces_module()
    _report_weights(registry)
    try:
        preload = preload_ids(config, os.environ.get("WORKBENCH_PRELOAD"), zerogpu.on_zerogpu())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        registry.close()
        return 2
    for model_id in preload:  # the one exception to "nothing loads at start-up" (see preload_ids)
        print(f"preloading model '{model_id}' (WORKBENCH_PRELOAD)")
        try:
            registry.load(model_id)
        except WorkbenchError as error:  # one line, like a registry typo, not a traceback
            print(f"error: WORKBENCH_PRELOAD: {error}", file=sys.stderr)
            registry.close()
            return 2

    import ui

    presenter = args.presenter if args.presenter is not None else bool(config.presenter and config.presenter.enabled)
    try:
        demo = ui.build_app(registry, presenter=presenter)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        registry.close()
        return 2
    # The app's objects, built once, are long-lived: out of the garbage collector's full collections, which
    # stopped every thread (the event loop included) for 0.1-0.35 CPU-s each (backend/core/heap.py).
    from backend.core import heap

    heap.enable()
    heap.freeze_survivors()
    mode = " (presenter mode)" if presenter else ""
    loaded = f"{len(preload)} preloaded, the others load on first use" if preload else \
        "nothing is loaded until first use"
    print(f"LLM Workbench{mode}: {len(config.models)} model(s) from {args.models}; {loaded}.")
    print(security.describe())
    print(f"limits: {limits.describe()}" + (f"; {throttle.describe()}" if security.auth_enabled else ""))
    from backend.api import add_api_routes  # /v1/* (OpenAI-compatible, embeddings, feedback) and /tokenize ...

    logins = LoginThrottle(throttle)  # one count of failed logins: the login form and every API route
    try:
        # The API shares the UI's server, its logins and its login throttle.
        ui.launch(demo, host=args.host, port=args.port, security=security, limits=limits, throttle=logins,
                  on_app=lambda app: add_api_routes(app, registry, security, throttle=logins))
    finally:
        registry.close()
    return 0


def preload_ids(config, wanted: Optional[str], on_zerogpu: bool) -> list[str]:  # noqa: ANN001 - Config
    """The models to load at start-up: WORKBENCH_PRELOAD ("id,id", "all" or "none"). It defaults to every model
    loaded in this process on ZeroGPU, whose GPU worker is forked from the app and only has the models loaded
    before (backend/engines/zerogpu.py), and to none elsewhere."""
    from backend.core.types import ConfigError

    local = [spec.id for spec in config.models if spec.backend == "transformers"]
    wanted = (wanted or "").strip() or ("all" if on_zerogpu else "none")
    if wanted == "none":
        return []
    if wanted == "all":
        return local
    ids = [part.strip() for part in wanted.split(",") if part.strip()]
    unknown = [model_id for model_id in ids if model_id not in local]
    if unknown:
        raise ConfigError(f"WORKBENCH_PRELOAD: {', '.join(map(repr, unknown))} is not a local model of the registry "
                          f"(local models: {', '.join(local) or 'none'})")
    return ids


def _report_weights(registry) -> None:  # noqa: ANN001 - Registry, imported lazily above
    """Says at start-up which models cannot be loaded here and what to do, instead of on first use."""
    for status in registry.status():
        if status.weights in ("unavailable", "download"):
            print(f"note: model '{status.id}': {status.weights_detail}", file=sys.stderr)
    to_download = [status.id for status in registry.status() if status.weights == "download"]
    if to_download:
        from backend.core.hub import HUB, OFFLINE_HELP

        reachable, why = HUB.reachable()  # one short probe, remembered: loads then fail at once, not after ~50 s
        if not reachable:
            print(f"note: the Hugging Face Hub cannot be reached ({why}), so {', '.join(to_download)} cannot load "
                  f"until their weights are on this machine; see {OFFLINE_HELP}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "eval":
        from backend.evaluation import cli

        return cli.main(args)
    if args.command == "data":
        from backend.data import cli as data_cli

        return data_cli.main(args)
    if args.command == "train":
        from backend.training import cli as train_cli

        return train_cli.main(args)
    if args.command == "publish":
        from backend.training import publish_cli

        return publish_cli.main(args)
    build_parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
