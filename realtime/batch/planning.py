"""The batch command's plan: which videos the ``--inputs`` name, and which of them still need doing.

:func:`collect_inputs` turns folders, patterns and list files into the videos (and frame folders), each
once. :func:`plan` splits them into rows that are already settled (finished by an earlier run with the same
resume key, failed on their own account with the same key, or missing) and :class:`BatchJob` values to run.
The resume key of a video is its path, size and modification time, the model's SHA-256 and the settings;
its digest is what ``summary.json`` (or ``failed.json``) must hold for the video to be skipped.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from realtime.batch.worker import FAILED_FILE, FORMAT_VERSION, SUMMARY_FILE, BatchJob
from realtime.core.errors import UserInputError
from realtime.core.files import IMAGE_SUFFIXES

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


def input_stat(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a video; for a frame folder, the total size and the newest mtime."""
    try:
        if path.is_dir():
            entries = [p.stat() for p in path.iterdir() if p.is_file()]
            return sum(s.st_size for s in entries), max((s.st_mtime_ns for s in entries), default=0)
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns
    except OSError:
        return None


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("microexpr")
    except Exception:
        return "unknown"


def plan(args, inputs: list[Path], model_path: Path, model_sha: str) -> tuple[list[dict], list[BatchJob]]:
    """Split the inputs into finished rows (skipped, or failed before any work: missing) and jobs to run.
    ``args``: ``out``, ``fps``, ``max_faces``, ``csv``, ``annotate``, ``device``, ``spotter``, ``spotter_model`` (the
    command's arguments)."""
    from realtime.pipeline import PipelineOptions

    options = {
        "fps": args.fps,
        "max_faces": args.max_faces,
        "csv": bool(args.csv),
        "annotate": bool(args.annotate),
        "landmarks": False,
        "spotter": args.spotter,
        "spotter_model": None if args.spotter_model is None else str(Path(args.spotter_model).resolve()),
    }
    settings = {
        **options,
        "device": args.device,
        "pipeline": hashlib.sha1(repr(PipelineOptions()).encode()).hexdigest()[:12],
        "code": code_version(),
        "format": FORMAT_VERSION,
    }
    model = {"path": str(model_path), "sha256": model_sha}
    rows: list[dict] = []
    jobs: list[BatchJob] = []
    for index, path in enumerate(inputs):
        name = stable_name(path)
        folder = args.out / name
        base = {"index": index, "input": str(path), "name": name, "folder": str(folder)}
        stat = input_stat(path)
        if stat is None:
            rows.append({**base, "status": "failed", "reason": f"no such file: {path}"})
            continue
        key = {"path": str(path), "size": stat[0], "mtime_ns": stat[1], "model_sha256": model_sha, **settings}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        summary = read_json_object(folder / SUMMARY_FILE)
        if summary is not None and summary.get("status") == "done" and summary.get("key_digest") == digest:
            rows.append({**summary, **base, "status": "skipped", "reason": "", "wall_s": 0.0})
            continue
        failure = read_json_object(folder / FAILED_FILE)
        if failure is not None and failure.get("key_digest") == digest:  # the same file failed the same way
            rows.append({**base, "status": "failed", "reason": failure.get("reason", ""), "wall_s": 0.0})
            continue
        jobs.append(BatchJob(**base, options=options, key=key, key_digest=digest, model=model, size=stat[0]))
    return rows, jobs


def read_json_object(path: Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
