"""Scripted clips: a real face photo with small landmark-localised warps whose timing is written by hand.

Where :mod:`training.synth.videos` draws whole data sets of random clips, this module makes the one clip a
test or a benchmark describes exactly. One clip is a :class:`ClipSpec`: a face photo placed in a frame, the
motions it makes (micro expressions of known onset/apex/offset, and the distractors a spotter must reject:
blinks and macro expressions) and the nuisances of a real recording (slow head drift, a lighting ramp,
sensor noise). Everything is deterministic for a given spec.

Every motion is a smooth displacement field localised at the photo's own dlib landmarks (mouth corners,
brows, eyes); its amplitude follows a raised-cosine rise from the onset to the apex and a fall to the offset,
so the ground truth is exact. All motion fields are linear in their amplitude, so a frame costs one
``cv2.remap`` of the still frame (plus one ``warpAffine`` while the head drifts).

Used by the realtime tests and by the stream, batch and spotting benchmarks. The photos are found by
:func:`training.synth.photos.photo_path`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker
from training.synth.photos import photo_path

MICRO_ACTIONS = ("smile", "brow_raise", "brow_lower", "lip_corner_depressor", "chin_raise")


@functools.cache
def _photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, its 68 landmarks). The astronaut's face is small (87 px), so its photo is upscaled 2×."""
    path = photo_path(name)
    if path is None:
        raise UserInputError(f"the face photo {name!r} is not installed (see training/synth/photos.py)")
    image = cv2.imread(str(path))
    if name == "astronaut":
        image = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    landmarker = FaceLandmarker(detect_width=10_000)
    box = landmarker.detect(image)[0]
    return image, landmarker.landmarks(image, box)


@dataclass(frozen=True)
class Motion:
    """One facial movement. ``pixels`` is the largest displacement at the apex, in frame pixels; a macro
    expression holds its apex for ``hold_ms``. Blinks squash the eyes (``pixels`` is then unused)."""

    action: str
    onset_ms: float
    apex_ms: float
    offset_ms: float
    pixels: float = 2.0
    hold_ms: float = 0.0
    kind: str = "micro"  # "micro" | "macro" | "blink"

    def amplitude(self, t_ms: float) -> float:
        """0 → 1 → 0: raised-cosine rise to the apex (held ``hold_ms``), raised-cosine fall to the offset."""
        apex_end = self.apex_ms + self.hold_ms
        if t_ms <= self.onset_ms or t_ms >= self.offset_ms:
            return 0.0
        if t_ms <= self.apex_ms:
            return 0.5 - 0.5 * math.cos(math.pi * (t_ms - self.onset_ms) / max(self.apex_ms - self.onset_ms, 1e-9))
        if t_ms <= apex_end:
            return 1.0
        return 0.5 + 0.5 * math.cos(math.pi * (t_ms - apex_end) / max(self.offset_ms - apex_end, 1e-9))


@dataclass(frozen=True)
class TrueEvent:
    """A ground-truth interval in frames (0-based) and milliseconds."""

    kind: str
    action: str
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_ms: float
    apex_ms: float
    offset_ms: float


@dataclass(frozen=True)
class ClipSpec:
    """What a clip shows. ``size`` is (width, height); ``face_width_px`` the face box width in the frame;
    ``drift_px``/``drift_deg`` the amplitudes of a slow sinusoidal head translation/rotation of period
    ``drift_period_ms``; ``light_ramp`` the total brightness change (grey levels, linear over the clip);
    ``noise_sigma`` the sensor noise (grey levels). ``second_photo`` puts a second face on the right."""

    fps: float = 30.0
    duration_ms: float = 3000.0
    size: tuple[int, int] = (320, 240)
    photo: str = "grace_hopper"
    face_width_px: float = 120.0
    motions: tuple[Motion, ...] = ()
    drift_px: float = 0.0
    drift_deg: float = 0.0
    drift_period_ms: float = 5000.0
    light_ramp: float = 0.0
    noise_sigma: float = 1.5
    seed: int = 0
    second_photo: str | None = None
    second_motions: tuple[Motion, ...] = field(default=())

    @property
    def n_frames(self) -> int:
        return round(self.duration_ms * self.fps / 1000.0)

    def frame_of(self, t_ms: float) -> int:
        return min(round(t_ms * self.fps / 1000.0), self.n_frames - 1)

    def truth(self, kinds: tuple[str, ...] = ("micro",), second: bool = False) -> list[TrueEvent]:
        """The ground truth of one face (the first, or the second with ``second``), onset order."""
        motions = self.second_motions if second else self.motions
        return [
            TrueEvent(
                m.kind,
                m.action,
                self.frame_of(m.onset_ms),
                self.frame_of(m.apex_ms),
                self.frame_of(m.offset_ms),
                m.onset_ms,
                m.apex_ms,
                m.offset_ms,
            )
            for m in sorted(motions, key=lambda m: m.onset_ms)
            if m.kind in kinds
        ]


