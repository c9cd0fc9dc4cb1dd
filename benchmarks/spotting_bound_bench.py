"""Spotting bound: how far could a spotter go on the realistic generator if it measured the face perfectly?

The realistic clips (``python -m training synth videos --set realistic``) give the face its own movement on
purpose (action-unit drift, landmark jitter, gaze), as large as a micro-expression's over 100 ms. Is what is
left enough to find micro-expressions at the issue's target (F1 >= 0.8 within one false alarm a minute), or does
the generator itself forbid it? This bench answers without pixels: it takes the generator's exact per-frame
movement of the face (``RealisticRenderer.landmarks - rest_landmarks``: head motion removed exactly, no camera,
no face stage) and trains a small learned detector on it, leave-one-photo-out, in variants:

- ``landmarks``: the 68 landmarks' own movement;
- ``landmarks+N px``: the same with independent Gaussian noise of N frame pixels on every landmark and frame
  (``--noise-px``): the precision a measurement must reach;
- ``landmarks-affine``: the landmarks' exact positions with the head's motion removed as a measurement must,
  by a robust affine fit from each frame to the next (the residuals summed): what a perfect landmark tracker
  with a 2-D head model would see, turns in depth included;
- ``patches``: the exact pixel movement averaged over a box around each landmark (0.24 IOD wide, about the
  window a patch tracker needs): what a perfect tracker of each landmark's patch would see;
- ``cells``: the exact pixel movement averaged over an 8×8 grid over the face's landmark box (what a perfect
  optical flow over cells like the learned spotter's would see; the mesh's motion, interpolated).

Features per candidate (a frame 133 ms behind the newest, the stream's lag until stop 35; 100 ms since): for each
point, at 1-4 frames, the log of its rise-and-fall contrast |u(c) - (u(c-k) + u(c+k))/2| and of its net change
|u(c+k) - u(c-k)|, and its contrast at 2 frames against its own running median over the last 2 s (log). The spotter
trainer's MLP (hidden 128, 64) learns micro-expression apexes (within a quarter of the event's length) from rest, on
the clips the trainer uses (``training.spotting.plan_training_clips``: realistic and nuisance-only) of four training
photos, and is scored on clips of the fifth made the way ``benchmarks/spotting_bench.py`` makes its realistic set
(the same groups: base, base + each nuisance, mixed, nuisance-only). Everything stays on the training photos; the
benchmark's held-out faces are never used.

The bound is generous on purpose: a run of candidates over the threshold is one event at its most probable
frame, and it is a hit when that apex lies inside a true micro-expression (± 1 frame), not by IoU; the
threshold is chosen on the scored clips themselves. What the learned spotter reaches on the same clips, with
the same protocol and today's measurement, is in ``weights/SPOTTER.md``.

    .venv/bin/python benchmarks/spotting_bound_bench.py [--variants landmarks cells] [--noise-px 0.1 0.3]
        [--quick] [--seed 0] [--workers 2] [--json runs/spotting_bound_bench.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_bench import DEV_PHOTOS, DEV_SEED, groups_per_photo  # noqa: E402

from training.metrics import apex_hits  # noqa: E402
from training.spotting import (  # noqa: E402
    APEX_SHARE,
    SpotTrainingSettings,
    micro_intervals,
    plan_training_clips,
    train_model,
)
from training.synth.mesh import barycentric  # noqa: E402
from training.synth.realistic import RealisticClipSpec, RealisticRenderer  # noqa: E402

SCALES_FRAMES = (1, 2, 3, 4)
LAG_FRAMES = 4  # 133 ms at 30 fps: the stream's lag when this bench was made (100 ms since stop 35)
FIRST_FRAME = 12
LEVEL_FRAMES = 60
GRID = 8
SAMPLES_PER_CELL = 4
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
PATCH_IOD = 0.12  # half the side of the box around each landmark, in IODs (about 11 px on a 90 px IOD)
SAMPLES_PER_PATCH = 5
VARIANTS = ("landmarks", "landmarks-affine", "patches", "cells")


@dataclass(frozen=True)
class Track:
    """One clip's exact movement, IOD units, with its truth: ``landmarks``, ``landmarks_affine``, ``patches``
    (T×68×2) and ``cells`` (T×64×2); see the module's docstring."""

    role: str  # "train" (the trainer's clips) or "scored" (bench-like clips)
    group: str
    photo: str
    fps: float
    iod_px: float
    landmarks: np.ndarray
    landmarks_affine: np.ndarray
    cells: np.ndarray
    patches: np.ndarray
    truth: dict

    def points(self, variant: str) -> np.ndarray:
        """The tracks a variant's detector sees."""
        return {
            "landmarks": self.landmarks,
            "landmarks-affine": self.landmarks_affine,
            "cells": self.cells,
            "patches": self.patches,
        }[variant]


