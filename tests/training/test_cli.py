"""``python -m training`` end to end on generated data in CASME II's layout: summary, LOSO, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import main
from training.synth import write_casme2

CLASSES = ("happiness", "disgust", "surprise", "repression", "others")


@pytest.fixture(scope="module")
def casme2_root(tmp_path_factory) -> Path:
    """Five generated subjects, two clips per class, expressions several times a real one's amplitude."""
    out = tmp_path_factory.mktemp("casme2")
    write_casme2(out, seed=3, n_subjects=5, samples_per_class=2, frame_size=(320, 240), amplitude=4.0)
    return out


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_summary_prints_counts_and_every_repair(casme2_root, tmp_path, capsys):
    assert main(["summary", "casme2", "--root", str(casme2_root), "--cache-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_subjects"] == 5 and summary["classes"] == list(CLASSES)
    assert sum(summary["per_class"].values()) == summary["n_samples"]
    reasons = " ".join(issue["reason"] for issue in summary["issues"])
    assert "chosen by frame-difference spotter" in reasons  # the '/' apex of the generated sheet
    assert "not in protocol 5class" in reasons  # fear and sadness dropped


def test_loso_learns_separable_generated_expressions(casme2_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["loso", "casme2", "--root", str(casme2_root), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    argv += ["--image-size", "64", "--epochs", "12", "--batch-size", "16", "--lr", "1e-3", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    n = report["n_samples"]
    assert len(report["predictions"]) == n and len({p["sample"] for p in report["predictions"]}) == n
    assert report["accuracy"] > 2.0 / len(CLASSES)  # chance is 0.2
    assert (out / "report.md").is_file() and (out / "confusion.png").is_file()
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["summary", "casme2", "--root", "/nonexistent/casme2"], "/nonexistent/casme2"),
        (["summary", "samm", "--root", "{root}"], "SAMM"),
        (["summary", "casme2", "--root", "{root}", "--protocol", "9class"], "9class"),
        (["summary", "casme2", "--root", "{root}", "--coding", "/nonexistent/sheet.xlsx"], "sheet.xlsx"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(casme2_root, argv, needle):
    result = _run(*[a.replace("{root}", str(casme2_root)) for a in argv])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle.lower() in lines[0].lower()


def test_help_teaches_every_command():
    for command in ("summary", "pretrain", "loso", "ablation", "synth"):
        result = _run(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
    assert "examples:" in _run("--help").stdout
