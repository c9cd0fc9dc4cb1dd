"""Process one source into outputs: the frame loop ``stream.py`` and ``python -m realtime.batch`` share.

:func:`run_frames` reads frames from a :class:`realtime.stages.capture.FrameSource` until it ends, runs each through
a :class:`realtime.pipeline.Pipeline`, renders the overlay when someone wants it (a window or the annotated
video) and writes the outputs (:class:`Outputs`: events JSONL, per-frame CSV, annotated video). The caller
opens the source and the writers and decides what to do with the window (``show``) and each event
(``on_event``); an optional :class:`ReportRecorder` keeps what the HTML report draws (the per-frame spotting
signal, the spotted and rejected intervals and the apex crops).

:func:`process_recorded` is "one recorded video into a folder of outputs" for the batch: it opens the video,
writes ``events.jsonl`` (and ``frames.csv``, ``annotated.mp4`` when asked) into a folder and returns the
numbers of the summary.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.pipeline import FrameResult, MicroExpression, Pipeline, StageTimes
from realtime.schema import frame_record
from realtime.stages.outputs import EventWriter, FrameCsvWriter, VideoWriter
from realtime.stages.spotter import DEFAULT_SPOTTER

THUMB_PX = 128  # apex thumbnails are stored at most this size (the report shows them at about 112 px)
TRACE_POINTS = 1500  # per face: the report's signal is decimated to this many points (peaks kept)


@dataclass
class Outputs:
    """The writers the user asked for (each checks its path before any work starts)."""

    events: EventWriter | None = None
    csv: FrameCsvWriter | None = None
    video: VideoWriter | None = None

    def close(self) -> None:
        for writer in (self.events, self.csv, self.video):
            if writer is not None:
                writer.close()


def write_rows(csv_writer: FrameCsvWriter, result: FrameResult) -> None:
    """The CSV rows of one frame: one per face, or one ``success 0`` row when no face was found."""
    csv_writer.write(frame_record(result, csv_writer.estimator))


def _thumbnail_png(crop: np.ndarray) -> bytes:
    side = max(crop.shape[:2])
    if side > THUMB_PX:
        scale = THUMB_PX / side
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", crop)
    return data.tobytes() if ok else b""


def decimate(values: np.ndarray, points: int = TRACE_POINTS) -> np.ndarray:
    """The indices of at most about ``points`` samples of a signal, keeping each bucket's minimum and maximum
    (so a one-frame spike in an hour-long video still shows)."""
    n = len(values)
    if n <= points:
        return np.arange(n)
    edges = np.linspace(0, n, max(points // 2, 1) + 1).astype(int)
    keep: list[int] = []
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            chunk = values[lo:hi]
            keep.extend(sorted({lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))}))
    return np.asarray(keep)


class ReportRecorder:
    """What the HTML report needs from a run: per face the spotting signal and threshold of every frame,
    the spotted intervals (micro-expressions and rejected rises) and a thumbnail of each apex crop."""

    def __init__(self) -> None:
        self._trace: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
        self.rejected: list[dict] = []
        self.thumbnails: dict[tuple[int, int], bytes] = {}
        self.events: list[dict] = []
        self.frames = 0
        self.last_ms = 0.0

    def observe(self, result: FrameResult) -> None:
        t_ms = result.frame.t_ms
        self.frames += 1
        self.last_ms = t_ms
        for signal in result.signals:
            self._trace[signal.face_id].append((t_ms, signal.signal, signal.threshold))
        for event in result.rejected:
            self.rejected.append(
                {
                    "face": int(event.face_id),
                    "kind": event.kind,
                    "onset_ms": round(float(event.onset_ms), 1),
                    "offset_ms": round(float(event.offset_ms), 1),
                    "score": round(float(event.score), 2),
                }
            )
        for event in result.events:
            self.events.append(event.to_json())
            crop = getattr(event, "apex_crop", None)
            if crop is not None:
                self.thumbnails[(event.face, event.apex_frame)] = _thumbnail_png(crop)

    def signal(self, points: int = TRACE_POINTS) -> dict:
        """``{"faces": {id: {"t_ms": [...], "signal": [...], "threshold": [...]}}, "rejected": [...]}``,
        decimated to about ``points`` samples per face (JSON-ready)."""
        faces = {}
        for face_id, rows in sorted(self._trace.items()):
            array = np.nan_to_num(np.asarray(rows, np.float64))
            array = array[decimate(array[:, 1], points)]
            t, s, th = array[:, 0], array[:, 1], array[:, 2]
            faces[str(face_id)] = {
                "t_ms": [round(float(v), 1) for v in t],
                "signal": [round(float(v), 3) for v in s],
                "threshold": [round(float(v), 3) for v in th],
            }
        return {"faces": faces, "rejected": self.rejected}

    def thumbnails_b64(self) -> dict[str, str]:
        """Apex thumbnails as ``{"<face>_<apex frame>": base64 PNG}``."""
        return {f"{f}_{a}": base64.b64encode(png).decode("ascii") for (f, a), png in self.thumbnails.items() if png}


@dataclass
class RunStats:
    """What :func:`run_frames` measured: frames processed, the time from the first frame to the end, the
    per-stage times, whether the user interrupted, and the events per label."""

    frames: int = 0
    elapsed_s: float = 0.0
    first_frame_at: float | None = None  # perf_counter() when the first frame arrived
    interrupted: bool = False
    stopped_by: str = ""  # the signal that ended the run (e.g. "SIGTERM"); empty for Ctrl-C or the end
    times: StageTimes = field(default_factory=StageTimes)
    labels: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def iter_frames(
    source,
    pipeline: Pipeline,
    outputs: Outputs,
    stats: RunStats,
    *,
    renderer=None,
    show: Callable[[np.ndarray], bool] | None = None,
    on_event: Callable[[MicroExpression], None] | None = None,
    recorder: ReportRecorder | None = None,
    stop=None,
) -> Iterator[FrameResult]:
    """The frame loop: every frame of ``source`` through ``pipeline`` into ``outputs``, yielding each
    :class:`FrameResult` once its outputs are written, until the source ends, ``show`` returns False (the
    window was closed) or ``stop`` (a :class:`realtime.cli.stopping.StopSignals`) has a request, looked at
    between two frames; ``stats`` is filled as it goes. ``renderer`` draws the overlay for ``show`` and the
    annotated video (needed when either is there). :func:`run_frames` and :class:`realtime.Recognizer` both
    run this loop."""
    times = stats.times
    started = time.perf_counter()
    fps_clock, fps_frames, shown_fps = time.perf_counter(), 0, 0.0
    draw = renderer is not None and (show is not None or outputs.video is not None)
    try:
        while True:
            if stop is not None and stop.requested:
                stats.interrupted, stats.stopped_by = True, stop.requested
                break
            t0 = time.perf_counter()
            frame = source.read()
            t1 = time.perf_counter()
            if frame is None:
                break
            if stats.first_frame_at is None:
                stats.first_frame_at = t1
                started = t0
            result = pipeline.process(frame)
            stage_ms = dict(result.stage_ms, capture=1000.0 * (t1 - t0))

            t2 = time.perf_counter()
            fps_frames += 1
            if t2 - fps_clock >= 0.5:
                shown_fps, fps_clock, fps_frames = fps_frames / (t2 - fps_clock), t2, 0
            annotated = renderer.render(result, shown_fps) if draw else None
            t3 = time.perf_counter()
            for event in result.events:
                stats.labels[event.label or "unlabelled"] += 1
                if outputs.events is not None:
                    outputs.events.write(event.to_json())
                if on_event is not None:
                    on_event(event)
            if outputs.csv is not None:
                write_rows(outputs.csv, result)
            if outputs.video is not None:
                outputs.video.write(annotated)
            if recorder is not None:
                recorder.observe(result)
            t4 = time.perf_counter()
            stage_ms["render"] = 1000.0 * (t3 - t2)
            stage_ms["output"] = 1000.0 * (t4 - t3)
            times.add(stage_ms)
            times.frames += 1
            stats.frames += 1
            stats.elapsed_s = time.perf_counter() - started
            yield result

            if show is not None and not show(annotated):
                break
    finally:
        stats.elapsed_s = time.perf_counter() - started


def run_frames(
    source,
    pipeline: Pipeline,
    outputs: Outputs,
    *,
    renderer=None,
    show: Callable[[np.ndarray], bool] | None = None,
    on_event: Callable[[MicroExpression], None] | None = None,
    recorder: ReportRecorder | None = None,
    stop=None,
) -> RunStats:
    """:func:`iter_frames` to the end (or Ctrl-C, which ends the run with ``interrupted`` set, or a request
    of ``stop``)."""
    stats = RunStats()
    try:
        for _ in iter_frames(
            source,
            pipeline,
            outputs,
            stats,
            renderer=renderer,
            show=show,
            on_event=on_event,
            recorder=recorder,
            stop=stop,
        ):
            pass
    except KeyboardInterrupt:
        stats.interrupted = True
    return stats


@dataclass(frozen=True)
class RecordedOptions:
    """How a recorded video is processed into a folder: ``fps`` for a frame folder or a video that
    reports none, ``max_faces``, ``csv`` writes ``frames.csv`` (with the 68 landmarks unless
    ``csv_landmarks`` is False), ``annotate`` writes ``annotated.mp4``
    (``landmarks`` draws the 68 points on it); ``spotter`` the spotting method (``rules`` or ``learned``) and
    ``spotter_model`` the learned spotter's decision file (None: ``weights/spotter.npz``)."""

    fps: float | None = None
    max_faces: int = 1
    csv: bool = False
    csv_landmarks: bool = True
    annotate: bool = False
    landmarks: bool = False
    spotter: str = DEFAULT_SPOTTER
    spotter_model: str | None = None

    def spotter_options(self):
        """The spotter's settings (:class:`realtime.stages.spotter.SpotterOptions`)."""
        from realtime.stages.spotter import SpotterOptions

        return SpotterOptions(method=self.spotter, model=self.spotter_model)


