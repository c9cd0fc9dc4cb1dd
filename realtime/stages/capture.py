"""The capture stage: frames with 0-based indices and millisecond timestamps, from any source.

Three kinds of source, one interface (:class:`FrameSource`: ``read() → Frame | None``, ``None`` at the end):

- **Recorded** (video files, and any object with an OpenCV-style ``read() → (ok, image)``, so tests and
  demos run without a camera): every frame, in order, none dropped. A frame that fails to decode in the
  middle of a file is skipped and counted (its index is used up, so later indices still count every frame
  of the file).
- **Folders** of images, in name order with numbers compared as numbers (CASME II's ``img46.jpg`` …
  ``img100.jpg``), at the rate the user gives (``fps``). Unreadable images are skipped and counted.
- **Live** (webcams and network streams): a capture thread reads as fast as the source delivers into a
  bounded queue; when processing falls behind, the oldest frame is dropped and counted, so the picture
  stays current. A camera that stops delivering (unplugged) or a stream that stalls for ``stall_s`` ends
  the source cleanly; what was processed so far is kept.

Timestamps: the decoder's own (``CAP_PROP_POS_MSEC``) when it gives increasing ones, else index / fps for
recorded sources and the arrival clock for live ones, always strictly increasing; durations are therefore
in milliseconds whatever the frame rate.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from realtime.core.errors import OptionError, UserInputError
from realtime.core.files import IMAGE_SUFFIXES

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "tcp://", "udp://", "srt://")
DEFAULT_FPS = 30.0
# A live queue holds this much time of frames: a quarter second absorbs a slow frame (a face detection, the
# garbage collector, the OS) at any camera rate: 8 frames at 30 fps, 50 at 200 fps. Frames are dropped only
# when the pipeline falls behind for longer, and a queue this short keeps what is shown close to now.
LIVE_QUEUE_S = 0.25
MIN_LIVE_QUEUE = 8


def live_queue_frames(fps: float) -> int:
    """How many frames a live queue holds at ``fps``: :data:`LIVE_QUEUE_S` of them, at least
    :data:`MIN_LIVE_QUEUE`."""
    return max(MIN_LIVE_QUEUE, math.ceil(float(fps) * LIVE_QUEUE_S))


class CaptureLike(Protocol):
    """What OpenCV's ``VideoCapture`` offers and the stage needs: ``read() → (ok, image)``."""

    def read(self) -> tuple[bool, Any]: ...


@dataclass(frozen=True)
class Frame:
    """One frame: ``index`` is 0-based over every frame the source produced (dropped and skipped frames use
    up their index), ``t_ms`` its time in milliseconds from the first frame, ``image`` BGR uint8."""

    index: int
    t_ms: float
    image: np.ndarray


@dataclass(frozen=True)
class CaptureOptions:
    """How to open a source.

    ``fps`` is the rate of a frame folder (and overrides a video's own rate when given); ``live`` forces
    live handling on (``True``) or off (``False``) instead of deciding from the source (cameras and
    network streams are live); ``queue_size`` bounds the live queue (None: :data:`LIVE_QUEUE_S` of frames at
    the source's rate, at least :data:`MIN_LIVE_QUEUE`); ``stall_s`` is how long a live source
    may deliver nothing before it is considered gone; ``max_bad_frames`` how many undecodable frames in a
    row end a recorded source; ``read_ahead`` how many frames of a recorded video or folder a thread decodes
    ahead of the pipeline (0: decode on the caller's thread). Decoding releases the GIL, so it overlaps the
    face and spotting stages instead of adding to them; no frame is ever dropped.
    """

    fps: float | None = None
    live: bool | None = None
    read_ahead: int = 0
    queue_size: int | None = None
    stall_s: float = 5.0
    open_timeout_s: float = 10.0
    max_bad_frames: int = 50

    def __post_init__(self) -> None:
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise OptionError("fps", f"must be a positive number, got {self.fps}")
        if self.read_ahead < 0:
            raise OptionError("read_ahead", f"must be 0 or more frames, got {self.read_ahead}")
        if self.queue_size is not None and self.queue_size < 1:
            raise OptionError("queue_size", f"must be at least 1, got {self.queue_size}")
        if not (self.stall_s > 0 and math.isfinite(self.stall_s)):
            raise OptionError("stall_s", f"must be a positive number of seconds, got {self.stall_s}")
        if self.max_bad_frames < 0:
            raise OptionError("max_bad_frames", f"must be 0 or more, got {self.max_bad_frames}")


