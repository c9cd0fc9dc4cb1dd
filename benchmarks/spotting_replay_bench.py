"""Spotting development set, replayed: the development bench's figures for a change of the learned spotter's
features or decision in about half a minute instead of a quarter of an hour.

``benchmarks/spotting_dev_bench.py`` renders each of its 300 clips, reads it back as the stream does and runs the
face stage and the spotter on it: about 13 minutes on 2 cores whenever the spotter's code changes. Most of that
is the measurement (rendering, H.264, dlib, alignment, each cell's Lucas–Kanade step), which a change of the
features does not touch. This bench records each clip's measured cell motion once
(:func:`training.spotting.record_clip`, kept under ``--cache`` and named by
:func:`training.spotting.measurement_digest`, so a change of the measurement records again and a change of the
features does not), then makes every candidate again from it with today's feature code
(:func:`training.spotting.replay_clip`), and trains and scores exactly as the development bench does: the same
clips, leave-one-photo-out, the stream's decision, IoU >= 0.5. With the committed code the replayed candidates
are the stream's own, bit for bit (it prints how many clips' candidates are unchanged since they were recorded),
and so are the figures.

At stop 29 (one MLP a fold): F1 0.57 at threshold 0.8 with 1.3 false alarms a minute on the nuisance-only clips,
the development bench's table to the last digit (300 of 300 clips replay their candidates). Variants tried on it that
stop are in ``weights/SPOTTER.md``.

Beside the development set's table it prints the trainer's own leave-one-photo-out on its lab clips (a still
face; the development set has no lab group; with several ``--lab-fps``, a table per rate follows, since the lab
target is set at 30 fps), so a change is judged against both targets in one run, and
where the lab clips' false spots and misses go at ``--lab-errors-at`` (a blink, an expression, a poorly placed
interval; at stop 33 with the committed features, at 0.8: 5 of the 9 false spots on blinks, 3 on expressions).
``--model-seed`` draws the MLPs again on the same recordings: at stop 31 three draws of the committed features
moved the development F1 at 0.8 by 0.03 (0.54–0.57) and the lab F1 by 0.03 (0.86–0.89).

    .venv/bin/python benchmarks/spotting_replay_bench.py [--quick] [--workers 2] [--cache build/motioncache]
        [--model-seed N] [--clips N --quiet-clips N --lab-clips N --lab-fps FPS ...]
        [--json runs/spotting_replay_bench.json]

Recording the 300 clips takes about 13 minutes on 2 cores the first time; a replay, about 30 seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_dev_bench import planned_clips, report, scored_jobs  # noqa: E402

from realtime.core.errors import UserInputError  # noqa: E402
from training.cli import add_clip_set_arguments, clip_set_settings  # noqa: E402
from training.spotting import (  # noqa: E402
    ClipFeatures,
    SpotTrainingSettings,
    events_from_probabilities,
    leave_one_photo_out,
    load_recording,
    match_micro,
    measurement_digest,
    record_clip,
    replay_clip,
    save_recording,
    threshold_table,
)


def _recording_file(cache: Path, job: tuple[str, object], seconds: float) -> Path:
    clip_set, spec = job
    return (
        cache
        / measurement_digest()
        / f"{clip_set}-{spec.name}-{Path(spec.photo).stem}-s{spec.seed}-{spec.fps:g}fps-{seconds:g}s.npz"
    )


def _record(item: tuple[tuple[str, object], Path]) -> Path:
    job, path = item
    clip, faces = record_clip(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_recording(clip, faces, path)
    return path


def _replay(path: Path) -> tuple[ClipFeatures, bool]:
    recorded, faces = load_recording(path)
    clip = replay_clip(recorded, faces)
    unchanged = clip.features.shape == recorded.features.shape and bool(
        np.array_equal(clip.features, recorded.features)
    )
    return clip, unchanged


def replayed(jobs: list[tuple[str, object]], cache: Path, seconds: float, workers: int) -> tuple[list, int]:
    """Every job's candidates replayed from its recorded motion (recorded first where missing), and how many
    clips' candidates are the ones recorded with them."""
    from tqdm import tqdm

    paths = [_recording_file(cache, job, seconds) for job in jobs]
    missing = [(job, path) for job, path in zip(jobs, paths, strict=True) if not path.is_file()]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        if missing:
            list(tqdm(pool.map(_record, missing), total=len(missing), desc="recording clips", unit="clip"))
        results = list(pool.map(_replay, paths, chunksize=8))
    return [clip for clip, _ in results], sum(unchanged for _, unchanged in results)


def print_lab_table(table: list[dict], title: str = "lab (still face)") -> None:
    """Lab P, R, F1 (with its interval) per threshold of the trainer's own leave-one-photo-out over its clips (the
    table ``python -m training spotter`` prints): the lab target (a still face, as in CASME II) is judged here,
    since the development set's bench-design clips have no lab group."""
    print(f"\n  the trainer's own clips, leave one photo out: {title}")
    print(f"  {'threshold':>9}  {'found':>9} {'spots':>5} {'P':>5} {'R':>5} {'F1':>5}  {'F1 95 %':>11}  late hits")
    for row in table:
        lab = row.get("lab")
        if lab:
            low, high = lab["f1_ci95"] or (0.0, 0.0)
            print(
                f"  {row['threshold']:>9}  {lab['hits']:>3} of {lab['true']:<3} {lab['spots']:>5} "
                f"{lab['precision']:>5.2f} {lab['recall']:>5.2f} {lab['f1']:>5.2f}  {low:>5.2f}-{high:<5.2f}  "
                f"{lab['late_hits']:>9}"
            )


