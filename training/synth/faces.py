"""Source face photographs, their 68 landmarks, and the synthetic subjects made from them.

A :class:`FacePhoto` is a real photograph with dlib's 68 landmarks fitted once (by the project's own
:class:`realtime.core.landmarks.FaceLandmarker`). The defaults are two photographs that pip packages ship, so
nothing is downloaded: matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut.png``.

A :class:`Subject` is one photo plus a deterministic :class:`SubjectLook` — mirroring, face size and position
in the frame, a slight in-plane roll, brightness/contrast/gamma, colour or grey, and a mild identity morph
(mouth width, nose length, brow height, … moved through the same smooth warp the expressions use) — so any
number of distinct-looking subjects can be made from two photos. :meth:`Subject.render` draws the subject's
neutral face into a frame of any size (with an optional small per-clip :class:`Pose` change) and returns the
frame with its landmarks, which the expressions then warp.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceBox, FaceLandmarker
from training.synth.actions import (
    MIRROR,
    N_LANDMARKS,
    PINNED,
    SIDE,
    AUCode,
    FaceAxes,
    expression_displacements,
)
from training.synth.warp import DEFAULT_WARP, DisplacementField, WarpSettings, anchor_ring, fit_field

MIN_FACE_PX = 90
"""Smallest face (landmark box height, pixels) the generator renders: dlib's HOG detector needs about 80."""