def affine_residual(before: np.ndarray, after: np.ndarray, rounds: int = 4) -> np.ndarray:
    """``after`` minus the robust affine map of ``before`` (P×2 each): least squares reweighted so that points
    moving far from the fit (over twice the residuals' robust spread) count less."""
    design = np.hstack([before, np.ones((len(before), 1))])
    weights = np.ones(len(before))
    residual = after - before
    for _ in range(rounds):
        matrix, *_ = np.linalg.lstsq(design * weights[:, None], after * weights[:, None], rcond=None)
        residual = after - design @ matrix
        size = np.linalg.norm(residual, axis=1)
        spread = 1.4826 * float(np.median(size)) + 1e-3
        weights = np.minimum(1.0, 2.0 * spread / np.maximum(size, 1e-9))
    return residual


def _mean_motion(own: np.ndarray, mesh, centres: np.ndarray, half: np.ndarray, samples: int) -> np.ndarray:
    """The exact pixel motion (T×K×2) averaged over a box of half-sizes ``half`` around each of the K
    ``centres`` (neutral-face pixels), sampled on a ``samples``×``samples`` grid and interpolated over the
    mesh's triangles as the renderer moves the pixels."""
    steps = ((np.arange(samples) + 0.5) / samples) * 2.0 - 1.0
    dx, dy = np.meshgrid(steps * half[0], steps * half[1])
    offsets = np.stack([dx.ravel(), dy.ravel()], axis=1)
    points = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    vertices, weights = barycentric(points, mesh.source, mesh.triangles)
    moved = np.einsum("pk,tpkc->tpc", weights, own[:, vertices])
    return moved.reshape(len(own), len(centres), len(offsets), 2).mean(axis=2)


def cell_grid(neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``GRID``×``GRID`` cells over the face's landmark box (widened upwards for the brows' skin above the
    landmarks): their centres (GRID²×2, row by row) and one cell's size (2,), neutral-face pixels."""
    low, high = neutral.min(axis=0), neutral.max(axis=0)
    size = high - low
    low, high = low - np.array([0.05, 0.2]) * size, high + 0.05 * size
    cell = (high - low) / GRID
    centres = np.stack(np.meshgrid(*((np.arange(GRID) + 0.5) * cell[i] + low[i] for i in (0, 1))), axis=-1)
    return centres.reshape(-1, 2), cell


def exact_track(job: tuple[str, str, RealisticClipSpec]) -> Track:
    """A clip's exact own movement, from the generator's mesh (no pixels are rendered)."""
    role, group, spec = job
    renderer = RealisticRenderer(spec)
    n = spec.n_frames
    mesh = renderer.mesh
    still = np.zeros((n, len(mesh.face_points), 2))
    shift_px = renderer.iod * spec.shift_iod
    rest = mesh.project(still, spec.yaw_deg, spec.pitch_deg, spec.roll_deg, spec.scale, shift_px, spec.pan_px)
    own = renderer.vertices - rest  # every vertex, pixels; the border's is zero
    centres, cell = cell_grid(renderer.neutral)
    cells = _mean_motion(own, mesh, centres, cell / 2.0, SAMPLES_PER_CELL)
    half = np.full(2, PATCH_IOD * renderer.iod)
    patches = _mean_motion(own, mesh, renderer.neutral, half, SAMPLES_PER_PATCH)
    landmarks = renderer.landmarks - renderer.rest_landmarks
    steps = np.zeros_like(renderer.landmarks)
    for t in range(1, n):
        steps[t] = affine_residual(renderer.landmarks[t - 1], renderer.landmarks[t])
    return Track(
        role,
        group,
        Path(spec.photo).stem,
        float(spec.fps),
        float(renderer.iod),
        (landmarks / renderer.iod).astype(np.float32),
        (np.cumsum(steps, axis=0) / renderer.iod).astype(np.float32),
        (cells / renderer.iod).astype(np.float32),
        (patches / renderer.iod).astype(np.float32),
        renderer.truth(),
    )


