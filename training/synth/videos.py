"""Generated test videos for micro-expression *spotting*: long clips with ground truth, at any size and fps.

``python -m training synth videos --out DIR`` writes ``clip01.mp4`` (or ``.avi``, or a folder of
``img1.jpg`` … frames numbered from 1 as in CASME II), a ground-truth ``clip01.json`` beside each clip, and a
``videos.json`` index. Where the data-set layouts (:mod:`training.synth.layouts`) write one short
onset → apex → offset clip per expression, a video here is a recording: a subject sits still for a second,
then makes a few micro-expressions among the distractors a spotter must not report:

- micro-expressions: an emotion's action units (CASME II coding criteria,
  :data:`training.synth.actions.EMOTION_ACTION_UNITS`) whose moving landmarks peak at 1.5–5 % of the
  inter-ocular distance (IOD) at ``amplitude=1`` (about 1–5 px on a face filling half of a 640×480 frame)
  and last 1/25–1/2 s with a raised-cosine onset → apex → offset profile (:func:`clip_profile`);
- macro expressions: :data:`MACRO_SCALE` × 4–6 % of the IOD, lasting 0.8–2 s with a held apex;
- blinks: AU45 (both upper lids come down, the lower ones up a little) for 150–350 ms, closing faster than
  reopening;
- slow head drift (translation of 2–6 % of the IOD, 0.5–1.5° of roll, ±0.5 % of scale, periods of 4–8 s),
  a lighting drift (gain and offset ramps over the clip) and sensor noise (σ 1–2.5 grey levels).

Everything is made with the generator's own pieces: subjects from real photos (:func:`make_subjects`,
:class:`Pose`), AU displacements (:func:`expression_displacements`), the fold-free warp (:func:`fit_field`),
:class:`SensorNoise`. A frame is the neutral face warped by the events under way (their fields at the
events' time weights), moved by the head pose of that instant (one similarity ``warpAffine``), passed
through the lighting's tone table and given noise; so the truth is exact: each event's apex is the one
frame where its weight is 1 (the first of a macro expression's held frames), the onset and offset frames
are the last and first still frames around it, and ``ms = frame / fps × 1000``.

The same arguments give the same JSON bytes and the same decoded frames (every random draw comes from a
generator seeded with the seed and the clip's number, so clip 1 is the same whatever ``clips`` is).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from training.synth.actions import (
    MACRO_SCALE,
    AUCode,
    choose_action_units,
    clip_profile,
    expression_displacements,
    format_action_units,
)
from training.synth.faces import (
    Face,
    FacePhoto,
    Pose,
    SensorNoise,
    Subject,
    control_points,
    load_face_photos,
    make_subjects,
    parse_frame_size,
)
from training.synth.warp import DisplacementField, anchor_ring, fit_field

INDEX_NAME = "videos.json"
FORMATS = ("mp4", "avi", "frames")
"""``mp4``: MPEG-4 part 2 (``mp4v``) in .mp4; ``avi``: Motion JPEG in .avi; ``frames``: a folder of JPEGs."""
MICRO_CLASSES = ("happiness", "disgust", "surprise", "repression", "others")  # CASME II's 5 classes
MACRO_CLASSES = ("happiness", "surprise", "disgust", "sadness", "anger", "fear")
_TAG = 4  # separates this generator's random streams from the layouts' (tags 1–3)
_JPEG_QUALITY = 95

# timings (ms) and sizes (IOD units) of what a clip shows; the module docstring explains them
MICRO_MS = (40.0, 500.0)
MICRO_PEAK_IOD = (0.015, 0.05)
MACRO_MS = (800.0, 2000.0)
MACRO_PEAK_IOD = (MACRO_SCALE * 0.04, MACRO_SCALE * 0.06)
BLINK_MS = (150.0, 350.0)
BLINK_CLOSURE = 0.9  # requested closure; the fold-free warp achieves about 60 % (recorded per blink)
LEAD_MS = (1500.0, 2000.0)  # a still start: a spotter needs a neutral face to compare with (ours: ~1.2 s)
GAP_MS = (500.0, 1000.0)
TAIL_MS = 300.0


# --- what a clip shows --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoEvent:
    """One facial event of a clip: ``kind`` is ``'micro'``, ``'macro'`` or ``'blink'``; ``label`` the emotion
    (``'blink'`` for a blink); ``codes`` its action units. Frames are 0-based: the weight is 0 at
    ``onset_frame`` and ``offset_frame`` and 1 from ``apex_frame`` for ``hold_frames`` more frames.
    ``peak_iod`` is the wanted largest landmark movement at the apex (IOD units; a blink's is set by
    the eye instead and this is 0)."""

    kind: str
    label: str
    codes: tuple[AUCode, ...]
    onset_frame: int
    apex_frame: int
    offset_frame: int
    hold_frames: int = 0
    peak_iod: float = 0.0

    def weights(self, n_frames: int) -> np.ndarray:
        """The event's time weight on every frame of a clip of ``n_frames`` (0 outside onset…offset)."""
        out = np.zeros(n_frames)
        span = self.offset_frame - self.onset_frame + 1
        profile = clip_profile(span, self.apex_frame - self.onset_frame, self.hold_frames)
        out[self.onset_frame : self.offset_frame + 1] = profile[: max(0, n_frames - self.onset_frame)]
        return out


