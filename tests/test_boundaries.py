"""Architecture boundaries from DESIGN.md, checked: ui/ stays free of torch, backend/ never imports gradio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_importing_ui_does_not_import_torch_or_transformers() -> None:
    result = run_python("import sys, ui; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_backend_never_imports_gradio() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "backend").rglob("*.py")
                 if {"gradio", "gradio_client"} & imported_modules(path)]
    assert offenders == []
    result = run_python("import sys, backend.core.registry, backend.services.generation, backend.engines.local; "
                        "print('gradio' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_ui_sources_never_import_torch_or_transformers() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "ui").rglob("*.py")
                 if {"torch", "transformers"} & imported_modules(path)]
    assert offenders == []


def test_registry_and_app_help_do_not_import_torch() -> None:
    # Reading models.yaml and building the registry must stay light: nothing loads at start-up.
    result = run_python("import sys; from backend.core.config import load_config; "
                        "from backend.core.registry import Registry; from backend.engines import create_engine; "
                        "Registry(load_config('models.yaml'), create_engine).status(); "
                        "print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    help_run = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert help_run.returncode == 0 and "serve" in help_run.stdout
