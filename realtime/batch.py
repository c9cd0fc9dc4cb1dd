"""Spot micro-expressions in many recorded videos at once, on Ray: this machine's cores or a cluster.

    python -m realtime.batch --inputs videos/ --out results/ [--workers N] [--address HOST:PORT]

Each video goes through exactly what ``python stream.py --source VIDEO`` runs (every frame, none dropped:
:func:`realtime.process.process_recorded`) on one of N Ray actors that each load the ONNX classifier and
the dlib landmark model once. Run ``python -m realtime.batch --help`` for everything else.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats prompt or upload
os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import argparse
import csv
import glob
import hashlib
import json
import logging
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from realtime.arguments import OneLineErrorParser, positive_float, positive_int, run_reporting_errors
from realtime.batch_worker import FAILED_FILE, FORMAT_VERSION, SUMMARY_FILE, write_json_atomic
from realtime.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
VIDEO_SUFFIXES = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".m4v",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".mts",
    ".3gp",
)
LIST_SUFFIXES = (".txt", ".lst", ".list")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
MAX_ATTEMPTS = 3  # a video whose worker dies this many times is recorded as failed
BATCH_COLUMNS = (
    "input",
    "status",
    "reason",
    "frames",
    "duration_s",
    "fps",
    "faces",
    "events",
    "events_per_label",
    "wall_s",
    "provider",
    "output",
)

log = logging.getLogger("microexpr.batch")

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
    parser.add_argument(
        "--device", choices=("auto", "cuda", "cpu"), default="auto", help="where the classifier runs (default: auto)"
    )
    parser.add_argument(
        "--max-faces", type=positive_int, default=1, help="how many faces to follow, largest first (default: 1)"
    )
    parser.add_argument(
        "--fps", type=positive_float, help="rate of frame folders (default 30), or for videos that report none"
    )
    parser.add_argument("--quiet", action="store_true", help="only errors and the final line")
    return parser


# ---------------------------------------------------------------------------------------------------- inputs
def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read the list {path}: {getattr(error, 'strerror', None) or error}") from None
    out = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        entry = Path(text).expanduser()
        out.append(entry if entry.is_absolute() else path.parent / entry)
    return out


def collect_inputs(specs: Sequence[str]) -> list[Path]:
    """The videos (and frame folders) the ``--inputs`` name, absolute, each once, in the order given.
    A list file's missing entries are kept (they become failed rows); anything else that matches nothing
    is a :class:`UserInputError`."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            matches = [m for m in matches if (m.is_file() and not m.name.startswith(".")) or _is_frame_folder(m)]
            if not matches:
                raise UserInputError(f"--inputs {spec}: the pattern matches no file")
            found.extend(matches)
        elif path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and _is_video(p) and not p.name.startswith("."))
            if videos:
                found.extend(videos)
            elif _is_frame_folder(path):
                found.append(path)
            else:
                raise UserInputError(f"--inputs {spec}: no video in this folder ({', '.join(VIDEO_SUFFIXES[:5])}, ...)")
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            entries = _read_list(path)
            if not entries:
                raise UserInputError(f"--inputs {spec}: the list is empty")
            found.extend(entries)
        elif path.is_file():
            found.append(path)
        else:
            raise UserInputError(f"--inputs {spec}: no such file or folder")
    unique: dict[str, Path] = {}
    for item in found:
        resolved = item.resolve()
        unique.setdefault(str(resolved), resolved)
    return list(unique.values())


def stable_name(path: Path) -> str:
    """The output folder of a video: its file name (made safe) and 8 hex digits of its full path's hash."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem if path.suffix else path.name).strip("._") or "video"
    return f"{stem[:60]}-{hashlib.sha1(str(path).encode('utf-8')).hexdigest()[:8]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_stat(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a video; for a frame folder, the total size and the newest mtime."""
    try:
        if path.is_dir():
            entries = [p.stat() for p in path.iterdir() if p.is_file()]
            return sum(s.st_size for s in entries), max((s.st_mtime_ns for s in entries), default=0)
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns
    except OSError:
        return None


