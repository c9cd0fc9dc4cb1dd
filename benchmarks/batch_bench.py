"""Batch processing on Ray: throughput with 1 and 2 workers, overhead against stream.py, time to skip.

On the same generated clips (a real face photo with micro-expressions, blinks and head drift):

- ``python -m realtime.batch`` with ``--workers 1`` and ``--workers 2``: wall time end to end, and the
  processing time (the first video handed out to the last result back: Ray's start, the models' loading and
  Ray's shutdown excluded), and the speed-up; with the CPU seconds a video takes (all its threads, the
  decoder's included) the bound on that speed-up: a video that keeps 1.8 of 2 cores busy leaves 2 workers
  little to gain;
- ``python stream.py --source CLIP --events ...`` on each clip: its in-loop time per video (frames / fps from
  its ``--benchmark`` line), against the batch's steady-state time per video with one worker: the overhead of
  the batch machinery (dispatch, signal/summary files, atomic renames);
- the time for ``python -m realtime.batch`` to find that 100 videos are already finished (a fresh process,
  end to end; the 100 finished folders are made by copying one real result under each video's key).

    .venv/bin/python benchmarks/batch_bench.py [--clips 6] [--seconds 6] [--size 640x480] [--codec mp4v]

``--codec``: mp4v (.mp4, the default: compressed like a camera's recording), MJPG (.avi) or FFV1 (.avi,
lossless: its decoding alone takes about 15 ms of CPU a 640x480 frame, on two threads, more than the face
and spotting stages together).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from export.untrained import make_tiny_model  # noqa: E402
from realtime.batch import command as batch  # noqa: E402
from training.synth.scripted import ClipSpec, blink, micro, write  # noqa: E402


def clip_spec(i: int, seconds: float, size: tuple[int, int]) -> ClipSpec:
    motions, t = [], 1200.0
    actions = ("smile", "brow_raise", "lip_corner_depressor", "brow_lower")
    while t < seconds * 1000.0 - 1200.0:
        motions.append(micro(actions[(i + len(motions)) % 4], t, 300.0, 2.0))
        motions.append(blink(t + 800.0, 200.0))
        t += 2000.0
    return ClipSpec(
        fps=30.0,
        duration_ms=seconds * 1000.0,
        size=size,
        face_width_px=size[0] * 0.3,
        motions=tuple(motions),
        drift_px=2.0,
        drift_deg=0.5,
        seed=i,
    )


def env() -> dict:
    out = {**os.environ, "PYTHONPATH": str(ROOT)}
    out.pop("RAY_ADDRESS", None)
    out.pop("DISPLAY", None)
    return out


def run_batch(inputs: Path, out: Path, model: Path, *extra: str) -> tuple[float, dict, str]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "realtime.batch", "--inputs", inputs, "--out", out, "--model", model, "--quiet"]
    result = subprocess.run(
        [*map(str, command), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"batch failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, json.loads((out / "batch.json").read_text()), result.stdout.strip().splitlines()[-1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stream(clip: Path, model: Path, events: Path) -> tuple[float, float, float]:
    """(process wall seconds, in-loop seconds, CPU seconds of the whole process) of one stream.py run."""
    started, cpu = time.perf_counter(), _children_cpu()
    command = [
        sys.executable,
        ROOT / "stream.py",
        "--source",
        clip,
        "--model",
        model,
        "--no-display",
        "--events",
        events,
    ]
    result = subprocess.run(
        [*map(str, command), "--quiet", "--benchmark"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
    )
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"stream.py failed: {result.stderr[-2000:]}")
    frames = int(re.search(r"frames (\d+)", result.stdout).group(1))
    fps = float(re.search(r"benchmark: ([\d.]+) fps overall", result.stdout).group(1))
    return wall, frames / fps, cpu


def fake_finished(n: int, template_clip: Path, template_out: Path, model: Path, folder: Path) -> Path:
    """``n`` distinct video files, each with a finished result folder under its own resume key."""
    videos = folder / "videos"
    videos.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = videos / f"v{i:03d}{template_clip.suffix}"
        shutil.copyfile(template_clip, path)
        paths.append(path.resolve())
    listing = folder / "videos.txt"
    listing.write_text("\n".join(str(p) for p in paths) + "\n")
    out = folder / "out"
    args = SimpleNamespace(out=out, fps=None, max_faces=1, csv=False, annotate=False, device="auto")
    _, jobs = batch.plan(args, paths, model.resolve(), batch.file_sha256(model))
    summary = json.loads((template_out / "summary.json").read_text())
    for job in jobs:
        target = Path(job.folder)
        target.mkdir(parents=True)
        for name in ("events.jsonl", "signal.json"):
            shutil.copyfile(template_out / name, target / name)
        record = {**summary, "input": job.input, "name": job.name, "key": job.key}
        record["key_digest"] = job.key_digest
        (target / "summary.json").write_text(json.dumps(record))
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--skip-videos", type=int, default=100)
    parser.add_argument("--codec", choices=("mp4v", "MJPG", "FFV1"), default="mp4v")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    suffix = ".mp4" if args.codec == "mp4v" else ".avi"

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        tmp = Path(tmp)
        model = make_tiny_model(tmp / "tiny.onnx", input_size=64)
        clips = tmp / "clips"
        clips.mkdir()
        paths = [
            write(clip_spec(i, args.seconds, size), clips / f"clip{i}{suffix}", args.codec) for i in range(args.clips)
        ]
        cores = os.cpu_count() or 1
        print(
            f"{len(paths)} {args.codec} clips of {args.seconds:g} s at 30 fps, {size[0]}x{size[1]}; "
            f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )

        stream_walls, stream_loops, stream_cpu = [], [], []
        for i, clip in enumerate(paths):
            wall, loop, cpu = run_stream(clip, model, tmp / f"stream{i}.jsonl")
            stream_walls.append(wall)
            stream_loops.append(loop)
            stream_cpu.append(cpu)
        stream_events = sum(len((tmp / f"stream{i}.jsonl").read_text().splitlines()) for i in range(len(paths)))
        print(
            f"stream.py: {sum(stream_walls):.1f} s for all clips end to end ({sum(stream_walls) / len(paths):.2f} s a "
            f"video, {sum(stream_cpu) / len(paths):.2f} CPU s a video with start-up), in-loop "
            f"{sum(stream_loops) / len(paths):.2f} s a video; {stream_events} events",
            flush=True,
        )

        results = {}
        for workers in (1, 2):
            wall, meta, line = run_batch(clips, tmp / f"out{workers}", model, "--workers", str(workers))
            steady = meta["processing_s"]
            results[workers] = (wall, steady, meta)
            done = [v for v in meta["videos"] if v["status"] == "done"]
            summaries = [json.loads((Path(v["output"]) / "summary.json").read_text()) for v in done]
            busy = sum(s["cpu_s"] for s in summaries) / sum(s["wall_s"] for s in summaries)
            cpu_per_video = sum(s["cpu_s"] for s in summaries) / len(summaries)
            in_loop = sum(s["frames"] / s["processing_fps"] for s in summaries if s["processing_fps"]) / len(summaries)
            results[workers] += (busy, cpu_per_video, in_loop)
            print(
                f"batch --workers {workers}: {wall:.1f} s end to end (Ray up {meta['ray_start_s']:.1f} s, workers "
                f"ready {meta['workers_ready_s']:.1f} s, Ray stopped in {meta['ray_stop_s']:.1f} s), {steady:.1f} s "
                f"processing = {steady / len(paths):.2f} s a video, {cpu_per_video:.2f} CPU s a video (a worker "
                f"keeps {busy:.2f} cores busy); {sum(s['events'] for s in summaries)} events; {line.split(' (')[0]}",
                flush=True,
            )
        # 2 workers cannot go faster than the machine's cores allow: each video needs its CPU seconds (as the
        # 2-worker run measured them: with one thread each for OpenCV and ONNX Runtime)
        bound = min(2.0, cores * (results[1][1] / len(paths)) / results[2][4])
        speedup = results[1][1] / results[2][1]
        speedup_e2e = results[1][0] / results[2][0]
        per_video_batch = results[1][1] / len(paths)
        per_video_stream = sum(stream_loops) / len(paths)
        overhead = 100.0 * (per_video_batch / per_video_stream - 1.0)
        # the same frame loop inside the worker against the whole per-video cost: what the machinery itself adds
        machinery = 100.0 * (per_video_batch / results[1][5] - 1.0)
        print(
            f"speed-up 1 → 2 workers: {speedup:.2f}× processing, {speedup_e2e:.2f}× end to end (target ≥ 1.8×; "
            f"at most {bound:.2f}× on {cores} cores at {results[2][4]:.2f} CPU s a video; one worker alone keeps "
            f"{results[1][3]:.2f} cores busy)"
        )
        print(
            f"overhead of the batch machinery per video (1 worker, processing vs stream.py in-loop): "
            f"{overhead:+.1f} % (target < 5 %), of which outside the worker's own frame loop "
            f"({results[1][5]:.2f} s a video) {machinery:+.1f} %; end to end the batch takes {results[1][0]:.1f} s "
            f"against {sum(stream_walls):.1f} s for one stream.py per clip"
        )

        template = next(p for p in (tmp / "out1").iterdir() if (p / "summary.json").is_file())
        listing = fake_finished(args.skip_videos, paths[0], template, model, tmp / "skip")
        wall, meta, line = run_batch(listing, tmp / "skip" / "out", model)
        print(f"skip {args.skip_videos} finished videos: {wall:.2f} s end to end (target < 2 s); {line.split(' (')[0]}")


if __name__ == "__main__":
    main()
