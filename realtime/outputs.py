"""What the recognizer writes: events (JSON Lines), per-frame rows (CSV) and the annotated video.

- Events: one JSON object per spotted micro-expression, written and flushed (and synced to disk) the moment
  it is spotted, so a crash or a pulled plug loses nothing already reported. The keys, their order and
  meaning are :data:`realtime.schema.EVENT_FIELDS`; frame indices are 0-based over every decoded frame.
- CSV: one row per frame and face, OpenFace-style (frame, timestamp, face_id, confidence, success, the 68
  landmarks, the head pose) with the spotter's view (each region's motion, the signal, the threshold, the
  in-event flag); the columns are :func:`realtime.schema.frame_fields`. A frame with no face still gets a
  row (``success`` 0, ``detection`` ``none``, the rest empty), so gaps are visible, not silent.
- Video: the annotated frames at the source's size and frame rate.

Every writer checks its path when it is created, so a path that cannot be written is reported before any
work starts.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import UserInputError
from realtime.pose import PoseEstimator
from realtime.schema import FrameRecord, format_row, frame_fields, frame_rows

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
    """One CSV row per frame and face (and one per frame without a face): the columns of
    :func:`realtime.schema.frame_fields`; ``landmarks=False`` leaves out ``x_0`` … ``y_67``. It fits the head
    pose (the schema's ``pose_R*`` and ``confidence``) of every face it writes."""

    def __init__(self, path: Path, landmarks: bool = True) -> None:
        self.path = check_writable(path, "the CSV")
        self.landmarks = landmarks
        self.fields = frame_fields(landmarks)
        self.estimator = PoseEstimator()
        self._file = _open(self.path, "the CSV", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(f.name for f in self.fields)

    def write(self, record: FrameRecord) -> None:
        """The rows of one frame (:class:`realtime.schema.FrameRecord`)."""
        for row in frame_rows(record, self.landmarks):
            self._writer.writerow(format_row(row, self.fields))

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