def _code_version() -> str:
    try:
        from importlib.metadata import version

        return version("microexpr")
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------------------------------- plan
def plan(args, inputs: list[Path], model_path: Path, model_sha: str) -> tuple[list[dict], list[dict]]:
    """Split the inputs into finished rows (skipped, or failed before any work: missing) and jobs to run."""
    from realtime.pipeline import PipelineOptions

    options = {
        "fps": args.fps,
        "max_faces": args.max_faces,
        "csv": bool(args.csv),
        "annotate": bool(args.annotate),
        "landmarks": False,
    }
    settings = {
        **options,
        "device": args.device,
        "pipeline": hashlib.sha1(repr(PipelineOptions()).encode()).hexdigest()[:12],
        "code": _code_version(),
        "format": FORMAT_VERSION,
    }
    model = {"path": str(model_path), "sha256": model_sha}
    rows, jobs = [], []
    for index, path in enumerate(inputs):
        name = stable_name(path)
        folder = args.out / name
        base = {"index": index, "input": str(path), "name": name, "folder": str(folder)}
        stat = _input_stat(path)
        if stat is None:
            rows.append({**base, "status": "failed", "reason": f"no such file: {path}"})
            continue
        key = {"path": str(path), "size": stat[0], "mtime_ns": stat[1], "model_sha256": model_sha, **settings}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        summary = _read_summary(folder / SUMMARY_FILE)
        if summary is not None and summary.get("status") == "done" and summary.get("key_digest") == digest:
            rows.append({**summary, **base, "status": "skipped", "reason": "", "wall_s": 0.0})
            continue
        failure = _read_summary(folder / FAILED_FILE)
        if failure is not None and failure.get("key_digest") == digest:  # the same file failed the same way
            rows.append({**base, "status": "failed", "reason": failure.get("reason", ""), "wall_s": 0.0})
            continue
        jobs.append({**base, "options": options, "key": key, "key_digest": digest, "model": model, "size": stat[0]})
    return rows, jobs