def micro(action: str, onset_ms: float, duration_ms: float = 300.0, pixels: float = 2.0, apex_at: float = 0.45):
    """A micro expression: onset, apex at ``apex_at`` of the duration, offset."""
    return Motion(action, onset_ms, onset_ms + apex_at * duration_ms, onset_ms + duration_ms, pixels, 0.0, "micro")


def macro(action: str, onset_ms: float, duration_ms: float = 1500.0, pixels: float = 7.0):
    """A macro expression: larger, a quarter rise, a held apex, a slower fall."""
    rise, hold = 0.25 * duration_ms, 0.35 * duration_ms
    return Motion(action, onset_ms, onset_ms + rise, onset_ms + duration_ms, pixels, hold, "macro")


def blink(onset_ms: float, duration_ms: float = 200.0):
    """A blink: both eyes squash shut and reopen (a little faster to close than to open)."""
    return Motion("blink", onset_ms, onset_ms + 0.4 * duration_ms, onset_ms + duration_ms, 0.0, 0.0, "blink")


def _gaussian_field(xs, ys, centres, shifts, sigma) -> np.ndarray:
    """Sum of Gaussian blobs of displacement (H×W×2): each centre moves by its shift at amplitude 1."""
    out = np.zeros((*xs.shape, 2), np.float32)
    for (cx, cy), (dx, dy) in zip(centres, shifts, strict=True):
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2.0 * sigma**2)).astype(np.float32)
        out[..., 0] += dx * g
        out[..., 1] += dy * g
    return out


def _unit_field(action: str, points: np.ndarray, xs, ys, pixels: float) -> np.ndarray:
    """The displacement field (content moves by it) of ``action`` at amplitude 1, in frame pixels."""
    face_w = float(points[:, 0].max() - points[:, 0].min())
    if action == "blink":
        out = np.zeros((*xs.shape, 2), np.float32)
        for eye in (points[36:42], points[42:48]):
            cx, cy = eye.mean(axis=0)
            w = float(eye[:, 0].max() - eye[:, 0].min())
            g = np.exp(-((xs - cx) ** 2) / (2 * (0.5 * w) ** 2) - (ys - cy) ** 2 / (2 * (0.3 * w) ** 2))
            out[..., 1] += (-(ys - cy) * 1.5 * g).astype(np.float32)  # sampling from farther out squashes
        return -out  # the caller subtracts the field from the sampling grid
    if action == "smile":
        centres, shifts, sigma = points[[48, 54]], [(-1.0, -0.6), (1.0, -0.6)], 0.09 * face_w
    elif action == "lip_corner_depressor":
        centres, shifts, sigma = points[[48, 54]], [(-0.2, 1.0), (0.2, 1.0)], 0.09 * face_w
    elif action == "brow_raise":
        centres, shifts, sigma = points[[18, 20, 23, 25]], [(0.0, -1.0)] * 4, 0.07 * face_w
    elif action == "brow_lower":
        centres, shifts, sigma = (
            points[[20, 21, 22, 23]],
            [(0.3, 1.0), (0.5, 1.0), (-0.5, 1.0), (-0.3, 1.0)],
            (0.07 * face_w),
        )
    elif action == "chin_raise":
        centres, shifts, sigma = points[[57, 8]], [(0.0, -1.0), (0.0, -0.6)], 0.09 * face_w
    else:
        raise ValueError(f"unknown action {action!r}")
    shifts = np.asarray(shifts, np.float32)
    shifts /= np.abs(shifts).max()
    return _gaussian_field(xs, ys, np.asarray(centres, np.float32), shifts * pixels, sigma)


@dataclass(frozen=True)
class _Layer:
    motions: tuple[Motion, ...]
    fields: tuple[np.ndarray, ...]


