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


LOSO_OPTIONS = ("--image-size", "64", "--epochs", "12", "--batch-size", "16", "--lr", "1e-3", "--no-progress")


@pytest.fixture(scope="module")
def loso_run(casme2_root, tmp_path_factory) -> tuple[Path, Path, str]:
    """A finished LOSO run on the generated subjects: (run folder, crop cache, what it printed)."""
    base = tmp_path_factory.mktemp("loso")
    out, cache = base / "run", base / "cache"
    argv = ["loso", "casme2", "--root", str(casme2_root), "--out", str(out), "--cache-dir", str(cache)]
    result = _run(*argv, *LOSO_OPTIONS)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, cache, result.stdout


def test_loso_learns_separable_generated_expressions(loso_run):
    out, _, printed = loso_run
    report = json.loads((out / "report.json").read_text())
    n = report["n_samples"]
    assert len(report["predictions"]) == n and len({p["sample"] for p in report["predictions"]}) == n
    assert report["accuracy"] > 2.0 / len(CLASSES)  # chance is 0.2
    assert (out / "report.md").is_file() and (out / "confusion.png").is_file()
    assert "accuracy" in printed


def test_fit_trains_on_every_subject_and_carries_the_loso_figures(casme2_root, loso_run, tmp_path, capsys):
    from training.checkpoints import load_checkpoint

    run, cache, _ = loso_run
    checkpoint = tmp_path / "casme2.pt"
    argv = ["fit", "casme2", "--root", str(casme2_root), "--out", str(checkpoint), "--cache-dir", str(cache)]
    assert main([*argv, "--loso-run", str(run), *LOSO_OPTIONS]) == 0
    result = json.loads(capsys.readouterr().out)
    report = json.loads((run / "report.json").read_text())
    assert result["n_train"] == report["n_samples"] and result["n_test"] == 0
    _, meta = load_checkpoint(checkpoint)
    assert meta["classes"] == list(CLASSES) and meta["image_size"] == 64
    assert meta["metrics"]["evaluation"] == "leave-one-subject-out"
    assert meta["metrics"]["accuracy"] == pytest.approx(report["accuracy"])
    assert meta["metrics"]["n_subjects"] == 5


def test_fit_refuses_a_loso_run_of_another_configuration(casme2_root, loso_run, tmp_path, capsys):
    run, cache, _ = loso_run
    argv = ["fit", "casme2", "--root", str(casme2_root), "--out", str(tmp_path / "m.pt"), "--cache-dir", str(cache)]
    options = [o if o != "12" else "3" for o in LOSO_OPTIONS]  # 3 epochs where the run had 12
    assert main([*argv, "--loso-run", str(run), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "epochs" in err and not (tmp_path / "m.pt").exists()


def test_loso_by_group_holds_out_every_subject_of_a_photo_together(casme2_root, loso_run, tmp_path):
    _, cache, _ = loso_run
    photos = json.loads((casme2_root / "subject_photos.json").read_text())
    assert set(photos) == {f"sub{i:02d}" for i in range(1, 6)} and set(photos.values()) == {
        "grace_hopper",
        "astronaut",
    }
    out = tmp_path / "by-photo"
    argv = ["loso", "casme2", "--root", str(casme2_root), "--out", str(out), "--cache-dir", str(cache)]
    options = [o if o != "12" else "2" for o in LOSO_OPTIONS]
    assert main([*argv, "--groups", str(casme2_root / "subject_photos.json"), *options]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_subjects"] == 2 and {p["subject"] for p in report["predictions"]} == set(photos.values())
    for prediction in report["predictions"]:  # every clip is predicted by the fold of its own photo
        assert prediction["subject"] == photos[prediction["sample"].split("/")[0]]


def test_groups_that_miss_a_subject_are_refused(casme2_root, loso_run, tmp_path, capsys):
    _, cache, _ = loso_run
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"sub01": "a", "sub02": "b"}))
    argv = ["loso", "casme2", "--root", str(casme2_root), "--out", str(tmp_path / "r"), "--cache-dir", str(cache)]
    assert main([*argv, "--groups", str(groups), *LOSO_OPTIONS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "sub03" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["summary", "casme2", "--root", "/nonexistent/casme2"], "/nonexistent/casme2"),
        (["summary", "samm", "--root", "{root}"], "SAMM"),
        (["summary", "casme2", "--root", "{root}", "--protocol", "9class"], "9class"),
        (["summary", "casme2", "--root", "{root}", "--coding", "/nonexistent/sheet.xlsx"], "sheet.xlsx"),
        (["loso", "casme2", "--root", "{root}", "--out", "{root}/run", "--threads", "0"], "--threads"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(casme2_root, argv, needle):
    result = _run(*[a.replace("{root}", str(casme2_root)) for a in argv])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle.lower() in lines[0].lower()


def test_help_teaches_every_command():
    for command in ("summary", "pretrain", "loso", "fit", "ablation", "synth"):
        result = _run(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
    assert "examples:" in _run("--help").stdout


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["loso", "casme2", "--root", "{root}", "--out", "{root}/r", "--attention", "bogus"], "--attention"),
        (["pretrain", "ckplus", "--root", "{root}", "--out", "{root}/m.pt", "--split", "halves"], "--split"),
        (["loso", "casme2", "--root", "{root}", "--out", "{root}/r", "--epochs", "many"], "--epochs"),
        (["teach", "casme2"], "teach"),
    ],
    ids=["choice", "pretrain-choice", "number", "command"],
)
def test_a_bad_argument_is_one_line_and_exit_code_2(casme2_root, argv, needle):
    result = _run(*[a.replace("{root}", str(casme2_root)) for a in argv])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert "python -m training" in lines[0]  # where to look: the command's --help