def _read_summary(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------------- ray
def _start_ray(args, workers: int | None):
    import ray

    common = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        if args.address:
            ray.init(address=args.address, **common)
        else:
            cores = os.cpu_count() or 1
            ray.init(
                address="local",
                num_cpus=workers or cores,
                num_gpus=0,
                object_store_memory=256 * 1024 * 1024,
                **common,
            )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {args.address}" if args.address else "a local Ray instance"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"cannot start or reach {where}: {first[:200]}") from None
    return ray


class _Pool:
    """N actors, one video each at a time; a worker that dies is restarted by Ray (``max_restarts``) and its
    video retried (``max_task_retries``), then replaced, and the video recorded as failed after
    :data:`MAX_ATTEMPTS` deaths."""

    def __init__(self, ray, workers: int, model, device: str, threads: int) -> None:
        from realtime.batch_worker import VideoWorker

        self.ray = ray
        self.actor_class = ray.remote(num_cpus=1, max_restarts=MAX_ATTEMPTS, max_task_retries=MAX_ATTEMPTS)(VideoWorker)
        self.model = model  # [ObjectRef]: nested, so the worker fetches it (once) rather than Ray per call
        self.args = (device, threads)
        self.actors = [self._new() for _ in range(workers)]

    def _new(self):
        return self.actor_class.remote(*self.args)

    def ready(self) -> list[dict]:
        """Wait for every worker to have loaded its models (a model that fails to load fails here)."""
        return self.ray.get([actor.ready.remote(self.model) for actor in self.actors])

    def replace(self, slot: int) -> None:
        self.ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._new()


def run_jobs(ray, pool: _Pool, jobs: list[dict], on_done) -> None:
    """Feed the jobs to the pool (largest first) and call ``on_done(row)`` as each finishes; a stop signal
    (see :func:`_on_stop_signal`) ends it with :class:`_Terminated`."""
    from ray.exceptions import RayActorError, RayError

    queue = sorted(jobs, key=lambda j: -j["size"])
    attempts: Counter = Counter()
    running: dict = {}  # object ref → (slot, job)
    free = list(range(len(pool.actors)))
    while queue or running:
        while queue and free:
            slot, job = free.pop(0), queue.pop(0)
            running[pool.actors[slot].process.remote(job, pool.model)] = (slot, job)
        done, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
        if _STOP:
            raise _Terminated
        for ref in done:
            slot, job = running.pop(ref)
            free.append(slot)
            try:
                row = ray.get(ref)
            except RayActorError as error:  # the worker died (and Ray's own retries ran out)
                attempts[job["input"]] += 1
                pool.replace(slot)
                if attempts[job["input"]] < MAX_ATTEMPTS:
                    queue.insert(0, job)
                    continue
                row = {"status": "failed", "reason": f"the worker died while processing it: {_first_line(error)}"}
            except RayError as error:
                row = {"status": "failed", "reason": f"worker error: {_first_line(error)}"}
            on_done({**job, **row, "index": job["index"], "folder": job["folder"]})


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


# ---------------------------------------------------------------------------------------------------- outputs
def _table_row(row: dict) -> dict:
    per_label = row.get("events_per_label") or {}
    done = row.get("status") in ("done", "skipped")
    return {
        "input": row["input"],
        "status": row["status"],
        "reason": row.get("reason", ""),
        "frames": row.get("frames", ""),
        "duration_s": row.get("duration_s", "") if done else "",
        "fps": row.get("fps", "") if done else "",
        "faces": row.get("faces", "") if done else "",
        "events": row.get("events", "") if done else "",
        "events_per_label": dict(per_label) if done else {},
        "wall_s": row.get("wall_s", ""),
        "provider": row.get("provider", "") if done else "",
        "output": row["folder"] if done else "",
    }


def write_batch_files(out: Path, rows: list[dict], meta: dict) -> list[dict]:
    """``batch.json`` (the rows and how the run went) and ``batch.csv`` (one row per video, one column per
    label), both written atomically. Returns the table rows."""
    table = [_table_row(r) for r in sorted(rows, key=lambda r: r["index"])]
    write_json_atomic(out / "batch.json", {**meta, "videos": table})
    labels = sorted({label for r in table for label in r["events_per_label"]})
    tmp = out / f".batch.csv.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        columns = [c for c in BATCH_COLUMNS if c != "events_per_label"]
        head = columns[: columns.index("events") + 1] + [f"events_{label}" for label in labels]
        writer.writerow(head + columns[columns.index("events") + 1 :])
        for r in table:
            values = [r[c] for c in columns]
            cut = columns.index("events") + 1
            per = [r["events_per_label"].get(label, 0) if r["status"] != "failed" else "" for label in labels]
            writer.writerow(values[:cut] + per + values[cut:])
    os.replace(tmp, out / "batch.csv")
    return table


def write_batch_report(out: Path, rows: list[dict], subtitle: str) -> Path:
    from realtime.process import VIDEO_FILE
    from realtime.report_html import VideoReport, load_events, video_link, write_report

    videos = []
    for row in sorted(rows, key=lambda r: r["index"]):
        folder = Path(row["folder"])
        name = Path(row["input"]).name
        if row["status"] == "failed":
            videos.append(VideoReport(name, row["input"], "failed", row.get("reason", "")))
            continue
        signal = _read_summary(folder / "signal.json") or {}
        thumbnails = signal.pop("thumbnails", {}) if isinstance(signal, dict) else {}
        summary = _read_summary(folder / SUMMARY_FILE) or row
        if row["status"] == "done":  # skipped ones keep the time they took when they were processed
            summary = {**summary, "wall_s": row.get("wall_s", summary.get("wall_s"))}
        events = load_events(folder / "events.jsonl")
        video = video_link(folder / VIDEO_FILE, out / "report.html")
        videos.append(VideoReport(name, row["input"], row["status"], "", summary, events, signal, thumbnails, video))
    return write_report(out / "report.html", videos, "microexpr batch report", subtitle)


# ---------------------------------------------------------------------------------------------------- main
WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
session, me = sys.argv[1], os.getpid()
if sys.stdin.readline().strip() == "done":
    sys.exit(0)
time.sleep(1.0)  # the driver died without shutting Ray down: let Ray's own fate sharing act first
for _ in range(5):
    victims = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            hit = session in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="ignore")
            for fd in [] if hit else os.listdir(f"/proc/{pid}/fd"):
                try:
                    if session in os.readlink(f"/proc/{pid}/fd/{fd}"):
                        hit = True
                        break
                except OSError:
                    pass
        except OSError:
            continue
        if hit:
            victims.append(int(pid))
    if not victims:
        break
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
"""


def _start_watchdog(ray):
    """A tiny process that outlives a driver killed outright (SIGKILL, the OOM killer) and then ends every
    process of this run's local Ray session (Ray's agents would otherwise linger). It waits on a pipe: the
    driver's death closes it; a clean end writes ``done``. Linux only; None elsewhere."""
    import subprocess

    try:
        session = ray._private.worker._global_node.get_session_dir_path()
    except Exception:
        return None
    if not session or not Path("/proc").is_dir():
        return None
    return subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, session],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop_watchdog(watchdog) -> None:
    if watchdog is None:
        return
    try:
        watchdog.stdin.write("done\n")
        watchdog.stdin.close()
        watchdog.wait(timeout=5)
    except Exception:
        watchdog.kill()


class _Terminated(Exception):
    pass


_STOP: list[int] = []


def _on_stop_signal(signum, frame):
    # Ctrl-C, SIGTERM or SIGHUP: noted here and acted on between two waits (an exception raised inside Ray's wait
    # would surface as a SystemError); Ray is then shut down and the batch files written
    _STOP.append(signum)