@dataclass(frozen=True)
class HeadDrift:
    """Slow head motion: a translation of ``shift_iod`` (IOD units; half as much vertically), a roll of
    ``roll_deg`` and a scale change of ``scale``, each a sinusoid of period about ``period_ms`` (the
    three at incommensurate rates) starting at ``phases``."""

    shift_iod: float
    roll_deg: float
    scale: float
    period_ms: float
    phases: tuple[float, float, float, float]

    def pose(self, t_ms: float, iod: float, frame_size: tuple[int, int]) -> Pose:
        """The pose change at time ``t_ms`` (a :class:`Pose`: shift as fractions of the frame)."""
        w = 2.0 * math.pi * t_ms / self.period_ms
        a, b, c, d = self.phases
        dx = self.shift_iod * iod * math.sin(w + a) / frame_size[0]
        dy = 0.5 * self.shift_iod * iod * math.sin(1.3 * w + b) / frame_size[1]
        return Pose(dx, dy, self.roll_deg * math.sin(0.7 * w + c), 1.0 + self.scale * math.sin(0.9 * w + d))


@dataclass(frozen=True)
class LightingDrift:
    """A lighting ramp over the clip: the camera's gain goes from 1 to ``gain`` and an offset from 0 to
    ``offset`` grey levels, along a raised cosine (slow at both ends)."""

    gain: float
    offset: float

    def table(self, fraction: float) -> np.ndarray:
        """The 8-bit tone table at ``fraction`` (0…1) of the clip."""
        s = 0.5 - 0.5 * math.cos(math.pi * min(max(fraction, 0.0), 1.0))
        x = np.arange(256, dtype=np.float64)
        return np.clip(np.rint(x * (1.0 + s * (self.gain - 1.0)) + s * self.offset), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class VideoClipSpec:
    """Everything one clip shows: the subject and its starting pose, the frame size and rate, the events in
    time order, the nuisances (``None``: off) and the sensor noise; ``seed`` and ``index`` seed the noise."""

    name: str
    subject: Subject
    pose: Pose
    fps: float
    frame_size: tuple[int, int]
    n_frames: int
    events: tuple[VideoEvent, ...]
    drift: HeadDrift | None
    lighting: LightingDrift | None
    noise_sigma: float
    amplitude: float
    seed: int
    index: int

    @property
    def photo(self) -> str:
        return self.subject.photo.path.name

    def ms(self, frame: int) -> float:
        """The time of a frame (ms from the first), rounded to a microsecond."""
        return round(frame * 1000.0 / self.fps, 3)


@dataclass(frozen=True)
class VideoSettings:
    """The generator's settings for every clip: frame rate and size, the clip length (``None``: as long as
    the events need), the micro-expressions per clip, the movement scale, whether the distractors are on
    (blinks, one macro expression, head drift, lighting drift) and the sensor noise (``None``: drawn per
    clip, σ 1–2.5, or 1.0 without distractors)."""

    fps: float = 30.0
    frame_size: tuple[int, int] = (640, 480)
    seconds: float | None = None
    micro: int = 3
    blinks: int = 2
    amplitude: float = 1.0
    distractors: bool = True
    noise_sigma: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and 0.0 < self.fps <= 1000.0):
            raise UserInputError(f"fps must lie in (0, 1000], got {self.fps:g}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and 0.0 < self.seconds <= 600.0):
            raise UserInputError(f"seconds must lie in (0, 600], got {self.seconds:g}")
        if int(self.micro) != self.micro or not 1 <= self.micro <= 50:
            raise UserInputError(f"micro-expressions per clip must be a whole number from 1 to 50, got {self.micro}")
        if int(self.blinks) != self.blinks or not 0 <= self.blinks <= 50:
            raise UserInputError(f"blinks per clip must be a whole number from 0 to 50, got {self.blinks}")
        if not (math.isfinite(self.amplitude) and 0.0 < self.amplitude <= 10.0):
            raise UserInputError(
                f"amplitude must lie in (0, 10] (1 = a realistic micro-expression), got {self.amplitude}"
            )
        if self.noise_sigma is not None and not 0.0 <= self.noise_sigma <= 50.0:
            raise UserInputError(f"noise sigma must lie in [0, 50] grey levels, got {self.noise_sigma}")


# --- planning -----------------------------------------------------------------------------------------------------


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _TAG, *keys])


