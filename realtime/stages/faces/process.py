"""The face stage of a recorded source in a second process, so that both CPU cores work on one video.

The face stage (dlib's landmark fit, about 1 ms a face, and HOG now and then) and the spotter (NumPy on
small arrays) both hold Python's GIL, so a thread cannot run one beside the other (``README.md``, "where the
time goes"). A second *process* can: :class:`FaceProcess` starts one that opens the same recorded source
with the same capture options, decodes it (decoding costs a tenth of the face stage, so doing it twice is
cheaper than shipping frames between processes) and runs :class:`realtime.stages.faces.FaceTracker` on every
frame, as far ahead of the caller as the pipe between them holds. Only the faces cross over: ids, boxes and
68 landmarks, a few hundred bytes a frame. The caller's pipeline takes it as its tracker (:meth:`process` has
:meth:`FaceTracker.process`'s signature and result), so the spotter, the classifier and the outputs are
unchanged and every result is the same as with the tracker in the caller's own process.

Only for recorded sources (video files and image folders): a live camera cannot be opened twice, and a live
source drops frames the second process would not know about. The landmark model is then loaded in the second
process only.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.landmarks import to_gray
from realtime.stages.capture import CaptureOptions, open_source
from realtime.stages.faces import FaceFrame, FaceTracker, TrackedFace, TrackingOptions

PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the folder that holds ``realtime/``
log = logging.getLogger("microexpr")


class FaceProcessLost(RuntimeError):
    """The face process stopped before the video's end (killed, out of memory)."""


@dataclass(frozen=True)
class FacesOfFrame:
    """What the face process sends for one frame: its time (to check that both processes read the same
    frame), the faces, whether a detection ran, and the detector's runs so far."""

    t_ms: float
    faces: tuple[TrackedFace, ...]
    detection_ran: bool
    detections: int


def run_face_stage(source: str, capture: CaptureOptions, tracking: TrackingOptions, out: BinaryIO, batch: int) -> None:
    """The second process's work: every frame of ``source`` through the face stage, pickled to ``out`` in
    lists of up to ``batch`` frames; ``None`` at the end, or ``("error", message)`` when something went
    wrong. A full pipe blocks it: that is what keeps it at most a pipe's worth of frames ahead."""
    try:
        tracker = FaceTracker(tracking)
        pending: list[FacesOfFrame] = []
        with open_source(source, capture) as frames:
            for frame in frames:
                found = tracker.process(frame.image, frame.t_ms)
                pending.append(FacesOfFrame(frame.t_ms, found.faces, found.detection_ran, tracker.detections))
                if len(pending) >= batch:
                    pickle.dump(pending, out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
                    pending = []
        if pending:
            pickle.dump(pending, out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, out)
    except UserInputError as error:
        pickle.dump(("error", str(error)), out)
    except BrokenPipeError:  # the caller stopped reading: nothing more to do
        return
    except Exception as error:  # sent across as one line: the caller raises it as its own error
        pickle.dump(("error", f"{type(error).__name__}: {error}"), out)
    out.flush()


class FaceProcess:
    """The face stage of the recorded ``source`` in a second process; ``process(frame, t_ms) → FaceFrame``
    for its frames in order, as :class:`realtime.stages.faces.FaceTracker` gives them.

    ``capture`` must be the options the caller opens ``source`` with (the two processes must read the same
    frames at the same times: each frame's time is checked); ``batch`` is how many frames the face process
    sends at once (fewer, larger messages). It runs ahead of the caller by at most what the pipe between them
    holds (a few dozen frames). Close it (or use it as a context manager) to stop the process."""

    def __init__(
        self,
        source: str,
        capture: CaptureOptions | None = None,
        tracking: TrackingOptions | None = None,
        batch: int = 8,
    ) -> None:
        # a fresh interpreter (not a fork: the caller may already run threads), started with ``-m`` so that
        # nothing of the caller's own script runs again in it
        path = os.environ.get("PYTHONPATH", "")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(PACKAGE_ROOT), path) if p))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "realtime.stages.faces.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._tracking = tracking or TrackingOptions()
        job = (str(source), capture or CaptureOptions(), self._tracking, int(batch))
        pickle.dump(job, self._process.stdin)
        self._process.stdin.close()
        self._ready: list[FacesOfFrame] = []
        self._ended = False
        self._local: FaceTracker | None = None  # the face stage in this process, once the other one is lost
        self.detections = 0

    def _next(self) -> FacesOfFrame:
        while not self._ready:
            if self._ended:
                raise FaceProcessLost("the face process read fewer frames than this process")
            try:
                item = pickle.load(self._process.stdout)
            except EOFError:
                code = self._process.wait()
                raise FaceProcessLost(f"the face process stopped unexpectedly (exit code {code})") from None
            if item is None:
                self._ended = True
            elif isinstance(item, tuple):
                raise UserInputError(f"the face stage failed: {item[1]}")
            else:
                self._ready = list(reversed(item))
        return self._ready.pop()

    def process(self, frame: np.ndarray, t_ms: float | None = None) -> FaceFrame:
        """The faces of the next frame (``frame`` is the caller's copy of it: the grey image later stages
        align from is made from it here, as the in-process tracker makes it). Should the face process be lost
        (killed, out of memory), the face stage goes on in this process from this frame, with one line said:
        the run continues, its faces found anew (their ids may change once)."""
        if self._local is not None:
            return self._in_this_process(frame, t_ms)
        try:
            found = self._next()
        except FaceProcessLost as error:
            log.warning("%s: the face stage goes on in this process (face ids may start anew)", error)
            self._local = FaceTracker(self._tracking)
            return self._in_this_process(frame, t_ms)
        if t_ms is not None and found.t_ms != float(t_ms):
            raise RuntimeError(f"the face process read the frame at {found.t_ms} ms where the caller read {t_ms} ms")
        self.detections = found.detections
        return FaceFrame(found.faces, to_gray(frame), found.detection_ran)

    def _in_this_process(self, frame: np.ndarray, t_ms: float | None) -> FaceFrame:
        found = self._local.process(frame, t_ms)
        self.detections = self._local.detections
        return found

    @property
    def pid(self) -> int:
        """The face process's id (to watch or stop it from outside)."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the face process is still running."""
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the face process (at once: what it read ahead is not needed)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdout.close()

    def __enter__(self) -> FaceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """``python -m realtime.stages.faces.process``: the job (pickled) on standard input, the faces (pickled)
    on standard output. Whatever else the process prints goes to standard error, never into the data."""
    try:
        job = pickle.load(sys.stdin.buffer)
        out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        source, capture, tracking, batch = job
        run_face_stage(source, capture, tracking, out, batch)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the caller says what happened
        pass


if __name__ == "__main__":
    # through the package's own module, so that what is pickled is named realtime.stages.faces.process.*
    from realtime.stages.faces.process import main as package_main

    package_main()