def run(args: argparse.Namespace) -> int:
    from realtime.classify import default_model

    started = time.perf_counter()
    inputs = collect_inputs(args.inputs)
    out = args.out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: it is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"--out {out}: cannot create it ({error.strerror or error})") from None
    if not os.access(out, os.W_OK):
        raise UserInputError(f"--out {out}: the folder is not writable")
    args.out = out
    model_path = (args.model if args.model is not None else default_model(WEIGHTS)).expanduser().resolve()
    if not model_path.is_file():
        raise UserInputError(f"model file not found: {model_path}")
    model_sha = file_sha256(model_path)
    rows, jobs = plan(args, inputs, model_path, model_sha)
    skipped = sum(r["status"] == "skipped" for r in rows)
    meta = {
        "out": str(out),
        "model": {"path": str(model_path), "sha256": model_sha},
        "workers": 0,
        "address": args.address or "local",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    timing: dict[str, float] = {}
    interrupted = False
    if jobs:
        from tqdm import tqdm

        from realtime.classify import Classifier, ClassifierOptions

        # a model that cannot be used is a bad argument: say so before Ray starts (and fail nothing)
        check = Classifier(ClassifierOptions(model_path, args.device))
        del check
        workers = args.workers or (None if args.address else os.cpu_count() or 1)
        t0 = time.perf_counter()
        ray = _start_ray(args, workers)
        watchdog = None if args.address else _start_watchdog(ray)
        try:
            if workers is None:  # a cluster without --workers: one per CPU
                workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
            workers = min(workers, len(jobs))
            threads = max((os.cpu_count() or 1) // workers, 1) if not args.address else 1
            timing["ray_start_s"] = time.perf_counter() - t0
            # the model travels in Ray's object store (cluster nodes need no copy of the file)
            model_ref = ray.put(model_path.read_bytes())
            pool = _Pool(ray, workers, [model_ref], args.device, threads)
            meta["workers"] = workers
            info = pool.ready()
            timing["workers_ready_s"] = time.perf_counter() - t0
            meta["worker_hosts"] = sorted({i["worker"].split(":")[0] for i in info})
            if not args.quiet:
                log.info(
                    "%d video(s) to do, %d finished already; %d Ray worker(s) on %s, classifier on %s",
                    len(jobs),
                    skipped,
                    workers,
                    args.address or "this machine",
                    info[0]["provider"],
                )
            events = sum(int(r.get("events") or 0) for r in rows if r["status"] == "skipped")
            failed, finished = 0, len(rows)
            bar = tqdm(
                total=len(rows) + len(jobs),
                initial=len(rows),
                unit="video",
                desc="videos",
                disable=args.quiet or not sys.stderr.isatty(),
                file=sys.stderr,
                dynamic_ncols=True,
            )
            bar.set_postfix(events=events, failed=failed)

            def on_done(row: dict) -> None:
                nonlocal events, failed, finished
                rows.append(row)
                finished += 1
                events += int(row.get("events") or 0)
                failed += row["status"] == "failed"
                bar.update(1)
                bar.set_postfix(events=events, failed=failed)
                if bar.disable and not args.quiet:
                    what = row.get("reason") if row["status"] == "failed" else f"{row.get('events', 0)} event(s)"
                    log.info("[%d/%d] %s: %s, %s", finished, bar.total, Path(row["input"]).name, row["status"], what)

            _STOP.clear()
            previous = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
            t1 = time.perf_counter()
            try:
                run_jobs(ray, pool, jobs, on_done)
            except (KeyboardInterrupt, _Terminated):
                interrupted = True
            finally:
                # the first video handed out to the last result back: what the workers' videos took
                timing["processing_s"] = time.perf_counter() - t1
                for number, handler in previous.items():
                    signal.signal(number, handler)
                bar.close()
        finally:
            t2 = time.perf_counter()
            ray.shutdown()
            _stop_watchdog(watchdog)
            timing["ray_stop_s"] = time.perf_counter() - t2
    timing["wall_s"] = time.perf_counter() - started
    meta.update({k: round(v, 3) for k, v in timing.items()}, interrupted=interrupted)
    done_rows = {r["input"] for r in rows}
    for job in jobs:  # interrupted: what did not finish is unfinished (it runs on the next call)
        if job["input"] not in done_rows:
            rows.append({**job, "status": "unfinished", "reason": "the run was interrupted"})
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


if __name__ == "__main__":
    sys.exit(main())
