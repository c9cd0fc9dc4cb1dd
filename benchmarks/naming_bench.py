"""Naming benchmark: how often the recognizer names a spotted micro-expression right, on faces never trained on.

Generated spotting clips (``python -m training synth videos``: micro-expressions among blinks, a macro
expression, head and lighting drift, sensor noise; 640×480, 30 fps) of the held-out photos
(:data:`training.synth.photos.HELD_OUT_PHOTOS`: nothing trains or tunes on them) go through the whole
``stream.py`` path, once per model: face tracking, the streaming spotter, and the classifier on the SPOTTED
events (their apex and, for inputs that need it, their onset), never on ground-truth apexes. A spotted event
is matched to the true micro-expression it overlaps best (IoU ≥ 0.5, the MEGC rule, one to one); on the
matched events: label accuracy, UF1 (macro F1 over the classes present) and recall per class. Chance is
1/5 for the five CASME II classes.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/naming_bench.py [--models weights/*.onnx] [--clips 2]
        [--photos astronaut einstein] [--seed 31] [--out build/naming_bench]

Writes ``OUT/naming.md`` and ``OUT/naming.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stream  # noqa: E402
from training import metrics  # noqa: E402
from training.synth.photos import HELD_OUT_PHOTOS, require_photos  # noqa: E402
from training.synth.videos import write_videos  # noqa: E402

CLASSES = ("happiness", "disgust", "surprise", "repression", "others")
IOU_MIN = 0.5


def match_events(spotted: list[dict], truth: list[dict]) -> list[tuple[dict, dict]]:
    """(spotted, true) pairs by the MEGC rule (:func:`training.metrics.megc_match`: IoU ≥ 0.5, best first)."""
    hits = metrics.megc_match(
        [(s["onset_frame"], s["offset_frame"]) for s in spotted],
        [(t["onset_frame"], t["offset_frame"]) for t in truth],
        IOU_MIN,
    )
    return [(spotted[i], truth[j]) for i, j in hits]


def make_clips(out: Path, photos: tuple[str, ...], clips: int, seed: int) -> list[tuple[str, Path, Path]]:
    """(photo, video, ground truth) for ``clips`` generated clips of each photo (reused when present)."""
    found = require_photos(photos)
    made = []
    for n, photo in enumerate(photos):
        folder = out / "videos" / photo
        if not (folder / "videos.json").is_file():
            write_videos(folder, n_clips=clips, seed=seed + 100 * n, photos=[found[photo]], overwrite=True)
        for k in range(1, clips + 1):
            made.append((photo, folder / f"clip{k:02d}.mp4", folder / f"clip{k:02d}.json"))
    return made


def run_model(model: Path, clips: list[tuple[str, Path, Path]], out: Path, spotter: str | None = None) -> dict:
    """Every clip through stream.py with ``model`` (and ``--spotter spotter``: None, its default); the matched
    events' labels scored."""
    pairs, n_true, n_spotted = [], 0, 0
    started = time.perf_counter()
    for photo, video, truth_path in clips:
        events_path = out / "events" / model.stem / f"{photo}-{video.stem}.jsonl"
        events_path.parent.mkdir(parents=True, exist_ok=True)
        argv = ["--source", str(video), "--model", str(model), "--no-display", "--events", str(events_path)]
        code = stream.main(argv + (["--spotter", spotter] if spotter else []))
        if code != 0:
            raise SystemExit(f"stream.py failed on {video} with {model} (exit {code})")
        spotted = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        truth = [e for e in json.loads(truth_path.read_text())["events"] if e["kind"] == "micro"]
        n_true += len(truth)
        n_spotted += len(spotted)
        pairs += [(photo, s, t) for s, t in match_events(spotted, truth)]
    position = {c: i for i, c in enumerate(CLASSES)}
    y_true = [position[t["label"]] for _, _, t in pairs]
    y_pred = [position.get(s["label"], -1) for _, s, _ in pairs]
    known = [(a, b) for a, b in zip(y_true, y_pred, strict=True) if b >= 0]
    summary = metrics.summarize([a for a, _ in known], [b for _, b in known], CLASSES) if known else None
    present = sorted({t for t in y_true})
    return {
        "model": str(model),
        "n_true": n_true,
        "n_spotted": n_spotted,
        "n_matched": len(pairs),
        "accuracy": summary["accuracy"] if summary else None,
        "uf1": summary["uf1"] if summary else None,
        "recall": {
            CLASSES[c]: next(r["recall"] for r in summary["per_class"] if r["class"] == CLASSES[c])
            for c in present
            if summary
        },
        "events": [
            {"photo": p, "true": t["label"], "predicted": s["label"], "confidence": s["confidence"]}
            for p, s, t in pairs
        ],
        "seconds": time.perf_counter() - started,
    }


def format_table(rows: list[dict]) -> str:
    lines = [
        "| model | input | true micro | spotted | matched | label accuracy % | UF1 | recall per class |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        recall = ", ".join(f"{c} {v:.2f}" for c, v in row["recall"].items())
        accuracy = "—" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f}"
        uf1 = "—" if row["uf1"] is None else f"{row['uf1']:.3f}"
        lines.append(
            f"| {Path(row['model']).name} | {row['input_kind']} | {row['n_true']} | {row['n_spotted']} | "
            f"{row['n_matched']} | {accuracy} | {uf1} | {recall} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", help="ONNX models (default: every weights/*.onnx)")
    parser.add_argument("--photos", nargs="+", default=list(HELD_OUT_PHOTOS), help="(default: %(default)s)")
    parser.add_argument("--clips", type=int, default=2, help="clips per photo (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=31, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "naming_bench", help="(default: %(default)s)")
    parser.add_argument("--spotter", choices=("rules", "learned"), help="stream.py's --spotter (default: its own)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.photos) - set(HELD_OUT_PHOTOS))
    if unknown:
        print(f"note: {', '.join(unknown)} may have been trained on; the held-out photos are {HELD_OUT_PHOTOS}")
    models = args.models or sorted((ROOT / "weights").glob("*.onnx"))
    clips = make_clips(args.out, tuple(args.photos), args.clips, args.seed)

    from realtime.stages.classify import Classifier, ClassifierOptions

    rows = []
    for model in models:
        row = run_model(Path(model), clips, args.out, args.spotter)
        row["input_kind"] = Classifier(ClassifierOptions(Path(model), "cpu")).input_kind
        rows.append(row)
    table = format_table(rows)
    header = (
        f"# Naming on held-out faces through stream.py ({args.spotter or 'default'} spotter)\n\n"
        f"{len(clips)} generated clips of "
        f"{', '.join(args.photos)} (seed {args.seed}); labels of spotted events matched to true "
        f"micro-expressions (IoU ≥ {IOU_MIN}); chance 20 %.\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "naming.md").write_text(header + table)
    (args.out / "naming.json").write_text(json.dumps(rows, indent=2))
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
