"""Spotting: is it the measurement or the features? The learned spotter's own features, model and decision fed
with the generator's exact cell motion instead of the motion it measures.

``benchmarks/spotting_bound_bench.py`` showed that a detector with per-cell features (which cell moved, against
its own level) reaches F1 0.79 on the exact motion of an 8×8 grid of cells (at 3.3 false alarms a minute), and
``benchmarks/spotting_dev_bench.py`` that the learned spotter reaches 0.57 with the cells it measures from
compressed video. This bench asks which half of the spotter holds it back. It takes the bound bench's exact cell
motion (``spotting_bound_bench.exact_track``: the generator's mesh, head motion removed exactly, no pixels),
removes each frame's median over the cells as the spotter does, and hands it to the learned spotter's own
feature code (:meth:`LearnedFaceSpotter.candidate_from_motion`; each cell belongs to the face part of its
nearest landmark). It then trains and scores exactly as the development bench does: the trainer's MLP,
leave-one-photo-out over the five training photos, the stream's decision and IoU >= 0.5, on the same 160
development clips (the trainer's realistic and nuisance-only clips to learn from; no lab clips, which the bound
bench does not plan). Training photos only; about 1.5 minutes on 2 cores.

At stop 28: F1 0.49 at threshold 0.8 (5.6 false alarms a minute on the realistic clips, 2.8 on the nuisance-only
ones), none within one false alarm a minute: no better than the measured cells (0.57), so perfect cells alone
do not help. The same events scored by the bound's rule (apex inside the true interval) reach 0.72-0.76 with the
bound's per-cell features added: the apexes are found, and the interval (apex ± the best contrast scale, mostly
33 ms on exact motion) is what fails IoU 0.5 (``weights/SPOTTER.md``).

    .venv/bin/python benchmarks/spotting_exact_cells_bench.py [--quick] [--workers 2] [--json runs/....json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_bound_bench import cell_grid, exact_track, plan  # noqa: E402
from spotting_dev_bench import group_rows, print_table  # noqa: E402

from realtime.stages.spotter import median_of  # noqa: E402
from realtime.stages.spotter.learned import FACE_PARTS  # noqa: E402
from training.spotting import (  # noqa: E402
    ClipFeatures,
    FaceMotion,
    SpotTrainingSettings,
    choose_threshold,
    clip_features,
    leave_one_photo_out,
    replay_candidates,
    threshold_table,
)
from training.synth.realistic import RealisticClipSpec, RealisticRenderer  # noqa: E402

CROP_PER_IOD = 128.0 / 2.2  # about how many crop pixels one IOD spans in the spotter's 128 px crop


def cell_parts(neutral: np.ndarray) -> list[np.ndarray]:
    """The bound bench's cells (:func:`spotting_bound_bench.cell_grid`), grouped by the face part of the nearest
    landmark (as the spotter groups its own cells)."""
    centres, _ = cell_grid(neutral)
    nearest = np.argmin(np.linalg.norm(centres[:, None] - neutral[None], axis=2), axis=1)
    part_of = np.zeros(len(neutral), int)
    for number, indices in enumerate(FACE_PARTS.values()):
        part_of[list(indices)] = number
    return [np.flatnonzero(part_of[nearest] == number) for number in range(len(FACE_PARTS))]


def exact_clip(job: tuple[str, str, RealisticClipSpec]) -> tuple[str, str, ClipFeatures]:
    """(role, group, candidates) of one planned clip, from its exact cell motion (each frame's median over the
    cells removed, as the spotter removes it) replayed through the spotter's features."""
    role, group, spec = job
    track = exact_track(job)
    motion = track.cells.astype(np.float64) * CROP_PER_IOD
    motion -= median_of(motion, axis=1)[:, None]
    frames = np.arange(len(motion))
    face = FaceMotion(
        0, frames, frames * 1000.0 / spec.fps, motion, tuple(cell_parts(RealisticRenderer(spec).neutral)), ()
    )
    clip_set = "quiet" if group == "quiet" else "realistic"
    name, fps, n_frames = f"{clip_set}/{spec.name}", float(spec.fps), int(spec.n_frames)
    return role, group, clip_features(name, clip_set, spec.photo, fps, n_frames, track.truth, replay_candidates([face]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer clips (a smoke run; its figures mean little)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_exact_cells_bench.json")
    args = parser.parse_args(argv)
    if args.workers < 1:
        print("spotting_exact_cells_bench: --workers must be at least 1", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        clips = list(pool.map(exact_clip, plan(args.quick, args.seed), chunksize=4))
    training = [features for role, _, features in clips if role == "train"]
    groups = [(group, None) for role, group, _ in clips if role == "scored"]
    scored = [features for role, _, features in clips if role == "scored"]
    settings = SpotTrainingSettings(seed=args.seed, members=1)
    probabilities = leave_one_photo_out(training, settings, scored)
    table = threshold_table(scored, probabilities)
    chosen = choose_threshold(table, settings.max_false_per_minute)

    print(
        f"\nexact cells through the learned spotter's features: trained on {len(training)} clips, scored on "
        f"{len(scored)} of the photo left out ({time.perf_counter() - started:.0f} s)"
    )
    print_table(table)
    by_group = group_rows(groups, scored, probabilities, chosen)
    print(f"\n  by group at threshold {chosen}")
    for group, row in by_group.items():
        print(
            f"  {group:<20} {row['hits']:>4} of {row['true']:<2} F1 {row['f1']:>5.2f}  "
            f"{row['false_per_minute'] or 0:>6.2f} false a minute"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    facts = {"command": " ".join(sys.argv), "settings": asdict(settings), "quick": args.quick}
    args.json.write_text(json.dumps({**facts, "table": table, "chosen": chosen, "groups": by_group}, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
