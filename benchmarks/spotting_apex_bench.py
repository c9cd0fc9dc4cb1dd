"""Apex bench: where the learned spotter puts a micro-expression's apex, on still faces of the training photos.

Scripted clips (:mod:`training.synth.scripted`: a training photo, 120 px wide in a 320×240 frame, three
micro-expressions of 2–3 px and 140–450 ms with the apex at 35–55 % of the duration, and a blink) go through the
stream's pipeline (face stage and streaming spotter, ``spotting_bench.spot_pipeline``) frame by frame, as
``stream.py`` runs a recorded video, at each frame rate asked. For every true micro-expression that a reported
one overlaps: the apex error in milliseconds (reported minus true), its mean size and sign, and how many are more
than a frame off. The same clips at 30 and 60 fps show whether a model or a decision change holds up at a rate
the model was not trained at (every spotter file so far saw 30 fps only).

Never the benchmark's held-out faces: the clips use the training photos, so this judges a change before the
held-out run of ``spotting_bench.py``. With the committed file, before and after stop 32's apex from the onset
position (defaults: 15 clips, seed 8): mean apex error 13.2 -> 7.8 ms at 30 fps (signed -10.1 -> +6.2), 11.7 ->
4.5 ms at 60 fps (-10.2 -> +1.5; more than a frame off 5 -> 0 of 44), the same events found.

    .venv/bin/python benchmarks/spotting_apex_bench.py [--clips 15] [--fps 30 60] [--seed 8]
        [--spotter-model FILE] [--json runs/spotting_apex_bench.json]

About 40 seconds for 15 clips at 30 and 60 fps on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_bench import Interval, spot_pipeline, timed_frames  # noqa: E402

from realtime.core.errors import UserInputError  # noqa: E402
from realtime.stages.spotter import Spotter, SpotterOptions  # noqa: E402
from training.synth.photos import HELD_OUT_PHOTOS, PHOTO_NAMES  # noqa: E402
from training.synth.scripted import ClipSpec, Motion, blink, frames, micro  # noqa: E402

ACTIONS = ("smile", "brow_raise", "brow_lower", "lip_corner_depressor", "chin_raise")
PHOTOS = tuple(sorted(name for name in PHOTO_NAMES if name not in HELD_OUT_PHOTOS))  # the training photos


def planned_motions(rng: np.random.Generator) -> tuple[Motion, ...]:
    """Three micro-expressions 0.5–0.9 s apart, then a blink."""
    motions, t_ms = [], 1200.0
    for _ in range(3):
        duration_ms = float(rng.uniform(140.0, 450.0))
        action = str(rng.choice(ACTIONS))
        motions.append(micro(action, t_ms, duration_ms, float(rng.uniform(2.0, 3.0)), float(rng.uniform(0.35, 0.55))))
        t_ms += duration_ms + float(rng.uniform(500.0, 900.0))
    motions.append(blink(t_ms, 200.0))
    return tuple(motions)


def apex_errors_ms(spec: ClipSpec, micros: list[Interval]) -> tuple[list[float], int]:
    """Reported minus true apex (ms) for each true micro-expression a reported one overlaps (the nearest apex
    among them), and how many micro-expression events were reported."""
    errors = []
    for true in spec.truth():
        overlapping = [e for e in micros if e.onset_frame <= true.offset_frame and e.offset_frame >= true.onset_frame]
        if overlapping:
            nearest = min(overlapping, key=lambda e: abs(e.apex_frame - true.apex_frame))
            errors.append((nearest.apex_frame - true.apex_frame) * 1000.0 / spec.fps)
    return errors, len(micros)


def summary(errors: list[float], reported: int, true: int, fps: float) -> dict:
    """One frame rate's row: micro-expressions found and reported, mean apex error (size and sign), how many are
    more than a frame off."""
    a = np.asarray(errors, float)
    return {
        "fps": fps,
        "true": true,
        "found": len(a),
        "reported": reported,
        "mean_abs_ms": round(float(np.abs(a).mean()), 1) if len(a) else None,
        "mean_signed_ms": round(float(a.mean()), 1) if len(a) else None,
        "over_one_frame": int((np.abs(a) > 1000.0 / fps + 1e-6).sum()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=15, help="clips per frame rate, the photos in turn (default 15)")
    parser.add_argument("--fps", type=float, nargs="+", default=[30.0, 60.0], help="frame rates (default 30 60)")
    parser.add_argument("--seed", type=int, default=8, help="draws the micro-expressions (default 8)")
    parser.add_argument("--spotter-model", default=None, help="a spotter file (default weights/spotter.npz)")
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_apex_bench.json")
    args = parser.parse_args(argv)
    if args.clips < 1 or any(not 25.0 <= fps <= 240.0 for fps in args.fps):
        print("spotting_apex_bench: --clips must be at least 1 and each --fps 25-240", file=sys.stderr)
        return 2
    try:
        Spotter(SpotterOptions(method="learned", model=args.spotter_model))  # checked before any clip is made
    except UserInputError as error:
        print(f"spotting_apex_bench: {error}", file=sys.stderr)
        return 2

    from tqdm import tqdm

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    plans = [(PHOTOS[n % len(PHOTOS)], planned_motions(rng)) for n in range(args.clips)]
    rows = []
    for fps in args.fps:
        errors, reported, true = [], 0, 0
        for n, (photo, motions) in enumerate(tqdm(plans, desc=f"{fps:g} fps", unit="clip")):
            duration_ms = motions[-1].offset_ms + 800.0
            spec = ClipSpec(fps=fps, duration_ms=duration_ms, photo=photo, motions=motions, seed=args.seed + n)
            micros, _ = spot_pipeline(timed_frames(frames(spec), fps), "learned", args.spotter_model)
            clip_errors, clip_reported = apex_errors_ms(spec, micros)
            errors += clip_errors
            reported += clip_reported
            true += len(spec.truth())
        rows.append(summary(errors, reported, true, fps))
    print(f"apex bench: {args.clips} scripted still-face clips of the training photos per rate, seed {args.seed}")
    print("    fps  found  reported  mean |error| ms  mean signed ms  more than a frame off")
    for row in rows:
        mean_abs = "-" if row["mean_abs_ms"] is None else f"{row['mean_abs_ms']:.1f}"
        signed = "-" if row["mean_signed_ms"] is None else f"{row['mean_signed_ms']:+.1f}"
        print(
            f"  {row['fps']:5g}  {row['found']:>2}/{row['true']:<3} {row['reported']:>6}  {mean_abs:>15}  "
            f"{signed:>14}  {row['over_one_frame']:>21}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    facts = {"command": " ".join(sys.argv), "seconds": round(time.perf_counter() - started, 1), "rates": rows}
    args.json.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
