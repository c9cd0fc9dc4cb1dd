"""Streaming micro-expression spotting, per face: where and how the face moves, not how much.

A micro-expression moves the face by 1–3 px for 1/25–1/2 s. On real footage the face's own motion over
100 ms (talking, a smile coming and going, the head turning in depth) is just as large, so the spotter
cannot tell a micro-expression by its size. It tells it by its *shape*: a few regions (a brow pair, the
mouth corners…) leave a still face, come back to where they started within half a second, and the face is
still again afterwards, while the rest of the face stays comparatively still throughout. Everything is
measured against short local baselines, so nothing learned from a long expression stays inflated for
seconds and hides the micro-expressions that follow it.

1. Stable alignment. Each face keeps a landmark template (its first frames). On every frame the template
   is fitted to the rigid landmarks (eye corners, nose bridge, jaw ends: points that expressions barely
   move) with a similarity transform, smoothed over time (``smoothing_ms``). The shared
   :func:`realtime.align.align_face` then crops the *fitted template*, so the crop follows the head but
   never the expression.
2. Photometric normalisation. The grey crop is blurred a little (sensor and compression noise) and scaled
   to zero mean and unit spread over the face, so auto-exposure and white-balance steps mostly cancel.
3. Head motion removed. A robust (Cauchy-weighted) Gauss–Newton fit of translation, scale and rotation of
   the whole face against the reference face takes out what the landmarks missed; pixels that move on their
   own (an expression, a blink) barely pull it, so what is left is the face's *own* motion.
4. Region motion. The crop is compared with a *reference face*: a running average fed with a delay
   (``reference_delay_ms``) so that the start of a movement is not yet in it, and frozen while an event is
   under way (the causal cousin of Moilanen et al.'s frame-versus-neighbours contrast). Per landmark-defined
   region (brows, eyes, nose, mouth corners, lips, chin) two things are measured: the mean absolute change
   (the detector: robust to texture and aperture) and a Lucas–Kanade translation of the region (its flow
   against the reference, in frame pixels: the direction that ``moved`` reports). The change is turned into
   a robust z-score against the region's *recent* idle noise (median and MAD over the last ``noise_ms``),
   and the signal is the largest of them.
5. Events. The signal must cross an adaptive threshold (median + ``on_mad``·MAD of its own recent idle
   history, at least ``min_on_z``; over ``noise_ms``, so it recovers within about half of it); onset and
   offset are where it falls below a fraction of its peak (``edge_fraction``), the apex is the peak. The
   interval runs from the last still frame before the rise to the first still frame after the fall (the data
   sets' convention).
6. Decisions. A rise is a micro-expression when it lasts ``min_ms``–``max_ms`` (give or take a frame) and
   is none of: a blink (both eyes move most, and both lids come down or move by a lid's worth); a
   ``"global"`` change (most regions at once, or the upper and lower face flowing the same way: a head turn
   or nod in depth, a lighting step the normalisation missed); a ``"macro"`` expression (too long, or moving
   more than ``macro_movement`` of the face width); ``"motion"``: a rise in a face that was not still before
   it (less than ``still_before_ms`` below threshold: talking, an expression settling), that moves again
   within ``confirm_ms`` of its offset (the next syllable), or whose lead is the jaw opening (lower lip or
   chin moving down: speech). The ``confirm_ms`` check is why an accepted event is reported ``confirm_ms``
   after its offset frame (within 100 ms: live use is not held up).
7. Settling. After an event the reference follows the face quickly (``settle_ms``) until the signal has
   stayed below the threshold for ``settle_hold_ms``; a rise that lasts ``give_up_ms`` re-seeds the reference
   (the face has settled into a new rest state), so a held smile does not blind the spotter for long.

Rejected events are reported too, with their reason, so callers can show or log them; only
``kind == "micro"`` events are micro-expressions. Every event names the regions that moved (``moved``:
share of the movement and direction, largest first), and every frame carries each region's z-score
(``SpotSignal.region_motion``) for the per-frame CSV.

Everything is in milliseconds, so the same settings work at 30, 60 and 200 fps. Per face and frame the
work is one 128 px warp, a blur, two robust registration steps and a few matrix products: well under a
millisecond on one core.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from realtime.align import AlignmentSettings, alignment_matrix

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
JAW_REGIONS = ("lower_lip", "chin")
DIRECTIONS = ("up", "down", "left", "right", "inward", "outward")
_PAD = {"brow_left": 0.05, "brow_right": 0.05, "eye_left": 0.04, "eye_right": 0.04, "nose": 0.03}
_DEFAULT_PAD = 0.06
_NOSE_BRIDGE = (27, 28, 29, 30)  # the face's midline, for inward/outward


@dataclass(frozen=True)
class SpotterOptions:
    """Settings of the streaming spotter. Times are milliseconds; thresholds are robust z-scores.

    ``crop_px`` the side of the aligned grey crop it works on; ``blur_px`` the Gaussian blur on it;
    ``smoothing_ms`` the time constant of the alignment's temporal smoothing; ``registration_steps`` the
    robust head-motion fit's Gauss–Newton steps and ``jacobian_ms`` how often its gradients are refreshed;
    ``reference_ms`` the time constant of the reference face's running average and ``reference_delay_ms``
    how old a frame is when it joins it; ``noise_ms`` the span of recent idle history the noise statistics
    and the threshold come from (short: the threshold recovers within about half of it after a long
    movement; events can start once ``min_noise_ms`` and ``min_noise_samples`` of it exist);
    ``warmup_ms`` how long a new face is watched before its noise is measured; ``on_mad`` and ``min_on_z``
    the start threshold; ``edge_fraction`` where onset and offset are placed (fraction of the peak);
    ``end_hold_ms`` how long the signal must stay low for the event to end; ``min_ms``/``max_ms`` the
    micro-expression durations; ``blink_share`` the largest share of the eyes' peak any region but the brows
    may reach in a blink (both eyes must move); ``blink_brow_share`` how much a brow may move relative to
    the eye below it in a blink; ``blink_movement`` the least movement of both eyes (fraction of the face
    width, estimated from intensity change over texture gradient, which reads about half the true
    displacement) for a blink (smaller: a lid tightener); ``global_fraction`` the share of regions moving
    together that makes a change global; ``macro_movement`` the movement (fraction of the face width, same
    estimate) above which a short movement is too large to be micro (0: off); ``still_before_ms`` how long
    the face must have been still (signal below threshold) before a micro-expression's rise;
    ``calm_noise_ms`` how long the face must have been still for a frame to join the noise statistics;
    ``confirm_ms`` how long after the offset the face must stay still (the decision waits that long; keep
    it under 100) and ``rerise_fraction`` the fraction of the peak a new rise in that time must reach to
    count as movement; ``give_up_ms`` how long an event may last before the reference is re-seeded;
    ``head_coherence`` the least cosine between the mean flows of the upper face (brows, eyes) and the lower
    face (nose, mouth, chin) that makes a change head motion (``"global"``; 0, the default: off, since at 0.8
    it also took brow raises for nods on the lab set and has not been validated on turns yet), when each part has at
    least ``head_part_share`` of the movement; ``settle_ms`` the time constant the reference follows the face
    with after an event, until the signal has stayed below the threshold for ``settle_hold_ms``;
    ``moved_share`` the least share of an event's movement a region needs to be listed in ``moved`` and
    ``direction_px`` the least flow (frame pixels) that gets a direction.
    """

    crop_px: int = 128
    blur_px: float = 1.2
    smoothing_ms: float = 300.0
    registration_steps: int = 2
    jacobian_ms: float = 100.0
    reference_ms: float = 250.0
    reference_delay_ms: float = 200.0
    noise_ms: float = 1000.0
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
    still_before_ms: float = 200.0
    calm_noise_ms: float = 200.0
    confirm_ms: float = 100.0
    rerise_fraction: float = 0.1
    give_up_ms: float = 1000.0
    settle_ms: float = 60.0
    settle_hold_ms: float = 150.0
    head_coherence: float = 0.0
    head_part_share: float = 0.3
    moved_share: float = 0.1
    direction_px: float = 0.1

    def __post_init__(self) -> None:
        for name in ("noise_ms", "min_noise_ms", "warmup_ms", "min_ms", "max_ms", "give_up_ms", "settle_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number of milliseconds >= 0, got {value}")
        if not 0.0 <= self.confirm_ms <= 100.0:
            raise ValueError(
                f"confirm_ms must lie in [0, 100] (events are reported within 100 ms), got {self.confirm_ms}"
            )
        if self.min_ms > self.max_ms:
            raise ValueError(f"min_ms ({self.min_ms}) must not exceed max_ms ({self.max_ms})")

    @property
    def alignment(self) -> AlignmentSettings:
        return AlignmentSettings(output_size=self.crop_px)


@dataclass(frozen=True)
class RegionMotion:
    """One region's part in an event: ``share`` of the event's movement (shares of an event sum to at most 1)
    and ``direction`` of its flow at its peak on the aligned face (``"up"``, ``"down"``, ``"left"``,
    ``"right"``, or ``"inward"``/``"outward"`` relative to the midline for regions off it; ``""`` when the
    flow is too small to tell)."""

    region: str
    share: float
    direction: str = ""


@dataclass(frozen=True)
class SpottedEvent:
    """A rise and fall of the spotting signal, micro-expression or not.

    Frame indices are 0-based over every frame given to the spotter; ``onset_frame`` is the last still frame
    before the rise and ``offset_frame`` the first still frame after the fall; ``score`` is the peak signal
    (robust z); ``kind`` is ``"micro"`` for a micro-expression, otherwise why it was rejected: ``"blink"``,
    ``"macro"``, ``"global"``, ``"short"`` or ``"motion"`` (the face was not still around it). ``regions``
    holds each region's peak z-score and ``activity`` its peak change; ``movement`` the largest region's
    movement (fraction of the face width); ``moved`` the regions that moved, largest share first;
    ``decided_frame``/``decided_ms`` when the spotter reported it.
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
    cross; ``in_event`` is True while a rise is under way (or waits for its confirmation); ``apex_candidate``
    marks frames that may become an apex (the signal is near the event's running peak: keep their classifier
    crops); ``events`` are the events decided on this frame (accepted and rejected); ``apex_frame`` is the
    apex of the event under way once the signal has fallen past its peak (below 0.8 of it; -1 before): the
    apex is then settled unless a second rise comes, so callers can classify it before the offset is seen;
    ``region_motion`` each region's z-score on this frame (keys: :data:`REGIONS`).
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