def default_photo_paths() -> tuple[Path, ...]:
    """The face photos that ship with installed packages: matplotlib's Grace Hopper (always present) and
    scikit-image's astronaut (when scikit-image is installed)."""
    import matplotlib.cbook

    paths = [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "data" / "astronaut.png"
            if candidate.is_file():
                paths.append(candidate)
                break
    return tuple(paths)


@functools.cache
def shared_landmarker() -> FaceLandmarker:
    """One landmarker for the process (loading dlib's model takes about a second). It detects on copies at
    most 1024 px wide (a phone photo at full size would take seconds), so a face as small as the
    astronaut's (87 px of 512) is still found."""
    return FaceLandmarker(detect_width=1024)


@dataclass(frozen=True, eq=False)
class FacePhoto:
    """A source photograph (BGR) and the 68 landmarks (pixels, float64) of its largest face."""

    path: Path
    image: np.ndarray = field(repr=False)
    landmarks: np.ndarray = field(repr=False)

    @property
    def iod(self) -> float:
        return FaceAxes.from_landmarks(self.landmarks).iod


_PHOTO_CACHE: dict[tuple[str, int, int], FacePhoto] = {}


def load_face_photo(path: Path | str, landmarker: FaceLandmarker | None = None) -> FacePhoto:
    """Read a photo and fit the landmarks of its largest face (cached per file and modification time).

    Raises :class:`UserInputError` naming the file when it is missing, unreadable or shows no face (a
    face is searched at full resolution and, failing that, on a 2× enlargement).
    """
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        raise UserInputError(f"face photo not found: {path}") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _PHOTO_CACHE:
        return _PHOTO_CACHE[key]
    if not path.is_file():
        raise UserInputError(f"face photo is not a file: {path}")
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserInputError(f"cannot read face photo {path}: not an image OpenCV can decode")
    marker = landmarker or shared_landmarker()
    boxes = marker.detect(image)
    if not boxes:  # a small face: look again on an enlargement
        big = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        boxes = [FaceBox(b.left // 2, b.top // 2, b.right // 2, b.bottom // 2) for b in marker.detect(big)]
    if not boxes:
        raise UserInputError(f"no face found in photo {path}; use a frontal photo with a face at least 80 px wide")
    landmarks = marker.landmarks(image, boxes[0]).astype(np.float64)
    photo = FacePhoto(path, image, landmarks)
    _PHOTO_CACHE[key] = photo
    return photo


def load_face_photos(
    paths: Sequence[Path | str] | None = None, landmarker: FaceLandmarker | None = None
) -> tuple[FacePhoto, ...]:
    """The given photos (or :func:`default_photo_paths`), each with its landmarks."""
    chosen = list(paths) if paths else list(default_photo_paths())
    if not chosen:
        raise UserInputError("no face photos given")
    return tuple(load_face_photo(p, landmarker) for p in chosen)


# --- identity morph -------------------------------------------------------------------------------------------

_MORPH_MODES: tuple[tuple[str, tuple[tuple[int, float, float], ...]], ...] = (
    # (name, (landmark, outward, down) for the subject's right side and the midline, mirrored like the AUs)
    ("mouth width", ((48, 1.0, 0), (60, 1.0, 0), (49, 0.6, 0), (59, 0.6, 0), (61, 0.5, 0), (67, 0.5, 0))),
    ("mouth height", tuple((i, 0.0, 1.0) for i in range(48, 68) if SIDE[i] <= 0)),
    ("nose length", ((30, 0, 0.5), (31, 0, 1.0), (32, 0, 1.0), (33, 0, 1.0))),
    ("nose width", ((31, 1.0, 0), (32, 0.5, 0))),
    ("brow height", ((17, 0, -1.0), (18, 0, -1.0), (19, 0, -1.0), (20, 0, -1.0), (21, 0, -1.0))),
    ("brow tilt", ((17, 0, -1.0), (18, 0, -0.6), (19, 0, -0.2), (21, 0, 0.3))),
    ("eye opening", ((37, 0, -0.5), (38, 0, -0.5), (40, 0, 0.5), (41, 0, 0.5))),
    ("jaw width", ((3, 1.0, 0), (4, 1.0, 0), (5, 0.8, 0), (6, 0.4, 0))),
    ("chin length", ((6, 0, 0.5), (7, 0, 0.8), (8, 0, 1.0))),
    ("lip thickness", ((50, 0, -0.7), (51, 0, -0.7), (57, 0, 0.7), (58, 0, 0.7))),
)
MORPH_MODES = tuple(name for name, _ in _MORPH_MODES)
MORPH_UNIT = 0.03  # IOD units: a morph coefficient of 1 moves a mode's landmarks this far


def morph_displacements(coefficients: Sequence[float]) -> np.ndarray:
    """Face-frame landmark displacements (68×2, IOD units) of an identity morph: one coefficient per
    :data:`MORPH_MODES` entry (about −1…1)."""
    if len(coefficients) != len(_MORPH_MODES):
        raise UserInputError(f"an identity morph needs {len(_MORPH_MODES)} coefficients, got {len(coefficients)}")
    out = np.zeros((N_LANDMARKS, 2))
    for coefficient, (_, moves) in zip(coefficients, _MORPH_MODES, strict=True):
        for index, outward, down in moves:
            for i in {index, int(MIRROR[index])}:
                out[i] += coefficient * MORPH_UNIT * np.array([outward * SIDE[i], down])
    return out


# --- subjects ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectLook:
    """How a subject differs from its source photo.

    ``face_size`` is the height of the landmark box (brows to chin) as a fraction of the frame height;
    ``centre`` the box centre as fractions of the frame's width and height; ``roll_deg`` an in-plane head
    roll; ``brightness`` (grey levels), ``contrast`` and ``gamma`` a tone curve; ``grey`` renders a
    single-channel frame; ``morph`` the identity-morph coefficients (see :data:`MORPH_MODES`).
    """

    photo: int
    mirror: bool = False
    face_size: float = 0.48
    centre: tuple[float, float] = (0.5, 0.5)
    roll_deg: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    grey: bool = False
    morph: tuple[float, ...] = (0.0,) * len(MORPH_MODES)

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        photo: int,
        *,
        mirror: bool = False,
        grey: bool = False,
        face_size: tuple[float, float] = (0.42, 0.54),
        morph: float = 1.0,
    ) -> SubjectLook:
        """A random look (deterministic for the generator's state); ``morph`` scales the identity morph."""
        return cls(
            photo=photo,
            mirror=mirror,
            face_size=float(rng.uniform(*face_size)),
            centre=(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.47, 0.55))),
            roll_deg=float(rng.uniform(-6.0, 6.0)),
            brightness=float(rng.uniform(-20.0, 20.0)),
            contrast=float(rng.uniform(0.85, 1.15)),
            gamma=float(rng.uniform(0.8, 1.25)),
            grey=grey,
            morph=tuple(float(v) for v in rng.uniform(-morph, morph, len(MORPH_MODES))),
        )


