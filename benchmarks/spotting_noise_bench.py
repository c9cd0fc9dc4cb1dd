"""Spotting noise budget: which nuisance hides micro-expressions from the learned spotter's motion measurement?

The learned spotter (``realtime/stages/spotter/learned.py``) measures each cell's rise-and-fall contrast and divides
it by the cell's usual level, so what decides whether a micro-expression can be seen is how far its strongest
cell stands out from everything else the face does. This bench renders realistic clips with one nuisance at a
time (on top of a camera's sensor noise and H.264), reads them as ``stream.py`` does, collects the spotter's
candidates (:func:`training.spotting.collect`, the code the spotter's training uses) and reports per group:

- ``level``: the face-wide level of cell contrast at 67 ms (the median cell, crop pixels of the 128 px aligned
  face): the motion noise the decision sees;
- ``micro z``: the median over the micro-expressions of their strongest cell's z (contrast over level) at 67 ms,
  within two frames of the true apex;
- ``rest p99`` / ``p99.9``: the same feature on every other candidate (more than two frames away from any
  micro-expression or blink);
- ``stand out``: the share of micro-expressions whose z is above the rest's 99.9th percentile (about one
  candidate in a thousand, i.e. a false alarm every half minute at 30 fps if that alone decided).

Micro-expressions are all placed in still stretches (``during_share`` 0), so the figures are about the noise
floor, not about overlapping another movement. It is a diagnostic of the measurement, not a score: by default it
runs on the training photos (the spotter's score on faces it never saw is ``benchmarks/spotting_bench.py``).

    .venv/bin/python benchmarks/spotting_noise_bench.py [--quick] [--groups still face_motion ...]
        [--photos tuning] [--clips 10] [--seconds 10] [--workers 2] [--json runs/spotting_noise_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from realtime.core.errors import UserInputError  # noqa: E402
from realtime.stages.spotter.learned import FEATURE_NAMES  # noqa: E402
from training.spotting import ClipFeatures, collect  # noqa: E402
from training.synth.faces import load_face_photos  # noqa: E402
from training.synth.realistic import (  # noqa: E402
    NUISANCES,
    SOMETIMES,
    RealisticSettings,
    photo_files,
    plan_realistic_clips,
    resolve_photos,
)

CAMERA = frozenset({"noise", "compression"})
GROUPS: dict[str, tuple[frozenset[str], float]] = {
    # name → (nuisances, face-motion scale)
    "still": (frozenset(), 1.0),
    "compression": (frozenset({"compression"}), 1.0),
    "camera": (CAMERA, 1.0),
    "face_motion": (CAMERA | {"face_motion"}, 1.0),
    "face_motion_half": (CAMERA | {"face_motion"}, 0.5),
    "sway": (CAMERA | {"sway"}, 1.0),
    "light": (CAMERA | {"lighting", "exposure", "white_balance"}, 1.0),
    "blinks": (CAMERA | {"blinks"}, 1.0),
    "talking": (CAMERA | {"talking"}, 1.0),
    "head_turns": (CAMERA | {"head_turns"}, 1.0),
    "expressions": (CAMERA | {"expressions"}, 1.0),
    "small_face": (CAMERA | {"small_face"}, 1.0),
    "low_resolution": (CAMERA | {"low_resolution"}, 1.0),
    "all": (frozenset(NUISANCES), 1.0),
}
"""Every group but ``still`` and ``compression`` has the camera's sensor noise and H.264 on; ``all`` is the
realistic set's mix (the small face, low resolution, hand and leaving in about one clip in three)."""
SCALE_MS = 67
NEAR_FRAMES = 2


@dataclass(frozen=True)
class Budget:
    """One group's figures (see the module's docstring)."""

    group: str
    clips: int
    micro: int
    level_px: float
    micro_z: float
    rest_p99: float
    rest_p999: float
    stand_out: float