def test_the_choices_offered_are_the_ones_the_code_accepts():
    from training.cli import build_parser
    from training.config import DEVICES, SELECTIONS
    from training.losses import LOSSES
    from training.model import ATTENTION_VARIANTS
    from training.pretrain import SPLITS

    parser = build_parser()
    loso = ["loso", "casme2", "--root", "r", "--out", "o"]
    for flag, values, command in (
        ("--attention", ATTENTION_VARIANTS, loso),
        ("--loss", LOSSES, loso),
        ("--device", DEVICES, loso),
        ("--selection", SELECTIONS, loso),
        ("--split", SPLITS, ["pretrain", "ckplus", "--root", "r", "--out", "o"]),
    ):
        for value in values:
            args = parser.parse_args([*command, flag, value])
            assert getattr(args, flag[2:].replace("-", "_")) == value


def test_tiny_commands_work_end_to_end(tmp_path, capsys):
    """``synth`` then ``summary`` through ``main``: the generated CK+ reads back with the counts it was made with."""
    from training.datasets.ckplus import DEFAULT_FRAMES_PER_SEQUENCE

    out = tmp_path / "ck"
    argv = ["synth", "ckplus", "--out", str(out), "--subjects", "2", "--per-class", "1", "--size", "320x240"]
    assert main(argv) == 0
    manifest = json.loads((out / "synth_manifest.json").read_text())
    capsys.readouterr()
    assert main(["summary", "ckplus", "--root", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads(capsys.readouterr().out)
    sequences = manifest["expected_counts"]["7class"]  # the reader takes the last frames of each sequence
    expected = {label: n * DEFAULT_FRAMES_PER_SEQUENCE for label, n in sequences.items()}
    assert summary["n_subjects"] == 2 and summary["per_class"] == expected


def test_summary_finds_the_counts_the_generator_wrote(casme2_root, tmp_path, capsys):
    """Per protocol, ``summary`` counts exactly the samples the generator's manifest says a reader keeps."""
    from training.synth import SynthManifest

    manifest = SynthManifest.load(casme2_root)
    for protocol in ("5class", "7class"):
        argv = ["summary", "casme2", "--root", str(casme2_root), "--protocol", protocol]
        assert main([*argv, "--cache-dir", str(tmp_path)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["per_class"] == manifest.expected_counts[protocol]


def test_the_data_set_protocol_and_evaluation_choices_are_the_ones_the_code_exports(capsys):
    from training.ablation import INPUT_EVALUATIONS
    from training.cli import build_parser
    from training.datasets import DATASETS, DEFAULT_PROTOCOL, PROTOCOLS
    from training.synth.layouts import WRITERS

    parser = build_parser()
    for dataset in DATASETS:
        assert parser.parse_args(["summary", dataset, "--root", "r"]).dataset == dataset
        for command in ("pretrain", "loso", "fit"):
            assert parser.parse_args([command, dataset, "--root", "r", "--out", "o"]).dataset == dataset
    assert set(WRITERS) <= set(DATASETS)
    ablation = ["ablation", "casme2", "--root", "r", "--out", "o", "--inputs", "apex"]
    assert tuple(parser.parse_args(ablation).evaluations) == INPUT_EVALUATIONS
    for evaluation in INPUT_EVALUATIONS:
        assert parser.parse_args([*ablation, "--evaluations", evaluation]).evaluations == [evaluation]
    assert parser.parse_args(["loso", "casme2", "--root", "r", "--out", "o"]).protocol is None  # reader's default
    with pytest.raises(SystemExit):
        parser.parse_args(["loso", "--help"])
    page = " ".join(capsys.readouterr().out.split())
    for dataset, protocols in PROTOCOLS.items():
        assert f"{dataset} {DEFAULT_PROTOCOL[dataset]}" in page
        assert all(protocol in page for protocol in protocols)


@pytest.mark.parametrize(
    ("flag", "command"),
    [
        ("--attention", "loso"),
        ("--loss", "loso"),
        ("--device", "fit"),
        ("--selection", "loso"),
        ("--input", "pretrain"),
        ("--split", "pretrain"),
    ],
)
def test_a_value_outside_the_exported_choices_is_refused_in_one_line(flag, command, tmp_path, capsys):
    argv = [command, "casme2", "--root", str(tmp_path), "--out", str(tmp_path / "o"), flag, "not-a-choice"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0] and "not-a-choice" in lines[0]
    assert not (tmp_path / "o").exists()


def test_bad_input_through_main_is_one_line_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "no-such-casme2"
    assert main(["summary", "casme2", "--root", str(missing), "--cache-dir", str(tmp_path / "cache")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error:") and str(missing) in lines[0]
