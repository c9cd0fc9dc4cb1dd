"""Spot micro-expressions in many recorded videos at once, on Ray: this machine's cores or a cluster.

    python -m realtime.batch --inputs videos/ --out results/ [--workers N] [--address HOST:PORT]

Each video goes through exactly what ``python stream.py --source VIDEO`` runs (every frame, none dropped:
:func:`realtime.process.process_recorded`) on one of N Ray actors that each load the ONNX classifier and
the dlib landmark model once. Run ``python -m realtime.batch --help`` for everything else.

This module is the command line and the order of the steps; the package's docstring names the others.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from realtime.batch.planning import collect_inputs, plan, stable_name
from realtime.batch.report import BatchProgress, write_batch_files, write_batch_report
from realtime.batch.runner import run_on_ray
from realtime.batch.worker import BatchJob
from realtime.cli.arguments import (
    OneLineErrorParser,
    flags_for_options,
    positive_float,
    positive_int,
    run_reporting_errors,
)
from realtime.core.errors import UserInputError
from realtime.core.files import file_sha256

__all__ = ["BatchJob", "build_parser", "collect_inputs", "file_sha256", "main", "plan", "run", "stable_name"]

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"

DESCRIPTION = """\
Spot and classify facial micro-expressions in many recorded videos, in parallel, with Ray.

Every video goes through the same pipeline as `python stream.py --source VIDEO` (every frame processed,
none dropped). N Ray workers each load the classifier and the landmark model once and take videos one at
a time, largest first. Without --address, Ray starts quietly on this machine and stops at the end.
"""

EPILOG = """\
inputs (give several if you like; a video is listed once however often it is named):
  DIR                      every video under DIR (.mp4 .avi .mov .mkv .webm ..., recursively); a folder of
                           images with no video under it is one frame-folder clip (rate from --fps)
  'GLOB'                   the files (or frame folders) a pattern matches, ** included: 'data/**/*.avi'
                           (quote it so the shell leaves it to us)
  LIST.txt                 one video or frame folder per line (# comments; paths relative to the list's
                           folder); a line naming a missing file becomes a failed row, not a stop
  VIDEO                    one video

outputs, under OUTDIR:
  <name>-<hash>/           per video (the name comes from its file name and a hash of its full path):
    events.jsonl           the micro-expressions, as stream.py --events writes them
    frames.csv             one row per frame and face (--csv)
    annotated.mp4          the annotated video (--annotate)
    signal.json            the spotting signal and apex crops the report draws
    summary.json           frames, duration, fps, faces, events per label, ms per stage, provider, and the
                           resume key; written last: a folder without it is unfinished
  batch.json, batch.csv    one row per video: path, status (done/skipped/failed), reason, frames,
                           duration_s, fps, faces, events, events per label, wall seconds, provider
  report.html              one self-contained page: table of videos, events per label, and per video the
                           signal timeline with the events shaded and the aligned apex faces (--no-report)

resume: run the same command again. A video is skipped when its summary.json holds the same key: the
video's path, size and modification time, the model's SHA-256 and the settings (--max-faces, --fps,
--csv, --annotate, --device). Anything else (unfinished, changed) runs again; a video that failed on its
own account (cannot be decoded, no face) is reported failed again without a retry until it changes.
Ctrl-C or kill stops the run; nothing half-written looks finished, and the next run picks up from there.

examples:
  python -m realtime.batch --inputs recordings/ --out results/
  python -m realtime.batch --inputs 'casme2/**/*.avi' --out results/ --workers 4 --csv --annotate
  python -m realtime.batch --inputs todo.txt --out results/ --model weights/casme2.onnx --no-report
  python -m realtime.batch --inputs lab_recordings/ --out results/ --spotter rules   # still faces, as in CASME II

on a cluster (every node: the same microexpr installed; the videos and OUTDIR at the same path on all
nodes, e.g. NFS; the model is shipped to the workers by Ray):
  head$   ray start --head --port 6379
  other$  ray start --address HEAD:6379          (on each other machine)
  head$   python -m realtime.batch --inputs /nfs/videos/ --out /nfs/results/ --address HEAD:6379
  --address auto joins the cluster `ray start` made on this machine; without --workers, one worker per
  CPU of the cluster. `ray stop` on every node ends it.