def _frames_of(ms: float, fps: float) -> int:
    return round(ms * fps / 1000.0)


def _draw_event(kind: str, rng: np.random.Generator, fps: float, amplitude: float) -> tuple[VideoEvent, int]:
    """An event starting at frame 0 (the caller shifts it) and its length in frames."""
    if kind == "micro":
        shortest, longest = max(2, math.ceil(MICRO_MS[0] * fps / 1000.0 - 1e-9)), int(MICRO_MS[1] * fps / 1000.0)
        if longest < shortest:
            raise UserInputError(
                f"at {fps:g} fps a micro-expression (at most {MICRO_MS[1]:g} ms) cannot have distinct onset, apex "
                "and offset frames; use at least 6 fps"
            )
        span = int(np.clip(_frames_of(float(rng.uniform(*MICRO_MS)), fps), shortest, longest))
        apex = int(np.clip(round(float(rng.uniform(0.3, 0.6)) * span), 1, span - 1))
        label = str(rng.choice(MICRO_CLASSES))
        codes = choose_action_units(label, rng)
        peak = amplitude * float(rng.uniform(*MICRO_PEAK_IOD))
        return VideoEvent("micro", label, codes, 0, apex, span, 0, peak), span
    if kind == "macro":
        span = max(4, _frames_of(float(rng.uniform(*MACRO_MS)), fps))
        apex = max(1, round(float(rng.uniform(0.25, 0.35)) * span))
        hold = min(round(float(rng.uniform(0.2, 0.35)) * span), span - apex - 1)
        label = str(rng.choice(MACRO_CLASSES))
        codes = choose_action_units(label, rng)
        peak = amplitude * float(rng.uniform(*MACRO_PEAK_IOD))
        return VideoEvent("macro", label, codes, 0, apex, span, max(0, hold), peak), span
    span = max(2, _frames_of(float(rng.uniform(*BLINK_MS)), fps))
    apex = int(np.clip(round(float(rng.uniform(0.35, 0.45)) * span), 1, span - 1))
    return VideoEvent("blink", "blink", (AUCode(45),), 0, apex, span), span


def _shifted(event: VideoEvent, start: int) -> VideoEvent:
    return VideoEvent(
        event.kind,
        event.label,
        event.codes,
        start,
        start + event.apex_frame,
        start + event.offset_frame,
        event.hold_frames,
        event.peak_iod,
    )


