"""python -m realtime.batch end to end on generated clips: outputs per video, failures with reasons, resume,
and a run killed outright (SIGKILL) that resumes to the same events as an uninterrupted one.

Ray starts three times in all (each CLI run that has work starts its own local instance, 1-2 CPUs); the
re-run that only skips never starts it.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from realtime.batch import command as batch
from training.synth.scripted import ClipSpec, blink, micro, write

ROOT = Path(__file__).resolve().parents[3]
GOOD = ("alpha", "beta", "gamma")


def run_cli(*args, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "realtime.batch", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


def events_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three short clips with a micro-expression and a blink, a corrupt file, a clip with no face, and a
    list naming them all plus a file that does not exist."""
    folder = tmp_path_factory.mktemp("clips")
    for i, name in enumerate(GOOD):
        spec = ClipSpec(
            fps=30.0,
            duration_ms=2600.0 + 300.0 * i,
            size=(320, 240),
            motions=(micro(("smile", "brow_raise", "smile")[i], 1100.0, 300.0, 2.0), blink(1900.0, 200.0)),
            seed=i,
        )
        write(spec, folder / f"{name}.avi")
    (folder / "corrupt.avi").write_bytes(b"\x00not a video at all" * 200)
    writer = cv2.VideoWriter(str(folder / "noface.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (160, 120))
    for _ in range(20):
        writer.write(np.full((120, 160, 3), 100, np.uint8))
    writer.release()
    names = [f"{n}.avi" for n in GOOD] + ["corrupt.avi", "missing.avi", "noface.avi"]
    (folder / "all.txt").write_text("# the test batch\n" + "\n".join(names) + "\n")
    (folder / "good.txt").write_text("\n".join(f"{n}.avi" for n in GOOD) + "\n")
    return folder


def folder_of(out: Path, stem: str) -> Path:
    (match,) = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(f"{stem}-")]
    return match


def test_batch_end_to_end_failures_resume_and_a_killed_run(clips, tiny_onnx_model, tmp_path):
    """One test (so that pytest-xdist keeps its Ray runs in one process): a full run, a re-run that skips,
    and a run killed outright that resumes to the same events."""
    out = tmp_path / "out"
    result = run_cli(
        "--inputs", clips / "all.txt", "--out", out, "--model", tiny_onnx_model, "--workers", 2, "--csv", "--annotate"
    )
    check_first_run(result, out)
    check_second_run_skips(out, clips, tiny_onnx_model)
    check_killed_run_resumes(out, clips, tiny_onnx_model, tmp_path / "killed")


def check_first_run(result: subprocess.CompletedProcess, out: Path) -> None:
    assert result.returncode == 1, result.stderr  # some failed
    assert "Traceback" not in result.stderr
    workers = set()
    for stem in GOOD:  # outputs per video
        folder = folder_of(out, stem)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "done"
        assert summary["frames"] == len(list(csv.DictReader((folder / "frames.csv").open())))
        assert summary["faces"] == 1 and summary["fps"] == 30.0
        assert abs(summary["duration_s"] - summary["frames"] / 30.0) < 0.05
        assert set(summary["stage_ms"]) == {"capture", "face", "spot", "classify", "render", "output"}
        assert summary["provider"] == "CPU"
        assert summary["key"]["model_sha256"] and summary["key"]["size"] > 0 and summary["key_digest"]
        events = events_of(folder)
        assert summary["events"] == len(events) >= 1
        assert sum(summary["events_per_label"].values()) == len(events)
        assert any(abs(e["apex_ms"] - 1235.0) < 150 for e in events), events  # the micro-expression
        capture = cv2.VideoCapture(str(folder / "annotated.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]
        capture.release()
        assert not list(folder.glob(".partial-*"))
        workers.add(summary["worker"])
    assert 1 <= len(workers) <= 2  # the models are loaded per worker, not per video

    meta = json.loads((out / "batch.json").read_text())
    assert meta["workers"] == 2
    rows = {Path(r["input"]).name: r for r in meta["videos"]}
    assert [rows[f"{n}.avi"]["status"] for n in GOOD] == ["done"] * 3
    assert rows["corrupt.avi"]["status"] == "failed" and "cannot decode" in rows["corrupt.avi"]["reason"]
    assert rows["missing.avi"]["status"] == "failed" and "no such file" in rows["missing.avi"]["reason"]
    assert rows["noface.avi"]["status"] == "failed" and "no face" in rows["noface.avi"]["reason"]
    with (out / "batch.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 6
    columns = {"input", "status", "reason", "frames", "duration_s", "fps", "faces", "events", "wall_s", "provider"}
    assert columns <= set(table[0]) and any(c.startswith("events_") for c in table[0])
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("done 3, skipped 0, failed 3"), result.stdout
    assert str(out) in last
    report = (out / "report.html").read_text()
    for name in (*GOOD, "corrupt", "missing", "noface"):
        assert f"{name}.avi" in report
    assert "no such file" in report


def check_second_run_skips(out: Path, clips: Path, model: Path) -> None:
    before = {s: (folder_of(out, s) / "summary.json").stat().st_mtime_ns for s in GOOD}
    started = time.perf_counter()
    result = run_cli("--inputs", clips / "all.txt", "--out", out, "--model", model, "--csv", "--annotate")
    elapsed = time.perf_counter() - started
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("done 0, skipped 3, failed 3"), result.stdout
    assert {s: (folder_of(out, s) / "summary.json").stat().st_mtime_ns for s in GOOD} == before
    meta = json.loads((out / "batch.json").read_text())
    assert "ray_start_s" not in meta and meta["workers"] == 0  # nothing to do: Ray never started
    assert elapsed < 30


def check_killed_run_resumes(reference: Path, clips: Path, model: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    args = ["--inputs", clips / "good.txt", "--out", out, "--model", model, "--csv", "--annotate"]
    process = subprocess.Popen(
        [sys.executable, "-m", "realtime.batch", *map(str, args), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None and not list(out.glob("*/summary.json")):
        time.sleep(0.05)
    assert process.poll() is None, "the batch ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    # nothing of the killed run's Ray session lingers (the watchdog ends what Ray's fate sharing leaves)
    sessions = glob.glob(f"/tmp/ray/session_*_{process.pid}")
    if sessions and Path("/proc").is_dir():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _processes_using(sessions[0]):
            time.sleep(0.5)
        assert not _processes_using(sessions[0])
    # counted once the worker is gone too: it may finish the video it was writing while the driver dies
    finished = list(out.glob("*/summary.json"))
    assert 1 <= len(finished) < len(GOOD)

    result = run_cli(*args, "--workers", 2)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"done {len(GOOD) - len(finished)}, skipped {len(finished)}, failed 0"), result.stdout
    for stem in GOOD:
        assert events_of(folder_of(out, stem)) == events_of(folder_of(reference, stem))
        assert (folder_of(out, stem) / "summary.json").is_file()
        assert not list(folder_of(out, stem).glob(".partial-*"))


def _processes_using(session: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if session in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore"):
                found.append(int(pid))
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if session in os.readlink(f"/proc/{pid}/fd/{fd}"):
                    found.append(int(pid))
                    break
        except OSError:
            continue
    return [p for p in found if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds nothing


# ------------------------------------------------------------------------------------------ fast, no Ray
def test_inputs_come_from_a_folder_a_pattern_or_a_list(clips, tmp_path):
    from_dir = batch.collect_inputs([str(clips)])
    assert {p.name for p in from_dir} == {"alpha.avi", "beta.avi", "gamma.avi", "corrupt.avi", "noface.avi"}
    assert [p.name for p in batch.collect_inputs([str(clips / "a*.avi")])] == ["alpha.avi"]
    listed = batch.collect_inputs([str(clips / "all.txt"), str(clips / "alpha.avi")])
    assert [p.name for p in listed] == [
        "alpha.avi",
        "beta.avi",
        "gamma.avi",
        "corrupt.avi",
        "missing.avi",
        "noface.avi",
    ]
    assert batch.stable_name(clips / "alpha.avi") == batch.stable_name(clips / "alpha.avi")
    assert batch.stable_name(clips / "alpha.avi") != batch.stable_name(tmp_path / "alpha.avi")


def test_the_resume_key_follows_the_file_the_model_and_the_settings(clips, tmp_path):
    video = tmp_path / "clip.avi"
    video.write_bytes((clips / "alpha.avi").read_bytes())
    others = [clips / "beta.avi", video]
    model, sha = tmp_path / "m.onnx", "a" * 64

    def plan(paths=others, model_sha=sha, **changes):
        settings = {"out": tmp_path / "out", "fps": None, "max_faces": 1, "csv": False, "annotate": False}
        spotting = {"spotter": "rules", "spotter_model": None}
        args = SimpleNamespace(**{**settings, **spotting, "device": "auto", **changes})
        rows, jobs = batch.plan(args, paths, model, model_sha)
        return {Path(r["input"]).name: r["status"] for r in rows}, sorted(Path(j.input).name for j in jobs)

    rows, jobs = plan()
    assert not rows and jobs == ["beta.avi", "clip.avi"]
    args = SimpleNamespace(
        out=tmp_path / "out", fps=None, max_faces=1, csv=False, annotate=False, device="auto", spotter="rules"
    )
    args.spotter_model = None
    for job in batch.plan(args, others, model, sha)[1]:  # pretend both finished
        Path(job.folder).mkdir(parents=True)
        (Path(job.folder) / "summary.json").write_text(json.dumps({"status": "done", "key_digest": job.key_digest}))
    assert plan() == ({"beta.avi": "skipped", "clip.avi": "skipped"}, [])
    assert plan(csv=True)[1] == ["beta.avi", "clip.avi"]
    assert plan(max_faces=2)[1] == ["beta.avi", "clip.avi"]
    assert plan(spotter="learned")[1] == ["beta.avi", "clip.avi"]  # another spotter: other events
    assert plan(model_sha="b" * 64)[1] == ["beta.avi", "clip.avi"]
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert plan() == ({"beta.avi": "skipped"}, ["clip.avi"])
    missing = plan(paths=[tmp_path / "gone.avi"])[0]
    assert missing == {"gone.avi": "failed"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--inputs", "/no/such/folder", "--out", "{tmp}/o"], "no such file or folder"),
        (["--inputs", "{clips}/zz*.avi", "--out", "{tmp}/o"], "matches no file"),
        (["--inputs", "{clips}", "--out", "{tmp}/o", "--workers", "0"], "must be at least 1"),
        (["--inputs", "{clips}", "--out", "{tmp}/o", "--model", "{tmp}/none.onnx"], "model file not found"),
        (["--inputs", "{clips}", "--out", "{clips}/alpha.avi"], "not a folder"),
        (
            ["--inputs", "{clips}", "--out", "{tmp}/o", "--spotter", "learned", "--spotter-model", "{tmp}/x.npz"],
            "x.npz",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(clips, tmp_path, capsys, args, needle):
    argv = [a.format(tmp=tmp_path, clips=clips) for a in args]
    try:
        code = batch.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_help_teaches_inputs_outputs_resume_and_the_cluster_recipe(capsys):
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for needle in ("LIST.txt", "GLOB", "summary.json", "batch.csv", "report.html", "resume", "ray start --head"):
        assert needle in text
    assert "ray start --address HEAD:6379" in text and "--address HEAD:6379" in text
    assert "examples:" in text