def _valid_image(image: Any) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.size > 0
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)))
    )


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class FrameSource:
    """Base of the sources: ``read()`` gives the next :class:`Frame` or ``None`` at the end.

    Every source has: ``fps``, the nominal rate; ``fps_given``, False when that rate is a guess (a frame
    folder opened without one); ``size`` (width, height) once known; ``live``, whether frames may be
    dropped; ``description``, what it is, for people; ``dropped``, how many frames were dropped (live only);
    ``corrupt``, how many could not be decoded; ``ended_because``, why it ended early (a stall, an unplugged
    camera), else ``""``.
    """

    fps: float = DEFAULT_FPS
    fps_given: bool = True
    size: tuple[int, int] | None = None
    live: bool = False
    description: str = ""

    def __init__(self) -> None:
        self.dropped = 0
        self.corrupt = 0
        self.ended_because = ""
        self._last_ms = -math.inf

    def _stamp(self, t_ms: float) -> float:
        """Strictly increasing timestamps (a decoder that repeats or jumps back gets nudged forward)."""
        t_ms = max(float(t_ms), self._last_ms + 1e-3)
        self._last_ms = t_ms
        return t_ms

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (safe to call twice)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def _capture_fps(capture: Any, fallback: float) -> float:
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    except Exception:
        return fallback
    return fps if math.isfinite(fps) and 1.0 <= fps <= 10_000.0 else fallback


class RecordedSource(FrameSource):
    """Every frame of a video file or of any ``read() → (ok, image)`` object, in order, none dropped."""

    def __init__(self, capture: CaptureLike, fps: float | None = None, description: str = "", max_bad_frames: int = 50):
        super().__init__()
        self._capture = capture
        self.fps = fps or _capture_fps(capture, DEFAULT_FPS)
        self.description = description or type(capture).__name__
        self._index = 0
        self._pending: Frame | None = None
        self._max_bad = max_bad_frames
        self._use_decoder_clock = fps is None and isinstance(capture, cv2.VideoCapture)
        try:
            self._frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if hasattr(capture, "get") else 0
        except Exception:
            self._frame_count = 0

    def _time_of(self, index: int) -> float:
        nominal = index * 1000.0 / self.fps
        if self._use_decoder_clock:
            decoder_ms = float(self._capture.get(cv2.CAP_PROP_POS_MSEC))
            if math.isfinite(decoder_ms) and decoder_ms >= 0.0 and (decoder_ms > self._last_ms or index == 0):
                return decoder_ms
        return nominal

    def peek(self) -> Frame | None:
        """The next frame without consuming it (opening reads one to fail early on undecodable files)."""
        if self._pending is None:
            self._pending = self._next()
        return self._pending

    def read(self) -> Frame | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        return self._next()

    def _next(self) -> Frame | None:
        bad_in_a_row = 0
        while True:
            try:
                ok, image = self._capture.read()
            except cv2.error:
                ok, image = False, None
            if ok and _valid_image(image):
                index = self._index
                self._index += 1
                image = _as_bgr(image)
                if self.size is None:
                    self.size = (int(image.shape[1]), int(image.shape[0]))
                elif (image.shape[1], image.shape[0]) != self.size:
                    self.corrupt += 1  # a frame of another size cannot belong to this video
                    continue
                return Frame(index, self._stamp(self._time_of(index)), image)
            # end of the file, or an undecodable frame in the middle of it
            if ok or (self._frame_count and self._index < self._frame_count - 1 and bad_in_a_row < self._max_bad):
                self.corrupt += 1
                self._index += 1
                bad_in_a_row += 1
                if bad_in_a_row <= self._max_bad:
                    continue
            return None

    def close(self) -> None:
        release = getattr(self._capture, "release", None)
        if release is not None:
            release()