@dataclass(frozen=True)
class Pose:
    """A small change of head pose for one clip: a shift (fractions of the frame), a roll and a scale."""

    dx: float = 0.0
    dy: float = 0.0
    roll_deg: float = 0.0
    scale: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, amount: float = 1.0) -> Pose:
        return cls(
            float(rng.uniform(-0.015, 0.015) * amount),
            float(rng.uniform(-0.015, 0.015) * amount),
            float(rng.uniform(-1.5, 1.5) * amount),
            float(1.0 + rng.uniform(-0.03, 0.03) * amount),
        )


@dataclass(frozen=True, eq=False)
class Face:
    """A rendered neutral face: the frame (uint8, H×W×3 BGR or H×W grey) and its 68 landmarks (pixels)."""

    image: np.ndarray = field(repr=False)
    landmarks: np.ndarray = field(repr=False)

    @property
    def frame(self) -> FaceAxes:
        return FaceAxes.from_landmarks(self.landmarks)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def parse_frame_size(size: Sequence[int] | str) -> tuple[int, int]:
    """``(320, 240)`` or ``'320x240'`` → (width, height); sizes too small for a detectable face are an error."""
    if isinstance(size, str):
        parts = size.lower().replace("×", "x").split("x")
        try:
            width, height = (int(p) for p in parts)
        except ValueError:
            raise UserInputError(f"cannot read frame size {size!r}; write it as WIDTHxHEIGHT, e.g. 640x480") from None
    else:
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise UserInputError(f"a frame size is (width, height), got {size!r}") from None
    if height < 200 or width < 200 or width > 8192 or height > 8192:
        raise UserInputError(
            f"frame size {width}x{height} is out of range: each side must lie between 200 and 8192 px "
            "(a face must be at least 90 px for dlib to find it)"
        )
    return width, height