# (the kind of event an error overlaps, what to call it): the first that it overlaps names it
_FALSE_CAUSES = (("micro", "a micro-expression, too poorly placed"), ("blink", "a blink"), ("macro", "an expression"))
_MISSED_AS = (
    ("micro", "spotted, too poorly placed"),
    ("blink", "called a blink"),
    ("macro", "rejected as an expression"),
)


def lab_errors(clips: Sequence[ClipFeatures], probabilities: Sequence[np.ndarray], threshold: float) -> dict:
    """The lab clips' errors at ``threshold``: each false micro-expression spot by the true event it overlaps (a
    micro-expression matched too poorly, a blink, an ordinary expression, or nothing), and each missed
    micro-expression by what the decision made of it (a spot placed too poorly, a blink, a rejected expression,
    or nothing: its probability never reached the threshold). Where the lab target's points go."""
    false_spots: Counter = Counter()
    missed: Counter = Counter()
    for clip, p in zip(clips, probabilities, strict=True):
        if clip.clip_set != "lab":
            continue
        events = events_from_probabilities(clip, p, threshold)
        spots, true, matches = match_micro(events, clip.truth)
        hit_spots, hit_true = {s for s, _ in matches}, {t for _, t in matches}
        for i, (onset, _, offset, *_) in enumerate(spots):
            if i not in hit_spots:
                kinds = {
                    t["kind"] for t in clip.truth["events"] if t["onset_frame"] <= offset and t["offset_frame"] >= onset
                }
                cause = next((name for kind, name in _FALSE_CAUSES if kind in kinds), "nothing")
                false_spots[cause] += 1
        for j, (onset, offset) in enumerate(true):
            if j not in hit_true:
                kinds = {e[3] for e in events if e[0] <= offset and e[2] >= onset}
                missed[next((name for kind, name in _MISSED_AS if kind in kinds), "never reached the threshold")] += 1
    return {
        "threshold": threshold,
        "false_spots": dict(false_spots.most_common()),
        "missed": dict(missed.most_common()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1, help="MLPs averaged per fold (the trainer's default: 5)")
    parser.add_argument("--quick", action="store_true", help="fewer clips (a smoke run; its figures mean little)")
    parser.add_argument("--seed", type=int, default=0, help="the clips' seed (the recordings are made for it)")
    parser.add_argument(
        "--model-seed",
        type=int,
        default=None,
        help="the MLPs' seed, default --seed: the same recorded clips, another draw of the model (how much of a "
        "difference is the model's own variance?)",
    )
    add_clip_set_arguments(parser, "; the training photos' clips to learn from, as the trainer's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=ROOT / "build" / "motioncache", help="recorded cell motion kept between runs"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_replay_bench.json")
    parser.add_argument(
        "--lab-errors-at",
        type=float,
        default=0.8,
        help="the threshold at which the trainer's lab clips' false spots and misses are told by cause (default 0.8, "
        "what make spotter-weights sets)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        print("spotting_replay_bench: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = SpotTrainingSettings(seed=args.seed, members=args.members, **clip_set_settings(args))
    except UserInputError as error:
        print(f"spotting_replay_bench: {error}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    settings, training_jobs, groups = planned_clips(settings, args.quick, args.seed, frozenset())
    jobs = training_jobs + scored_jobs(groups)
    clips, unchanged = replayed(jobs, args.cache, settings.seconds, args.workers)
    training, scored = clips[: len(training_jobs)], clips[len(training_jobs) :]
    if args.model_seed is not None:
        settings = replace(settings, seed=args.model_seed)
    print(f"replayed {len(clips)} clips; {unchanged} give the candidates recorded with them (features unchanged)")
    facts = {
        "command": " ".join(sys.argv),
        "settings": asdict(settings),
        "quick": args.quick,
        "clip_seed": args.seed,  # settings.seed is the MLPs' (--model-seed where given)
        "measurement": measurement_digest(),
        "unchanged_clips": unchanged,
    }
    lab_rates = sorted({clip.fps for clip in training if clip.clip_set == "lab"})
    trainer, errors, per_rate = [], {}, {}
    if lab_rates:
        probabilities = leave_one_photo_out(training, settings)
        trainer = threshold_table(training, probabilities)
        errors = lab_errors(training, probabilities, args.lab_errors_at)
        # the lab target is set at 30 fps: with several rates, each rate's own table beside the pooled one
        lab = [(c, p) for c, p in zip(training, probabilities, strict=True) if c.clip_set == "lab"]
        for fps in lab_rates if len(lab_rates) > 1 else ():
            chosen = [(c, p) for c, p in lab if c.fps == fps]
            per_rate[fps] = threshold_table([c for c, _ in chosen], [p for _, p in chosen])
    facts["trainer_leave_one_photo_out"] = trainer
    facts["trainer_lab_by_fps"] = {f"{fps:g}": table for fps, table in per_rate.items()}
    facts["trainer_lab_errors"] = errors
    report(training, scored, groups, settings, "spotting dev set, replayed", started, args.json, facts)
    if trainer:
        print_lab_table(trainer)
        for fps, table in per_rate.items():
            print_lab_table(table, f"lab at {fps:g} fps")
        print(f"  at {errors['threshold']:g}: false spots on {errors['false_spots']}; missed: {errors['missed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
