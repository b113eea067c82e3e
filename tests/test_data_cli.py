"""`python app.py data` end to end, as a user runs it: split files + card.json, reproducible, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_data_prep import CRAFTED, write_csv


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "data", *args], capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, cwd=ROOT)


@pytest.mark.full
def test_cli_writes_splits_and_card_and_is_reproducible(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "reviews.csv", CRAFTED * 3)
    args = ["--data", str(data), "--text-column", "text", "--label-column", "label",
            "--clean", "normalize,html,empty,dedupe", "--labels", "pos,neg", "--split", "0.5,0.5,0",
            "--augment", "swap,synonym", "--copies", "2", "--rate", "0.5", "--seed", "7", "--format", "csv"]
    first = run_cli(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "dedupe: 0 row(s) changed, 19 dropped" in first.stdout
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    assert [s["step"] for s in card["steps"]] == ["load", "normalize", "html", "empty", "dedupe", "labels",
                                                    "split", "augment:swap", "augment:synonym"]
    assert card["rows"] == {"train": 4 + 4 * 2 * 2, "validation": 2}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["card.json", "train.csv", "validation.csv"]
    import app  # the second run in this process (the same main(), without a second interpreter start-up)

    assert app.main(["data", *args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    for name in ("train.csv", "validation.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_csv(tmp_path / "d.csv", CRAFTED)
    cases = [
        (["--data", str(tmp_path / "missing.csv"), "--text-column", "text"], "cannot read 'missing.csv'"),
        (["--data", str(data), "--text-column", "body"], "there is no column 'body'"),
        (["--data", str(data), "--text-column", "text", "--augment", "swap", "--rate", "-0.1"],
         "rate (--rate): must be a number from 0 to 1"),
        (["--data", "someone/offline-dataset", "--text-column", "text"], "cannot be reached offline"),
    ]
    for args, message in cases:  # in this process: the same main() as the command line, minus the start-up time
        assert app.main(["data", *args, "--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err, args
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]  # no hidden staging folder either


@pytest.mark.full
def test_cli_with_a_hub_model_and_no_hub_says_what_to_do_at_once(tmp_path: Path) -> None:
    """`data --model` naming a Hub model that is not on this machine, with the Hub unreachable: one short probe
    (the server's rule), then one error line that says how to get the weights; no huggingface_hub retry loop."""
    from tests.conftest import free_port

    data = write_csv(tmp_path / "d.csv", CRAFTED)
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - id: hub-tokenizer\n    tasks: [chat]\n    source: someone/not-cached-here\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "data", "--data", str(data), "--text-column", "text",
         "--min-tokens", "1", "--model", "hub-tokenizer", "--models", str(registry), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf"), "WORKBENCH_HUB_TIMEOUT_S": "2",
             "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"})  # nothing listens there: the Hub is unreachable
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the Hub cannot be reached" in errors[0], done.stderr
    assert "hf download someone/not-cached-here" in errors[0]
    assert "Retrying" not in done.stderr and not (tmp_path / "out").exists()
