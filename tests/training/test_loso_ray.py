"""LOSO folds as Ray tasks: the same predictions as in process, resume across the two, quiet, Ray optional.

One local Ray instance (2 CPUs) serves the whole module; the in-process reference runs in a subprocess so
that it can also show that a run without --workers never imports ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from realtime.core.errors import UserInputError
from training.cli import main
from training.distributed import RayFoldRunner, plan_folds
from training.synth import write_casme2

pytestmark = pytest.mark.slow

# Tiny but real: 4 subjects × 10 clips, 32 px crops, 2 epochs. One torch thread everywhere: on the CPU the
# float results depend on the thread count, and a Ray task with --workers 2 on 2 CPUs has one thread.
TRAINING = ["--image-size", "32", "--epochs", "2", "--batch-size", "8", "--no-progress"]
SUBJECTS = ["sub01", "sub02", "sub03", "sub04"]


@pytest.fixture(scope="module")
def casme2(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ray-loso")
    write_casme2(base / "casme2", seed=3, n_subjects=4, samples_per_class=2, frame_size=(320, 240), amplitude=4.0)
    return {"root": base / "casme2", "cache": base / "cache", "base": base}


def loso_args(casme2: dict[str, Path], out: Path) -> list[str]:
    return ["loso", "casme2", "--root", str(casme2["root"]), "--cache-dir", str(casme2["cache"]), "--out", str(out)]


@pytest.fixture(scope="module")
def reference(casme2) -> dict:
    """The in-process run (also aligns the crops into the shared cache), in a fresh interpreter that reports
    whether ray was imported."""
    out = casme2["base"] / "in-process"
    code = (
        "import sys\nfrom training.cli import main\nrc = main(sys.argv[1:])\n"
        "print('RAY_IMPORTED', 'ray' in sys.modules)\nsys.exit(rc)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", code, *loso_args(casme2, out), *TRAINING]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return {"out": out, "stdout": result.stdout, "report": json.loads((out / "report.json").read_text())}


@pytest.fixture(scope="module")
def ray_session():
    """Start Ray once for the module, through the project's own quiet start; what it printed is kept."""
    from realtime.core.ray_jobs import import_ray, start_ray

    ray = import_ray()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2), os.dup(1)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(sink.fileno(), 2), os.dup2(sink.fileno(), 1)
        try:
            started = start_ray(None, num_cpus=2)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 2), os.dup2(saved[1], 1)
            os.close(saved[0]), os.close(saved[1])
        sink.seek(0)
        printed = sink.read().decode(errors="replace")
    yield {"printed": printed, "started": started}
    if started:
        ray.shutdown()


def predictions(report: dict) -> dict:
    return {p["sample"]: (p["subject"], p["true"], p["predicted"], p["probabilities"]) for p in report["predictions"]}