def plan_clip(
    subject: Subject, settings: VideoSettings, seed: int, index: int, name: str | None = None
) -> VideoClipSpec:
    """The clip ``index`` (0-based) of a run: its events laid out in random order with still gaps between
    them after a still start, and its nuisances. With ``settings.seconds`` events that do not fit are left
    out (at least one micro-expression must fit, or it is an error)."""
    rng = _rng(seed, 1, index)
    fps = settings.fps
    kinds = ["micro"] * settings.micro
    if settings.distractors:
        kinds += ["blink"] * settings.blinks + ["macro"]
    order = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    drawn = [_draw_event(kind, rng, fps, settings.amplitude) for kind in order]
    lead = _frames_of(float(rng.uniform(*LEAD_MS)), fps)
    gaps = [max(1, _frames_of(float(rng.uniform(*GAP_MS)), fps)) for _ in drawn]
    tail = max(1, _frames_of(TAIL_MS, fps))
    limit = None if settings.seconds is None else max(1, round(settings.seconds * fps))

    def layout(items: list[tuple[VideoEvent, int]]) -> tuple[list[VideoEvent], int]:
        placed, t = [], lead
        for (event, span), gap in zip(items, gaps, strict=True):
            if limit is not None and t + span + tail > limit:
                continue
            placed.append(_shifted(event, t))
            t += span + gap
        return placed, t - (gaps[len(placed) - 1] if placed else 0)

    events, end = layout(drawn)
    if not any(e.kind == "micro" for e in events):  # try again with the micro-expressions first
        events, end = layout(sorted(drawn, key=lambda item: item[0].kind != "micro"))
    if not any(e.kind == "micro" for e in events):
        raise UserInputError(
            f"--seconds {settings.seconds:g} is too short: a clip starts with {lead / fps:.2f} s of still face and "
            "needs room for a micro-expression after it; use at least 3 seconds"
        )
    n_frames = limit if limit is not None else end + tail
    drift = lighting = None
    if settings.distractors:
        drift = HeadDrift(
            shift_iod=float(rng.uniform(0.02, 0.06)),
            roll_deg=float(rng.uniform(0.5, 1.5)),
            scale=float(rng.uniform(0.0, 0.005)),
            period_ms=float(rng.uniform(4000.0, 8000.0)),
            phases=tuple(float(v) for v in rng.uniform(0.0, 2.0 * math.pi, 4)),  # type: ignore[arg-type]
        )
        lighting = LightingDrift(gain=float(rng.uniform(0.88, 1.12)), offset=float(rng.uniform(-15.0, 15.0)))
    sigma = settings.noise_sigma
    if sigma is None:
        sigma = float(rng.uniform(1.0, 2.5)) if settings.distractors else 1.0
    return VideoClipSpec(
        name=name or f"clip{index + 1:02d}",
        subject=subject,
        pose=Pose.draw(rng),
        fps=fps,
        frame_size=settings.frame_size,
        n_frames=int(n_frames),
        events=tuple(events),
        drift=drift,
        lighting=lighting,
        noise_sigma=round(sigma, 4),
        amplitude=settings.amplitude,
        seed=int(seed),
        index=int(index),
    )


def plan_clips(
    photos: Sequence[FacePhoto], settings: VideoSettings, seed: int = 0, n_clips: int = 3
) -> tuple[VideoClipSpec, ...]:
    """``n_clips`` clips, one subject each, cycling through ``photos`` (every other cycle mirrored), each
    subject with its own look (size, place, roll, tone, identity morph)."""
    if int(n_clips) != n_clips or not 1 <= n_clips <= 1000:
        raise UserInputError(f"clips must be a whole number from 1 to 1000, got {n_clips}")
    names = [f"clip{i + 1:02d}" for i in range(n_clips)]
    subjects = make_subjects(photos, names, _rng(seed, 0))
    return tuple(plan_clip(s, settings, seed, i, names[i]) for i, s in enumerate(subjects))


