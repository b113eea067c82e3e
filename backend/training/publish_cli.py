"""`python app.py publish --run RUN_DIR ...`: what the Train tab's Publish panel does, headless.

    python app.py publish --run runs/users/local/train/RUN --merge --register my-model-merged
    python app.py publish --run out/ --zip my-model.zip
    HF_TOKEN=hf_... python app.py publish --run out/ --merge --push alice/my-model

`--merge` merges a LoRA adapter into its base (RUN/merged, a full safetensors model; done once) and publishes
that; without it the run's own model/ folder (a full model, or the adapter) is published. The model card goes
along as README.md. The Hub token is read from HF_TOKEN only. Bad input or a refusal exits 2 with one `error:`
line. Only argparse at import time (app.py builds its parser from `add_arguments`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR", help="the run folder (with config.yaml and model/)")
    parser.add_argument("--models", default=os.environ.get("WORKBENCH_MODELS", "models.yaml"),
                        help="the model registry file, for --register (default: models.yaml, or $WORKBENCH_MODELS)")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA adapter into its base model (RUN/merged) "
                        "and publish that full model")
    parser.add_argument("--register", metavar="ID", help="with --merge: add the merged model to the registry overlay "
                        "under this id (the app lists it in every tab)")
    parser.add_argument("--zip", metavar="FILE", help="write the model folder and its model card to this zip file")
    parser.add_argument("--push", metavar="REPO", help="upload to this Hugging Face Hub model repository (owner/name; "
                        "created if new); the token is read from $HF_TOKEN")
    parser.add_argument("--public", action="store_true", help="with --push: a new repository is public (default: "
                        "private)")


def main(args: argparse.Namespace) -> int:
    from backend.core.types import WorkbenchError
    from backend.training import publish, runfiles

    run_dir = Path(args.run).resolve()
    try:
        if not (run_dir / runfiles.CONFIG).is_file():
            raise WorkbenchError(f"--run: {args.run} is not a run folder (it has no {runfiles.CONFIG})")
        if args.register and not args.merge:
            raise WorkbenchError("--register: give it with --merge (a finished run is registered when it trains)")
        if not (args.merge or args.zip or args.push):
            raise WorkbenchError("nothing to do: give --merge, --zip FILE and/or --push REPO")
        if args.push:
            publish.check_repo_id(args.push)
            publish.hub_token()  # offline or no token: said before a merge that may take minutes
        publish.finished(run_dir)
        if args.merge:
            _merge(run_dir, args)
        exported = publish.export(run_dir, merged=args.merge)
        if args.zip:
            out = publish.write_zip(exported, Path(args.zip).resolve())
            print(f"zip: {out} ({publish.size_text(out.stat().st_size)})")
        if args.push:
            print(f"uploading {len(exported.files)} files ({publish.size_text(exported.size_bytes)}) to "
                  f"{args.push}...", file=sys.stderr, flush=True)
            print(f"pushed: {publish.push(exported, args.push, private=not args.public)}")
    except WorkbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _merge(run_dir: Path, args: argparse.Namespace) -> None:
    from backend.core.registry_source import open_registry
    from backend.engines import create_engine
    from backend.training.merge import MERGED
    from backend.training.service import TrainingService

    registry = (open_registry(args.models, engine_factory=create_engine)
                if args.register and Path(args.models).is_file() else None)
    service = TrainingService(registry, auto_register=False)
    try:
        if args.register:
            merged, model_id = service.merge_and_register(run_dir, args.register)
            print(f"merged: {merged}\nregistered as '{model_id}' in the registry overlay")
        elif (run_dir / MERGED / "config.json").is_file():
            print(f"merged: {run_dir / MERGED} (already)")
        else:
            print(f"merged: {service.merge(run_dir)}")
    finally:
        service.close()
        if registry is not None:
            registry.close()
