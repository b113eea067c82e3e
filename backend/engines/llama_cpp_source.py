"""Where a GGUF entry's file is, and which runtime runs it (llama_cpp is never imported here; torch only to tell
whether `device: auto` means a GPU).

A GGUF checkpoint is named two ways in models.yaml: `source` is the .gguf file itself (a local path), or `source` is
a Hub repo (or a local folder) and `gguf_file` names the .gguf file in it. Both runtimes read it: llama.cpp
(`runtime: llama_cpp`, backend/engines/llama_cpp.py) runs the quantized file as it is; transformers
(`runtime: torch`) dequantizes it to float32 (`from_pretrained(folder, gguf_file=NAME)`, needs the `gguf` package).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from backend.core.config import ModelSpec
from backend.core.hub import download_hint
from backend.core.types import ModelLoadError

LLAMA_CPP_PIN = "llama-cpp-python==0.3.36"
INSTALL_HINT = (f"install llama-cpp-python (`pip install -r requirements-llama-cpp.txt`, i.e. {LLAMA_CPP_PIN}; it "
                "compiles llama.cpp, about 5 minutes on 2 cores) or set runtime: torch on the entry (transformers "
                "dequantizes the GGUF to float32, about 3x slower on a CPU)")


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python is installed (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def resolved_runtime(spec: ModelSpec) -> str:
    """The runtime that loads `spec`: its own `runtime`, else llama_cpp for a GGUF entry that runs on the CPU when
    llama-cpp-python is installed, else torch (a GGUF then runs dequantized, and its status says what would make it
    faster: `TORCH_GGUF_NOTE`)."""
    if spec.runtime is not None:
        return spec.runtime
    if spec.is_gguf and spec.backend == "transformers" and _runs_on_cpu(spec) and llama_cpp_available():
        return "llama_cpp"
    return "torch"


TORCH_GGUF_NOTE = ("GGUF dequantized to float32 by transformers; on a CPU llama.cpp runs it about 3x faster: "
                   + INSTALL_HINT.split(" or set runtime")[0])


def _runs_on_cpu(spec: ModelSpec) -> bool:
    if spec.device == "cpu":
        return True
    if spec.device != "auto":
        return False
    import torch  # only when loading: auto means cuda, then mps, then cpu (backend/engines/loading.py)

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def require_llama_cpp(spec: ModelSpec) -> None:
    """A clear ModelLoadError naming what to install when the entry needs llama-cpp-python and it is missing."""
    if not llama_cpp_available():
        raise ModelLoadError(f"model '{spec.id}', field 'runtime': runtime llama_cpp needs the llama-cpp-python "
                             f"package, which is not installed; {INSTALL_HINT}",
                             field="runtime", params={"model": spec.id})


def gguf_location(spec: ModelSpec) -> tuple[str, str]:
    """(folder or Hub repo, file name): what transformers' `from_pretrained(location, gguf_file=name)` takes."""
    local = spec.local_path()
    if local is not None and spec.gguf_file is None:  # source is the .gguf file itself
        return str(local.parent), local.name
    assert spec.gguf_file is not None and spec.source is not None  # validated: a GGUF entry names its file
    return (str(local) if local is not None else spec.source), spec.gguf_file


def gguf_path(spec: ModelSpec, offline: bool) -> Path:
    """The .gguf file on this machine: a local path, or the Hub repo's file (from the cache when `offline`)."""
    location, name = gguf_location(spec)
    if spec.local_path() is not None:
        path = Path(location) / name
        if not path.is_file():
            field = "gguf_file" if spec.gguf_file else "source"
            raise ModelLoadError(f"model '{spec.id}', field '{field}': {path} is not a file",
                                 field=field, params={"path": str(path)})
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(location, name, revision=spec.revision, local_files_only=offline))
    except Exception as error:  # noqa: BLE001 - not cached offline, no such file in the repo, no network
        raise ModelLoadError(f"model '{spec.id}', field 'gguf_file': {name} of {location} is not on this machine and "
                             f"could not be downloaded ({type(error).__name__}); {download_hint(location)}",
                             field="gguf_file", params={"repo": location, "file": name}) from error