# --- rendering ----------------------------------------------------------------------------------------------------


def _pose_matrix(pose: Pose, centre: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """The 2×3 similarity of a :class:`Pose` change: roll and scale about ``centre``, then the shift."""
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), pose.roll_deg, pose.scale)
    matrix[0, 2] += pose.dx * frame_size[0]
    matrix[1, 2] += pose.dy * frame_size[1]
    return matrix


@dataclass(frozen=True, eq=False)
class EventField:
    """An event's warp on the clip's neutral face and what it measurably does: the largest landmark movement
    at the apex (IOD units and pixels), the factor the warp was weakened by to stay fold-free, and for a
    blink the mean share of the eye opening it closes."""

    event: VideoEvent
    warp: DisplacementField = field(repr=False)
    shift: np.ndarray = field(repr=False)  # 68×2 landmark movement at weight 1 (pixels)
    peak_iod: float
    peak_px: float
    warp_scale: float
    closure: float = 0.0


def event_field(face: Face, event: VideoEvent) -> EventField:
    """The warp of one event on ``face``: its AUs' displacements scaled so that the largest is
    ``event.peak_iod`` (a blink: the eyelid closure, :data:`BLINK_CLOSURE` asked for), made a fold-free field."""
    iod = face.frame.iod
    if event.kind == "blink":
        moves = expression_displacements(face.landmarks, event.codes, 1.0, max_closure=BLINK_CLOSURE)
    else:
        unit = expression_displacements(face.landmarks, event.codes, 1.0)
        largest = float(np.linalg.norm(unit, axis=1).max()) / iod
        moves = expression_displacements(face.landmarks, event.codes, event.peak_iod / max(largest, 1e-9))
    controls, control_moves = control_points(face.landmarks, moves, iod)
    if event.kind == "blink":  # only the lids move: hold every other landmark (brows, nose, …) still
        controls = np.concatenate([face.landmarks, anchor_ring(face.landmarks, iod)])
        control_moves = np.concatenate([moves, np.zeros((len(controls) - len(moves), 2))])
    warp, scale = fit_field(controls, control_moves, iod, face.size)
    shift = warp.at(face.landmarks)
    peak = float(np.linalg.norm(shift, axis=1).max())
    closure = 0.0
    if event.kind == "blink":
        points = face.landmarks
        shares = []
        for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
            before = float(np.linalg.norm(points[lower] - points[upper]))
            after = float(np.linalg.norm(points[lower] + shift[lower] - points[upper] - shift[upper]))
            shares.append(1.0 - after / max(before, 1e-9))
        closure = float(np.mean(shares))
    return EventField(event, warp, shift, peak / iod, peak, scale, closure)


