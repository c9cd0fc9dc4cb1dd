"""Apex spotting.

:func:`choose_apex` is the offline chooser used where a coding sheet lacks the apex (CASME II's ``/``
cells, SAMM's ``-1``) and for clips with no apex annotation at all (SMIC). It is a frame-difference method
in the spirit of Moilanen et al. (2014):

1. Fit the 68 landmarks on the FIRST frame (the onset) and align EVERY frame with those same landmarks
   (:func:`realtime.core.align.align_face`). One transform for the whole clip means that landmark jitter, which
   is larger than a micro-expression, cannot leak into the differences; the clips are recorded with the
   head still, so the onset's crop holds the face throughout.
2. Shrink each crop to a modest grey image (112 px by default) and blur it lightly, so sensor noise and
   JPEG blocking count for little.
3. Each frame's score is its mean absolute difference from the onset, weighted towards the regions that
   move in micro-expressions (brows, eyes, nose, mouth; the jaw line is left out).
4. Smooth the score curve over time a little and return its argmax.

It needs OpenCV, dlib and NumPy only (no torch), like the rest of :mod:`realtime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.core.align import AlignmentSettings, align_face, align_largest_face
from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker

SPOTTER_VERSION = "frame-difference-1"  # part of cache keys: bump when the method changes
DEFAULT_SPOTTING_SETTINGS = AlignmentSettings(output_size=112)
EXPRESSIVE_LANDMARKS = slice(17, 68)  # brows 17–26, nose 27–35, eyes 36–47, mouth 48–67
BLUR_SIGMA_PX = 1.0
REGION_SIGMA = 0.07  # width of each landmark's weight blob, as a fraction of the crop side
BASE_WEIGHT = 0.05  # the rest of the crop still counts a little
DEFAULT_SMOOTH_SIGMA = 1.0  # frames


@dataclass(frozen=True)
class ApexChoice:
    """The spotted apex.

    ``index`` points into the sequence that was given (0 = its first frame); ``curve`` holds each frame's
    weighted mean absolute difference from the first frame (grey levels), ``smoothed`` the same after
    temporal smoothing (its argmax is ``index``); ``face_detected`` is False when no face was found on the
    first frame and the whole frame was taken as the face (already-cropped datasets).
    """

    index: int
    curve: tuple[float, ...]
    smoothed: tuple[float, ...]
    face_detected: bool


def _load(frame: np.ndarray | Path | str) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8:
            raise UserInputError(f"expected 8-bit frames, got dtype {frame.dtype}")
        return frame
    image = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserInputError(f"cannot read image {frame}")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    return image


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3:
        image = image[:, :, 0]
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), BLUR_SIGMA_PX)


def region_weights(landmarks: np.ndarray, size: int) -> np.ndarray:
    """A size×size weight map that peaks on the expressive landmarks (in crop pixels), summing to one."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    sigma = REGION_SIGMA * size
    weights = np.zeros((size, size), np.float32)
    for x, y in np.asarray(landmarks, np.float32)[EXPRESSIVE_LANDMARKS]:
        weights = np.maximum(weights, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    weights += BASE_WEIGHT
    return weights / weights.sum()


def smooth_curve(curve: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time with the ends held (sigma in frames; 0 leaves the curve as is)."""
    if sigma <= 0 or len(curve) < 3:
        return curve.astype(np.float64)
    radius = max(1, round(3 * sigma))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    padded = np.pad(curve.astype(np.float64), radius, mode="edge")
    return np.convolve(padded, taps / taps.sum(), mode="valid")


def choose_apex(
    frames: Sequence[np.ndarray] | Sequence[Path],
    landmarker: FaceLandmarker,
    settings: AlignmentSettings | None = None,
    smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
) -> ApexChoice:
    """Pick the apex of a clip (onset … offset) by frame differences from the onset.

    ``frames`` are BGR/grey uint8 arrays or image paths (read one at a time, so long clips of large
    frames stay cheap in memory). ``settings`` size the aligned crop the differences are taken on
    (default 112 px). A flat curve (a clip without motion) gives the middle frame.
    """
    if len(frames) == 0:
        raise UserInputError("cannot choose an apex from an empty clip")
    settings = settings or DEFAULT_SPOTTING_SETTINGS
    first = _load(frames[0])
    located = align_largest_face(first, landmarker, settings, whole_image_fallback=True)
    assert located is not None  # the whole-image fallback always yields a face
    landmarks = located.landmarks
    weights = region_weights(located.aligned.landmarks, settings.output_size)
    onset = _grey(located.aligned.image)

    curve = np.zeros(len(frames), np.float64)
    for i in range(1, len(frames)):
        image = _load(frames[i])
        if image.shape[:2] != first.shape[:2]:
            raise UserInputError(
                f"frame {frames[i] if not isinstance(frames[i], np.ndarray) else i} is "
                f"{image.shape[1]}×{image.shape[0]}, the clip's first frame {first.shape[1]}×{first.shape[0]}"
            )
        aligned = _grey(align_face(image, landmarks, settings).image)
        curve[i] = float((np.abs(aligned - onset) * weights).sum())
    smoothed = smooth_curve(curve, smooth_sigma)
    index = int(np.argmax(smoothed)) if smoothed.max() > 1e-9 else len(frames) // 2
    return ApexChoice(
        index=index,
        curve=tuple(float(v) for v in curve),
        smoothed=tuple(float(v) for v in smoothed),
        face_detected=not located.whole_image_fallback,
    )
