"""The worker side of ``python -m realtime.batch``: one video in, a finished folder of outputs out.

:class:`VideoWorker` is what each Ray actor holds: the ONNX classifier and the dlib landmark model, loaded
once when the worker starts, then used for every video it is given. :func:`process_job` does one video
and is plain Python (the tests and the benchmark call it without Ray).

A folder is finished when its ``summary.json`` exists: everything is written into a hidden temporary folder
beside it, moved into place by renames, and ``summary.json`` (itself a temporary file renamed) comes last.
A worker killed half-way therefore leaves a folder without ``summary.json``, which the next run redoes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.core.files import atomic_write_json, fsync_folder

SUMMARY_FILE = "summary.json"
FAILED_FILE = "failed.json"  # a video that failed for a reason of its own (unreadable, no face), with its key
PARTIAL_PREFIX = ".partial-"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BatchJob:
    """One video to process: where it is and where its outputs go, the settings it runs with and its
    resume key. ``index`` is its place among the inputs (the order of the table), ``size`` its bytes (the
    largest go first)."""

    index: int
    input: str
    name: str
    folder: str
    options: dict[str, Any]  # the fields of realtime.process.RecordedOptions
    key: dict[str, Any]
    key_digest: str
    model: dict[str, str]  # path and sha256
    size: int

    def row(self, **result: Any) -> dict[str, Any]:
        """Its row in the table: the job's fields under what came of it (``status``, ``reason``, the summary)."""
        return {**dataclasses.asdict(self), **result, "index": self.index, "folder": self.folder}


def write_json(path: Path, data: object) -> None:
    """A batch file (``summary.json``, ``failed.json``, ``batch.json``): JSON written whole or not at all."""
    atomic_write_json(path, data, indent=1, ensure_ascii=False)


def _failed(job: BatchJob, reason: str, started: float, remember: bool = True, **extra) -> dict:
    """The failure row. ``remember``: the failure is the video's own (it cannot be decoded, shows no face), so
    ``failed.json`` keeps it with the resume key and an unchanged video is not tried again."""
    row = {"status": "failed", "input": job.input, "name": job.name, "reason": reason, **extra}
    row["wall_s"] = round(time.perf_counter() - started, 3)
    if remember:
        write_json(Path(job.folder) / FAILED_FILE, {**row, "key": job.key, "key_digest": job.key_digest})
    return row


def _remove_partials(folder: Path, keep: Path | None = None) -> None:
    """Remove the half-written output folders of earlier or other runs from ``folder`` (all but ``keep``)."""
    for stale in folder.glob(f"{PARTIAL_PREFIX}*"):
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)


