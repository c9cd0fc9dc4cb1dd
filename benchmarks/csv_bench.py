"""What the per-frame table costs: fps and file size per minute of video, without a table, with the narrow
table (``--no-csv-landmarks``) and with the wide one (the 68 landmarks), plus the head pose fit alone.

The clip is generated (:mod:`training.synth.au_clips`: Grace Hopper, 640×480, 30 fps, a micro-expression
every 35 frames), rendered once into memory and served to :meth:`realtime.Recognizer.run` — the loop
``stream.py`` runs — so decoding is left out and the three runs see the same frames. Each mode runs
``--repeats`` times in turn; the fastest run of each is reported (other programs share this machine).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/csv_bench.py [--events 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.api import Recognizer  # noqa: E402
from realtime.core.pose import PoseEstimator  # noqa: E402
from realtime.process import Outputs  # noqa: E402
from realtime.stages.capture import RecordedSource  # noqa: E402
from realtime.stages.outputs import FrameCsvWriter  # noqa: E402
from training.synth.au_clips import au_clip  # noqa: E402

ACTIONS = [("1", "2"), ("4",), ("12",), ("15",), ("17",), ("14",), ("1",), ("10",)]


class _Frames:
    """A capture-like reader over frames in memory (``read() → (ok, image)``)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.position = frames, 0

    def read(self):
        if self.position >= len(self.frames):
            return False, None
        self.position += 1
        return True, self.frames[self.position - 1]

    def get(self, _prop):
        return 0.0

    def release(self) -> None:
        pass


def _run(recognizer: Recognizer, frames: list[np.ndarray], fps: float, csv: Path | None, landmarks: bool):
    source = RecordedSource(_Frames(frames), fps, "memory")
    outputs = Outputs(csv=FrameCsvWriter(csv, landmarks=landmarks) if csv is not None else None)
    pipeline = recognizer.pipeline()
    try:
        stats = recognizer.run(source, pipeline, outputs)
    finally:
        pipeline.close()
        outputs.close()
    return stats.frames / stats.elapsed_s, stats.times.mean()["output"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=8, help="micro-expressions in the clip (35 frames each)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    renderer = au_clip([ACTIONS[i % len(ACTIONS)] for i in range(args.events)], size=(640, 480))
    frames = list(renderer.frames())
    fps = renderer.spec.fps
    minutes = len(frames) / fps / 60.0
    recognizer = Recognizer(model=False)  # spotting only: the table's cost is what is measured
    modes = {"no table": (None, True), "narrow table": ("narrow.csv", False), "wide table": ("wide.csv", True)}
    best: dict[str, tuple[float, float]] = {}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (file, landmarks) in modes.items():
                path = Path(tmp) / file if file else None
                rate, output_ms = _run(recognizer, frames, fps, path, landmarks)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, output_ms)
                if path is not None:
                    sizes[name] = path.stat().st_size / minutes / 1e6
    estimator = PoseEstimator()
    points = renderer.landmarks
    started = time.perf_counter()
    for p in points:
        estimator.estimate(p, (640, 480))
    pose_ms = 1000.0 * (time.perf_counter() - started) / len(points)

    print(
        f"clip: {len(frames)} frames, 640x480 at {fps:g} fps ({60 * minutes:.1f} s), one face; best of {args.repeats}"
    )
    for name, (rate, output_ms) in best.items():
        size = f", {sizes[name]:.2f} MB per minute of video" if name in sizes else ""
        print(f"{name:13s} {rate:6.1f} fps, output stage {output_ms:.3f} ms per frame{size}")
    print(f"head pose fit alone: {pose_ms:.3f} ms per face")
    return 0


if __name__ == "__main__":
    sys.exit(main())