def plan(quick: bool, seed: int) -> list[tuple[str, str, RealisticClipSpec]]:
    """The trainer's realistic and nuisance-only clips of the training photos, and per photo the spotting
    bench's groups (fewer with ``quick``)."""
    settings = SpotTrainingSettings(seed=seed, quiet_clips=4 if quick else 20, realistic_clips=20 if quick else 100)
    jobs = [("train", kind, spec) for kind, spec in plan_training_clips(settings, DEV_PHOTOS) if kind != "lab"]
    scored = groups_per_photo(DEV_PHOTOS, quick, settings.seconds, seed + DEV_SEED)
    return jobs + [("scored", group, spec) for group, spec in scored]


def features(own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidate frames, features) of one track (T×P×2): see the module's docstring."""
    n, points = own.shape[:2]
    frames = np.arange(FIRST_FRAME, n - LAG_FRAMES)
    columns = []
    for k in SCALES_FRAMES:
        now, before, after = own[frames], own[frames - k], own[frames + k]
        columns += [np.linalg.norm(now - 0.5 * (before + after), axis=2), np.linalg.norm(after - before, axis=2)]
    contrast = np.zeros((n, points), np.float32)
    contrast[2:-2] = np.linalg.norm(own[2:-2] - 0.5 * (own[:-4] + own[4:]), axis=2)
    level = np.full((len(frames), points), 1e-3, np.float32)
    for i, frame in enumerate(frames):
        newest = frame + LAG_FRAMES - 1  # the newest contrast the stream knows at this candidate
        oldest = max(0, newest - LEVEL_FRAMES)
        if newest > oldest:
            level[i] = np.median(contrast[oldest:newest], axis=0)
    eps = 1e-4
    out = [np.log(c + eps) for c in columns] + [np.log((columns[2] + eps) / (level + eps))]
    return frames, np.concatenate(out, axis=1).astype(np.float32)


def apex_labels(frames: np.ndarray, truth: dict) -> np.ndarray:
    """1 near a micro-expression's apex, -1 elsewhere inside it (left out), 0 everywhere else."""
    labels = np.zeros(len(frames), np.int64)
    for event in truth["events"]:
        if event["kind"] != "micro":
            continue
        onset, apex, offset = event["onset_frame"], event["apex_frame"], event["offset_frame"]
        labels[(frames >= onset) & (frames <= offset) & (labels == 0)] = -1
        labels[np.abs(frames - apex) <= max(1, round(APEX_SHARE * (offset - onset)))] = 1
    return labels