@dataclass(frozen=True, eq=False)
class Subject:
    """A synthetic person: a source photo seen through a :class:`SubjectLook`."""

    name: str
    photo: FacePhoto
    look: SubjectLook

    def placement(self, frame_size: tuple[int, int], pose: Pose = Pose()) -> tuple[np.ndarray, bool]:
        """The 2×3 affine map from the (possibly mirrored) photo to the frame, and whether it mirrors."""
        width, height = frame_size
        points = self._photo_points()
        low, high = points.min(axis=0), points.max(axis=0)
        centre = (low + high) / 2.0
        target_height = max(self.look.face_size * height, MIN_FACE_PX) * pose.scale
        scale = target_height / max(float(high[1] - low[1]), 1.0)
        rotation = cv2.getRotationMatrix2D(
            (float(centre[0]), float(centre[1])), self.look.roll_deg + pose.roll_deg, scale
        )
        target = np.array([(self.look.centre[0] + pose.dx) * width, (self.look.centre[1] + pose.dy) * height])
        rotation[:, 2] += target - centre
        return rotation, self.look.mirror

    def _photo_points(self) -> np.ndarray:
        points = self.photo.landmarks.copy()
        if self.look.mirror:
            points[:, 0] = (self.photo.image.shape[1] - 1) - points[:, 0]
            points = points[MIRROR]
        return points

    def render(self, frame_size: tuple[int, int], pose: Pose = Pose()) -> Face:
        """The subject's neutral face in a ``frame_size`` (width, height) frame, with its landmarks."""
        width, height = frame_size
        placement, mirror = self.placement(frame_size, pose)
        points = self._photo_points() @ placement[:, :2].T + placement[:, 2]
        image = cv2.flip(self.photo.image, 1) if mirror else self.photo.image
        matrix = placement
        scale = math.hypot(matrix[0, 0], matrix[0, 1])
        if scale < 0.75:  # shrink with area averaging first: warpAffine alone would alias
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            sx, sy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
            pre = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])  # pixel centres
            matrix = matrix @ np.linalg.inv(pre)
            image = small
        placed = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        covered = cv2.warpAffine(
            np.ones(image.shape[:2], np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0
        )
        if float(covered.min()) < 0.999:
            placed = _with_backdrop(placed, covered)

        if any(self.look.morph):
            frame = FaceAxes.from_landmarks(points)
            moves = frame.to_pixels(morph_displacements(self.look.morph))
            controls, control_moves = control_points(points, moves, frame.iod)
            morph, _ = fit_field(controls, control_moves, frame.iod, (width, height))
            placed = morph.apply(placed)
            points = points + morph.at(points)

        placed = cv2.LUT(placed, _tone_curve(self.look.brightness, self.look.contrast, self.look.gamma))
        if self.look.grey:
            placed = cv2.cvtColor(placed, cv2.COLOR_BGR2GRAY)
        return Face(placed, points)


def _with_backdrop(placed: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """The frame beyond the photo's edges (``covered`` < 1) as an out-of-focus backdrop: the photo's edge
    colours drawn outwards, blurred, blended in over a soft seam. A mirrored border would tile a small face's
    frame with copies of the face, and the face stage would follow a copy that never changes expression."""
    height, width = placed.shape[:2]
    small = cv2.resize(placed, (max(width // 8, 1), max(height // 8, 1)), interpolation=cv2.INTER_AREA)
    backdrop = cv2.resize(cv2.GaussianBlur(small, (0, 0), 3.0), (width, height), interpolation=cv2.INTER_LINEAR)
    seam = cv2.GaussianBlur(covered, (0, 0), max(0.01 * width, 1.0)) * covered
    mask = seam[..., None] if placed.ndim == 3 else seam
    blended = placed.astype(np.float32) * mask + backdrop.astype(np.float32) * (1.0 - mask)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def control_points(
    landmarks: np.ndarray, moves: np.ndarray, iod: float, settings: WarpSettings = DEFAULT_WARP
) -> tuple[np.ndarray, np.ndarray]:
    """The control points of a warp that moves ``landmarks`` by ``moves`` (pixels): every landmark that
    moves, the :data:`PINNED` ones that do not, and a still ring around the face."""
    points = np.asarray(landmarks, dtype=np.float64)
    moves = np.asarray(moves, dtype=np.float64)
    keep = np.abs(moves).sum(axis=1) > 1e-9
    keep[list(PINNED)] = True
    ring = anchor_ring(points, iod, settings)
    return np.concatenate([points[keep], ring]), np.concatenate([moves[keep], np.zeros_like(ring)])


@functools.lru_cache(maxsize=256)
def _tone_curve(brightness: float, contrast: float, gamma: float) -> np.ndarray:
    """An 8-bit look-up table: contrast about mid-grey, then brightness, then gamma."""
    x = np.arange(256, dtype=np.float64)
    y = np.clip(contrast * (x - 128.0) + 128.0 + brightness, 0.0, 255.0)
    y = 255.0 * (y / 255.0) ** gamma
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def make_subjects(
    photos: Sequence[FacePhoto],
    names: Sequence[str],
    rng: np.random.Generator,
    *,
    grey: Sequence[bool] | None = None,
    face_size: tuple[float, float] = (0.42, 0.54),
) -> tuple[Subject, ...]:
    """One subject per name, cycling through the photos (every other cycle mirrored) with a random look each.

    ``grey`` gives each subject's colour mode (default: colour for all).
    """
    if not photos:
        raise UserInputError("no face photos to make subjects from")
    subjects = []
    for index, name in enumerate(names):
        photo = index % len(photos)
        mirror = (index // len(photos)) % 2 == 1
        look = SubjectLook.draw(
            rng,
            photo,
            mirror=mirror,
            grey=bool(grey[index]) if grey is not None else False,
            face_size=face_size,
        )
        subjects.append(Subject(str(name), photos[photo], look))
    return tuple(subjects)


# --- expressions and sensor noise on a rendered face -----------------------------------------------------------


def expression_field(
    face: Face, codes: Sequence[AUCode], amplitude: float = 1.0, settings: WarpSettings = DEFAULT_WARP
) -> tuple[DisplacementField, float]:
    """The warp that carries ``face`` to the apex of an AU combination, and the factor it was weakened by
    to stay fold-free (1.0 unless ``amplitude`` is extreme). Frames between onset and apex use the same
    field at a time weight below 1 (:meth:`DisplacementField.apply`)."""
    frame = face.frame
    moves = expression_displacements(face.landmarks, codes, amplitude)
    controls, control_moves = control_points(face.landmarks, moves, frame.iod, settings)
    return fit_field(controls, control_moves, frame.iod, face.size, settings)


class SensorNoise:
    """Gaussian-like sensor noise of ``sigma`` grey levels, fast enough for every frame.

    One random byte per pixel picks a value from a table of the normal distribution's quantiles (so the
    noise is a quantised Gaussian), added and subtracted with saturation: about 1 ms for a 320×240 colour
    frame, where drawing normal floats would take several.
    """

    def __init__(self, sigma: float = 1.2) -> None:
        if sigma < 0:
            raise UserInputError(f"noise sigma must not be negative, got {sigma}")
        from statistics import NormalDist

        self.sigma = float(sigma)
        if sigma == 0:
            values = np.zeros(256)
        else:
            distribution = NormalDist(0.0, sigma)
            values = np.array([round(distribution.inv_cdf((i + 0.5) / 256.0)) for i in range(256)])
        self._up = np.clip(values, 0, 255).astype(np.uint8)
        self._down = np.clip(-values, 0, 255).astype(np.uint8)

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of an 8-bit image."""
        if self.sigma == 0:
            return image.copy()
        draws = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
        return cv2.subtract(cv2.add(image, cv2.LUT(draws, self._up)), cv2.LUT(draws, self._down))


@dataclass(frozen=True, eq=False)
class ExpressionClip:
    """A rendered clip: its frames, the true landmarks of each frame (pixels, frames × 68 × 2), the neutral
    face it started from, the factor the expression was weakened by to stay fold-free (1.0 normally) and
    the largest landmark movement at full weight, in IOD units."""

    frames: tuple[np.ndarray, ...] = field(repr=False)
    landmarks: np.ndarray = field(repr=False)
    neutral: Face = field(repr=False)
    warp_scale: float
    peak_shift_iod: float


def render_expression_clip(
    subject: Subject,
    frame_size: tuple[int, int],
    codes: Sequence[AUCode],
    weights: Sequence[float],
    rng: np.random.Generator,
    *,
    amplitude: float = 1.0,
    noise: SensorNoise | None = None,
    pose: Pose | None = None,
) -> ExpressionClip:
    """One clip of ``subject`` making the AU combination ``codes``: frame ``i`` shows the expression at time
    weight ``weights[i]`` (0 neutral, 1 its apex; see :func:`training.synth.actions.clip_profile`) plus
    sensor noise. The head takes ``pose`` (default: a small random one drawn from ``rng``). Each frame
    costs one remap of the face region."""
    face = subject.render(frame_size, pose if pose is not None else Pose.draw(rng))
    warp, scale = expression_field(face, codes, amplitude)
    noise = noise or SensorNoise()
    frames = tuple(noise.apply(warp.apply(face.image, float(w)), rng) for w in weights)
    shift = warp.at(face.landmarks)
    landmarks = np.stack([face.landmarks + float(w) * shift for w in weights]) if len(weights) else np.zeros((0, 68, 2))
    peak = float(np.linalg.norm(shift, axis=1).max()) / face.frame.iod
    return ExpressionClip(frames, landmarks, face, scale, peak)
