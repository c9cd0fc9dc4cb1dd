"""The paper's face alignment (Xu, Zheng, Yang 2021, eq. 1–2), the one implementation in the project.

1. θ = arctan((y2 − y1) / (x2 − x1)) from the inner eye corners, landmarks 39 and 42 (0-based), eq. 1.
2. Rotate the image about the midpoint of those corners by θ so that the eyes are level, eq. 2:
   x' = (x − cx)·cosθ + (y − cy)·sinθ + cx,  y' = −(x − cx)·sinθ + (y − cy)·cosθ + cy.
3. Crop a square around the rotated landmarks (brows to chin, jaw to jaw, plus a margin) and resize it to
   the model input.

Rotation, crop and resize are folded into one affine matrix and applied with a single ``cv2.warpAffine``:
one resampling instead of three, which is both faster and sharper. The training preprocessing and the
streaming recognizer both call :func:`align_face`, so a frame gives a bit-identical crop in either path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.landmarks import N_LANDMARKS, FaceBox, FaceLandmarker

LEFT_INNER_EYE_CORNER = 39  # the inner corner of the eye on the image's left (the subject's right eye)
RIGHT_INNER_EYE_CORNER = 42
BROWS = slice(17, 27)
CHIN = 8

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


@dataclass(frozen=True)
class AlignmentSettings:
    """How a face is cropped after levelling the eyes.

    ``margin`` widens the landmark box by that fraction of its side on every side, ``forehead`` adds that
    fraction of the box height above the brows (brow raises, AU1/AU2, happen there).
    """

    output_size: int = 224
    margin: float = 0.08
    forehead: float = 0.12
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        if self.output_size < 8:
            raise UserInputError(f"alignment output size must be at least 8 px, got {self.output_size}")
        if self.interpolation not in _INTERPOLATION:
            raise UserInputError(
                f"unknown interpolation {self.interpolation!r}; choose one of {sorted(_INTERPOLATION)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """A short stable digest of the settings (cache keys, model metadata)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AlignedFace:
    """A face after alignment.

    ``image`` is ``output_size``² with the input's channels; ``matrix`` is the 2×3 affine map from frame
    pixels to crop pixels; ``landmarks`` are the 68 points in crop pixels; ``angle_deg`` is θ.
    """

    image: np.ndarray
    angle_deg: float
    matrix: np.ndarray
    landmarks: np.ndarray


def eye_angle_deg(landmarks: np.ndarray) -> float:
    """θ of eq. 1 in degrees: the slope of the line through the inner eye corners."""
    (x1, y1), (x2, y2) = landmarks[LEFT_INNER_EYE_CORNER], landmarks[RIGHT_INNER_EYE_CORNER]
    return float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2):
        raise UserInputError(f"expected 68 landmarks of shape (68, 2), got {points.shape}")
    return points


def alignment_matrix(landmarks: np.ndarray, settings: AlignmentSettings) -> np.ndarray:
    """The 2×3 affine map (frame → crop) that levels the eyes, crops the face and resizes it."""
    points = _check_landmarks(landmarks)
    angle = eye_angle_deg(points)
    cx, cy = (points[LEFT_INNER_EYE_CORNER] + points[RIGHT_INNER_EYE_CORNER]) / 2.0
    rotation = np.vstack([cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0), [0.0, 0.0, 1.0]])

    rotated = points @ rotation[:2, :2].T + rotation[:2, 2]
    left, right = rotated[:, 0].min(), rotated[:, 0].max()
    top, bottom = rotated[BROWS, 1].min(), rotated[CHIN, 1]
    bottom = max(bottom, rotated[:, 1].max())
    top -= settings.forehead * (bottom - top)
    side = max(right - left, bottom - top) * (1.0 + 2.0 * settings.margin)
    if not np.isfinite(side) or side < 2.0:
        raise UserInputError("landmarks span less than two pixels; cannot align this face")
    centre_x, centre_y = (left + right) / 2.0, (top + bottom) / 2.0

    scale = settings.output_size / side
    crop = np.array(
        [
            [scale, 0.0, settings.output_size / 2.0 - scale * centre_x],
            [0.0, scale, settings.output_size / 2.0 - scale * centre_y],
            [0.0, 0.0, 1.0],
        ]
    )
    return (crop @ rotation)[:2]


def align_face(image: np.ndarray, landmarks: np.ndarray, settings: AlignmentSettings | None = None) -> AlignedFace:
    """Level the eyes, crop and resize the face: the crop the classifier and the spotter see."""
    settings = settings or AlignmentSettings()
    matrix = alignment_matrix(landmarks, settings)
    size = settings.output_size
    crop = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=_INTERPOLATION[settings.interpolation],
        borderMode=cv2.BORDER_REPLICATE,
    )
    points = _check_landmarks(landmarks)
    moved = (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    return AlignedFace(crop, eye_angle_deg(points), matrix.astype(np.float32), moved)


@dataclass(frozen=True)
class LocatedFace:
    """A face found in a frame: its detection box, its landmarks, whether the box is the whole-image
    fallback, and the aligned crop."""

    box: FaceBox
    landmarks: np.ndarray
    whole_image_fallback: bool
    aligned: AlignedFace


def align_largest_face(
    image: np.ndarray,
    landmarker: FaceLandmarker,
    settings: AlignmentSettings | None = None,
    whole_image_fallback: bool = True,
) -> LocatedFace | None:
    """Detect the largest face, fit its landmarks and align it.

    Dataset frames that are already face crops (CASME II's Cropped release, about 170×140 px) are often
    too tight for the HOG detector; with ``whole_image_fallback`` the whole frame is then taken as the face
    box, which is what the landmark model expects of such a crop. Returns ``None`` when no face is found
    and the fallback is off.
    """
    boxes = landmarker.detect(image)
    if boxes:
        box, fallback = boxes[0], False
    elif whole_image_fallback:
        box, fallback = FaceBox.whole_image(image), True
    else:
        return None
    points = landmarker.landmarks(image, box)
    return LocatedFace(box, points, fallback, align_face(image, points, settings))
