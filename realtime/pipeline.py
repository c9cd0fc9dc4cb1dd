"""The stage chain: frame → faces → spotting → classification, one frame at a time.

Capture, rendering and writing stay outside (``stream.py`` owns the loop and the window); this module is
what turns a :class:`realtime.stages.capture.Frame` into a :class:`FrameResult`:

1. :class:`realtime.stages.faces.FaceTracker` — faces with stable ids and 68 landmarks;
2. :class:`realtime.stages.spotter.Spotter` — per face, the spotting signal and the events that ended;
3. :class:`realtime.stages.classify.Classifier` — the apex frame's aligned face of each micro-expression.

While an event is under way, the classifier's crop of every frame that may become the apex is kept (a few
per event, the strongest). A model whose input needs the event's onset too (``onset-apex``, ``flow``:
:mod:`realtime.core.motion`) also gets a short ring buffer per face of the aligned crops of the latest frames, from
which the spotter's onset frame is taken when the event ends; its input is then built by
:func:`realtime.core.motion.build_classifier_input`, the function the training data goes through. The learned
spotter names its apex after the fact; with an apex-only input its crop is made lazily: the newest frames
(``LAZY_CROP_MS``) are kept as they came and cropped only when an event asks for one (or when they age out
during a run of candidates), so most frames are never cropped. A frame's image must therefore not be changed
after it was given to :meth:`Pipeline.process` (capture and render never do: render draws on a copy).

Once the signal has fallen well past its peak, the spotter names the apex and
its crop is classified at once on a worker thread (ONNX Runtime releases the GIL), while the face keeps
being tracked; when the offset is seen the answer is normally ready, so the event is reported within
milliseconds of its offset frame instead of after a full network pass (about 100 ms for ResNet18 on two
CPU cores). If the apex moved after all (a second rise), the new apex is classified on the spot. The onset of an
event is only known when it ends, so inputs that need it are classified then (a few ms).
Stage times are measured per frame.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import numpy as np

from realtime.schema import event_record
from realtime.stages.capture import Frame
from realtime.stages.classify import Classifier
from realtime.stages.faces import FaceTracker, TrackedFace, TrackingOptions
from realtime.stages.faces.process import FaceProcess
from realtime.stages.spotter import SpotSignal, SpottedEvent, Spotter, SpotterOptions

STAGES = ("capture", "face", "spot", "classify", "render", "output")
MAX_APEX_CROPS = 12  # per face: the strongest candidate frames of the event under way
ONSET_LOOKBACK_FRAMES = 256  # per face, for inputs that need the onset: about 8.5 s at 30 fps, 1.3 s at 200 fps
# The learned spotter's apex trails the newest frame by its lag (100 ms) and is refined within 33 ms of its
# candidate: a frame older than this, seen while no run of candidates is under way, can never become an apex.
LAZY_CROP_MS = 300.0


@dataclass(frozen=True)
class PipelineOptions:
    """Options of the stages the pipeline runs (see each stage's own options for their meaning)."""

    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    spotter: SpotterOptions = field(default_factory=SpotterOptions)


@dataclass(frozen=True, kw_only=True)
class MicroExpression(SpottedEvent):
    """A spotted and classified micro-expression: the spotter's event (:class:`SpottedEvent`, kind ``micro``;
    its frames, times, score and the regions that moved) and what the classifier named it.

    Frame indices are 0-based over every frame of the source; ``label``/``confidence``/``probabilities``
    come from the classifier (empty without one); ``latency_ms`` is the wall-clock time from the arrival in
    the pipeline of the frame that decided the event to this event; ``apex_crop`` the aligned face that was
    classified (BGR, the model's input size; None without one); ``onset_crop`` the onset's aligned face when
    the model's input needs it, and ``classifier_input`` what the model was given
    (:func:`realtime.core.motion.build_classifier_input`). The events file's object is :meth:`to_json`
    (keys: :data:`realtime.schema.EVENT_FIELDS`).
    """

    label: str = ""
    confidence: float = 0.0
    probabilities: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    apex_crop: np.ndarray | None = field(default=None, repr=False, compare=False)
    onset_crop: np.ndarray | None = field(default=None, repr=False, compare=False)
    classifier_input: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def face(self) -> int:
        """The face's id (the events file's ``face``)."""
        return self.face_id

    def to_json(self) -> dict:
        """The events file's object (exact keys and order: :func:`realtime.schema.event_record`)."""
        return event_record(self)


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline found on one frame: the faces (largest first) with their spotting signals
    (same order), the micro-expressions that ended on it, the rejected rises (blinks, macro expressions…)
    and the milliseconds each stage took."""

    frame: Frame
    faces: tuple[TrackedFace, ...]
    signals: tuple[SpotSignal, ...]
    events: tuple[MicroExpression, ...]
    rejected: tuple[SpottedEvent, ...]
    stage_ms: dict[str, float]


class StageTimes:
    """Per-stage milliseconds, summed over frames (``mean()`` per frame)."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = defaultdict(float)
        self.frames = 0

    def add(self, stage_ms: dict[str, float]) -> None:
        for name, ms in stage_ms.items():
            self.total_ms[name] += ms

    def mean(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {name: self.total_ms.get(name, 0.0) / n for name in STAGES}


class Pipeline:
    """``process(frame) → FrameResult`` for frames in time order (one source per pipeline)."""

    def __init__(
        self,
        options: PipelineOptions | None = None,
        classifier: Classifier | None = None,
        tracker: FaceTracker | FaceProcess | None = None,
        spotter: Spotter | None = None,
    ) -> None:
        self.options = options or PipelineOptions()
        self.tracker = tracker or FaceTracker(self.options.tracking)
        self.spotter = spotter or Spotter(self.options.spotter)
        self.classifier = classifier
        self._apex_crops: dict[int, dict[int, tuple[float, np.ndarray]]] = defaultdict(dict)
        self._early: dict[int, tuple[int, Future]] = {}  # face → (apex frame, its classification)
        self._needs_onset = classifier is not None and classifier.needs_onset
        # the learned spotter decides its apex a little after the fact (its candidate lags the newest frame),
        # so its apex crop comes from the same ring of recent crops as the onset
        self._keep_recent = classifier is not None and (self._needs_onset or self.options.spotter.method == "learned")
        self._recent_crops: dict[int, deque[tuple[int, np.ndarray]]] = defaultdict(
            lambda: deque(maxlen=ONSET_LOOKBACK_FRAMES)
        )
        # with an apex-only input the learned spotter's crops are made lazily: the newest frames are kept as
        # they came (frame index, time, image, landmarks) and cropped only when asked for, or when they age out
        # of LAZY_CROP_MS during a run of candidates (an apex may still come from them); most never are
        self._lazy = self._keep_recent and not self._needs_onset
        self._recent_frames: dict[int, deque[tuple[int, float, np.ndarray, np.ndarray]]] = defaultdict(deque)
        # the worker classifies a settled apex early; an input that needs the onset waits for the event's end
        early = classifier is not None and not self._needs_onset
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify") if early else None
        self.face_ids: set[int] = set()
        self._last_seen_ms: dict[int, float] = {}
        self.events = 0
        self.rejected: dict[str, int] = defaultdict(int)
        self.latencies_ms: list[float] = []

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        found = self.tracker.process(frame.image, frame.t_ms)
        after_face = time.perf_counter()

        signals, ended = [], []
        for face in found.faces:
            self.face_ids.add(face.face_id)
            signal = self.spotter.update(face.face_id, frame.index, frame.t_ms, found.gray, face.landmarks)
            signals.append(signal)
            crop = None
            if self._lazy:
                self._keep_frame(face, frame, signal.in_event)
            elif self._keep_recent:
                crop = self.classifier.crop(frame.image, face.landmarks)
                self._recent_crops[face.face_id].append((frame.index, crop))
            if signal.apex_candidate and self.classifier is not None:
                self._keep_crop(face, signal, frame.image, crop)
            if signal.apex_frame >= 0 and self._worker is not None:
                self._classify_early(face.face_id, signal.apex_frame)
            ended.extend((face.face_id, event) for event in signal.events)
            if not signal.in_event and not signal.events:
                self._apex_crops.pop(face.face_id, None)
                self._early.pop(face.face_id, None)
        if self._lazy and len(self._recent_frames) > len(found.faces):
            self._crop_absent({face.face_id for face in found.faces})
        self._forget_gone(found.faces, frame.t_ms)
        after_spot = time.perf_counter()

        micro, rejected = [], []
        for _, event in ended:
            if event.kind == "micro":
                micro.append(event)
            else:
                rejected.append(event)
                self.rejected[event.kind] += 1
        classified = self._classify(micro, started) if micro else ()
        for face_id, _ in ended:
            self._apex_crops.pop(face_id, None)
            self._early.pop(face_id, None)
        done = time.perf_counter()
        self.events += len(classified)
        stage_ms = {
            "face": 1000.0 * (after_face - started),
            "spot": 1000.0 * (after_spot - after_face),
            "classify": 1000.0 * (done - after_spot),
        }
        return FrameResult(frame, found.faces, tuple(signals), classified, tuple(rejected), stage_ms)

    def _keep_frame(self, face: TrackedFace, frame: Frame, in_run: bool) -> None:
        """Keep ``frame`` for a lazy crop of ``face``; crop the frames that age out during a run, drop the rest."""
        frames = self._recent_frames[face.face_id]
        frames.append((frame.index, frame.t_ms, frame.image, face.landmarks))
        while frame.t_ms - frames[0][1] > LAZY_CROP_MS:
            index, _, image, landmarks = frames.popleft()
            if in_run:
                self._recent_crops[face.face_id].append((index, self.classifier.crop(image, landmarks)))

    @property
    def kept_faces(self) -> set[int]:
        """The face ids whose recent frames or crops are held for the classifier (a face the spotter has
        forgotten, unseen for its ``forget_ms``, holds none: a long video with many people does not grow)."""
        kept = (self._recent_crops, self._recent_frames, self._apex_crops, self._early)
        return {face_id for held in kept for face_id, value in held.items() if value}

    def _forget_gone(self, faces: tuple[TrackedFace, ...], t_ms: float) -> None:
        """Let go of what is kept for faces unseen for longer than the spotter remembers them: no event of
        theirs can come any more (their crops ring alone may hold 256 aligned faces, 38 MB at 224 px)."""
        for face in faces:
            self._last_seen_ms[face.face_id] = t_ms
        forget_ms = getattr(self.spotter, "forget_ms", math.inf)  # a stand-in spotter may never forget
        for face_id, seen_ms in list(self._last_seen_ms.items()):
            if t_ms - seen_ms > forget_ms:
                del self._last_seen_ms[face_id]
                for held in (self._recent_crops, self._recent_frames, self._apex_crops, self._early):
                    held.pop(face_id, None)

    def _crop_absent(self, present: set[int]) -> None:
        """Crop the kept frames of the faces not in this frame (their frames are not held on to while they are
        gone: a face may never come back)."""
        for face_id in [face_id for face_id in self._recent_frames if face_id not in present]:
            crops = self._recent_crops[face_id]
            for index, _, image, landmarks in self._recent_frames.pop(face_id):
                crops.append((index, self.classifier.crop(image, landmarks)))

    def _recent(self, face_id: int) -> list[tuple[int, np.ndarray | None]]:
        """The face's kept frames, oldest first: (frame index, its crop, or None until it is made)."""
        crops = list(self._recent_crops.get(face_id, ()))
        return crops + [(index, None) for index, *_ in self._recent_frames.get(face_id, ())]

    def _crop_of(self, face_id: int, frame_index: int) -> np.ndarray:
        for index, _, image, landmarks in self._recent_frames[face_id]:
            if index == frame_index:
                return self.classifier.crop(image, landmarks)
        raise KeyError(frame_index)

    def _keep_crop(self, face: TrackedFace, signal: SpotSignal, image: np.ndarray, crop: np.ndarray | None) -> None:
        crops = self._apex_crops[face.face_id]
        crops[signal.frame_index] = (
            signal.signal,
            crop if crop is not None else self.classifier.crop(image, face.landmarks),
        )
        if len(crops) > MAX_APEX_CROPS:
            del crops[min(crops, key=lambda i: crops[i][0])]

    def _classify_early(self, face_id: int, apex_frame: int) -> None:
        """Classify the settled apex's crop on the worker thread (once per apex)."""
        early = self._early.get(face_id)
        kept = self._apex_crops.get(face_id, {})
        if (early is not None and early[0] == apex_frame) or apex_frame not in kept:
            return
        crop = kept[apex_frame][1]
        self._early[face_id] = (apex_frame, self._worker.submit(self.classifier.classify, [crop]))

    def onset_crop(self, face_id: int, onset_frame: int) -> np.ndarray | None:
        """The aligned crop of ``onset_frame`` from the face's ring buffer: that frame's, or when it is not
        there (the face was lost then, or the event is longer than the buffer) the nearest kept frame at or
        before the onset, else the oldest kept; None when nothing is kept."""
        recent = self._recent(face_id)
        if not recent:
            return None
        before = [(index, crop) for index, crop in recent if index <= onset_frame]
        index, crop = before[-1] if before else recent[0]
        return crop if crop is not None else self._crop_of(face_id, index)

    def _classify(self, events: list[SpottedEvent], started: float) -> tuple[MicroExpression, ...]:
        answers: list = []
        crops: list = []
        onsets: list = []
        inputs: list = []
        for event in events:
            early = self._early.get(event.face_id)
            kept = self._apex_crops.get(event.face_id, {})
            if early is not None and early[0] == event.apex_frame:
                answers.append(early[1].result()[0])
                crop = kept[event.apex_frame][1] if event.apex_frame in kept else None
                crops.append(crop)
                onsets.append(None)
                inputs.append(crop)
                continue
            if self.classifier is None or not (kept or self._recent(event.face_id)):
                answers.append(None)
                crops.append(None)
                onsets.append(None)
                inputs.append(None)
                continue
            if kept:
                nearest = min(kept, key=lambda i: (abs(i - event.apex_frame), -kept[i][0]))
                apex = kept[nearest][1]
            else:
                apex = self.onset_crop(event.face_id, event.apex_frame)
            onset = self.onset_crop(event.face_id, event.onset_frame) if self._needs_onset else None
            model_input = self.classifier.build_input(apex, onset if onset is not None else apex)
            answers.append(self.classifier.classify([model_input])[0])
            crops.append(apex)
            onsets.append(onset)
            inputs.append(model_input)
        out = []
        for event, answer, crop, onset, model_input in zip(events, answers, crops, onsets, inputs, strict=True):
            latency = 1000.0 * (time.perf_counter() - started)
            self.latencies_ms.append(latency)
            out.append(
                MicroExpression(
                    **{f.name: getattr(event, f.name) for f in fields(SpottedEvent)},
                    label=answer.label if answer else "",
                    confidence=answer.confidence if answer else 0.0,
                    probabilities=answer.probabilities if answer else {},
                    latency_ms=latency,
                    apex_crop=crop,
                    onset_crop=onset,
                    classifier_input=model_input,
                )
            )
        return tuple(out)

    def close(self) -> None:
        """Stop the classification worker (pending work is finished first) and a face stage running in a
        second process."""
        if isinstance(self.tracker, FaceProcess):
            self.tracker.close()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