def test_ray_folds_give_the_predictions_of_the_in_process_runner(casme2, reference, ray_session, capfd):
    assert ray_session["started"] and ray_session["printed"].strip() == ""  # a quiet start
    out = casme2["base"] / "ray"
    assert main([*loso_args(casme2, out), *TRAINING, "--workers", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert predictions(report) == predictions(reference["report"])  # labels and probabilities, bit for bit
    for key in ("n_samples", "accuracy", "f1_macro", "uf1", "uar", "confusion_matrix"):
        assert report[key] == reference["report"][key], key
    for subject in SUBJECTS:
        fold = json.loads((out / "folds" / f"{subject}.json").read_text())
        assert fold["worker"]["runner"] == "ray" and fold["worker"]["threads"] == 1
        assert subject not in fold["train_subjects"] and len(fold["train_subjects"]) == 3
    assert all((out / name).is_file() for name in ("report.md", "report.html", "confusion.png", "folds.png"))
    stderr = capfd.readouterr().err.strip().splitlines()  # no Ray chatter: our two lines only
    assert [line.split(" ")[0] for line in stderr] == ["aligned", "Ray:"], stderr
    assert "4 folds, up to 2 at once (1 CPU each)" in stderr[1]


def test_a_run_begun_in_process_is_finished_on_ray_with_the_same_report(casme2, reference, ray_session):
    out = casme2["base"] / "resumed"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*loso_args(casme2, out), *TRAINING, "--subjects", "sub01", "sub02"]) == 0
    finally:
        torch.set_num_threads(threads)
    partial = json.loads((out / "report.json").read_text())
    assert partial["missing_subjects"] == ["sub03", "sub04"]
    first = {s: (out / "folds" / f"{s}.json").read_text() for s in ("sub01", "sub02")}

    assert main([*loso_args(casme2, out), *TRAINING, "--workers", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and predictions(report) == predictions(reference["report"])
    for subject, text in first.items():  # the in-process folds were read back, not trained again
        assert (out / "folds" / f"{subject}.json").read_text() == text
    for subject in ("sub03", "sub04"):
        assert json.loads((out / "folds" / f"{subject}.json").read_text())["worker"]["runner"] == "ray"


def test_without_workers_or_address_ray_is_never_imported(casme2, reference, capsys):
    assert "RAY_IMPORTED False" in reference["stdout"]
    # Ray-only options alone are refused (before any data is read), not silently ignored
    assert main([*loso_args(casme2, casme2["base"] / "x"), "--gpus-per-fold", "0.5"]) == 2
    assert "need --workers or --address" in capsys.readouterr().err


def test_fold_plans_follow_the_cluster_and_refuse_what_cannot_run():
    cpu_node = {"CPU": 16.0}
    gpu_node = {"CPU": 16.0, "GPU": 2.0}
    plan = plan_folds(26, "auto", {"CPU": 16.0}, [cpu_node], workers=4)
    assert (plan.workers, plan.cpus_per_fold, plan.gpus_per_fold) == (4, 4, 0.0)
    plan = plan_folds(26, "auto", {"CPU": 32.0, "GPU": 4.0}, [gpu_node, gpu_node])
    assert (plan.workers, plan.cpus_per_fold, plan.gpus_per_fold) == (4, 8, 1.0)  # one fold per GPU
    plan = plan_folds(26, "auto", {"CPU": 32.0, "GPU": 4.0}, [gpu_node, gpu_node], gpus_per_fold=0.5)
    assert (plan.workers, plan.cpus_per_fold, plan.gpus_per_fold) == (8, 4, 0.5)  # two small folds per GPU
    assert plan_folds(3, "auto", {"CPU": 64.0}, [cpu_node] * 4, workers=8).workers == 3  # no more than folds
    assert plan_folds(26, "cpu", {"CPU": 32.0, "GPU": 4.0}, [gpu_node, gpu_node]).gpus_per_fold == 0.0
    with pytest.raises(UserInputError, match="no GPU"):
        plan_folds(26, "cuda", {"CPU": 16.0}, [cpu_node])
    with pytest.raises(UserInputError, match="no node"):
        plan_folds(26, "auto", {"CPU": 32.0}, [cpu_node, cpu_node], workers=1, cpus_per_fold=32)
    assert plan_folds(26, "auto", {"CPU": 32.0}, [cpu_node, cpu_node], workers=1).cpus_per_fold == 16  # one node
    with pytest.raises(UserInputError, match="no node"):
        plan_folds(26, "auto", {"CPU": 16.0, "GPU": 2.0}, [gpu_node], gpus_per_fold=3)
    with pytest.raises(UserInputError, match="--device cpu"):
        plan_folds(26, "cpu", {"CPU": 16.0, "GPU": 2.0}, [gpu_node], gpus_per_fold=1)
    with pytest.raises(UserInputError, match="--gpus-per-fold"):
        RayFoldRunner(workers=2, gpus_per_fold=1.5)
    with pytest.raises(UserInputError, match="--workers"):
        RayFoldRunner(workers=0)