def process_job(job: BatchJob, classifier, landmarker, provider: str, worker: str = "") -> dict:
    """Process ``job`` with an already loaded ``classifier`` and ``landmarker``. Returns
    the summary (``status`` ``done``) or the failure (``status`` ``failed`` and a ``reason``); never raises
    for a bad video."""
    from realtime.core.errors import UserInputError
    from realtime.process import CSV_FILE, EVENTS_FILE, SIGNAL_FILE, VIDEO_FILE, RecordedOptions, process_recorded
    from realtime.stages.faces import FaceTracker, TrackingOptions

    started = time.perf_counter()
    cpu_started = time.process_time()  # every thread of this process (the decoder's too): one video at a time
    source = Path(job.input)
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    # this folder is now being redone: it must not look finished until it is
    for name in (SUMMARY_FILE, FAILED_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    _remove_partials(folder)
    if not source.exists():
        return _failed(job, f"no such file: {source}", started, remember=False)
    tmp = folder / f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        options = RecordedOptions(**job.options)
        tracker = FaceTracker(TrackingOptions(max_faces=options.max_faces), landmarker)
        try:
            result = process_recorded(source, tmp, classifier, options, tracker=tracker)
        except UserInputError as error:
            return _failed(job, str(error), started)
        except Exception as error:  # a decoder or library failure on this file: the others go on
            return _failed(job, f"{type(error).__name__}: {error}", started, remember=False)
        stats = result.stats
        if stats.frames == 0:
            return _failed(job, "no frame could be decoded", started)
        if result.faces == 0:
            return _failed(job, f"no face found in any of its {stats.frames} frames", started, frames=stats.frames)
        for name in (EVENTS_FILE, SIGNAL_FILE, CSV_FILE, VIDEO_FILE):
            if name in result.files:
                os.replace(tmp / name, folder / name)
            else:  # left from an earlier run with other settings
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
        fsync_folder(folder)
        wall_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        summary = {
            "status": "done",
            "input": job.input,
            "name": job.name,
            "frames": stats.frames,
            "corrupt_frames": result.corrupt_frames,
            "duration_s": round(result.duration_s, 3),
            "fps": round(result.fps, 3),
            "faces": result.faces,
            "events": result.events,
            "events_per_label": dict(sorted(stats.labels.items())),
            "rejected": dict(sorted(result.rejected.items())),
            "stage_ms": {k: round(v, 3) for k, v in stats.times.mean().items()},
            "processing_fps": round(stats.frames / stats.elapsed_s, 1) if stats.elapsed_s > 0 else 0.0,
            "wall_s": round(wall_s, 3),
            "cpu_s": round(cpu_s, 3),  # CPU seconds of all its threads: cpu_s / wall_s is the cores it kept busy
            "provider": provider,
            "worker": worker,
            "model": job.model,
            "settings": job.options,
            "outputs": sorted(result.files),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "format": FORMAT_VERSION,
            "key": job.key,
            "key_digest": job.key_digest,
        }
        # a worker of a killed run can outlive its driver for a moment and start this video too: a finished
        # folder holds no other run's half-written outputs
        _remove_partials(folder, keep=tmp)
        write_json(folder / SUMMARY_FILE, summary)  # last: the folder is finished
        fsync_folder(folder)
        return summary
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class VideoWorker:
    """One per Ray worker: loads the classifier and the landmark model once, then processes videos.

    ``model`` is the .onnx file's bytes, its path, or a list holding a Ray object reference to the bytes
    (shipped through Ray's object store, so the nodes of a cluster need no copy of the file). It is loaded
    on the first call (and again only if Ray restarts a worker that died). ``threads`` bounds OpenCV's and
    ONNX Runtime's threads so that the workers of one machine do not fight over its cores.
    """

    def __init__(self, device: str = "auto", threads: int = 1) -> None:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2

        cv2.setNumThreads(max(int(threads), 1))
        self.device = device
        self.threads = max(int(threads), 1)
        self.classifier = None
        self.landmarker = None
        self.provider = ""
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.loads = 0

    def _load(self, model) -> None:
        if self.classifier is not None:
            return
        from realtime.core.landmarks import FaceLandmarker
        from realtime.stages.classify import Classifier, ClassifierOptions
        from realtime.stages.faces import TrackingOptions

        if isinstance(model, list):
            import ray

            model = ray.get(model[0])
        model_file = None
        if isinstance(model, bytes):
            with tempfile.NamedTemporaryFile(prefix="microexpr-model-", suffix=".onnx", delete=False) as handle:
                handle.write(model)
            model_file = path = Path(handle.name)
        else:
            path = Path(model)
        try:
            self.classifier = Classifier(ClassifierOptions(path, self.device, threads=self.threads))
        finally:
            if model_file is not None:  # the session holds the model in memory
                with contextlib.suppress(OSError):
                    model_file.unlink()
        self.landmarker = FaceLandmarker(detect_width=TrackingOptions().detect_width)
        self.provider = self.classifier.provider.replace("ExecutionProvider", "")
        self.loads += 1

    def ready(self, model) -> dict:
        """Load the models; who this worker is (host:pid), the classifier's provider, how often it loaded."""
        self._load(model)
        return {"worker": self.worker, "provider": self.provider, "loads": self.loads}

    def process(self, job: BatchJob, model) -> dict:
        self._load(model)
        row = process_job(job, self.classifier, self.landmarker, self.provider, self.worker)
        return {**row, "model_loads": self.loads}
