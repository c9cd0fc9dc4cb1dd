"""The outputs' schema, written once: the per-frame table (``--csv``, the batch's ``frames.csv``, the API's
``frames_dataframe``) and the events (``--events`` JSON Lines, the API's events and ``events_dataframe``).

Everything that names a column or a key comes from here: the CSV header (:func:`frame_header`), the rows
(:func:`frame_rows`), the event objects (:func:`event_record`), the README's tables (:func:`markdown`,
printed by ``python -m realtime.schema``) and the tests that hold them together. Where a column means what
it means in OpenFace, it has OpenFace's name (``frame``, ``timestamp``, ``face_id``, ``confidence``,
``success``, ``x_0`` … ``y_67``, ``pose_Rx``/``pose_Ry``/``pose_Rz``).

The typed per-frame result is :class:`FrameRecord` (one per frame, with a :class:`FaceRecord` per face):
what :meth:`realtime.Recognizer.frames` yields and what the CSV rows are made of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.core.pose import HeadPose, PoseEstimator
from realtime.stages.spotter import REGIONS

N_LANDMARKS = 68


@dataclass(frozen=True)
class Field:
    """One column of a table or key of an event: its ``name``, ``kind`` (``int``, ``float``, ``text``,
    ``flag`` (0/1), ``object``, ``list``), ``unit`` (``""`` when none), the ``digits`` a float is written
    with, and what it means (``doc``)."""

    name: str
    kind: str
    unit: str
    doc: str
    digits: int = 0


def _landmark_fields() -> tuple[Field, ...]:
    xs = tuple(Field(f"x_{i}", "float", "px", f"landmark {i}, x", 2) for i in range(N_LANDMARKS))
    ys = tuple(Field(f"y_{i}", "float", "px", f"landmark {i}, y", 2) for i in range(N_LANDMARKS))
    return xs + ys


def region_column(region: str) -> str:
    """The per-frame table's column of one spotter region (``brow_left`` → ``motion_brow_left``)."""
    return f"motion_{region}"


FRAME_FIELDS: tuple[Field, ...] = (
    Field("frame", "int", "", "0-based index over every decoded frame of the source"),
    Field("timestamp", "float", "s", "time of the frame from the first frame (OpenFace's unit)", 3),
    Field("time_ms", "float", "ms", "the same time in milliseconds (the project's unit)", 1),
    Field("face_id", "int", "", "stable id of the face while it is tracked; empty when no face"),
    Field(
        "confidence",
        "float",
        "0-1",
        "how face-like the landmarks are: exp(-(fit error of the generic 3D face / 0.1 IOD)^2)",
        3,
    ),
    Field("success", "flag", "", "1 when a face was found on the frame, 0 when not (then the rest is empty)"),
    Field(
        "detection", "text", "", "detected (the detector ran and found it), tracked (followed from its landmarks), none"
    ),
    Field("box_x", "int", "px", "left edge of the box the landmarks were fitted in"),
    Field("box_y", "int", "px", "top edge of that box"),
    Field("box_width", "int", "px", "its width"),
    Field("box_height", "int", "px", "its height"),
    Field("angle_deg", "float", "deg", "eye-line angle the alignment rotates by", 2),
    Field("pose_Rx", "float", "rad", "head pitch, > 0 when the head tips down (generic 3D face, solvePnP)", 4),
    Field("pose_Ry", "float", "rad", "head yaw, > 0 when the face turns towards the image's left", 4),
    Field("pose_Rz", "float", "rad", "head roll, > 0 when the head rolls clockwise in the image", 4),
    Field(
        "signal",
        "float",
        "z",
        "the spotting signal: with the learned spotter (the default) the micro probability of the candidate "
        "apex 100 ms before this frame; with --spotter rules the largest region motion (robust z-score)",
        2,
    ),
    Field("threshold", "float", "z", "the level the signal must cross to start an event", 2),
    Field(
        "in_event", "flag", "", "1 while a rise of the signal is under way (learned: a run of candidates 100 ms back)"
    ),
    *(
        Field(
            region_column(name),
            "float",
            "z",
            f"motion of the {name.replace('_', ' ')} region (landmarks "
            f"{', '.join(map(str, indices))}) against its own noise",
            3,
        )
        for name, indices in REGIONS.items()
    ),
)
LANDMARK_FIELDS: tuple[Field, ...] = _landmark_fields()