def _place(spec: ClipSpec) -> tuple[np.ndarray, list[_Layer], list[np.ndarray]]:
    """The still frame (faces placed), the motion layers and the faces' landmarks in frame pixels."""
    width, height = spec.size
    photos = [(spec.photo, spec.motions)]
    if spec.second_photo is not None:
        photos.append((spec.second_photo, spec.second_motions))
    still = np.zeros((height, width, 3), np.uint8)
    layers, all_points = [], []
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for i, (name, motions) in enumerate(photos):
        image, points = _photo(name)
        face_w = float(points[:, 0].max() - points[:, 0].min())
        scale = spec.face_width_px / face_w
        centre = points.mean(axis=0)
        target_x = width * ((i + 1) / (len(photos) + 1) if len(photos) > 1 else 0.5)
        matrix = np.array(
            [[scale, 0.0, target_x - scale * centre[0]], [0.0, scale, 0.52 * height - scale * centre[1]]], np.float32
        )
        placed = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        if len(photos) > 1:  # each face keeps its own half of the frame
            lo, hi = round(width * i / len(photos)), round(width * (i + 1) / len(photos))
            still[:, lo:hi] = placed[:, lo:hi]
        else:
            still = placed
        frame_points = points @ matrix[:, :2].T + matrix[:, 2]
        all_points.append(frame_points)
        fields = tuple(_unit_field(m.action, frame_points, xs, ys, m.pixels) for m in motions)
        layers.append(_Layer(tuple(motions), fields))
    return still, layers, all_points


def landmarks_in_frame(spec: ClipSpec) -> list[np.ndarray]:
    """The faces' 68 landmarks at rest, in frame pixels (tests use them to check tracking)."""
    return _place(spec)[2]


def frames(spec: ClipSpec) -> Iterator[np.ndarray]:
    """The clip's BGR frames, one at a time (a 200 fps clip never sits in memory whole)."""
    still, layers, _ = _place(spec)
    height, width = still.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cv2.setRNGSeed(spec.seed)
    noise = np.empty(still.shape, np.int16)
    for index in range(spec.n_frames):
        t_ms = index * 1000.0 / spec.fps
        map_x, map_y, moved = xs, ys, False
        for layer in layers:
            for motion, unit in zip(layer.motions, layer.fields, strict=True):
                amount = motion.amplitude(t_ms)
                if amount > 0.0:
                    if not moved:
                        map_x, map_y, moved = xs.copy(), ys.copy(), True
                    map_x -= amount * unit[..., 0]
                    map_y -= amount * unit[..., 1]
        frame = cv2.remap(still, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) if moved else still
        if spec.drift_px or spec.drift_deg:
            phase = 2.0 * math.pi * t_ms / spec.drift_period_ms
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), spec.drift_deg * math.sin(0.7 * phase), 1.0)
            matrix[0, 2] += spec.drift_px * math.sin(phase)
            matrix[1, 2] += 0.5 * spec.drift_px * math.sin(1.3 * phase)
            frame = cv2.warpAffine(
                frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        out = frame.astype(np.int16)
        if spec.light_ramp:
            out += np.int16(round(spec.light_ramp * t_ms / max(spec.duration_ms, 1.0)))
        if spec.noise_sigma > 0:
            cv2.randn(noise, 0.0, spec.noise_sigma)
            out += noise
        yield np.clip(out, 0, 255).astype(np.uint8)


def write(spec: ClipSpec, path: Path | str, fourcc: str | None = None) -> Path:
    """Write the clip as a video (lossless FFV1 in .avi/.mkv unless ``fourcc`` says otherwise) or, for a
    path without a suffix, as a folder of ``img<N>.png`` frames numbered from 1 (CASME II style)."""
    path = Path(path)
    if not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames(spec)):
            cv2.imwrite(str(path / f"img{index + 1}.png"), frame)
        return path
    code = fourcc or ("mp4v" if path.suffix == ".mp4" else "FFV1")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), spec.fps, spec.size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with {code}")
    for frame in frames(spec):
        writer.write(frame)
    writer.release()
    return path


def with_distractors(spec: ClipSpec, rng: np.random.Generator) -> ClipSpec:
    """The same clip with head drift, a lighting ramp and a little more noise (blinks and macro
    expressions are motions: add them in ``motions``)."""
    return replace(
        spec,
        drift_px=float(rng.uniform(2.0, 5.0)),
        drift_deg=float(rng.uniform(0.5, 1.5)),
        drift_period_ms=float(rng.uniform(4000.0, 8000.0)),
        light_ramp=float(rng.uniform(-25.0, 25.0)),
        noise_sigma=float(rng.uniform(1.5, 2.5)),
    )