def fit_predict(train: list[tuple[np.ndarray, np.ndarray]], scored: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """The spotter trainer's MLP (:func:`training.spotting.train_model`: hidden 128, 64; 25 epochs; one member)
    fitted on (features, labels) of the training clips; p(micro) of every scored clip's candidates."""
    settings = SpotTrainingSettings(seed=seed, hidden=(128, 64), epochs=25, members=1)
    x = np.concatenate([features for features, _ in train])
    model = train_model(x, np.concatenate([labels for _, labels in train]), settings)
    return [model.predict(features)[:, 1] for features in scored]


def apexes(frames: np.ndarray, p_micro: np.ndarray, threshold: float) -> list[int]:
    """Runs of candidates at or over the threshold (a one-candidate dip does not end a run): each run's most
    probable frame."""
    above = p_micro >= threshold
    out, i = [], 0
    while i < len(above):
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(above) and (above[j + 1] or (j + 2 < len(above) and above[j + 2])):
            j += 1
        out.append(int(frames[i + int(np.argmax(p_micro[i : j + 1]))]))
        i = j + 1
    return out


def score(tracks: list[Track], results: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """P, R, F1 on the scored clips with micro-expressions and false alarms a minute on the nuisance-only
    ones, per threshold, and F1 per group."""
    rows = []
    for threshold in THRESHOLDS:
        totals = {"hits": 0, "spots": 0, "true": 0}
        groups: dict[str, list[int]] = {}
        quiet_spots, quiet_minutes = 0, 0.0
        for track, (frames, p_micro) in zip(tracks, results, strict=True):
            found = apexes(frames, p_micro, threshold)
            if track.group == "quiet":
                quiet_spots += len(found)
                quiet_minutes += len(track.landmarks) / track.fps / 60.0
                continue
            hits = apex_hits(found, micro_intervals(track.truth))
            true = sum(e["kind"] == "micro" for e in track.truth["events"])
            counts = groups.setdefault(track.group, [0, 0, 0])
            for key, value, i in (("hits", hits, 0), ("spots", len(found), 1), ("true", true, 2)):
                totals[key] += value
                counts[i] += value
        hits, spots, true = totals["hits"], totals["spots"], totals["true"]
        rows.append(
            {
                "threshold": threshold,
                **totals,
                "precision": round(hits / spots, 3) if spots else 0.0,
                "recall": round(hits / true, 3) if true else 0.0,
                "f1": round(2 * hits / (spots + true), 3) if spots + true else 0.0,
                "false_per_minute_quiet": round(quiet_spots / quiet_minutes, 2) if quiet_minutes else None,
                "f1_by_group": {g: round(2 * c[0] / max(1, c[1] + c[2]), 3) for g, c in sorted(groups.items())},
            }
        )
    return rows


def best_within(rows: list[dict], budget: float = 1.0) -> dict | None:
    """The row with the best F1 whose false alarms on the nuisance-only clips stay within ``budget`` a minute."""
    allowed = [r for r in rows if r["false_per_minute_quiet"] is not None and r["false_per_minute_quiet"] <= budget]
    return max(allowed, key=lambda r: r["f1"]) if allowed else None


def run_variant(name: str, tracks: list[Track], noise_px: float, seed: int) -> list[dict]:
    """Leave-one-photo-out over the training photos for one variant; its threshold table."""
    rng = np.random.default_rng(seed + 7)
    data = []
    for track in tracks:
        own = track.points(name)
        if noise_px > 0:
            own = own + rng.normal(0.0, noise_px / track.iod_px, own.shape).astype(np.float32)
        frames, x = features(own)
        data.append((frames, x, apex_labels(frames, track.truth)))
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(tracks)
    for photo in DEV_PHOTOS:
        train = [(x, y) for t, (_, x, y) in zip(tracks, data, strict=True) if t.role == "train" and t.photo != photo]
        chosen = [i for i, t in enumerate(tracks) if t.role == "scored" and t.photo == photo]
        for i, p_micro in zip(chosen, fit_predict(train, [data[i][1] for i in chosen], seed), strict=True):
            results[i] = (data[i][0], p_micro)
    scored = [i for i, r in enumerate(results) if r is not None]
    return score([tracks[i] for i in scored], [results[i] for i in scored])  # type: ignore[misc]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--noise-px",
        nargs="*",
        type=float,
        default=[0.1, 0.3],
        help="also the landmarks with this much Gaussian measurement noise (frame pixels); none: --noise-px",
    )
    parser.add_argument("--quick", action="store_true", help="fewer clips (a smoke run; its figures mean little)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_bound_bench.json")
    args = parser.parse_args(argv)
    if any(not (0.0 <= v <= 10.0) for v in args.noise_px):
        print("spotting_bound_bench: --noise-px values must lie in [0, 10] pixels", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("spotting_bound_bench: --workers must be at least 1", file=sys.stderr)
        return 2

    started = time.perf_counter()
    jobs = plan(args.quick, args.seed)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        tracks = list(pool.map(exact_track, jobs, chunksize=4))
    scored = [t for t in tracks if t.role == "scored"]
    print(
        f"spotting bound: {len(tracks) - len(scored)} training clips and {len(scored)} scored clips of the "
        f"training photos, exact tracks in {time.perf_counter() - started:.0f} s"
    )
    variants = [(v, 0.0) for v in args.variants]
    if "landmarks" in args.variants:
        variants += [("landmarks", v) for v in args.noise_px if v > 0]
    out: dict = {"command": " ".join(sys.argv), "clips": {"train": len(tracks) - len(scored), "scored": len(scored)}}
    print(f"\n  {'variant':<22} {'thr':>5} {'P':>5} {'R':>5} {'F1':>5} {'FA/min':>7}   (best F1 within 1 a minute)")
    for name, noise in variants:
        label = name if noise == 0 else f"{name}+{noise:g} px"
        rows = run_variant(name, tracks, noise, args.seed)
        best = best_within(rows)
        out[label] = {"table": rows, "best_within_budget": best}
        if best is None:
            top = max(rows, key=lambda r: r["f1"])
            print(
                f"  {label:<22} none within the budget; best F1 {top['f1']:.2f} at {top['threshold']} "
                f"({top['false_per_minute_quiet']:.1f} a minute)"
            )
            continue
        print(
            f"  {label:<22} {best['threshold']:>5} {best['precision']:>5.2f} {best['recall']:>5.2f} "
            f"{best['f1']:>5.2f} {best['false_per_minute_quiet']:>7.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"\nJSON: {args.json}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