EVENTS_FILE, CSV_FILE, VIDEO_FILE, SIGNAL_FILE = "events.jsonl", "frames.csv", "annotated.mp4", "signal.json"


@dataclass
class RecordedResult:
    """What :func:`process_recorded` found: the loop's :class:`RunStats`, the source's nominal ``fps`` and
    undecodable frames, the video's ``duration_s``, the face ids seen, the events, the rejected rises by
    kind and the output files written (names inside the folder)."""

    stats: RunStats
    fps: float
    corrupt_frames: int
    duration_s: float
    faces: int
    events: int
    rejected: dict[str, int]
    files: list[str]


def process_recorded(
    source_path: str | Path, folder: Path, classifier, options: RecordedOptions, tracker=None
) -> RecordedResult:
    """One recorded video (or frame folder) into ``folder``: ``events.jsonl``, ``signal.json`` (the report's
    signal, rejected rises and apex thumbnails) and, when asked, ``frames.csv`` and ``annotated.mp4``. Every
    frame is processed, none dropped. A file that cannot be opened raises
    :class:`realtime.core.errors.UserInputError`; ``tracker`` lets a caller reuse a loaded landmark model."""
    from realtime.pipeline import PipelineOptions
    from realtime.stages.capture import CaptureOptions, open_source
    from realtime.stages.faces import TrackingOptions
    from realtime.stages.outputs import EventWriter, FrameCsvWriter, VideoWriter
    from realtime.stages.render import Renderer, RenderOptions

    folder = Path(folder)
    source = open_source(str(source_path), CaptureOptions(fps=options.fps, live=False, read_ahead=16))
    outputs = Outputs()
    pipeline = None
    recorder = ReportRecorder()
    files = [EVENTS_FILE, SIGNAL_FILE]
    try:
        outputs.events = EventWriter(folder / EVENTS_FILE)
        if options.csv:
            outputs.csv = FrameCsvWriter(folder / CSV_FILE, landmarks=options.csv_landmarks)
            files.append(CSV_FILE)
        if options.annotate:
            outputs.video = VideoWriter(folder / VIDEO_FILE, source.fps)
            files.append(VIDEO_FILE)
        pipeline = Pipeline(
            PipelineOptions(tracking=TrackingOptions(max_faces=options.max_faces), spotter=options.spotter_options()),
            classifier,
            tracker=tracker,
        )
        renderer = Renderer(RenderOptions(landmarks=options.landmarks)) if options.annotate else None
        stats = run_frames(source, pipeline, outputs, renderer=renderer, recorder=recorder)
        if stats.interrupted:
            raise KeyboardInterrupt
    finally:
        if pipeline is not None:
            pipeline.close()
        outputs.close()
        source.close()
    signal = recorder.signal()
    signal["thumbnails"] = recorder.thumbnails_b64()
    (folder / SIGNAL_FILE).write_text(json.dumps(signal, separators=(",", ":")), encoding="utf-8")
    fps = float(source.fps)
    duration_s = (recorder.last_ms + 1000.0 / fps) / 1000.0 if recorder.frames else 0.0
    return RecordedResult(
        stats,
        fps,
        int(source.corrupt),
        duration_s,
        len(pipeline.face_ids),
        int(pipeline.events),
        dict(pipeline.rejected),
        files,
    )