def random_clip(
    rng: np.random.Generator,
    fps: float,
    photo: str = "grace_hopper",
    size: tuple[int, int] = (640, 480),
    face_width_px: float = 180.0,
    distractors: bool = True,
) -> ClipSpec:
    """A benchmark clip: 3 micro expressions (1–3 px, 120–450 ms, random actions) and, with ``distractors``,
    two blinks, one macro expression, head drift, a lighting ramp and noise, in random order with quiet
    gaps of 0.6–1.0 s between them (the clip's length follows)."""
    kinds = ["micro"] * 3 + (["blink", "blink", "macro"] if distractors else [])
    rng.shuffle(kinds)
    motions: list[Motion] = []
    t_ms = float(rng.uniform(1200.0, 1500.0))
    for kind in kinds:
        if kind == "micro":
            duration = float(rng.uniform(120.0, 450.0))
            motions.append(
                micro(
                    str(rng.choice(MICRO_ACTIONS)),
                    t_ms,
                    duration,
                    float(rng.uniform(1.0, 3.0)),
                    float(rng.uniform(0.3, 0.6)),
                )
            )
        elif kind == "blink":
            duration = float(rng.uniform(150.0, 250.0))
            motions.append(blink(t_ms, duration))
        else:
            duration = float(rng.uniform(800.0, 1400.0))
            motions.append(
                macro(
                    str(rng.choice(["smile", "brow_raise", "brow_lower"])), t_ms, duration, float(rng.uniform(6.0, 9.0))
                )
            )
        t_ms += duration + float(rng.uniform(600.0, 1000.0))
    spec = ClipSpec(
        fps=fps, duration_ms=t_ms + 300.0, size=size, photo=photo, face_width_px=face_width_px, motions=tuple(motions)
    )
    if distractors:
        spec = with_distractors(spec, rng)
    return replace(spec, seed=int(rng.integers(0, 2**31 - 1)))


# -- faces that move across the frame: tracking tests (small faces, losses, crossings) ----------------------


@dataclass(frozen=True)
class Walker:
    """A face photo moving in a straight line from ``start`` to ``end`` (its centre, frame pixels) over the
    clip, ``face_width_px`` wide, tilted in-plane by ``tilt_deg``; it is not drawn between ``hidden_ms``
    (start, end). Later walkers pass in front of earlier ones."""

    photo: str
    start: tuple[float, float]
    end: tuple[float, float]
    face_width_px: float
    tilt_deg: float = 0.0
    hidden_ms: tuple[float, float] | None = None

    def centre(self, t: float) -> tuple[float, float]:
        """The face's centre at the fraction ``t`` (0-1) of the clip."""
        return (
            self.start[0] + t * (self.end[0] - self.start[0]),
            self.start[1] + t * (self.end[1] - self.start[1]),
        )


def walking_faces(
    walkers: tuple[Walker, ...],
    size: tuple[int, int],
    n_frames: int,
    fps: float = 30.0,
    noise_sigma: float = 1.5,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, list[tuple[float, float] | None]]]:
    """Frames (BGR) of the walkers over a grey gradient, each with the walkers' centres (None while hidden).
    Each face is cut from its photo with a soft ellipse around its landmarks (forehead included)."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = np.tile(np.linspace(90, 150, width, dtype=np.float32), (height, 1))
    background = cv2.merge([background, background * 0.95, background * 0.9])
    sprites = []
    for walker in walkers:
        image, points = _photo(walker.photo)
        face_w = float(points[:, 0].max() - points[:, 0].min())
        centre = points.mean(axis=0)
        mask = np.zeros(image.shape[:2], np.float32)
        axes = (round(0.75 * face_w), round(0.95 * face_w))
        cv2.ellipse(mask, (round(centre[0]), round(centre[1] - 0.1 * face_w)), axes, 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.05 * face_w)
        sprites.append((image.astype(np.float32), mask, centre, walker.face_width_px / face_w))
    for index in range(n_frames):
        t = index / max(n_frames - 1, 1)
        t_ms = index * 1000.0 / fps
        frame = background.copy()
        centres: list[tuple[float, float] | None] = []
        for walker, (image, mask, centre, scale) in zip(walkers, sprites, strict=True):
            if walker.hidden_ms is not None and walker.hidden_ms[0] <= t_ms < walker.hidden_ms[1]:
                centres.append(None)
                continue
            x, y = walker.centre(t)
            matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), walker.tilt_deg, scale)
            matrix[:, 2] += (x - centre[0], y - centre[1])
            face = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA)
            alpha = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1.0 - alpha) + face * alpha
            centres.append((x, y))
        frame += rng.normal(0.0, noise_sigma, frame.shape)
        yield np.clip(frame, 0, 255).astype(np.uint8), centres