def _region_sides(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """Each region's side of the face's midline on the crop: -1 left, +1 right, 0 on it (nose, lips, chin)."""
    midline = float(crop_landmarks[list(_NOSE_BRIDGE), 0].mean())
    sides = []
    for indices in REGIONS.values():
        offset = float(crop_landmarks[list(indices), 0].mean()) - midline
        sides.append(0.0 if abs(offset) < 0.08 * size else math.copysign(1.0, offset))
    return np.array(sides)


def _direction(flow: np.ndarray, side: float, least_px: float, texture: tuple[float, float] = (1.0, 1.0)) -> str:
    """The name of a region's flow (dx, dy in image pixels, y down): the component that explains more of the
    region's change (each weighted by the region's gradient energy along it: a brow is a horizontal edge,
    whose sideways flow is barely measured and must not outvote a clear vertical one)."""
    dx, dy = float(flow[0]), float(flow[1])
    if not (math.isfinite(dx) and math.isfinite(dy)) or math.hypot(dx, dy) < least_px:
        return ""
    if abs(dy) * texture[1] >= abs(dx) * texture[0]:
        return "up" if dy < 0 else "down"
    if side == 0.0:
        return "left" if dx < 0 else "right"
    return "outward" if dx * side > 0 else "inward"


@dataclass
class _Sample:
    frame_index: int
    t_ms: float
    signal: float
    z: np.ndarray
    excess: np.ndarray
    magnitude: float
    moves: np.ndarray
    flow: np.ndarray  # region × (dx, dy), frame pixels, against the reference


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
        self._region_side: np.ndarray = np.zeros(len(REGIONS))
        self._flow_gradients: np.ndarray | None = None  # (2 × pixels): the reference's gx and gy
        self._flow_normal: np.ndarray | None = None  # R × (gxx, gxy, gyy)
        self._last_matrix = np.eye(3)
        self._face_width_px = 1.0
        self._warm_count = 1
        self._cooling_since: float | None = None
        self._settled_since: float | None = None
        self._calm_since: float | None = None
        self._calm_before_ms = 0.0
        self._last_offset_frame = -1
        self._jacobian_ms = -math.inf
        self._xy: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self._fit: np.ndarray | None = None  # smoothed similarity, template → frame
        self._start_ms: float | None = None
        self._last_ms: float | None = None
        self._reference: np.ndarray | None = None
        self._delayed: deque[tuple[float, np.ndarray]] = deque()
        self._regions: np.ndarray | None = None
        self._region_names: tuple[str, ...] = tuple(REGIONS)
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
        self._pending: SpottedEvent | None = None  # ended, waiting ``confirm_ms`` for the face to stay still
        self._below_since: float | None = None
        self._peak = 0.0
        self._last_signal = 0.0

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
            self._region_side = _region_sides(crop_points, size)
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
            # each region's Lucas–Kanade normal equations against the reference (its flow, see _flow)
            gxf, gyf = gx.ravel(), gy.ravel()
            self._flow_gradients = np.stack([gxf, gyf])
            normal = np.stack(
                [self._regions @ (gxf * gxf), self._regions @ (gxf * gyf), self._regions @ (gyf * gyf)], axis=1
            )
            self._flow_normal = normal + np.array([1e-4, 0.0, 1e-4])
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
            spread = 1.4826 * float(np.median(np.abs(residual))) + 1e-4
            weights = 1.0 / (1.0 + (residual / (2.0 * spread)) ** 2)
            weighted = jac * weights[:, None]
            params = params - np.linalg.solve(weighted.T @ jac + 1e-6 * np.eye(4), weighted.T @ residual)
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
        """Drop what is older than ``span_ms``, but keep the newest ``min_noise_samples`` (a face that was
        never still for a while keeps the statistics of the last time it was)."""
        while len(queue) > self.options.min_noise_samples and now_ms - queue[0][0] > span_ms:
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

    def _flow(self, diff: np.ndarray, scale: float) -> np.ndarray:
        """Each region's Lucas–Kanade translation from the reference to this crop (R × 2, frame pixels)."""
        if self._flow_gradients is None or self._flow_normal is None:
            return np.zeros((len(REGIONS), 2))
        b = (self._flow_gradients * diff) @ self._regions.T  # (2 × R): each region's Σ g·diff
        gxx, gxy, gyy = self._flow_normal.T
        det = gxx * gyy - gxy * gxy
        # diff ≈ −∇ref · d  →  d = −(AᵀA)⁻¹ Aᵀ diff
        dx = -(gyy * b[0] - gxy * b[1]) / det
        dy = -(gxx * b[1] - gxy * b[0]) / det
        return np.stack([dx, dy], axis=1) / scale

    # -- per frame -------------------------------------------------------------------------------------
    def update(self, frame_index: int, t_ms: float, gray: np.ndarray, landmarks: np.ndarray) -> SpotSignal:
        """Feed one frame of this face (grey frame and its 68 landmarks); frames must come in time order."""
        opts = self.options
        dt = 1000.0 / 30.0 if self._last_ms is None else max(t_ms - self._last_ms, 1e-3)
        self._last_ms = t_ms
        if self._start_ms is None:
            self._start_ms = t_ms
        face = self._stabilised(gray, landmarks, dt)
        if self._reference is None:
            self._reference = face.copy()
        signed = (face - self._reference).ravel()
        diff = np.abs(signed)
        e = self._regions @ diff
        scale = math.sqrt(abs(float(np.linalg.det(self._last_matrix[:2, :2])))) or 1.0
        flow = self._flow(signed, scale)

        warming = t_ms - self._start_ms < opts.warmup_ms
        ready = self._noise_med is not None and len(self._idle_e) >= 8
        excess = e - self._noise_med if ready else np.zeros_like(e)
        z = excess / self._noise_mad if ready else excess
        signal = float(z.max())
        # approximate movement of each region (frame pixels over the face width)
        moves = excess / (self._region_gradient * scale * self._face_width_px) if ready else np.zeros_like(e)
        sample = _Sample(frame_index, t_ms, signal, z, excess, float(moves.max()), moves, flow)
        self._history.append(sample)
        while self._history and t_ms - self._history[0].t_ms > opts.give_up_ms + 1000.0:
            self._history.popleft()

        events: tuple[SpottedEvent, ...] = ()
        threshold = self.threshold
        calm_since = self._calm_since  # how long the face has been still, as of the previous frame
        if ready and signal >= threshold:  # (before the noise is known, the face counts as still)
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = t_ms
        apex_candidate = False
        apex_frame = -1
        if self._pending is not None:
            # ended: the face must stay still a little longer (the next syllable of speech would not)
            pending = self._pending
            rising = signal > self._last_signal  # a new rise, not the tail of this one's fall
            if rising and signal > max(threshold, opts.rerise_fraction * pending.score):
                events = (self._decide(replace(pending, kind="motion"), frame_index, t_ms),)
            elif t_ms - pending.offset_ms >= opts.confirm_ms - 1e-6:
                events = (self._decide(pending, frame_index, t_ms),)
            else:
                apex_frame = pending.apex_frame
        elif self._cooling_since is not None:
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
                # idle: learn the noise from frames of a face that has been still a while (the gaps between
                # syllables or the tail of an expression would inflate it), feed the reference with a delay
                calm_ms = 0.0 if self._calm_since is None else t_ms - self._calm_since
                if calm_ms >= opts.calm_noise_ms or len(self._idle_e) < opts.min_noise_samples:
                    self._idle_e.append((t_ms, e))
                    if ready:
                        self._idle_s.append((t_ms, signal))
                self._trim(self._idle_e, t_ms, opts.noise_ms)
                self._trim(self._idle_s, t_ms, opts.noise_ms)
                self._stats_age += 1
                if self._idle_e and (not ready or self._stats_age >= 3):
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
                    self._active = [sample]
                    self._peak = signal
                    self._below_since = None
                    self._calm_before_ms = 0.0 if calm_since is None else t_ms - calm_since
                    apex_candidate = True
            if t_ms - self._jacobian_ms >= opts.jacobian_ms:
                self._jacobian, self._jacobian_ms = None, t_ms
        else:
            self._active.append(sample)
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
                    events = self._end(self._close(frame_index, t_ms), frame_index, t_ms)
            else:
                self._below_since = None
            if self._active is not None and t_ms - self._active[0].t_ms > opts.give_up_ms:
                events = self._end(self._close(frame_index, t_ms, gave_up=True), frame_index, t_ms)
                self._reference, self._jacobian = face.copy(), None
        self._last_signal = signal
        waiting = self._active is not None or self._pending is not None
        return SpotSignal(
            self.face_id,
            frame_index,
            t_ms,
            signal,
            threshold,
            waiting,
            apex_candidate,
            events,
            apex_frame if waiting else -1,
            {name: round(float(v), 2) for name, v in zip(self._region_names, z, strict=True)},
        )

    # -- event decisions -------------------------------------------------------------------------------
    def _end(self, event: SpottedEvent, frame_index: int, t_ms: float) -> tuple[SpottedEvent, ...]:
        """An event whose offset was seen: a rejection is reported now, a micro-expression once the face has
        stayed still for ``confirm_ms`` after its offset (the reference stays frozen until then)."""
        if event.kind == "micro" and t_ms - event.offset_ms < self.options.confirm_ms - 1e-6:
            self._pending = event
            return ()
        return (self._decide(event, frame_index, t_ms),)

    def _decide(self, event: SpottedEvent, frame_index: int, t_ms: float) -> SpottedEvent:
        """Report ``event`` now: the reference starts settling."""
        self._pending = None
        self._cooling_since = t_ms
        # a confirmed micro-expression: the face has been still since its offset, which counts towards settling
        self._settled_since = event.offset_ms if event.kind == "micro" else None
        self._delayed.clear()  # frames of the event never join the reference
        return replace(event, decided_frame=frame_index, decided_ms=t_ms)

    def _close(self, frame_index: int, t_ms: float, gave_up: bool = False) -> SpottedEvent:
        opts = self.options
        active = self._active or []
        self._active = None
        self._below_since = None
        peak = max(s.signal for s in active)
        level = opts.edge_fraction * peak
        # onset: walk back from the start through the history while the signal is above the edge level
        history = list(self._history)
        start_pos = next(i for i, s in enumerate(history) if s.frame_index == active[0].frame_index)
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
        z_stack = np.stack([s.z for s in event_samples])
        excess_stack = np.stack([s.excess for s in event_samples])
        z_peak = z_stack.max(axis=0)
        excess_peak = excess_stack.max(axis=0)
        regions = {name: round(float(v), 2) for name, v in zip(self._region_names, z_peak, strict=True)}
        activity = {name: round(float(v), 4) for name, v in zip(self._region_names, excess_peak, strict=True)}
        duration = offset.t_ms - onset.t_ms
        magnitude = max(s.magnitude for s in event_samples)
        moves_peak = np.max(np.stack([s.moves for s in event_samples]), axis=0)
        frame_ms = (offset.t_ms - onset.t_ms) / max(offset.frame_index - onset.frame_index, 1)
        # each region at its own peak: its share of the movement and the direction of its flow there
        peak_at = excess_stack.argmax(axis=0)
        flows = np.stack([event_samples[int(i)].flow[r] for r, i in enumerate(peak_at)])
        eyes = [self._region_names.index(n) for n in EYE_REGIONS]
        lids_down = all(flows[r, 1] > abs(flows[r, 0]) for r in eyes)
        # the jaw opening (lower lip or chin leading, moving down): speech, not an action unit of a leak
        lead = int(np.argmax(np.maximum(z_peak, 0.0)))
        jaw_opens = self._region_names[lead] in JAW_REGIONS and flows[lead, 1] > abs(flows[lead, 0])
        kind = self._kind(
            duration, excess_peak, magnitude, gave_up, frame_ms, moves_peak, self._calm_before_ms, lids_down
        )
        if kind == "micro" and self._head_moved(np.maximum(z_peak, 0.0), flows):
            kind = "global"
        elif kind == "micro" and jaw_opens:
            kind = "motion"
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
            self._moved(np.maximum(z_peak, 0.0), flows),
        )

    def _head_moved(self, strength: np.ndarray, flows: np.ndarray) -> bool:
        """Whether the upper face (brows, eyes) and the lower face (nose, mouth, chin) both moved, and the
        same way: the head turning or nodding in depth (which a similarity cannot follow), not an action
        unit (those move one part of the face, or move the parts differently)."""
        if self.options.head_coherence <= 0.0:
            return False
        total = float(strength.sum())
        if total <= 0.0:
            return False
        upper = np.array([n in EYE_REGIONS + BROW_REGIONS for n in self._region_names])
        means = []
        for part in (upper, ~upper):
            weights = strength * part
            if float(weights.sum()) < self.options.head_part_share * total:
                return False
            means.append((weights[:, None] * flows).sum(axis=0) / float(weights.sum()))
        a, b = means
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        return norms > 0.0 and float(a @ b) / norms >= self.options.head_coherence

    def _moved(self, strength: np.ndarray, flows: np.ndarray) -> tuple[RegionMotion, ...]:
        """The regions whose share of the event's movement (peak z-score over their sum) is at least
        ``moved_share``, largest first, with their flow's direction."""
        total = float(strength.sum())
        if total <= 0.0:
            return ()
        shares = strength / total
        normal = self._flow_normal if self._flow_normal is not None else np.ones((len(strength), 3))
        texture = [(math.sqrt(max(float(n[0]), 0.0)), math.sqrt(max(float(n[2]), 0.0))) for n in normal]
        order = np.argsort(-shares, kind="stable")
        return tuple(
            RegionMotion(
                self._region_names[r],
                round(float(shares[r]), 3),
                _direction(flows[r], float(self._region_side[r]), self.options.direction_px, texture[r]),
            )
            for r in order
            if shares[r] >= self.options.moved_share
        )

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

    def _kind(
        self,
        duration_ms: float,
        excess_peak: np.ndarray,
        magnitude: float,
        gave_up: bool,
        frame_ms: float = 0.0,
        moves_peak: np.ndarray | None = None,
        calm_before_ms: float = math.inf,
        lids_down: bool = False,
    ) -> str:
        opts = self.options
        # durations are measured in whole frames: allow one frame period either way
        if gave_up or duration_ms > opts.max_ms + frame_ms:
            return "macro"
        if duration_ms < opts.min_ms - frame_ms:
            return "short"
        names = self._region_names
        positive = np.maximum(excess_peak, 0.0)
        top = float(positive.max()) or 1.0
        eyes = np.array([positive[names.index(n)] for n in EYE_REGIONS])
        brows = np.array([positive[names.index(n)] for n in BROW_REGIONS])
        other = max(p for n, p in zip(names, positive, strict=True) if n not in EYE_REGIONS + BROW_REGIONS)
        # a blink moves both eyes most; the skin between lid and brow moves with the lid, so the brows may
        # follow, but less than the eye below them (a brow action moves the brow more than the lid)
        eyes_lead = (
            eyes.max() >= top - 1e-9 and eyes.min() >= 0.5 * top and (brows < opts.blink_brow_share * eyes).all()
        )
        if eyes_lead and (
            # both lids came down: a blink, however small the camera shows it and whatever else moved a little
            lids_down
            or (
                other < opts.blink_share * top
                and (moves_peak is None or min(moves_peak[names.index(n)] for n in EYE_REGIONS) >= opts.blink_movement)
            )
        ):
            return "blink"
        if float((positive >= 0.5 * top).mean()) >= opts.global_fraction:
            return "global"
        if opts.macro_movement > 0 and magnitude > opts.macro_movement:
            return "macro"
        if calm_before_ms < opts.still_before_ms:
            return "motion"
        return "micro"


class Spotter:
    """Spotters for every face, keyed by face id: ``update(face_id, ...) → SpotSignal``.

    A face that has not been seen for ``forget_ms`` loses its state (a face that comes back later starts
    afresh: it is watched for ``warmup_ms`` and its noise measured again).
    """

    def __init__(self, options: SpotterOptions | None = None, forget_ms: float = 2000.0) -> None:
        self.options = options or SpotterOptions()
        self.forget_ms = forget_ms
        self._faces: dict[int, FaceSpotter] = {}
        self._seen: dict[int, float] = {}

    def update(
        self, face_id: int, frame_index: int, t_ms: float, gray: np.ndarray, landmarks: np.ndarray
    ) -> SpotSignal:
        spotter = self._faces.get(face_id)
        if spotter is None:
            spotter = self._faces[face_id] = FaceSpotter(face_id, self.options)
        self._seen[face_id] = t_ms
        for other, seen in list(self._seen.items()):
            if t_ms - seen > self.forget_ms:
                del self._seen[other], self._faces[other]
        return spotter.update(frame_index, t_ms, gray, landmarks)