def natural_key(path: Path) -> list:
    """Sort key that compares digit runs as numbers: img9 < img46 < img100."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class FolderSource(FrameSource):
    """A folder of images in natural name order, at ``fps`` frames per second."""

    def __init__(self, folder: Path, fps: float | None = None):
        super().__init__()
        folder = Path(folder)
        self.paths = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key
        )
        if not self.paths:
            raise UserInputError(f"no images in folder {folder} (expected {', '.join(IMAGE_SUFFIXES)})")
        self.fps = fps or DEFAULT_FPS
        self.fps_given = fps is not None
        self.description = f"{folder} ({len(self.paths)} images)"
        self._index = 0

    def read(self) -> Frame | None:
        while self._index < len(self.paths):
            index = self._index
            self._index += 1
            image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
            if image is None or not _valid_image(image):
                self.corrupt += 1
                continue
            if self.size is None:
                self.size = (int(image.shape[1]), int(image.shape[0]))
            elif (image.shape[1], image.shape[0]) != self.size:
                self.corrupt += 1
                continue
            return Frame(index, self._stamp(index * 1000.0 / self.fps), image)
        return None


class ReadAheadSource(FrameSource):
    """A recorded source decoded ``depth`` frames ahead on a thread: same frames, same order, none dropped.

    The thread blocks when the queue is full, so memory stays bounded; an exception in the decoder is
    raised again from :meth:`read`. What it reports of the video (``fps``, ``fps_given``, ``size``,
    ``description``, ``corrupt``, ``dropped``, ``ended_because``) is the inner source's, read-only.
    """

    _END = object()
    live = False

    def __init__(self, inner: FrameSource, depth: int = 16) -> None:
        # no FrameSource.__init__: the counters it sets up are the inner source's (the properties below)
        self.inner = inner
        self._queue: deque = deque()
        self._space = threading.Semaphore(max(1, int(depth)))
        self._ready = threading.Semaphore(0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    @property
    def fps(self) -> float:
        return self.inner.fps

    @property
    def fps_given(self) -> bool:
        return self.inner.fps_given

    @property
    def size(self) -> tuple[int, int] | None:
        return self.inner.size

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def corrupt(self) -> int:
        return self.inner.corrupt

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    @property
    def ended_because(self) -> str:
        return self.inner.ended_because

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._space.acquire()
                if self._stop.is_set():
                    break
                frame = self.inner.read()
                self._queue.append(self._END if frame is None else frame)
                self._ready.release()
                if frame is None:
                    return
        except BaseException as error:  # handed to the reader, which raises it
            self._queue.append(error)
            self._ready.release()

    def read(self) -> Frame | None:
        self._ready.acquire()
        item = self._queue.popleft()
        if item is self._END:
            self._queue.appendleft(item)  # reading past the end keeps returning None
            self._ready.release()
            return None
        if isinstance(item, BaseException):
            raise item
        self._space.release()
        return item

    def close(self) -> None:
        self._stop.set()
        self._space.release()  # wake a thread waiting for room
        self._thread.join(timeout=5.0)
        self.inner.close()


class LiveSource(FrameSource):
    """A camera or network stream read by a thread into a bounded queue that drops its oldest frame.

    ``capture`` is anything with ``read() → (ok, image)`` (OpenCV's ``VideoCapture``, or a fake in tests).
    Timestamps are the arrival clock relative to the first frame, unless the decoder gives increasing
    ones (network streams carry them). ``read()`` blocks until a frame arrives or the source ends.
    """

    live = True

    def __init__(
        self,
        capture: CaptureLike,
        description: str = "",
        queue_size: int | None = None,
        stall_s: float = 5.0,
        fps: float | None = None,
        max_bad_frames: int = 50,
    ):
        super().__init__()
        self._capture = capture
        self._max_bad = max_bad_frames
        self.description = description or type(capture).__name__
        self.fps = fps or _capture_fps(capture, DEFAULT_FPS)
        self.stall_s = stall_s
        self._queue: deque[Frame] = deque()
        self._queue_size = queue_size or live_queue_frames(self.fps)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._finished = False
        self.received = 0
        self._use_decoder_clock = isinstance(capture, cv2.VideoCapture)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        """Start the reader thread (``read()`` does it on first use, so nothing queues up before)."""
        if not self._thread.is_alive() and not self._finished:
            self._thread.start()

    def _run(self) -> None:
        index, start, decoder_start = 0, None, None
        last_ms = -math.inf
        bad_in_a_row = 0
        try:
            while not self._stop.is_set():
                try:
                    ok, image = self._capture.read()
                except cv2.error:
                    ok, image = False, None
                now = time.monotonic()
                if not ok:
                    if not self._stop.is_set() and not self.ended_because:
                        self.ended_because = "the source stopped delivering frames"
                    break
                if not _valid_image(image):
                    self.corrupt += 1
                    index += 1
                    bad_in_a_row += 1
                    if bad_in_a_row > self._max_bad:
                        self.ended_because = "the source delivers only undecodable frames"
                        break
                    continue
                bad_in_a_row = 0
                image = _as_bgr(image)
                if self.size is None:
                    self.size = (int(image.shape[1]), int(image.shape[0]))
                start = now if start is None else start
                t_ms = (now - start) * 1000.0
                if self._use_decoder_clock:
                    decoder_ms = float(self._capture.get(cv2.CAP_PROP_POS_MSEC))
                    if math.isfinite(decoder_ms) and decoder_ms > 0:
                        decoder_start = decoder_ms if decoder_start is None else decoder_start
                        if decoder_ms - decoder_start > last_ms:
                            t_ms = decoder_ms - decoder_start
                t_ms = max(t_ms, last_ms + 1e-3)
                last_ms = t_ms
                frame = Frame(index, t_ms, image)
                index += 1
                self.received += 1
                with self._lock:
                    if len(self._queue) >= self._queue_size:
                        self._queue.popleft()
                        self.dropped += 1
                    self._queue.append(frame)
                    self._lock.notify()
        finally:
            with self._lock:
                self._finished = True
                self._lock.notify_all()

    def read(self) -> Frame | None:
        if self._thread.ident is None:
            self.start()
        deadline = time.monotonic() + self.stall_s
        with self._lock:
            while not self._queue:
                if self._finished:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.ended_because = f"no frame for {self.stall_s:g} s (the stream stalled)"
                    self._stop.set()
                    return None
                self._lock.wait(timeout=min(remaining, 0.1))
            frame = self._queue.popleft()
        self._last_ms = frame.t_ms
        return frame

    def close(self) -> None:
        self._stop.set()
        release = getattr(self._capture, "release", None)
        if self._thread.ident is not None:
            # the reader may be blocked inside read(); releasing the device ends it (give it a moment first)
            self._thread.join(timeout=0.5)
        if release is not None:
            release()
        if self._thread.ident is not None:
            self._thread.join(timeout=2.0)


def is_network(source: str) -> bool:
    return source.lower().startswith(NETWORK_SCHEMES)


def is_recorded(source: str, options: CaptureOptions | None = None) -> bool:
    """Whether ``source`` opens as a recorded source that can be read twice, frame for frame: an existing
    local video file or image folder not forced live (cameras and network streams are live)."""
    text = str(source).strip()
    if (options is not None and options.live) or not text or re.fullmatch(r"\d+", text) or is_network(text):
        return False
    path = Path(text).expanduser()
    return path.is_file() or path.is_dir()


def check_source(source: str) -> None:
    """Fail early, with one line, on a local path that does not exist (cameras and URLs are checked when
    opened)."""
    text = str(source).strip()
    if not text:
        raise UserInputError("--source is empty: give a webcam number, a video file, an image folder or a URL")
    if re.fullmatch(r"\d+", text) or is_network(text):
        return
    path = Path(text).expanduser()
    if not path.exists():
        raise UserInputError(f"no such file or folder: {path}")


def _live_settings(options: CaptureOptions) -> dict[str, Any]:
    return {
        "queue_size": options.queue_size,
        "stall_s": options.stall_s,
        "fps": options.fps,
        "max_bad_frames": options.max_bad_frames,
    }


def open_source(source: str | int | CaptureLike, options: CaptureOptions | None = None) -> FrameSource:
    """Open ``source``: a camera number, a video file, a folder of images, a network URL, or an object with
    ``read() → (ok, image)``. Bad input raises :class:`UserInputError` with one clear line."""
    options = options or CaptureOptions()
    if not isinstance(source, (str, int)):
        if not callable(getattr(source, "read", None)):
            raise UserInputError(f"a source needs a read() method, got {type(source).__name__}")
        if options.live:
            return LiveSource(source, **_live_settings(options))
        return RecordedSource(source, options.fps, max_bad_frames=options.max_bad_frames)

    text = str(source).strip()
    if isinstance(source, int) or re.fullmatch(r"\d+", text):
        camera = int(text)
        capture = cv2.VideoCapture(camera)
        if not capture.isOpened():
            capture.release()
            raise UserInputError(
                f"camera {camera} cannot be opened (is it connected and not in use by another program?)"
            )
        if options.live is False:
            return RecordedSource(capture, options.fps, f"camera {camera}", options.max_bad_frames)
        return LiveSource(capture, f"camera {camera}", **_live_settings(options))

    if is_network(text):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(options.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(options.stall_s * 1000),
        ]
        capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise UserInputError(
                f"cannot open stream {text} (nothing answered within {options.open_timeout_s:g} s, "
                "or it is not a video stream)"
            )
        if options.live is False:
            return RecordedSource(capture, options.fps, text, options.max_bad_frames)
        return LiveSource(capture, text, **_live_settings(options))

    path = Path(text).expanduser()
    if not path.exists():
        raise UserInputError(f"no such file or folder: {path}")
    if path.is_dir():
        folder = FolderSource(path, options.fps)
        return ReadAheadSource(folder, options.read_ahead) if options.read_ahead else folder
    if not path.is_file():
        raise UserInputError(f"not a file or folder: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror or error}") from None
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise UserInputError(f"cannot decode {path}: not a video OpenCV can read")
    recorded = RecordedSource(capture, options.fps, str(path), options.max_bad_frames)
    if options.live:
        recorded.close()
        capture = cv2.VideoCapture(str(path))
        return LiveSource(capture, str(path), **_live_settings(options))
    if recorded.peek() is None:
        recorded.close()
        raise UserInputError(f"cannot decode {path}: no frame could be read")
    return ReadAheadSource(recorded, options.read_ahead) if options.read_ahead else recorded
