"""What the recognizer writes: events (JSON Lines), per-frame rows (CSV) and the annotated video.

- Events: one JSON object per spotted micro-expression, written and flushed (and synced to disk) the moment
  it is spotted, so a crash or a pulled plug loses nothing already reported. The keys, their order and
  meaning are :data:`realtime.schema.EVENT_FIELDS`; frame indices are 0-based over every decoded frame.
- CSV: one row per frame and face, OpenFace-style (frame, timestamp, face_id, confidence, success, the 68
  landmarks, the head pose) with the spotter's view (each region's motion, the signal, the threshold, the
  in-event flag); the columns are :func:`realtime.schema.frame_fields`. A frame with no face still gets a
  row (``success`` 0, ``detection`` ``none``, the rest empty), so gaps are visible, not silent.
- Video: the annotated frames at the source's size (padded to even) and frame rate, H.264 (yuv420p) through
  PyAV, so that browsers and ordinary players open it and the HTML report can show it.

What survives a SIGKILL or a power cut: every event (each line is flushed and synced as it is written); the
CSV up to the last second of video (flushed and synced once per second of video time); the video up to its
last keyframe, about one second before the kill: ``.mp4``/``.m4v``/``.mov`` are fragmented MP4 (an empty
``moov`` up front and a self-describing fragment at each keyframe, so no index is needed at the end),
``.mkv`` is Matroska with a cluster per keyframe, ``.avi`` is plain AVI (readers rebuild its index). Keyframes
come every second of video and the encoder holds back only the few frames its threads are working on.

Every writer checks its path when it is created, so a path that cannot be written is reported before any
work starts; ``close`` is safe to call twice.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.pose import PoseEstimator
from realtime.schema import FrameRecord, format_row, frame_fields, frame_rows

FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
# extension → (FFmpeg muxer, its options): containers that stay readable when the writer is killed
_CONTAINERS = {
    ".mp4": ("mp4", FRAGMENTED_MP4),
    ".m4v": ("mp4", FRAGMENTED_MP4),
    ".mov": ("mov", FRAGMENTED_MP4),
    ".mkv": ("matroska", {"cluster_time_limit": "1000"}),
    ".avi": ("avi", {}),
}
SYNC_EVERY_MS = 1000.0  # the CSV and the video are flushed and synced to disk once per second of video
KEYFRAME_EVERY_S = 1.0  # a killed video plays up to its last keyframe
# superfast: about 6 ms of CPU per 640×480 frame, encoded on x264's own threads while the next frame is
# processed (measured against tune=zerolatency's sliced threads: 30 % less CPU, the caller waits less); no
# B-frames, so a frame is held back only for as long as those threads take
X264_OPTIONS = {"preset": "superfast", "crf": "23", "bframes": "0"}


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


def _open(path: Path, what: str, newline: str | None = None, binary: bool = False):
    try:
        return path.open("wb") if binary else path.open("w", encoding="utf-8", newline=newline)
    except OSError as error:
        raise UserInputError(f"cannot write {what} to {path}: {error.strerror or error}") from None


def _sync(handle) -> None:
    """Flush Python's buffer and ask the kernel to put the file on disk (a power cut keeps it)."""
    handle.flush()
    with contextlib.suppress(OSError):  # a pipe or a file system without fsync: flushed is the best there is
        os.fsync(handle.fileno())


class _SyncClock:
    """True once per ``every_ms`` of video time: when a writer should flush and sync."""

    def __init__(self, every_ms: float = SYNC_EVERY_MS) -> None:
        self.every_ms = float(every_ms)
        self._last_ms: float | None = None

    def due(self, t_ms: float) -> bool:
        if self._last_ms is None:
            self._last_ms = t_ms
            return True  # the header and the first row are on disk at once
        if t_ms - self._last_ms >= self.every_ms or t_ms < self._last_ms:
            self._last_ms = t_ms
            return True
        return False


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
            _sync(self._file)
            self._file.close()