def frame_fields(landmarks: bool = True) -> tuple[Field, ...]:
    """The per-frame table's columns, in order; ``landmarks=False`` leaves out ``x_0`` … ``y_67``."""
    return FRAME_FIELDS + (LANDMARK_FIELDS if landmarks else ())


def frame_header(landmarks: bool = True) -> tuple[str, ...]:
    """The per-frame CSV's header."""
    return tuple(f.name for f in frame_fields(landmarks))


EVENT_FIELDS: tuple[Field, ...] = (
    Field("face", "int", "", "the face's id (the per-frame table's face_id)"),
    Field("onset_frame", "int", "", "last still frame before the movement (0-based over every decoded frame)"),
    Field("apex_frame", "int", "", "frame where the movement is largest"),
    Field("offset_frame", "int", "", "first still frame after it"),
    Field("onset_ms", "float", "ms", "time of the onset frame", 1),
    Field("apex_ms", "float", "ms", "time of the apex frame", 1),
    Field("offset_ms", "float", "ms", "time of the offset frame", 1),
    Field("score", "float", "z", "peak spotting signal (the learned spotter's apex probability, 0-1; rules: z)", 2),
    Field("label", "text", "", "the classifier's emotion for the apex frame (empty without a classifier)"),
    Field("confidence", "float", "0-1", "the classifier's probability of that label", 4),
    Field("probabilities", "object", "0-1", "every class's probability, in the model's class order", 4),
    Field(
        "moved",
        "list",
        "",
        'the regions that moved, largest share first: [{"region", "share" (of the movement; '
        'shares sum to <= 1), "direction" (up, down, left, right, inward, outward or "")}]',
        3,
    ),
)
EVENT_KEYS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)
_EVENT_DIGITS = {f.name: f.digits for f in EVENT_FIELDS}


# --- the typed per-frame result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceRecord:
    """One face on one frame, as the per-frame table shows it: the tracker's face (id, box, 68 landmarks in
    image pixels, detected or tracked, alignment angle), the head pose and the spotter's view (signal,
    threshold, in-event flag, each region's motion)."""

    face_id: int
    detected: bool
    box: tuple[int, int, int, int]  # x, y, width, height (px)
    landmarks: np.ndarray  # (68, 2) float32, image pixels
    angle_deg: float
    pose: HeadPose
    signal: float
    threshold: float
    in_event: bool
    region_motion: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.pose.confidence


@dataclass(frozen=True)
class FrameRecord:
    """One frame: its index and time, its faces (largest first; empty when none was found) and the
    micro-expressions that were decided on it (:class:`realtime.pipeline.MicroExpression`)."""

    frame: int
    t_ms: float
    faces: tuple[FaceRecord, ...]
    events: tuple = ()

    def rows(self, landmarks: bool = True) -> list[dict[str, object]]:
        """The table's rows of this frame: one per face, or one ``success`` 0 row (the rest None)."""
        return frame_rows(self, landmarks)


def frame_record(result, estimator: PoseEstimator) -> FrameRecord:
    """The :class:`FrameRecord` of a :class:`realtime.pipeline.FrameResult` (the head pose is fitted here)."""
    frame = result.frame
    size = (int(frame.image.shape[1]), int(frame.image.shape[0]))
    faces = []
    for face, signal in zip(result.faces, result.signals, strict=True):
        box = face.box
        faces.append(
            FaceRecord(
                face.face_id,
                bool(face.detected),
                (box.left, box.top, box.width, box.height),
                face.landmarks,
                float(face.angle_deg),
                estimator.estimate(face.landmarks, size),
                float(signal.signal),
                float(signal.threshold),
                bool(signal.in_event),
                dict(signal.region_motion),
            )
        )
    return FrameRecord(frame.index, frame.t_ms, tuple(faces), tuple(result.events))


