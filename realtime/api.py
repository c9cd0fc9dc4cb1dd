"""The Python API: ``from realtime import Recognizer`` — what ``stream.py`` does, for notebooks and scripts.

>>> from realtime import Recognizer, to_dataframe
>>> recognizer = Recognizer()                        # the default model in weights/, CUDA if it loads
>>> events = list(recognizer.process("clip.mp4"))   # MicroExpression objects (what --events writes)
>>> table = to_dataframe(recognizer.frames("clip.mp4"))   # the per-frame table (what --csv writes)

:class:`Recognizer` loads the classifier once; every call opens its source, runs each frame through a fresh
:class:`realtime.pipeline.Pipeline` in the one frame loop the commands share
(:func:`realtime.process.iter_frames`) and closes everything when the loop ends or the caller stops
iterating. ``stream.py`` is built on it (:meth:`Recognizer.open`, :meth:`Recognizer.run`). Bad input
raises :class:`realtime.core.errors.UserInputError` with the one-line message the command line prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.pose import PoseEstimator
from realtime.pipeline import MicroExpression, Pipeline, PipelineOptions
from realtime.process import Outputs, ReportRecorder, RunStats, iter_frames, run_frames
from realtime.schema import EVENT_KEYS, FrameRecord, frame_header, frame_record, frame_rows
from realtime.stages.capture import CaptureOptions, FrameSource, check_source, is_recorded, open_source
from realtime.stages.classify import Classifier, ClassifierOptions, default_model
from realtime.stages.faces import FaceTracker, TrackingOptions
from realtime.stages.faces.process import FaceProcess
from realtime.stages.spotter import Spotter, SpotterOptions

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
"""Where ``model=None`` (and ``stream.py`` without ``--model``) looks for the newest ``.onnx``."""


class Recognizer:
    """Spot and name micro-expressions in a video, a frame folder, a webcam or a stream.

    ``model`` the ONNX classifier (a path; None: the newest ``.onnx`` in ``weights/``; False: spot only,
    events without labels); ``device`` ``"auto"`` (CUDA if it loads, else CPU), ``"cuda"`` or ``"cpu"``;
    ``max_faces`` how many faces to follow, largest first; ``fps`` the rate of a frame folder (or of a
    video that reports none); ``spotter`` the spotter's settings; ``input_kind`` the classifier input this
    recognizer builds (``"auto"``: what the model's metadata asks for; ``apex``, ``onset-apex`` or ``flow``:
    a model that needs another is refused); ``classifier_threads`` the classifier's CPU threads (None: ONNX
    Runtime's choice; ``stream.py`` gives 1 when the face stage runs in a second process, which keeps the
    other core busy). A source is a path (video file or image
    folder), a webcam number, a URL, or an already opened :class:`realtime.stages.capture.FrameSource`. Recorded
    sources give every frame; live ones drop frames when processing falls behind, as ``stream.py`` does.
    """

    def __init__(
        self,
        model: str | Path | bool | None = None,
        device: str = "auto",
        max_faces: int = 1,
        *,
        fps: float | None = None,
        spotter: SpotterOptions | None = None,
        input_kind: str = "auto",
        classifier_threads: int | None = None,
    ) -> None:
        self.options = PipelineOptions(
            tracking=TrackingOptions(max_faces=int(max_faces)), spotter=spotter or SpotterOptions()
        )
        if self.options.spotter.method == "learned":
            Spotter(self.options.spotter)  # its model file is read now: a bad path fails before any frame is read
        if fps is not None and not float(fps) > 0:
            raise UserInputError(f"--fps must be a positive number, got {fps}")
        self.fps = None if fps is None else float(fps)
        self.model_path: Path | None = None
        self.classifier: Classifier | None = None
        if model is not False:
            self.model_path = Path(model) if model is not None and model is not True else default_model(DEFAULT_WEIGHTS)
            self.classifier = Classifier(
                ClassifierOptions(self.model_path, device, threads=classifier_threads, input_kind=input_kind)
            )
        elif device not in ("auto", "cuda", "cpu"):
            ClassifierOptions(Path(), device)  # raises the --device message

    # -- the pieces the command line uses -------------------------------------------------------------------
    def capture_options(
        self, *, live: bool | None = None, stall_s: float = 5.0, read_ahead: int = 16
    ) -> CaptureOptions:
        """How :meth:`open` opens a source (and :meth:`face_process` opens it again)."""
        return CaptureOptions(fps=self.fps, live=live, stall_s=stall_s, read_ahead=read_ahead)

    def open(self, source, *, live: bool | None = None, stall_s: float = 5.0, read_ahead: int = 16) -> FrameSource:
        """``source`` opened for reading (a :class:`FrameSource` is returned as it is)."""
        if isinstance(source, FrameSource):
            return source
        if isinstance(source, (str, Path)):
            check_source(str(source))
            source = str(source)
        return open_source(source, self.capture_options(live=live, stall_s=stall_s, read_ahead=read_ahead))

    def face_process(self, source, *, stall_s: float = 5.0, read_ahead: int = 16) -> FaceProcess | None:
        """The face stage of a recorded ``source`` started in a second process
        (:class:`realtime.stages.faces.process.FaceProcess`, for :meth:`pipeline`'s ``tracker``), or None when
        the source is live (a camera or a stream cannot be read twice). Open the source with the same
        ``stall_s`` and ``read_ahead``."""
        options = self.capture_options(stall_s=stall_s, read_ahead=read_ahead)
        if not isinstance(source, (str, Path)) or not is_recorded(str(source), options):
            return None
        return FaceProcess(str(source), options, self.options.tracking)

    def pipeline(self, tracker: FaceTracker | FaceProcess | None = None) -> Pipeline:
        """A fresh pipeline for one source (face ids and spotting state start anew)."""
        return Pipeline(self.options, self.classifier, tracker=tracker)

    def run(
        self,
        source: FrameSource,
        pipeline: Pipeline,
        outputs: Outputs,
        *,
        renderer=None,
        show: Callable | None = None,
        on_event: Callable[[MicroExpression], None] | None = None,
        recorder: ReportRecorder | None = None,
        stop=None,
    ) -> RunStats:
        """Every frame of an opened ``source`` into ``outputs`` (the command line's run; Ctrl-C or a request
        of ``stop``, a :class:`realtime.cli.stopping.StopSignals`, ends it between two frames)."""
        return run_frames(
            source, pipeline, outputs, renderer=renderer, show=show, on_event=on_event, recorder=recorder, stop=stop
        )

    # -- the notebook interface -----------------------------------------------------------------------------
    def frames(self, source) -> Iterator[FrameRecord]:
        """One :class:`realtime.schema.FrameRecord` per frame (its faces with landmarks, head pose and the
        spotter's view; the micro-expressions decided on that frame), in order."""
        estimator = PoseEstimator()
        for result in self._results(source):
            yield frame_record(result, estimator)

    def process(self, source) -> Iterator[MicroExpression]:
        """The micro-expressions of ``source``, each as soon as it is decided: the same
        :class:`realtime.pipeline.MicroExpression` the events file is written from (``event.to_json()``)."""
        for result in self._results(source):
            yield from result.events

    def _results(self, source):
        opened = self.open(source)
        pipeline = self.pipeline()
        try:
            yield from iter_frames(opened, pipeline, Outputs(), RunStats())
        finally:
            pipeline.close()
            if opened is not source:
                opened.close()


def to_dataframe(items: Iterable, landmarks: bool = True):
    """A pandas DataFrame of events (:class:`MicroExpression`: the events file's columns) or of frames
    (:class:`FrameRecord`: the per-frame CSV's columns, ``landmarks=False`` without ``x_0`` … ``y_67``).
    pandas is optional (``pip install 'microexpr[dataframe]'``); without it this raises
    :class:`UserInputError`."""
    try:
        import pandas as pd
    except ImportError:
        raise UserInputError(
            "to_dataframe needs pandas, which is not installed: pip install 'microexpr[dataframe]'"
        ) from None
    items = list(items)
    if all(isinstance(item, FrameRecord) for item in items) and items:
        rows = [row for record in items for row in frame_rows(record, landmarks)]
        table = pd.DataFrame(rows, columns=list(frame_header(landmarks)))
        return table.astype({"face_id": "Int64", "success": "int8", "in_event": "int8"})
    if all(isinstance(item, MicroExpression) for item in items):
        return pd.DataFrame([item.to_json() for item in items], columns=list(EVENT_KEYS))
    kinds = sorted({type(item).__name__ for item in items})
    raise UserInputError(f"to_dataframe takes events (MicroExpression) or frames (FrameRecord), got {', '.join(kinds)}")