class FrameCsvWriter:
    """One CSV row per frame and face (and one per frame without a face): the columns of
    :func:`realtime.schema.frame_fields`; ``landmarks=False`` leaves out ``x_0`` … ``y_67``. It fits the head
    pose (the schema's ``pose_R*`` and ``confidence``) of every face it writes.
    It is on disk up to the last second of video: flushed and synced whenever a row is a second of video
    time after the last sync."""

    def __init__(self, path: Path, landmarks: bool = True) -> None:
        self.path = check_writable(path, "the CSV")
        self.landmarks = landmarks
        self.fields = frame_fields(landmarks)
        self.estimator = PoseEstimator()
        self._file = _open(self.path, "the CSV", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(f.name for f in self.fields)
        self._clock = _SyncClock()

    def write(self, record: FrameRecord) -> None:
        """The rows of one frame (:class:`realtime.schema.FrameRecord`)."""
        for row in frame_rows(record, self.landmarks):
            self._writer.writerow(format_row(row, self.fields))
        if self._clock.due(record.t_ms):
            _sync(self._file)

    def close(self) -> None:
        if not self._file.closed:
            _sync(self._file)
            self._file.close()


def video_rate(fps: float) -> Fraction:
    """The frame rate as the exact fraction FFmpeg wants (29.97 → 30000/1001, 200 → 200)."""
    rate = Fraction(float(fps)).limit_denominator(1001)
    return rate if rate > 0 else Fraction(30)


class VideoWriter:
    """The annotated video: H.264 (libx264, yuv420p) through PyAV, in a container that a kill cannot ruin.

    The file is opened with the first frame, whose size it takes (rounded up to even, as yuv420p needs, by
    a black edge); frames of another size are resized. Keyframes come every ``KEYFRAME_EVERY_S`` and the
    file is flushed and synced once per second of video, so after a SIGKILL or a power cut the video plays
    up to about a second before it. ``.mp4`` is what browsers play (and what the HTML report embeds).
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path = check_writable(path, "the video")
        if self.path.suffix.lower() not in _CONTAINERS:
            raise UserInputError(
                f"cannot write the video to {self.path}: unknown extension {self.path.suffix or '(none)'}; "
                f"use one of {', '.join(sorted(_CONTAINERS))}"
            )
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None  # the source frames' (width, height)
        self.frames = 0
        self._file = None
        self._container = None
        self._stream = None
        self._clock = _SyncClock()

    def _start(self, width: int, height: int) -> None:
        import av  # PyAV: FFmpeg with libx264, loaded only when a video is written

        self.size = (width, height)
        muxer, options = _CONTAINERS[self.path.suffix.lower()]
        self._file = _open(self.path, "the video", binary=True)
        try:
            self._container = av.open(self._file, "w", format=muxer, options=dict(options))
            rate = video_rate(self.fps)
            stream = self._container.add_stream("libx264", rate=rate)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = max(1, round(float(rate) * KEYFRAME_EVERY_S))
            stream.options = dict(X264_OPTIONS)
            self._stream = stream
        except (av.FFmpegError, ValueError) as error:
            self._abandon()
            raise UserInputError(f"cannot write the video to {self.path}: {error}") from None

    def write(self, image: np.ndarray) -> None:
        import av

        if self._stream is None:
            self._start(int(image.shape[1]), int(image.shape[0]))
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        pad_x, pad_y = self._stream.width - self.size[0], self._stream.height - self.size[1]
        if pad_x or pad_y:
            image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_CONSTANT, value=0)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1
        if self._clock.due(1000.0 * self.frames / self.fps):
            _sync(self._file)

    def _abandon(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    def close(self) -> None:
        """Encode what the encoder still holds, close the container (its last fragment) and sync the file."""
        if self._container is not None:
            container, self._container = self._container, None
            try:
                for packet in self._stream.encode(None):
                    container.mux(packet)
            finally:
                container.close()
        if self._file is not None and not self._file.closed:
            _sync(self._file)
            self._file.close()
