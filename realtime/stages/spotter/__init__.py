"""Streaming micro-expression spotting, per face, over a sliding buffer of aligned faces.

This package is the spotter stage. This module holds what every spotter shares (the options, the per-frame
:class:`SpotSignal`, the :class:`SpottedEvent`, the :class:`Spotter` that keeps one spotter per face) and the
rule spotter described below (``SpotterOptions.method == "rules"``: best on a still face); ``learned.py`` the
learned spotter (``method == "learned"``, the default: per-cell motion and a trained decision, the one that
survives talking, head turns and ordinary expressions) and ``model.py`` its model file.

The rule spotter:

A micro-expression moves the face by 1–3 px for 1/25–1/2 s. Landmark jitter and head motion are as large,
so the spotter spends most of its effort on making the face hold still before it measures anything:

1. Stable alignment. Each face keeps a landmark template (its first frames). On every frame the template
   is fitted to the rigid landmarks (eye corners, nose bridge, jaw ends: points that expressions barely
   move) with a similarity transform, and the transform is smoothed over time (``smoothing_ms``). The
   shared :func:`realtime.core.align.align_face` then crops the *fitted template*, so the crop follows the head
   but never the expression, and landmark noise enters only through four smoothed numbers.
2. Photometric normalisation. The grey crop is blurred a little (sensor noise) and scaled to zero mean and
   unit spread over the face, so a lighting ramp or a camera's gain change does not register.
3. Residual global motion. Phase correlation against the reference face measures what translation the
   landmarks missed (sub-pixel) and the crop is shifted back before any difference is taken.
4. Feature difference. The crop is compared with a *reference face*: a running average of the face, fed
   with a delay (``reference_delay_ms``) so that the start of an expression is not yet in it, and frozen
   while an event is under way. This is the causal cousin of Moilanen et al.'s (ICPR 2014) comparison of
   frame t with the average of frames t−k and t+k: it needs no future frames, so an event is reported on
   the frame its offset is seen. Absolute differences are averaged in landmark-defined regions (brows,
   eyes, nose, mouth corners, upper/lower lip, chin); each region is turned into a robust z-score against
   its own recent noise (median and MAD while nothing happens), and the signal is the largest of them.
5. Events. The signal must cross an adaptive threshold (median + ``on_mad``·MAD of the signal's own idle
   history, and at least ``min_on_z``); the event's onset and offset are where it falls below a fraction of
   its peak (``edge_fraction``), the apex is the peak (a parabola through the smoothed top, to a frame).
   The interval runs from the last still frame before the rise to the first still frame after the fall (the
   data sets' convention: a two-frame micro-expression at 30 fps is onset, apex, offset). An event is a
   micro-expression when it lasts ``min_ms``–``max_ms`` (1/25–1/2 s, give or take one frame period, so the
   rule holds at any frame rate) and is not a blink, a macro expression (too long, or moving more than
   ``macro_movement`` of the face width), or a global change (most regions at once: head motion or lighting
   the steps above missed). A blink moves both eyes most, by a lid's worth (``blink_movement``), with
   nothing but the brows of comparable size; the skin between lid and brow moves with the lid, so the brows
   may follow, but a brow that moves more than the eye below it (``blink_brow_share``) makes it a brow
   action. (The landmarks' eye aspect ratio was tried as a blink cue and left out: with the 68-point model
   it jitters by 5–10 % per frame and dips as much in a brow lowerer as in a half-closed blink.)
6. Settling. After an event the reference follows the face quickly (``settle_ms``) until the signal has
   stayed below the threshold for ``settle_hold_ms``: the head drifted while the reference was frozen, and
   a frozen reference would turn that drift into a plateau that swallows the next micro-expression.

Rejected events are reported too, with their reason, so callers can show or log them; only
``kind == "micro"`` events are micro-expressions.

Everything is in milliseconds, so the same settings work at 30, 60 and 200 fps. Per face and frame the
work is one 128 px warp, a blur, a phase correlation and a matrix product: about 0.5 ms on one core.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from realtime.core.align import AlignmentSettings, alignment_matrix
from realtime.core.errors import OptionError

SPOTTER_METHODS = ("rules", "learned")
DEFAULT_SPOTTER = "learned"  # the one that survives real-world motion (weights/SPOTTER.md); rules: a still face
RIGID_LANDMARKS = (0, 16, 27, 28, 29, 30, 36, 39, 42, 45)  # jaw ends, nose bridge, eye corners
# name → landmark indices; a region is the box around its points, padded (fraction of the crop side)
REGIONS: dict[str, tuple[int, ...]] = {
    "brow_left": (17, 18, 19, 20, 21),
    "brow_right": (22, 23, 24, 25, 26),
    "eye_left": (36, 37, 38, 39, 40, 41),
    "eye_right": (42, 43, 44, 45, 46, 47),
    "nose": (31, 32, 33, 34, 35),
    "mouth_left": (48,),
    "mouth_right": (54,),
    "upper_lip": (50, 51, 52),
    "lower_lip": (56, 57, 58),
    "chin": (7, 8, 9),
}
EYE_REGIONS = ("eye_left", "eye_right")
BROW_REGIONS = ("brow_left", "brow_right")
_PAD = {"brow_left": 0.05, "brow_right": 0.05, "eye_left": 0.04, "eye_right": 0.04, "nose": 0.03}
_DEFAULT_PAD = 0.06
_DAMPING = 1e-6 * np.eye(4)  # keeps the registration's 4×4 normal equations solvable

MIN_DIRECTION_PX = 0.1  # crop pixels (of crop_px): a region's mean flow below this has no direction
MOVED_FRACTION = 0.25  # a region moved in an event when its peak excess reaches this fraction of the largest


@dataclass(frozen=True)
class RegionMotion:
    """One region that moved in an event: ``region`` (a :data:`REGIONS` name), ``share`` (its fraction of the
    event's movement; the shares of an event sum to at most 1) and ``direction`` (``"up"``, ``"down"``,
    ``"left"``, ``"right"``, ``"inward"``, ``"outward"`` or ``""`` when unknown: image directions on the
    aligned face, inward/outward relative to the face's midline for paired regions such as mouth corners)."""

    region: str
    share: float
    direction: str = ""


def region_direction(region: str, dx: float, dy: float) -> str:
    """The direction (:class:`RegionMotion`) of a region's movement (dx, dy) on the aligned face: up or down when
    mostly vertical; else inward or outward for one side of a pair (``*_left`` is the image-left half), left or
    right for the others."""
    if abs(dy) >= abs(dx):
        return "down" if dy > 0 else "up"
    if region.endswith(("_left", "_right")):
        side = -1.0 if region.endswith("_left") else 1.0
        return "outward" if dx * side > 0 else "inward"
    return "right" if dx > 0 else "left"


def median_of(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """The median (of all values, or along ``axis``): the values ``np.median`` gives, without its overhead.
    It selects the middle element(s) with one ``np.partition``; the spotters take several medians of small
    arrays on every frame, where ``np.median``'s own bookkeeping cost more than the selection."""
    if axis is None:
        values, axis = values.ravel(), 0
    n = values.shape[axis]
    half = n // 2
    if n % 2:
        return np.take(np.partition(values, half, axis=axis), half, axis=axis)
    middle = np.partition(values, (half - 1, half), axis=axis)
    return (np.take(middle, half - 1, axis=axis) + np.take(middle, half, axis=axis)) / 2


@dataclass(frozen=True)
class SpotterOptions:
    """Settings of the streaming spotter. Times are milliseconds; thresholds are robust z-scores.

    ``crop_px`` the side of the aligned grey crop it works on; ``blur_px`` the Gaussian blur on it;
    ``smoothing_ms`` the time constant of the alignment's temporal smoothing; ``reference_ms`` the time
    constant of the reference face's running average and ``reference_delay_ms`` how old a frame is when it
    joins it; ``noise_ms`` the span of idle history the noise statistics come from (events can start once
    ``min_noise_ms`` and ``min_noise_samples`` of it exist); ``warmup_ms`` how long a new face is watched
    before its noise is measured; ``on_mad`` and ``min_on_z`` the start threshold;
    ``edge_fraction`` where onset and offset are placed (fraction of the peak); ``end_hold_ms`` how long
    the signal must stay low for the event to end; ``min_ms``/``max_ms`` the micro-expression durations;
    ``blink_share`` the largest share of the eyes' peak any region but the brows may reach in a blink (both
    eyes must move);
    ``global_fraction`` the share of regions moving together that makes a change global; ``macro_movement``
    the movement (fraction of the face width, estimated from intensity change over texture gradient, which
    reads about half the true displacement) above which a short movement is too large to be micro (0: off);
    ``give_up_ms`` how long an event may last before the reference is re-seeded (the face has settled into
    a new rest state); ``settle_ms`` the time constant the reference follows the face with after an event,
    until the signal has stayed below the threshold for ``settle_hold_ms``; ``blink_brow_share`` how much a
    brow may move relative to the eye below it in a blink; ``blink_movement`` the least movement of both eyes
    (fraction of the face width, same estimate as ``macro_movement``) for a blink (smaller: a lid tightener).

    ``method`` chooses the decision: ``"rules"`` (this module: a rise of the difference from a delayed
    reference face above an adaptive threshold, then rules for blinks, macro and global changes) or
    ``"learned"`` (:mod:`realtime.stages.spotter.learned`: per-cell motion, rise-and-fall contrast and a small
    model trained on generated clips, read from ``model``, by default ``weights/spotter.npz``). The learned
    spotter's own settings: ``grid`` (cells per side of the aligned face), ``level_ms`` (the span each cell's
    usual contrast is measured over), ``gap_ms`` (how long the probability must stay below the threshold for
    an event to end), ``peak_hold_ms`` (an event is decided once its most probable candidate is this much
    older than a newer one that is no more probable or has clearly fallen, without waiting for the run to
    end: the live latency; ``inf`` waits for the end) and ``return_ratio`` (how far the face may stay moved,
    against how far the apex stood out, for a micro-expression: :func:`realtime.stages.spotter.learned.comes_back`).
    """

    crop_px: int = 128
    blur_px: float = 1.2
    smoothing_ms: float = 300.0
    registration_steps: int = 2
    jacobian_ms: float = 100.0
    reference_ms: float = 250.0
    reference_delay_ms: float = 200.0
    noise_ms: float = 3000.0
    min_noise_ms: float = 500.0
    min_noise_samples: int = 15
    warmup_ms: float = 400.0
    on_mad: float = 8.0
    min_on_z: float = 5.0
    edge_fraction: float = 0.2
    end_hold_ms: float = 15.0
    min_ms: float = 40.0
    max_ms: float = 500.0
    blink_share: float = 0.5
    blink_brow_share: float = 1.1
    blink_movement: float = 0.007
    global_fraction: float = 0.8
    macro_movement: float = 0.025
    give_up_ms: float = 2500.0
    settle_ms: float = 60.0
    settle_hold_ms: float = 150.0
    method: str = DEFAULT_SPOTTER
    model: str | None = None
    grid: int = 8
    level_ms: float = 2000.0
    gap_ms: float = 40.0
    peak_hold_ms: float = 33.0
    return_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in SPOTTER_METHODS:
            raise OptionError("method", f"must be one of {', '.join(SPOTTER_METHODS)}, got {self.method!r}")
        if not 4 <= self.grid <= 32 or self.crop_px // self.grid < 4:
            raise OptionError("grid", f"must be 4-32 and leave cells of at least 4 px, got {self.grid}")
        if not self.gap_ms >= 0.0:
            raise OptionError("gap_ms", f"must be 0 or more, got {self.gap_ms}")
        if not self.peak_hold_ms >= 0.0:
            raise OptionError("peak_hold_ms", f"must be 0 or more, got {self.peak_hold_ms}")
        if not self.return_ratio > 0.0:
            raise OptionError("return_ratio", f"must be positive, got {self.return_ratio}")

    @property
    def alignment(self) -> AlignmentSettings:
        return AlignmentSettings(output_size=self.crop_px)


@dataclass(frozen=True)
class SpottedEvent:
    """A rise and fall of the spotting signal, micro-expression or not.

    Frame indices are 0-based over every frame given to the spotter; ``score`` is the peak signal (robust
    z); ``kind`` is ``"micro"`` for a micro-expression, otherwise why it was rejected: ``"blink"``,
    ``"macro"``, ``"global"`` or ``"short"``. ``regions`` holds each region's peak z-score;
    ``decided_frame``/``decided_ms`` when the spotter saw the offset and reported it.
    """

    face_id: int
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_ms: float
    apex_ms: float
    offset_ms: float
    score: float
    kind: str
    regions: dict[str, float] = field(default_factory=dict)
    activity: dict[str, float] = field(default_factory=dict)
    movement: float = 0.0
    decided_frame: int = -1
    decided_ms: float = 0.0
    moved: tuple[RegionMotion, ...] = ()

    @property
    def duration_ms(self) -> float:
        return self.offset_ms - self.onset_ms


@dataclass(frozen=True)
class SpotSignal:
    """The spotter's result for one face on one frame.

    ``signal`` is the spotting signal (robust z, 0 while warming up) and ``threshold`` the level it must
    cross; ``in_event`` is True while a rise is under way; ``apex_candidate`` marks frames that may become
    an apex (the signal is near the event's running peak: keep their classifier crops); ``events`` are the
    events that ended on this frame (accepted and rejected); ``apex_frame`` is the apex of the event under
    way once the signal has fallen past its peak (below 0.8 of it; -1 before): the apex is then settled unless a second
    rise comes, so callers can classify it before the offset is seen.
    """

    face_id: int
    frame_index: int
    t_ms: float
    signal: float
    threshold: float
    in_event: bool
    apex_candidate: bool
    events: tuple[SpottedEvent, ...] = ()
    apex_frame: int = -1
    region_motion: dict[str, float] = field(default_factory=dict)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping ``source`` points onto ``target``: 2×3 matrix."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    a = float((s * t).sum())
    b = float((s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum())
    norm = float((s**2).sum()) or 1.0
    ca, sa = a / norm, b / norm  # scale·cos, scale·sin
    rot = np.array([[ca, -sa], [sa, ca]])
    return np.hstack([rot, (mu_t - rot @ mu_s)[:, None]])


def _region_matrix(crop_landmarks: np.ndarray, size: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each region as a row of normalised weights over the crop's pixels (R × size²)."""
    rows, names = [], []
    for name, indices in REGIONS.items():
        pts = crop_landmarks[list(indices)]
        pad = _PAD.get(name, _DEFAULT_PAD) * size
        x0, y0 = np.floor(pts.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0) + pad).astype(int)
        if name.startswith("brow"):
            # brows: mostly above the brow line, and no lower than halfway down to the eye, so that the skin
            # a blink drags along with the upper lid stays out of them
            y0 -= round(0.04 * size)
            eye = crop_landmarks[36:42] if name == "brow_left" else crop_landmarks[42:48]
            halfway = 0.5 * (float(pts[:, 1].max()) + float(eye[:, 1].min()))
            y1 = min(y1, int(np.floor(halfway)))
        mask = np.zeros((size, size), np.float32)
        mask[max(y0, 0) : min(y1, size), max(x0, 0) : min(x1, size)] = 1.0
        if mask.sum() == 0:
            mask[size // 2, size // 2] = 1.0
        rows.append(mask.ravel() / mask.sum())
        names.append(name)
    return np.stack(rows), tuple(names)


def _face_mask(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """The face's convex hull in the crop (normalisation statistics come from inside it only)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(crop_landmarks).astype(np.int32)), 1)
    return mask.astype(bool)


@dataclass
class _Sample:
    frame_index: int
    t_ms: float
    signal: float
    z: np.ndarray
    excess: np.ndarray
    magnitude: float
    moves: np.ndarray


class FaceSpotter:
    """The spotter of one face: ``update(frame_index, t_ms, gray, landmarks) → SpotSignal``, in time order."""

    def __init__(self, face_id: int, options: SpotterOptions | None = None) -> None:
        self.face_id = face_id
        self.options = options or SpotterOptions()
        self._settings = self.options.alignment
        self._template: np.ndarray | None = None
        self._correction = np.eye(3)
        self._jacobian: np.ndarray | None = None
        self._mask_flat: np.ndarray | None = None
        self._region_gradient: np.ndarray = np.ones(len(REGIONS))
        self._last_matrix = np.eye(3)
        self._face_width_px = 1.0
        self._warm_count = 1
        self._cooling_since: float | None = None
        self._settled_since: float | None = None
        self._last_offset_frame = -1
        self._jacobian_ms = -math.inf
        self._xy: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self._fit: np.ndarray | None = None  # smoothed similarity, template → frame
        self._start_ms: float | None = None
        self._last_ms: float | None = None
        self._reference: np.ndarray | None = None
        self._delayed: deque[tuple[float, np.ndarray]] = deque()
        self._regions: np.ndarray | None = None
        self._region_names: tuple[str, ...] = ()
        self._mask: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._idle_e: deque[tuple[float, np.ndarray]] = deque()
        self._idle_s: deque[tuple[float, float]] = deque()
        self._noise_med: np.ndarray | None = None
        self._noise_mad: np.ndarray | None = None
        self._s_med = 0.0
        self._s_mad = 1.0
        self._stats_age = 0
        self._history: deque[_Sample] = deque()
        self._active: list[_Sample] | None = None
        self._below_since: float | None = None
        self._peak = 0.0
        self._peak_face: tuple[float, np.ndarray] | None = None  # issue 13 stand-in: see _moved

    # -- alignment -------------------------------------------------------------------------------------
    def _coarse_matrix(self, landmarks: np.ndarray, dt_ms: float) -> np.ndarray:
        """Frame → crop matrix of the shared alignment applied to the template fitted to the rigid landmarks
        (smoothed over time): follows the head, never the expression."""
        points = np.asarray(landmarks, np.float64)
        if self._template is None:
            self._template = points.copy()
        rigid = list(RIGID_LANDMARKS)
        fit = _similarity(self._template[rigid], points[rigid])
        if self._fit is None:
            self._fit = fit
        else:
            fitted_now = self._template[rigid] @ fit[:, :2].T + fit[:, 2]
            fitted_old = self._template[rigid] @ self._fit[:, :2].T + self._fit[:, 2]
            face_w = float(np.ptp(points[:, 0])) or 1.0
            jump = float(np.abs(fitted_now - fitted_old).max())
            alpha = 1.0 if jump > 0.15 * face_w else 1.0 - math.exp(-dt_ms / max(self.options.smoothing_ms, 1e-6))
            self._fit = self._fit + alpha * (fit - self._fit)
            if alpha == 1.0:
                self._correction = np.eye(3)
        fitted = self._template @ self._fit[:, :2].T + self._fit[:, 2]
        matrix = alignment_matrix(fitted, self._settings)
        if self._regions is None:
            size = self._settings.output_size
            crop_points = fitted @ matrix[:, :2].T + matrix[:, 2]
            self._regions, self._region_names = _region_matrix(crop_points, size)
            self._mask = _face_mask(crop_points, size)
            self._mask_flat = self._mask.ravel()
            self._window = cv2.createHanningWindow((size, size), cv2.CV_32F)
            centre = (size - 1) / 2.0
            ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
            self._xy = (xs - centre, ys - centre)
        return np.vstack([matrix, [0.0, 0.0, 1.0]])

    def _crop(self, gray: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Blurred grey crop, zero mean and unit spread over the face (lighting changes cancel)."""
        size = self._settings.output_size
        crop = cv2.warpAffine(gray, matrix[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crop = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), self.options.blur_px)
        values = crop[self._mask]
        return (crop - float(values.mean())) / (float(values.std()) + 1e-3)

    def _register(self, face: np.ndarray) -> np.ndarray:
        """The similarity (3×3, reference crop → this crop) that best maps the reference onto ``face``, or
        ``None`` when the fit is implausible. Gauss–Newton on translation, scale and rotation with the
        reference's gradients and robust (Cauchy) weights: the face's residual global motion."""
        ref = self._reference
        size = ref.shape[0]
        if self._jacobian is None:
            gx = cv2.Scharr(ref, cv2.CV_32F, 1, 0) / 32.0
            gy = cv2.Scharr(ref, cv2.CV_32F, 0, 1) / 32.0
            x, y = self._xy
            m = self._mask
            self._jacobian = np.stack([gx[m], gy[m], (gx * x + gy * y)[m], (gy * x - gx * y)[m]], axis=1)
            # mean gradient per region: turns a region's intensity change into an approximate displacement
            self._region_gradient = self._regions @ np.hypot(gx, gy).ravel() + 1e-3
        jac = self._jacobian
        params = np.zeros(4)
        centre = (size - 1) / 2.0
        reference = ref[self._mask]
        for _ in range(self.options.registration_steps):
            tx, ty, scale, theta = params
            warp = np.float32(
                [
                    [1 + scale, -theta, tx + centre - (1 + scale) * centre + theta * centre],
                    [theta, 1 + scale, ty + centre - theta * centre - (1 + scale) * centre],
                ]
            )
            moved = cv2.warpAffine(
                face, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
            )
            residual = moved[self._mask] - reference
            # Cauchy weights: pixels that moved on their own (an expression, a blink) barely pull the fit
            spread = 1.4826 * float(median_of(np.abs(residual))) + 1e-4
            weights = 1.0 / (1.0 + (residual / (2.0 * spread)) ** 2)
            weighted = jac * weights[:, None]
            params = params - np.linalg.solve(weighted.T @ jac + _DAMPING, weighted.T @ residual)
        tx, ty, scale, theta = params
        if (
            not np.isfinite(params).all()
            or max(abs(tx), abs(ty)) > 0.05 * size
            or abs(scale) > 0.05
            or abs(theta) > 0.05
        ):
            return None
        return np.array(
            [
                [1 + scale, -theta, tx + centre - (1 + scale) * centre + theta * centre],
                [theta, 1 + scale, ty + centre - theta * centre - (1 + scale) * centre],
                [0.0, 0.0, 1.0],
            ]
        )

    def _stabilised(self, gray: np.ndarray, landmarks: np.ndarray, dt_ms: float) -> np.ndarray:
        """The face crop registered to the reference face, resampled once from the frame."""
        coarse = self._coarse_matrix(landmarks, dt_ms)
        matrix = self._correction @ coarse
        self._last_matrix = matrix
        self._face_width_px = max(float(np.ptp(np.asarray(landmarks)[:, 0])), 1.0)
        face = self._crop(gray, matrix)
        if self._reference is None:
            return face
        to_face = self._register(face)  # reference crop → this crop
        if to_face is None:  # implausible: keep the previous correction
            return face
        matrix = np.linalg.inv(to_face) @ matrix
        correction = matrix @ np.linalg.inv(coarse)
        if (
            np.abs(correction[:2, 2]).max() > 0.08 * self._settings.output_size
            or np.abs(correction[:2, :2] - np.eye(2)).max() > 0.08
        ):
            # the registration wandered too far from the landmarks: start again from them
            self._correction = np.eye(3)
            self._reference, self._jacobian = None, None
            return self._crop(gray, coarse)
        self._correction = correction
        return self._crop(gray, matrix)

    # -- noise statistics ---------------------------------------------------------------------------------
    def _trim(self, queue: deque, now_ms: float, span_ms: float) -> None:
        while queue and now_ms - queue[0][0] > span_ms:
            queue.popleft()

    def _update_stats(self) -> None:
        e = np.stack([v for _, v in self._idle_e])
        med = np.median(e, axis=0)
        self._noise_med = med
        self._noise_mad = 1.4826 * np.median(np.abs(e - med), axis=0) + 1e-4
        if len(self._idle_s) >= 5:
            s = np.fromiter((v for _, v in self._idle_s), float)
            self._s_med = float(np.median(s))
            self._s_mad = 1.4826 * float(np.median(np.abs(s - self._s_med))) + 1e-3

    @property
    def threshold(self) -> float:
        return max(self.options.min_on_z, self._s_med + self.options.on_mad * self._s_mad)

    # -- per frame -------------------------------------------------------------------------------------
    def _advance(self, t_ms: float, gray: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
        """This frame's stabilised face and the milliseconds since the previous frame (1/30 s for the first);
        the clock every spotter of a face keeps."""
        dt = 1000.0 / 30.0 if self._last_ms is None else max(t_ms - self._last_ms, 1e-3)
        self._last_ms = t_ms
        if self._start_ms is None:
            self._start_ms = t_ms
        return self._stabilised(gray, landmarks, dt), dt

    def update(self, frame_index: int, t_ms: float, gray: np.ndarray, landmarks: np.ndarray) -> SpotSignal:
        """Feed one frame of this face (grey frame and its 68 landmarks); frames must come in time order."""
        opts = self.options
        face, dt = self._advance(t_ms, gray, landmarks)
        if self._reference is None:
            self._reference = face.copy()
        diff = np.abs(face - self._reference).ravel()
        e = self._regions @ diff
        scale = math.sqrt(abs(float(np.linalg.det(self._last_matrix[:2, :2])))) or 1.0

        warming = t_ms - self._start_ms < opts.warmup_ms
        ready = self._noise_med is not None and len(self._idle_e) >= 8
        excess = e - self._noise_med if ready else np.zeros_like(e)
        z = excess / self._noise_mad if ready else excess
        signal = float(z.max())
        # approximate movement (frame pixels) of the region that moved most, as a fraction of the face width
        # approximate movement of each region (frame pixels over the face width)
        moves = excess / (self._region_gradient * scale * self._face_width_px) if ready else np.zeros_like(e)
        sample = _Sample(frame_index, t_ms, signal, z, excess, float(moves.max()), moves)
        self._history.append(sample)
        while self._history and t_ms - self._history[0].t_ms > opts.give_up_ms + 1000.0:
            self._history.popleft()

        events: tuple[SpottedEvent, ...] = ()
        threshold = self.threshold
        apex_candidate = False
        apex_frame = -1
        if self._cooling_since is not None:
            # after an event: the reference follows the face quickly (the head may have drifted while it was
            # frozen) until the signal has settled; only then learning and arming resume
            alpha = 1.0 - math.exp(-dt / max(opts.settle_ms, 1e-6))
            self._reference += alpha * (face - self._reference)
            if signal >= threshold:
                self._settled_since = None
            elif self._settled_since is None:
                self._settled_since = t_ms
            if self._settled_since is not None and t_ms - self._settled_since >= opts.settle_hold_ms:
                self._cooling_since = self._settled_since = None
            elif t_ms - self._cooling_since > opts.give_up_ms:
                self._cooling_since = None
                self._reference, self._jacobian = face.copy(), None
        elif self._active is None:
            if warming:
                # warming up: the reference is the plain average of the frames so far
                self._warm_count += 1
                self._reference += (face - self._reference) / self._warm_count
            else:
                # idle: learn the noise, feed the reference with a delay
                self._idle_e.append((t_ms, e))
                self._trim(self._idle_e, t_ms, opts.noise_ms)
                if ready:
                    self._idle_s.append((t_ms, signal))
                    self._trim(self._idle_s, t_ms, opts.noise_ms)
                self._stats_age += 1
                if not ready or self._stats_age >= 3:
                    self._update_stats()
                    self._stats_age = 0
                self._delayed.append((t_ms, face))
                while self._delayed and t_ms - self._delayed[0][0] >= opts.reference_delay_ms:
                    _, old = self._delayed.popleft()
                    alpha = 1.0 - math.exp(-dt / max(opts.reference_ms, 1e-6))
                    self._reference += alpha * (old - self._reference)
                armed = (
                    len(self._idle_s) >= opts.min_noise_samples and t_ms - self._idle_s[0][0] >= opts.min_noise_ms
                ) or t_ms - self._start_ms >= opts.warmup_ms + opts.noise_ms
                if ready and armed and signal > threshold:
                    self._keep_peak_face(face, signal)
                    self._active = [sample]
                    self._peak = signal
                    self._below_since = None
                    apex_candidate = True
            if t_ms - self._jacobian_ms >= opts.jacobian_ms:
                self._jacobian, self._jacobian_ms = None, t_ms
        else:
            self._active.append(sample)
            self._keep_peak_face(face, signal)
            if signal > self._peak:
                self._peak = signal
            apex_candidate = signal >= 0.7 * self._peak
            if signal < 0.8 * self._peak:
                apex_frame = self._apex(self._active).frame_index
            low = max(opts.edge_fraction * self._peak, min(threshold, 0.5 * self._peak))
            if signal < low:
                if self._below_since is None:
                    self._below_since = t_ms
                if t_ms - self._below_since >= opts.end_hold_ms or dt >= opts.end_hold_ms:
                    events = (self._close(frame_index, t_ms),)
            else:
                self._below_since = None
            if self._active is not None and t_ms - self._active[0].t_ms > opts.give_up_ms:
                events = (self._close(frame_index, t_ms, gave_up=True),)
                self._reference, self._jacobian = face.copy(), None
        return SpotSignal(
            self.face_id,
            frame_index,
            t_ms,
            signal,
            threshold,
            self._active is not None,
            apex_candidate,
            events,
            apex_frame if self._active is not None else -1,
            {name: round(float(v), 3) for name, v in zip(self._region_names, z, strict=True)},
        )

    # -- event decisions -------------------------------------------------------------------------------
    def _close(self, frame_index: int, t_ms: float, gave_up: bool = False) -> SpottedEvent:
        opts = self.options
        active = self._active or []
        self._active = None
        self._below_since = None
        self._cooling_since = t_ms
        self._delayed.clear()  # frames of the event never join the reference
        peak = max(s.signal for s in active)
        level = opts.edge_fraction * peak
        # onset: walk back from the start through the history while the signal is above the edge level
        history = list(self._history)
        # the event's first sample, or (when the face was away so long that the history no longer reaches back
        # to it) the oldest sample kept
        start_pos = next((i for i, s in enumerate(history) if s.frame_index >= active[0].frame_index), 0)
        onset_pos = start_pos
        while (
            onset_pos > 0
            and history[onset_pos - 1].signal >= level
            and history[onset_pos - 1].frame_index > self._last_offset_frame
        ):
            onset_pos -= 1
        span = history[onset_pos:]
        span = [s for s in span if s.frame_index <= frame_index]
        # offset: the last frame above the edge level
        offset_pos = len(span) - 1
        while offset_pos > 0 and span[offset_pos].signal < level:
            offset_pos -= 1
        event_samples = span[: offset_pos + 1]
        # the interval runs from the last still frame before the rise to the first still frame after the fall
        # (the convention of the data sets' onset and offset frames): one frame more on each side
        onset = (
            history[onset_pos - 1]
            if onset_pos > 0 and history[onset_pos - 1].frame_index > self._last_offset_frame
            else event_samples[0]
        )
        offset = span[offset_pos + 1] if offset_pos + 1 < len(span) else event_samples[-1]
        self._last_offset_frame = frame_index
        apex = self._apex(event_samples)
        z_peak = np.max(np.stack([s.z for s in event_samples]), axis=0)
        excess_peak = np.max(np.stack([s.excess for s in event_samples]), axis=0)
        regions = {name: round(float(v), 2) for name, v in zip(self._region_names, z_peak, strict=True)}
        activity = {name: round(float(v), 4) for name, v in zip(self._region_names, excess_peak, strict=True)}
        duration = offset.t_ms - onset.t_ms
        magnitude = max(s.magnitude for s in event_samples)
        moves_peak = np.max(np.stack([s.moves for s in event_samples]), axis=0)
        frame_ms = (offset.t_ms - onset.t_ms) / max(offset.frame_index - onset.frame_index, 1)
        kind = event_kind(
            self.options, self._region_names, duration, excess_peak, magnitude, gave_up, frame_ms, moves_peak
        )
        moved = self._moved(excess_peak)
        self._peak_face = None
        return SpottedEvent(
            self.face_id,
            onset.frame_index,
            apex.frame_index,
            offset.frame_index,
            onset.t_ms,
            apex.t_ms,
            offset.t_ms,
            round(peak, 2),
            kind,
            regions,
            activity,
            round(magnitude, 4),
            frame_index,
            t_ms,
            moved,
        )

    # -- the regions that moved (issue 13's stand-in until the spotter rewrite brings its own) ----------------
    def _keep_peak_face(self, face: np.ndarray, signal: float) -> None:
        """The stabilised crop of the event's strongest frame so far (its movement's direction is read from it)."""
        if self._peak_face is None or signal >= self._peak_face[0]:
            self._peak_face = (signal, face.copy())

    def _moved(self, excess_peak: np.ndarray) -> tuple[RegionMotion, ...]:
        """The regions whose peak excess reached ``MOVED_FRACTION`` of the largest, largest share of the event's
        (positive) excess first. The direction is each region's mean dense optical flow (Farnebäck) from the
        frozen reference face to the event's strongest frame, both stabilised crops: dlib's landmarks are too
        unreliable for it (on a lowered brow they move up)."""
        positive = np.maximum(np.asarray(excess_peak, np.float64), 0.0)
        total, top = float(positive.sum()), float(positive.max(initial=0.0))
        if total <= 0.0:
            return ()
        flow = None
        if self._peak_face is not None and self._reference is not None:

            def as_bytes(crop: np.ndarray) -> np.ndarray:
                return np.clip(crop * 40.0 + 128.0, 0, 255).astype(np.uint8)

            dense = cv2.calcOpticalFlowFarneback(
                as_bytes(self._reference), as_bytes(self._peak_face[1]), None, 0.5, 2, 9, 3, 5, 1.1, 0
            )
            flow = np.stack([self._regions @ dense[..., 0].ravel(), self._regions @ dense[..., 1].ravel()], axis=1)
        moved = []
        for position in np.argsort(-positive):
            if positive[position] < MOVED_FRACTION * top:
                break
            name = self._region_names[position]
            direction = ""
            if flow is not None:
                dx, dy = flow[position]
                if max(abs(dx), abs(dy)) >= MIN_DIRECTION_PX:
                    direction = region_direction(name, float(dx), float(dy))
            moved.append(RegionMotion(name, round(float(positive[position]) / total, 3), direction))
        return tuple(moved)

    def _apex(self, samples: list[_Sample]) -> _Sample:
        """The peak: argmax of the lightly smoothed signal, refined by a parabola through its neighbours."""
        values = np.array([s.signal for s in samples])
        if len(values) >= 3:
            padded = np.pad(values, 1, mode="edge")
            values = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
        i = int(np.argmax(values))
        if 0 < i < len(values) - 1:
            a, b, c = values[i - 1], values[i], values[i + 1]
            denom = a - 2 * b + c
            if denom < 0:
                i = int(np.clip(round(i + 0.5 * (a - c) / denom), 0, len(values) - 1))
        return samples[i]


def event_kind(
    options: SpotterOptions,
    region_names: tuple[str, ...],
    duration_ms: float,
    excess_peak: np.ndarray,
    magnitude: float,
    gave_up: bool,
    frame_ms: float = 0.0,
    moves_peak: np.ndarray | None = None,
) -> str:
    """What a closed event is, from its duration and how each region moved at its peak (``excess_peak``,
    ``moves_peak`` in the order of ``region_names``): ``micro``, ``macro`` (too long, or ``gave_up`` on it,
    or moving more than a micro-expression can), ``short``, ``blink`` or ``global`` (the whole face)."""
    # durations are measured in whole frames: allow one frame period either way
    if gave_up or duration_ms > options.max_ms + frame_ms:
        return "macro"
    if duration_ms < options.min_ms - frame_ms:
        return "short"
    names = region_names
    positive = np.maximum(excess_peak, 0.0)
    top = float(positive.max()) or 1.0
    eyes = np.array([positive[names.index(n)] for n in EYE_REGIONS])
    brows = np.array([positive[names.index(n)] for n in BROW_REGIONS])
    other = max(p for n, p in zip(names, positive, strict=True) if n not in EYE_REGIONS + BROW_REGIONS)
    # a blink moves both eyes most; the skin between lid and brow moves with the lid, so the brows may
    # follow, but less than the eye below them (a brow action moves the brow more than the lid)
    if (
        eyes.max() >= top - 1e-9
        and eyes.min() >= 0.5 * top
        and (brows < options.blink_brow_share * eyes).all()
        and other < options.blink_share * top
        and (moves_peak is None or min(moves_peak[names.index(n)] for n in EYE_REGIONS) >= options.blink_movement)
    ):
        return "blink"
    if float((positive >= 0.5 * top).mean()) >= options.global_fraction:
        return "global"
    if options.macro_movement > 0 and magnitude > options.macro_movement:
        return "macro"
    return "micro"


class Spotter:
    """Spotters for every face, keyed by face id: ``update(face_id, ...) → SpotSignal``.

    A face that has not been seen for ``forget_ms`` loses its state (its id will not come back: the face
    stage hands out new ids).
    """

    def __init__(self, options: SpotterOptions | None = None, forget_ms: float = 2000.0) -> None:
        self.options = options or SpotterOptions()
        self.forget_ms = forget_ms
        self._faces: dict[int, FaceSpotter] = {}
        self._seen: dict[int, float] = {}
        self._model = None
        if self.options.method == "learned":
            from realtime.stages.spotter.learned import FEATURE_NAMES
            from realtime.stages.spotter.model import load_spot_model

            self._model = load_spot_model(self.options.model, FEATURE_NAMES)

    def _new_face(self, face_id: int) -> FaceSpotter:
        if self.options.method == "learned":
            from realtime.stages.spotter.learned import LearnedFaceSpotter

            return LearnedFaceSpotter(face_id, self.options, self._model)
        return FaceSpotter(face_id, self.options)

    def update(
        self, face_id: int, frame_index: int, t_ms: float, gray: np.ndarray, landmarks: np.ndarray
    ) -> SpotSignal:
        spotter = self._faces.get(face_id)
        if spotter is None:
            spotter = self._faces[face_id] = self._new_face(face_id)
        self._seen[face_id] = t_ms
        for other, seen in list(self._seen.items()):
            if t_ms - seen > self.forget_ms:
                del self._seen[other], self._faces[other]
        return spotter.update(frame_index, t_ms, gray, landmarks)