class VideoRenderer:
    """Renders a :class:`VideoClipSpec`: the neutral face once, each event's field once, then frame by frame.

    ``weights`` (events × frames) and ``landmarks`` (frames × 68 × 2, the true landmarks of every frame)
    are computed up front; ``rest_landmarks`` are those of the neutral face under each frame's head pose, so
    ``landmarks - rest_landmarks`` is the facial movement alone. :meth:`frames` yields the frames (BGR
    uint8) one at a time, the same ones on every call.
    """

    def __init__(self, spec: VideoClipSpec) -> None:
        self.spec = spec
        self.face = spec.subject.render(spec.frame_size, spec.pose)
        self.fields = tuple(event_field(self.face, e) for e in spec.events)
        n = spec.n_frames
        self.weights = np.stack([e.weights(n) for e in spec.events]) if spec.events else np.zeros((0, n))
        self.centre = self.face.landmarks.mean(axis=0)
        self.matrices = np.stack([self._matrix(i) for i in range(n)]) if n else np.zeros((0, 2, 3))
        moved = self.face.landmarks[None] + np.einsum("ef,eij->fij", self.weights, self._shifts())
        self.landmarks = np.einsum("fij,fkj->fik", moved, self.matrices[:, :, :2]) + self.matrices[:, None, :, 2]
        rest = self.face.landmarks @ self.matrices[:, :, :2].transpose(0, 2, 1)
        self.rest_landmarks = rest + self.matrices[:, None, :, 2]

    def _shifts(self) -> np.ndarray:
        return np.stack([f.shift for f in self.fields]) if self.fields else np.zeros((0, 68, 2))

    def _matrix(self, index: int) -> np.ndarray:
        drift = self.spec.drift
        if drift is None:
            return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        pose = drift.pose(index * 1000.0 / self.spec.fps, self.face.frame.iod, self.spec.frame_size)
        return _pose_matrix(pose, self.centre, self.spec.frame_size)

    def frames(self) -> Iterator[np.ndarray]:
        """The clip's frames (BGR, uint8), rendered on the fly (a 200 fps clip never sits in memory whole)."""
        spec = self.spec
        noise = SensorNoise(spec.noise_sigma)
        rng = _rng(spec.seed, 2, spec.index)
        size = spec.frame_size
        last = max(spec.n_frames - 1, 1)
        for index in range(spec.n_frames):
            image = self.face.image
            for event_index in np.flatnonzero(self.weights[:, index] > 0.0):
                image = self.fields[event_index].warp.apply(image, float(self.weights[event_index, index]))
            if spec.drift is not None:
                image = cv2.warpAffine(
                    image, self.matrices[index], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
                )
            if spec.lighting is not None:
                image = cv2.LUT(image, spec.lighting.table(index / last))
            yield noise.apply(image, rng)

    def truth(self) -> dict:
        """The clip's ground truth, JSON-ready (see :func:`write_videos`)."""
        spec = self.spec
        events = []
        for event_field_ in self.fields:
            e = event_field_.event
            item = {
                "kind": e.kind,
                "label": e.label,
                "action_units": format_action_units(e.codes),
                "onset_frame": e.onset_frame,
                "apex_frame": e.apex_frame,
                "offset_frame": e.offset_frame,
                "onset_ms": spec.ms(e.onset_frame),
                "apex_ms": spec.ms(e.apex_frame),
                "offset_ms": spec.ms(e.offset_frame),
                "duration_ms": spec.ms(e.offset_frame - e.onset_frame),
                "apex_hold_frames": e.hold_frames,
                "peak_shift_iod": round(event_field_.peak_iod, 5),
                "peak_shift_px": round(event_field_.peak_px, 3),
                "warp_scale": round(event_field_.warp_scale, 4),
            }
            if e.kind == "blink":
                item["eye_closure"] = round(event_field_.closure, 3)
            events.append(item)
        drift, lighting = spec.drift, spec.lighting
        width, height = spec.frame_size
        look = spec.subject.look
        return {
            "clip": spec.name,
            "fps": spec.fps,
            "size": [width, height],
            "frame_count": spec.n_frames,
            "duration_ms": spec.ms(spec.n_frames),
            "photo": spec.photo,
            "seed": spec.seed,
            "clip_index": spec.index,
            "amplitude": spec.amplitude,
            "iod_px": round(self.face.frame.iod, 3),
            "subject": {
                "mirror": look.mirror,
                "face_size": round(look.face_size, 4),
                "roll_deg": round(look.roll_deg + spec.pose.roll_deg, 3),
            },
            "frames_are": "0-based indices; ms = frame / fps * 1000; onset and offset are the still frames around "
            "the movement, apex the frame where it is largest (the first of a held apex)",
            "events": events,
            "counts": dict(sorted(Counter(e.kind for e in spec.events).items())),
            "nuisances": {
                "head_drift": None
                if drift is None
                else {
                    "shift_px": round(drift.shift_iod * self.face.frame.iod, 3),
                    "roll_deg": round(drift.roll_deg, 3),
                    "scale": round(drift.scale, 5),
                    "period_ms": round(drift.period_ms, 1),
                },
                "lighting_drift": None
                if lighting is None
                else {"gain_end": round(lighting.gain, 4), "offset_end": round(lighting.offset, 3)},
                "noise_sigma": spec.noise_sigma,
            },
        }