def frame_rows(record: FrameRecord, landmarks: bool = True) -> list[dict[str, object]]:
    """Raw (unrounded) values of :func:`frame_fields`, one dict per face or one for a frame without a face."""
    base: dict[str, object] = {"frame": int(record.frame), "timestamp": record.t_ms / 1000.0, "time_ms": record.t_ms}
    names = frame_header(landmarks)
    if not record.faces:
        row = dict.fromkeys(names)
        row.update(base, success=0, detection="none")
        return [row]
    rows = []
    for face in record.faces:
        x, y, w, h = face.box
        row = dict(base)
        row.update(
            face_id=int(face.face_id),
            confidence=face.confidence,
            success=1,
            detection="detected" if face.detected else "tracked",
            box_x=int(x),
            box_y=int(y),
            box_width=int(w),
            box_height=int(h),
            angle_deg=face.angle_deg,
            pose_Rx=face.pose.pitch_rad,
            pose_Ry=face.pose.yaw_rad,
            pose_Rz=face.pose.roll_rad,
            signal=face.signal,
            threshold=face.threshold,
            in_event=int(face.in_event),
        )
        for name in REGIONS:
            row[region_column(name)] = face.region_motion.get(name)
        if landmarks:
            points = np.asarray(face.landmarks, np.float64)
            for i in range(N_LANDMARKS):
                row[f"x_{i}"] = float(points[i, 0])
            for i in range(N_LANDMARKS):
                row[f"y_{i}"] = float(points[i, 1])
        rows.append({name: row.get(name) for name in names})
    return rows


def format_row(row: dict[str, object], fields: tuple[Field, ...]) -> list[str]:
    """A row's CSV cells: floats with their field's digits, None and non-finite numbers empty."""
    cells = []
    for f in fields:
        value = row.get(f.name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            cells.append("")
        elif f.kind == "float":
            cells.append(f"{float(value):.{f.digits}f}")
        else:
            cells.append(str(value))
    return cells


# --- events -----------------------------------------------------------------------------------------------


def _number(value: float, digits: int) -> float:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else 0.0


def event_record(event) -> dict:
    """A :class:`realtime.pipeline.MicroExpression` as the events file's JSON object (:data:`EVENT_KEYS`, in
    order, plain numbers)."""
    d = _EVENT_DIGITS
    return {
        "face": int(event.face),
        "onset_frame": int(event.onset_frame),
        "apex_frame": int(event.apex_frame),
        "offset_frame": int(event.offset_frame),
        "onset_ms": _number(event.onset_ms, d["onset_ms"]),
        "apex_ms": _number(event.apex_ms, d["apex_ms"]),
        "offset_ms": _number(event.offset_ms, d["offset_ms"]),
        "score": _number(event.score, d["score"]),
        "label": str(event.label),
        "confidence": _number(event.confidence, d["confidence"]),
        "probabilities": {str(k): _number(v, d["probabilities"]) for k, v in event.probabilities.items()},
        "moved": [
            {"region": str(m.region), "share": _number(m.share, d["moved"]), "direction": str(m.direction)}
            for m in event.moved
        ],
    }


# --- documentation ----------------------------------------------------------------------------------------


def _table(fields: tuple[Field, ...]) -> list[str]:
    lines = ["| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{f.name}` | {f.kind} | {f.unit} | {f.doc} |" for f in fields]
    return lines


def markdown() -> str:
    """The README's description of both outputs, generated from the schema (the README holds this text
    between ``<!-- schema -->`` markers; a test keeps them equal; ``python -m realtime.schema`` prints it)."""
    landmarks = LANDMARK_FIELDS
    lines = [
        "Per-frame table (`--csv FILE`, the batch's `frames.csv`, `frames_dataframe()`): one row per frame and",
        "face, and one row with `success` 0 (the rest empty) for a frame without a face.",
        "",
        *_table(FRAME_FIELDS),
        f"| `{landmarks[0].name}` … `x_{N_LANDMARKS - 1}`, `y_0` … `{landmarks[-1].name}` | float | px | the 68 "
        "landmarks (dlib's / OpenFace's numbering) in image pixels; left out with `--no-csv-landmarks` |",
        "",
        "Events (`--events FILE`, one JSON object per line; `Recognizer.process()`; `events_dataframe()`):",
        "",
        *_table(EVENT_FIELDS),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
