"""Spotting development set: the learned spotter's leave-one-photo-out score on clips made the way the benchmark
makes its realistic set, on the training photos only, so that a change can be judged before the held-out faces
are ever shown to it.

``python -m training spotter`` chooses its threshold by leave-one-photo-out over its own training clips, which mix
every nuisance in one clip; those figures (realistic F1 0.35-0.42) say little about the benchmark's
(``benchmarks/spotting_bench.py``: single-nuisance groups, a mixed group, nuisance-only clips; held-out F1 0.57).
This bench trains exactly as the trainer does (its clips, features, MLP; the candidates come from the streaming
code and are cached) on four training photos and scores the fifth photo's clips of every benchmark group
(:func:`spotting_bench.groups_per_photo`: 32 clips a photo, 160 in all), with the stream's own decision
(``RunDecision``) and the MEGC rule (IoU >= 0.5), for every threshold of the trainer's grid. At stop 27 the
default settings gave F1 0.54 at threshold 0.8 with 1.3 false alarms a minute on the nuisance-only clips:
close to the held-out 0.57, as a development set should be.

It also prints each group's figures at the threshold the trainer's rule would pick here (the best F1 within the
false-alarm budget). ``--without NUISANCE ...`` leaves nuisances out of every clip, trained on and scored,
so that a run says what each one costs the spotter end to end. At stop 28, within one session: 0.57 at 0.8 with
every nuisance; 0.56 without the camera's noise and H.264; 0.57 without head sway; 0.74 without the face's own
motion. Clips made without compression are still written as Motion JPEG, whose error is close to H.264's
(stop 30): ``--lossless`` hands the spotter the rendered frames instead. Without noise and compression, lossless
(stop 30): 0.57 at 0.8 again, but with 3.0 false alarms a minute and apex-rule F1 0.69 against 0.58.

    .venv/bin/python benchmarks/spotting_dev_bench.py [--members 1] [--quick] [--workers 2]
        [--without NUISANCE ... [--lossless]] [--cache build/spotcache] [--json runs/spotting_dev_bench.json]

Collecting the 160 scored clips takes about 7 minutes on 2 cores the first time (and the trainer's 120 clips
as long, unless ``python -m training spotter --cache`` collected them already); after that, a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_bench import DEV_PHOTOS, DEV_SEED, groups_per_photo  # noqa: E402

from realtime.core.errors import UserInputError  # noqa: E402
from training.spotting import (  # noqa: E402
    ClipFeatures,
    SpotTrainingSettings,
    choose_threshold,
    collect,
    leave_one_photo_out,
    plan_training_clips,
    threshold_table,
)
from training.synth.realistic import NUISANCES  # noqa: E402


def group_rows(
    groups: list[tuple[str, object]], scored: list[ClipFeatures], probabilities: list[np.ndarray], threshold: float
) -> dict[str, dict]:
    """P, R, F1 and false alarms a minute of each benchmark group at ``threshold`` (``groups`` and ``scored``
    in the same order, as planned): which nuisance the spotter loses its micro-expressions to."""
    out: dict[str, dict] = {}
    for group in dict.fromkeys(name for name, _ in groups):
        chosen = [i for i, (name, _) in enumerate(groups) if name == group]
        (row,) = threshold_table([scored[i] for i in chosen], [probabilities[i] for i in chosen], (threshold,))
        out[group] = row.get("quiet") or row.get("realistic")
    return out


def print_table(table: list[dict]) -> None:
    """The threshold table: realistic P, R, F1 (with its interval), F1 by the apex rule (the apex inside a true
    interval ± 1 frame: the gap to F1 is what the intervals cost), false alarms a minute, and those of the
    nuisance-only clips, and how many hits are reported more than 100 ms after their true offset (the issue's
    live requirement)."""
    print(
        f"  {'threshold':>9}  {'P':>5} {'R':>5} {'F1':>5}  {'F1 95 %':>11}  {'apex F1':>7}  {'FA/min':>6}  "
        f"{'FA/min quiet':>12}  {'late hits':>11}"
    )
    for row in table:
        r, q = row.get("realistic", {}), row.get("quiet", {})
        low, high = r.get("f1_ci95") or (0.0, 0.0)
        late = f"{r.get('late_hits', 0)} of {r.get('hits', 0)}"
        print(
            f"  {row['threshold']:>9}  {r.get('precision', 0):>5.2f} {r.get('recall', 0):>5.2f} "
            f"{r.get('f1', 0):>5.2f}  {low:>5.2f}-{high:<5.2f}  {r.get('apex_rule_f1', 0):>7.2f}  "
            f"{r.get('false_per_minute') or 0:>6.2f}  {q.get('false_per_minute') or 0:>12.2f}  {late:>11}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1, help="MLPs averaged per fold (the trainer's default: 5)")
    defaults = SpotTrainingSettings()
    for name, value in (
        ("realistic", defaults.realistic_clips),
        ("quiet", defaults.quiet_clips),
        ("lab", defaults.lab_clips),
    ):
        parser.add_argument(
            f"--{name}-clips",
            type=int,
            default=value,
            help=f"the trainer's {name} clips to learn from (its default: {value})",
        )
    parser.add_argument(
        "--without",
        nargs="+",
        default=[],
        choices=sorted(NUISANCES),
        metavar="NUISANCE",
        help="leave these nuisances out of every realistic and nuisance-only clip, trained on and scored (what "
        f"does each one cost the spotter?): any of {', '.join(NUISANCES)}",
    )
    parser.add_argument(
        "--lossless",
        action="store_true",
        help="with compression left out (--without compression), hand the spotter the rendered frames themselves; "
        "otherwise such clips are written as Motion JPEG, whose own error is about that of the webcam's H.264",
    )
    parser.add_argument("--quick", action="store_true", help="fewer clips (a smoke run; its figures mean little)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "spotcache", help="candidates kept between runs")
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_dev_bench.json")
    args = parser.parse_args(argv)
    if args.workers < 1:
        print("spotting_dev_bench: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.lossless and "compression" not in args.without:
        print("spotting_dev_bench: --lossless needs --without compression (H.264 is lossy)", file=sys.stderr)
        return 2
    try:
        settings = SpotTrainingSettings(
            realistic_clips=args.realistic_clips,
            quiet_clips=args.quiet_clips,
            lab_clips=args.lab_clips,
            seed=args.seed,
            members=args.members,
        )
    except UserInputError as error:
        print(f"spotting_dev_bench: {error}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    without = frozenset(args.without)
    settings, training_jobs, groups = planned_clips(settings, args.quick, args.seed, without)
    # a clip's cache name does not say which nuisances it shows: clips without some go to a folder of their own
    cache = args.cache / ("without-" + "+".join(sorted(without))) if without else args.cache
    training = collect(training_jobs, args.workers, True, cache, settings.seconds, args.lossless)
    scored = collect(scored_jobs(groups), args.workers, True, cache / "bench-design", settings.seconds, args.lossless)
    left_out = f", without {', '.join(sorted(without))}" if without else ""
    left_out += ", frames read lossless" if args.lossless else ""
    facts = {
        "command": " ".join(sys.argv),
        "settings": asdict(settings),
        "quick": args.quick,
        "without": sorted(without),
        "lossless": args.lossless,
    }
    report(training, scored, groups, settings, f"spotting dev set{left_out}", started, args.json, facts)
    return 0


def planned_clips(
    settings: SpotTrainingSettings, quick: bool, seed: int, without: frozenset[str]
) -> tuple[SpotTrainingSettings, list[tuple[str, object]], list[tuple[str, object]]]:
    """The development set: the settings (fewer clips with ``quick``), the trainer's clips of the training photos
    to learn from, and each photo's (group, clip) of the benchmark's design to score."""
    if quick:
        settings = replace(settings, realistic_clips=10, quiet_clips=4, lab_clips=0)
    training = plan_training_clips(settings, DEV_PHOTOS, without)
    groups = groups_per_photo(DEV_PHOTOS, quick, settings.seconds, seed + DEV_SEED, without)
    return settings, training, groups


def scored_jobs(groups: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The (clip set, clip) jobs of the scored groups: nuisance-only clips count false alarms."""
    return [("quiet" if group == "quiet" else "realistic", spec) for group, spec in groups]


