"""`python -m backend.training.merge RUN_DIR [--out DIR]`: a LoRA run's adapter merged into its base model and
saved as a full safetensors folder (default RUN_DIR/merged), for export or for serving without peft.
A process of its own, like training: it loads the whole base model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from backend.training import runfiles
from backend.training.config import load_train_config
from backend.core.types import InvalidInputError

MERGED = "merged"


def merge_run(run_dir: Path, out: Optional[Path] = None) -> Path:
    from backend.training.modeling import merge_adapter

    config = load_train_config(run_dir / runfiles.CONFIG)
    adapter = run_dir / runfiles.MODEL
    if not (adapter / "adapter_config.json").is_file():
        raise InvalidInputError(f"run {run_dir.name}: its model is not an adapter (a full model needs no merge)")
    return merge_adapter(config.base, adapter, out or run_dir / MERGED, config.trust_remote_code)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.training.merge")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        print(merge_run(args.run_dir, args.out))
    except InvalidInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
