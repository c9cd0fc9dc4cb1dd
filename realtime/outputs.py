"""What the recognizer writes: events (JSON Lines), per-frame rows (CSV) and the annotated video.

- Events: one JSON object per spotted micro-expression, written and flushed (and synced to disk) the moment
  it is spotted, so a crash or a pulled plug loses nothing already reported. The keys, in order:
  ``face, onset_frame, apex_frame, offset_frame, onset_ms, apex_ms, offset_ms, score, label, confidence,
  probabilities``; frame indices are 0-based over every decoded frame of the source.
- CSV: one row per frame and face, in the spirit of OpenFace's output (``frame``, ``face_id``,
  ``success``…): frame, time, face id, whether the face was found (``success``), detected or tracked, the
  box, the alignment angle, the spotting signal and threshold, and whether an event is under way. A frame
  with no face still gets a row (``success`` 0, ``detection`` ``none``), so gaps are visible, not silent.
- Video: the annotated frames at the source's size and frame rate.

Every writer checks its path when it is created, so a path that cannot be written is reported before any
work starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import UserInputError

CSV_COLUMNS = (
    "frame",
    "time_ms",
    "face_id",
    "success",
    "detection",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "angle_deg",
    "signal",
    "threshold",
    "in_event",
)
EVENT_KEYS = (
    "face",
    "onset_frame",
    "apex_frame",
    "offset_frame",
    "onset_ms",
    "apex_ms",
    "offset_ms",
    "score",
    "label",
    "confidence",
    "probabilities",
)
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def check_writable(path: Path, what: str) -> Path:
    """``path`` as a file we can create or overwrite, or a :class:`UserInputError` saying why not."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserInputError(f"cannot write {what} to {path}: it is a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserInputError(f"cannot write {what} to {path}: folder {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserInputError(f"cannot write {what} to {path}: permission denied")
    if not path.exists() and not os.access(parent, os.W_OK):
        raise UserInputError(f"cannot write {what} to {path}: folder {parent} is not writable")
    return path


def _open(path: Path, what: str, newline: str | None = None):
    try:
        return path.open("w", encoding="utf-8", newline=newline)
    except OSError as error:
        raise UserInputError(f"cannot write {what} to {path}: {error.strerror or error}") from None


def _number(value: float, digits: int) -> float:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else 0.0


def event_record(
    face: int,
    onset_frame: int,
    apex_frame: int,
    offset_frame: int,
    onset_ms: float,
    apex_ms: float,
    offset_ms: float,
    score: float,
    label: str,
    confidence: float,
    probabilities: dict[str, float],
) -> dict:
    """The event as the JSON object of the events file (keys in their documented order, plain numbers)."""
    return {
        "face": int(face),
        "onset_frame": int(onset_frame),
        "apex_frame": int(apex_frame),
        "offset_frame": int(offset_frame),
        "onset_ms": _number(onset_ms, 1),
        "apex_ms": _number(apex_ms, 1),
        "offset_ms": _number(offset_ms, 1),
        "score": _number(score, 2),
        "label": str(label),
        "confidence": _number(confidence, 4),
        "probabilities": {str(k): _number(v, 4) for k, v in probabilities.items()},
    }


class EventWriter:
    """Events as JSON Lines, each flushed and synced as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = check_writable(path, "events")
        self._file = _open(self.path, "events")
        self.count = 0

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class FrameCsvWriter:
    """One CSV row per frame and face (and one per frame without a face)."""

    def __init__(self, path: Path) -> None:
        self.path = check_writable(path, "the CSV")
        self._file = _open(self.path, "the CSV", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(CSV_COLUMNS)

    def write_face(
        self,
        frame: int,
        time_ms: float,
        face_id: int,
        detected: bool,
        box: tuple[int, int, int, int],
        angle_deg: float,
        signal: float,
        threshold: float,
        in_event: bool,
    ) -> None:
        x, y, w, h = box
        self._writer.writerow(
            (
                frame,
                f"{time_ms:.1f}",
                face_id,
                1,
                "detected" if detected else "tracked",
                x,
                y,
                w,
                h,
                f"{angle_deg:.2f}",
                f"{signal:.2f}",
                f"{threshold:.2f}",
                int(in_event),
            )
        )

    def write_no_face(self, frame: int, time_ms: float) -> None:
        self._writer.writerow((frame, f"{time_ms:.1f}", "", 0, "none", "", "", "", "", "", "", "", 0))

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


class VideoWriter:
    """The annotated video at the source's size and rate (MPEG-4 for .mp4/.mov, Motion JPEG for .avi/.mkv).

    The file is opened with the first frame, whose size it takes; frames of another size are resized.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path = check_writable(path, "the video")
        if self.path.suffix.lower() not in _FOURCC:
            raise UserInputError(
                f"cannot write the video to {self.path}: unknown extension {self.path.suffix or '(none)'}; "
                f"use one of {', '.join(sorted(_FOURCC))}"
            )
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.size = (int(image.shape[1]), int(image.shape[0]))
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise UserInputError(f"cannot write the video to {self.path}: OpenCV could not open a video writer")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