def report(
    training: list[ClipFeatures],
    scored: list[ClipFeatures],
    groups: list[tuple[str, object]],
    settings: SpotTrainingSettings,
    title: str,
    started: float,
    json_path: Path,
    facts: dict,
) -> None:
    """Leave one photo out, the threshold table, each group's row at the chosen threshold; printed and JSON."""
    probabilities = leave_one_photo_out(training, settings, scored)
    table = threshold_table(scored, probabilities)
    chosen = choose_threshold(table, settings.max_false_per_minute)
    by_group = group_rows(groups, scored, probabilities, chosen)
    print(
        f"\n{title}: trained on {len(training)} clips of the training photos, scored on {len(scored)} "
        f"bench-design clips of the photo left out ({time.perf_counter() - started:.0f} s)"
    )
    print_table(table)
    print(f"\n  by group at threshold {chosen} (the trainer's rule: best F1 within the false-alarm budget)")
    print(f"  {'group':<20} {'found':>9} {'P':>5} {'R':>5} {'F1':>5}  {'FA/min':>6}")
    for group, row in by_group.items():
        print(
            f"  {group:<20} {row['hits']:>4} of {row['true']:<2} {row['precision']:>5.2f} {row['recall']:>5.2f} "
            f"{row['f1']:>5.2f}  {row['false_per_minute'] or 0:>6.2f}"
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(
        json.dumps(
            {**facts, "clips": [len(training), len(scored)], "table": table, "chosen": chosen, "groups": by_group},
            indent=1,
        )
    )
    print(f"\nJSON: {json_path}")


if __name__ == "__main__":
    raise SystemExit(main())