# --- writing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoIndex:
    """What :func:`write_videos` wrote: ``out``, each clip's video (file or frame folder) and truth file
    (relative to ``out``), the container actually used, a note when it had to fall back, and the settings."""

    out: Path
    clips: tuple[dict, ...]
    container: str
    fourcc: str | None
    note: str
    settings: dict

    @property
    def path(self) -> Path:
        return self.out / INDEX_NAME


def json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def check_output(out: Path, overwrite: bool) -> Path:
    """``out`` must be new or empty; with ``overwrite``, an earlier videos run there (``videos.json``) is
    removed first (only what its index lists), and nothing else is ever deleted."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"output path exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()):
        index = out / INDEX_NAME
        if not overwrite:
            raise UserInputError(f"output folder {out} is not empty; choose a new or empty folder (or --force)")
        if not index.is_file():
            raise UserInputError(
                f"output folder {out} is not empty and holds no {INDEX_NAME}, so it was not written by this "
                "generator; it is left alone: choose another output folder"
            )
        try:
            listed = json.loads(index.read_text())["clips"]
            names = {n for c in listed for n in (c["video"], c["truth"])}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserInputError(f"cannot read the earlier index {index}: {error}") from None
        for name in sorted(names):
            target = out / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        index.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"cannot create output folder {out}: {error.strerror or error}") from None
    return out


def _open_writer(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter | None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
    if writer.isOpened():
        return writer
    writer.release()
    if path.exists():
        path.unlink()
    return None


def write_clip(renderer: VideoRenderer, out: Path, fmt: str) -> tuple[str, str, str | None]:
    """Write one clip's frames as ``fmt``; returns (what was written, container, fourcc). An .mp4 this
    OpenCV build cannot write falls back to Motion JPEG .avi."""
    spec = renderer.spec
    if fmt == "frames":
        folder = out / spec.name
        folder.mkdir()
        params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
        for number, image in enumerate(renderer.frames(), start=1):
            ok, data = cv2.imencode(".jpg", image, params)
            if not ok:
                raise UserInputError("OpenCV cannot encode JPEG images")
            (folder / f"img{number}.jpg").write_bytes(data.tobytes())
        return spec.name, "frames", None
    choices = [("mp4", "mp4v"), ("avi", "MJPG")] if fmt == "mp4" else [("avi", "MJPG")]
    for suffix, fourcc in choices:
        path = out / f"{spec.name}.{suffix}"
        writer = _open_writer(path, fourcc, spec.fps, spec.frame_size)
        if writer is None:
            continue
        try:
            for image in renderer.frames():
                writer.write(image)
        finally:
            writer.release()
        return path.name, suffix, fourcc
    raise UserInputError("this OpenCV build can write neither mp4v .mp4 nor MJPG .avi video; use --format frames")


def write_videos(
    out: Path,
    *,
    seed: int = 0,
    n_clips: int = 3,
    fps: float = 30.0,
    frame_size: Sequence[int] | str = (640, 480),
    seconds: float | None = None,
    micro: int = 3,
    blinks: int = 2,
    amplitude: float = 1.0,
    distractors: bool = True,
    noise_sigma: float | None = None,
    photos: Sequence[Path] | None = None,
    fmt: str = "mp4",
    overwrite: bool = False,
) -> VideoIndex:
    """Write ``n_clips`` spotting clips under ``out`` with a ground-truth JSON beside each and ``videos.json``.

    ``out/clip01.mp4`` (``fmt='mp4'``: mp4v, or MJPG .avi where this OpenCV cannot write .mp4; ``'avi'``:
    MJPG; ``'frames'``: ``out/clip01/img1.jpg`` …, numbered from 1 as in CASME II) and ``out/clip01.json``:
    the clip's fps, size, frame count, photo, seed, and per event its kind (``micro``, ``macro``,
    ``blink``), label, AUs, onset/apex/offset frames (0-based) and ms, and its measured peak movement;
    the head drift, lighting drift and noise of the clip under ``nuisances``. Bad input (a photo that is
    missing or shows no face, a bad size, fps ≤ 0, a non-empty ``out``) raises :class:`UserInputError`
    before anything is written. ``overwrite`` replaces an earlier run of this writer in ``out``.
    """
    if fmt not in FORMATS:
        raise UserInputError(f"unknown video format {fmt!r}; choose one of {', '.join(FORMATS)}")
    size = parse_frame_size(frame_size)
    settings = VideoSettings(
        fps=float(fps),
        frame_size=size,
        seconds=None if seconds is None else float(seconds),
        micro=micro,
        blinks=blinks,
        amplitude=float(amplitude),
        distractors=distractors,
        noise_sigma=noise_sigma,
    )
    face_photos = load_face_photos(photos)
    specs = plan_clips(face_photos, settings, seed, n_clips)
    out = check_output(out, overwrite)
    clips, containers = [], []
    for spec in specs:
        renderer = VideoRenderer(spec)
        written, container, fourcc = write_clip(renderer, out, fmt)
        containers.append((container, fourcc))
        truth = renderer.truth()
        truth["video"] = written
        (out / f"{spec.name}.json").write_bytes(json_bytes(truth))
        clips.append(
            {
                "clip": spec.name,
                "video": written,
                "truth": f"{spec.name}.json",
                "frame_count": spec.n_frames,
                "photo": spec.photo,
                "counts": truth["counts"],
            }
        )
    container, fourcc = containers[0]
    note = ""
    if fmt == "mp4" and container != "mp4":
        note = "this OpenCV build cannot write mp4v .mp4; the clips are Motion JPEG .avi"
    recorded = {
        "seed": int(seed),
        "clips": int(n_clips),
        "fps": settings.fps,
        "size": list(size),
        "seconds": settings.seconds,
        "micro_per_clip": settings.micro,
        "blinks_per_clip": settings.blinks if distractors else 0,
        "amplitude": settings.amplitude,
        "distractors": distractors,
        "noise_sigma": noise_sigma,
        "format": fmt,
        "photos": [p.path.name for p in face_photos],
    }
    return write_index(out, clips, container, fourcc, note, recorded, "python -m training synth videos")


def write_index(
    out: Path, clips: list, container: str, fourcc: str | None, note: str, recorded: dict, generator: str
) -> VideoIndex:
    """The set's index file (``videos.json``: the command that made it, the container, the settings and each
    clip's entry), shared by the lab and the realistic sets; returns the :class:`VideoIndex`."""
    index = VideoIndex(out, tuple(clips), container, fourcc, note, recorded)
    data = {
        "generator": generator,
        "container": container,
        "fourcc": fourcc,
        "note": note,
        "settings": recorded,
        "clips": clips,
    }
    index.path.write_bytes(json_bytes(data))
    return index


def read_video(path: Path | str) -> Iterator[np.ndarray]:
    """The frames of a written clip (a video file or a folder of ``img<N>.jpg``), in order."""
    path = Path(path)
    if path.is_dir():
        numbers = sorted(int(p.stem[3:]) for p in path.glob("img*.jpg") if p.stem[3:].isdigit())
        for number in numbers:
            image = cv2.imread(str(path / f"img{number}.jpg"), cv2.IMREAD_COLOR)
            if image is None:
                raise UserInputError(f"cannot read frame {path / f'img{number}.jpg'}")
            yield image
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UserInputError(f"cannot open video {path}")
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield image
    finally:
        capture.release()


__all__ = [
    "FORMATS",
    "INDEX_NAME",
    "EventField",
    "HeadDrift",
    "LightingDrift",
    "VideoClipSpec",
    "VideoEvent",
    "VideoIndex",
    "VideoRenderer",
    "VideoSettings",
    "check_output",
    "event_field",
    "json_bytes",
    "plan_clip",
    "plan_clips",
    "read_video",
    "write_clip",
    "write_videos",
]