exit codes: 0 every video done or skipped, 1 some failed (see batch.csv), 2 bad arguments (one line).
"""


def build_parser() -> argparse.ArgumentParser:
    from realtime.stages.classify import DEVICES  # the choices come from the code that owns them
    from realtime.stages.spotter import DEFAULT_SPOTTER, SPOTTER_METHODS

    parser = OneLineErrorParser(
        prog="python -m realtime.batch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--inputs", nargs="+", required=True, metavar="DIR|GLOB|LIST.txt", help="the videos (see inputs below)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="where the results go")
    parser.add_argument(
        "--workers", type=positive_int, help="Ray workers (default: this machine's cores, or the cluster's CPUs)"
    )
    parser.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="join a running Ray cluster (see below) instead of starting Ray on this machine",
    )
    parser.add_argument("--model", type=Path, help="the ONNX classifier (default: the newest .onnx in weights/)")
    parser.add_argument("--annotate", action="store_true", help="also write each video annotated (annotated.mp4)")
    parser.add_argument("--csv", action="store_true", help="also write one row per frame and face (frames.csv)")
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write OUTDIR/report.html (default: yes)",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where the classifier runs (default: auto)")
    parser.add_argument(
        "--max-faces", type=positive_int, default=1, help="how many faces to follow, largest first (default: 1)"
    )
    parser.add_argument(
        "--fps", type=positive_float, help="rate of frame folders (default 30), or for videos that report none"
    )
    parser.add_argument(
        "--spotter",
        choices=SPOTTER_METHODS,
        default=DEFAULT_SPOTTER,
        help=f"how micro-expressions are spotted (default: {DEFAULT_SPOTTER}): 'learned' (survives real-world "
        "motion: talking, head turns, expressions) or 'rules' (best on a still face, as in CASME II); as "
        "stream.py --spotter",
    )
    parser.add_argument(
        "--spotter-model", type=Path, help="the learned spotter's decision file (default: weights/spotter.npz)"
    )
    parser.add_argument("--quiet", action="store_true", help="only errors and the final line")
    return parser


def run(args: argparse.Namespace) -> int:
    """The whole command: plan, process what is left on Ray, write the table and the report. Returns the
    exit code (0 all done or skipped, 1 some failed, 130 interrupted)."""
    from realtime.stages.classify import default_model

    started = time.perf_counter()
    inputs = collect_inputs(args.inputs)
    out = _output_folder(args.out)
    args.out = out
    model_path = (args.model if args.model is not None else default_model(WEIGHTS)).expanduser().resolve()
    if not model_path.is_file():
        raise UserInputError(f"model file not found: {model_path}")
    model_sha = file_sha256(model_path)
    from realtime.stages.spotter import Spotter, SpotterOptions

    with flags_for_options({"method": "--spotter", "model": "--spotter-model"}):
        spotter = SpotterOptions(
            method=args.spotter, model=None if args.spotter_model is None else str(args.spotter_model)
        )
        if spotter.method == "learned":
            Spotter(spotter)  # its decision file is read now: a bad one is one line before Ray starts
    rows, jobs = plan(args, inputs, model_path, model_sha)
    meta = {
        "out": str(out),
        "model": {"path": str(model_path), "sha256": model_sha},
        "workers": 0,
        "address": args.address or "local",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    interrupted = False
    if jobs:
        from realtime.stages.classify import Classifier, ClassifierOptions

        # a model that cannot be used is a bad argument: say so before Ray starts (and fail nothing)
        with flags_for_options({"device": "--device"}):
            check = Classifier(ClassifierOptions(model_path, args.device))
        del check
        progress = BatchProgress(rows, len(jobs), args.quiet)
        ran = run_on_ray(jobs, model_path, args.device, progress, address=args.address, workers=args.workers)
        rows.extend(ran.rows)
        meta["workers"] = ran.workers
        meta["worker_hosts"] = ran.worker_hosts
        meta.update({k: round(v, 3) for k, v in ran.timing.items()})
        interrupted = ran.interrupted
    meta.update(wall_s=round(time.perf_counter() - started, 3), interrupted=interrupted)
    done_rows = {r["input"] for r in rows}
    for job in jobs:  # interrupted: what did not finish is unfinished (it runs on the next call)
        if job.input not in done_rows:
            rows.append(job.row(status="unfinished", reason="the run was interrupted"))
    write_batch_files(out, rows, meta)
    counts = Counter(r["status"] for r in rows)
    if args.report:
        write_batch_report(out, [r for r in rows if r["status"] != "unfinished"], f"{len(rows)} video(s) · {out}")
    where = f"outputs in {out}" + (f", report {out / 'report.html'}" if args.report else "")
    tail = f", unfinished {counts['unfinished']}" if counts["unfinished"] else ""
    print(
        f"done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}{tail} ({where})",
        flush=True,
    )
    if interrupted:
        return 130
    return 1 if counts["failed"] else 0


def _output_folder(out: Path) -> Path:
    """``--out``, absolute, created if need be, and writable (else one line about it)."""
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: it is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"--out {out}: cannot create it ({error.strerror or error})") from None
    if not os.access(out, os.W_OK):
        raise UserInputError(f"--out {out}: the folder is not writable")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("microexpr", "microexpr.batch"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler] if name == "microexpr" else []
        logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
        logger.propagate = name != "microexpr"
    return run_reporting_errors(lambda: run(args))