def plan(groups: list[str], photos: tuple[str, ...], clips: int, seconds: float, seed: int) -> list[tuple[str, object]]:
    """(group, clip spec) for every clip of every group, ``clips`` per group spread over the photos."""
    faces = load_face_photos(photo_files(photos))
    jobs = []
    for number, group in enumerate(groups):
        nuisances, scale = GROUPS[group]
        settings = RealisticSettings(
            seconds=seconds,
            nuisances=nuisances,
            sometimes=frozenset(SOMETIMES) & nuisances if group == "all" else frozenset(),
            during_share=0.0,
            face_motion_scale=scale,
        )
        jobs += [(group, spec) for spec in plan_realistic_clips(faces, settings, seed + number, clips)]
    return jobs


def budget(group: str, clips: list[ClipFeatures]) -> Budget:
    """The group's figures from its clips' collected candidates."""
    top = FEATURE_NAMES.index(f"top1@{SCALE_MS}ms")
    level = FEATURE_NAMES.index(f"level@{SCALE_MS}ms")
    micro, rest, levels = [], [], []
    for clip in clips:
        if not len(clip.frames):
            continue
        z = np.expm1(clip.features[:, top])
        levels.append(float(np.exp(np.median(clip.features[:, level]))))
        away = np.ones(len(clip.frames), bool)
        for event in clip.truth["events"]:
            if event["kind"] not in ("micro", "blink"):
                continue
            near = (clip.frames >= event["onset_frame"] - NEAR_FRAMES) & (
                clip.frames <= event["offset_frame"] + NEAR_FRAMES
            )
            away &= ~near
            at_apex = np.abs(clip.frames - event["apex_frame"]) <= NEAR_FRAMES
            if event["kind"] == "micro" and at_apex.any():
                micro.append(float(z[at_apex].max()))
        rest.append(z[away])
    others = np.concatenate(rest) if rest else np.zeros(0)
    p99, p999 = (float(np.percentile(others, q)) if len(others) else float("nan") for q in (99.0, 99.9))
    micro_z = np.asarray(micro)
    return Budget(
        group,
        len(clips),
        len(micro),
        round(float(np.median(levels)) if levels else float("nan"), 4),
        round(float(np.median(micro_z)) if len(micro_z) else float("nan"), 2),
        round(p99, 2),
        round(p999, 2),
        round(float((micro_z > p999).mean()) if len(micro_z) else float("nan"), 2),
    )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS), help="the groups to measure (default: all)"
    )
    parser.add_argument(
        "--photos",
        default="tuning",
        help="face photos, or a group: tuning (default: the training photos), held-out, all",
    )
    parser.add_argument("--clips", type=int, default=None, help="clips per group (default 10; quick 5)")
    parser.add_argument("--seconds", type=float, default=None, help="clip length (default 10; quick 6)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter clips (about a fifth of the time)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "runs" / "spotting_noise_bench.json", help="where the JSON goes"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    clips = args.clips if args.clips is not None else (5 if args.quick else 10)
    seconds = args.seconds or (6.0 if args.quick else 10.0)
    try:
        if not 1 <= clips <= 200:
            raise UserInputError(f"--clips must be 1-200, got {clips}")
        photos = resolve_photos(args.photos)
        jobs = plan(args.groups, photos, clips, seconds, args.seed)
    except UserInputError as error:
        print(f"spotting_noise_bench: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    collected = collect(jobs, workers=args.workers, progress=True, seconds=seconds)
    elapsed = time.perf_counter() - started
    rows = [
        budget(group, [c for (g, _), c in zip(jobs, collected, strict=True) if g == group]) for group in args.groups
    ]
    print(
        f"spotting noise budget: {len(jobs)} clips of {seconds:g} s on {', '.join(photos)}, {elapsed:.0f} s with "
        f"{args.workers} workers; the strongest cell's z at {SCALE_MS} ms (contrast over the cell's usual level)"
    )
    print(f"  {'group':18s} clips  micro  level px  micro z  rest p99  rest p99.9  stand out")
    for row in rows:
        print(
            f"  {row.group:18s} {row.clips:5d}  {row.micro:5d}  {row.level_px:8.3f}  {row.micro_z:7.1f}  "
            f"{row.rest_p99:8.1f}  {row.rest_p999:10.1f}  {row.stand_out:9.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "command": "benchmarks/spotting_noise_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "photos": list(photos),
        "seconds": round(elapsed, 1),
        "groups": [row.__dict__ for row in rows],
    }
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
