"""dlib face detection (HOG, and its CNN detector as a second opinion) and 68-point landmark fitting.

The 68-landmark model and the CNN face detector ship in the PyPI package ``face-recognition-models``. We only
locate their data files with :func:`importlib.util.find_spec`; importing that package would pull in
``pkg_resources``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from realtime.core.errors import UserInputError

LANDMARK_MODEL_PACKAGE = "face_recognition_models"
LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_MODEL_FILE = "mmod_human_face_detector.dat"
IDENTITY_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
N_LANDMARKS = 68
CNN_FACE_PX = 85  # a face is scaled to this width for the CNN check (its window is about 80 px)
CNN_CONTEXT = 1.5  # the CNN check's patch is this many face widths wide (about 50 ms on one core)
CNN_SAME_PLACE = 0.15  # the CNN's face centre this close (fraction of the width) to HOG's box: the box is kept


def _packaged_model(file: str, what: str) -> Path:
    spec = importlib.util.find_spec(LANDMARK_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            f"the {what} is missing: install the package face-recognition-models "
            "(pip install face-recognition-models==0.3.0)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / file
        if path.is_file():
            return path
    raise UserInputError(f"{file} not found inside the installed {LANDMARK_MODEL_PACKAGE}")


def landmark_model_path() -> Path:
    """Path of ``shape_predictor_68_face_landmarks.dat`` inside the installed face-recognition-models."""
    return _packaged_model(LANDMARK_MODEL_FILE, "68-landmark model")


def cnn_model_path() -> Path:
    """Path of dlib's CNN face detector (``mmod_human_face_detector.dat``) inside face-recognition-models."""
    return _packaged_model(CNN_MODEL_FILE, "CNN face detector")


def identity_model_path() -> Path:
    """Path of dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) inside
    face-recognition-models."""
    return _packaged_model(IDENTITY_MODEL_FILE, "face-recognition model")


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face rectangle in pixel coordinates of the full frame (right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    @classmethod
    def whole_image(cls, image: np.ndarray) -> FaceBox:
        """The full frame as a face box: the fallback for images that are already face crops."""
        return cls(0, 0, int(image.shape[1]), int(image.shape[0]))

    @classmethod
    def around_points(cls, points: np.ndarray) -> FaceBox:
        """The tight box around landmark points (used to track a face from its last landmarks)."""
        x0, y0 = np.floor(points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(points.max(axis=0)).astype(int)
        return cls(int(x0), int(y0), int(x1) + 1, int(y1) + 1)


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit single-channel view of a BGR, BGRA or grey frame (dlib fits landmarks on intensity)."""
    if image.dtype != np.uint8:
        raise UserInputError(f"expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise UserInputError(f"expected a grey, BGR or BGRA image, got shape {image.shape}")


def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
    """The grey frame HOG searches: area-averaged down, linearly up, as it is at 1."""
    if scale == 1.0:
        return gray
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)


def _frame_box(rect: dlib.rectangle, scale: float) -> FaceBox:
    """A detection on the resized frame as a box in the full frame's pixels."""
    return FaceBox(
        round(rect.left() / scale), round(rect.top() / scale), round(rect.right() / scale), round(rect.bottom() / scale)
    )


class FaceLandmarker:
    """Finds faces with dlib's HOG detector and fits the 68 landmarks.

    Detection runs on a copy of the frame downscaled so that its width is at most ``detect_width`` pixels
    (HOG finds faces down to about 80 px, so a 320 px copy of a 640×480 webcam frame is plenty and about
    four times cheaper); landmarks are always fitted on the full-resolution frame.
    """

    def __init__(self, model_path: Path | None = None, detect_width: int = 320, upsample: int = 0) -> None:
        path = Path(model_path) if model_path is not None else landmark_model_path()
        if not path.is_file():
            raise UserInputError(f"landmark model not found: {path}")
        self.model_path = path
        self.detect_width = int(detect_width)
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self._cnn: dlib.cnn_face_detection_model_v1 | None = None  # loaded at its first use
        self._identity: dlib.face_recognition_model_v1 | None = None  # loaded at its first use

    def detect(self, image: np.ndarray, scale: float | None = None) -> list[FaceBox]:
        """All faces in the frame, largest first, in full-frame pixel coordinates.

        ``scale`` resizes the image HOG runs on (default: down to ``detect_width``); above 1 it finds faces
        smaller than HOG's 80 px window (2 finds faces of 40 px)."""
        gray = to_gray(image)
        if scale is None:
            scale = min(1.0, self.detect_width / gray.shape[1]) if self.detect_width > 0 else 1.0
        boxes = [_frame_box(r, scale) for r in self._detector(_resized(gray, scale), self.upsample)]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def detect_scored(self, image: np.ndarray, scale: float, min_score: float) -> list[tuple[FaceBox, float]]:
        """Like :meth:`detect` at ``scale``, with each face's HOG score, down to ``min_score`` (dlib's own
        threshold is 0; a small, blurred or compressed face often scores just under it)."""
        rects, scores, _ = self._detector.run(_resized(to_gray(image), scale), self.upsample, min_score)
        found = [(_frame_box(r, scale), float(score)) for r, score in zip(rects, scores, strict=True)]
        return sorted(found, key=lambda item: item[0].area, reverse=True)

    def cnn_face(self, image: np.ndarray, box: FaceBox) -> FaceBox | None:
        """The face dlib's CNN face detector (MMOD) sees at ``box``, or None: a second opinion for a box only an
        upscaled HOG search found. Checked in the box's own region, scaled so that the box is ``CNN_FACE_PX``
        wide (about 50 ms on one core, so it is asked only now and then); a face there of 0.6–1.6 times the
        box's size, centred within a third of its width, confirms it. The box returned is ``box`` itself,
        or, when the CNN's face is centred more than ``CNN_SAME_PLACE`` of its width away, ``box`` moved onto
        it: a weak HOG box can sit off the face, while the landmark model fits best in HOG's own box, size
        included (on the training photos the CNN's face is within 0.13 widths of HOG's sure boxes, 5–95 %,
        and 0.94–1.13 times as wide). There the CNN confirmed every real face HOG found in small-face clips
        (40–80 px, compressed; also grey, low-contrast copies) and none of the boxes HOG put on a part of a
        larger face."""
        if self._cnn is None:
            self._cnn = dlib.cnn_face_detection_model_v1(str(cnn_model_path()))
        side = max(box.width, 1)
        scale = CNN_FACE_PX / side
        out = round(CNN_CONTEXT * CNN_FACE_PX)
        cx, cy = (box.left + box.right) / 2.0, (box.top + box.bottom) / 2.0
        matrix = np.array([[scale, 0.0, out / 2.0 - cx * scale], [0.0, scale, out / 2.0 - cy * scale]])
        patch = cv2.warpAffine(
            to_gray(image), matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        for found in self._cnn(patch, 0):
            rect = found.rect
            dx = ((rect.left() + rect.right()) / 2.0 - out / 2.0) / scale
            dy = ((rect.top() + rect.bottom()) / 2.0 - out / 2.0) / scale
            off = max(abs(dx), abs(dy)) / side
            if off <= 0.35 and 0.6 <= rect.width() / CNN_FACE_PX <= 1.6:
                if off <= CNN_SAME_PLACE:
                    return box
                return FaceBox(box.left + round(dx), box.top + round(dy), box.right + round(dx), box.bottom + round(dy))
        return None

    def identity(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Who the face at ``landmarks`` (68, frame pixels) is: dlib's face-recognition ResNet's 128-number
        descriptor of the face aligned at 150 px (float32). Two views of one person lie closer than about 0.6
        (Euclidean), of two people farther; it holds through blur, lighting and size, where a grey template
        does not. About 60 ms on one core (the model loads at its first use), so it is asked only to tell
        whether a face that returns is one that was lost."""
        if self._identity is None:
            self._identity = dlib.face_recognition_model_v1(str(identity_model_path()))
        box = FaceBox.around_points(np.asarray(landmarks))
        shape = dlib.full_object_detection(
            dlib.rectangle(box.left, box.top, box.right, box.bottom),
            [dlib.point(round(float(x)), round(float(y))) for x, y in landmarks],
        )
        gray = to_gray(image)
        chip = dlib.get_face_chip(np.dstack([gray, gray, gray]), shape, size=150, padding=0.25)
        return np.asarray(self._identity.compute_face_descriptor(chip), np.float32)

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 68 landmarks (x, y) as a float32 array of shape (68, 2), in full-frame pixels."""
        gray = to_gray(image)
        shape = self._predictor(gray, dlib.rectangle(box.left, box.top, box.right, box.bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


class LazyLandmarker:
    """Hands out the given landmarker, or creates dlib's on first use: loading the model takes about a
    second, and a fully cached data set or an apex read from the sheet never needs it."""

    def __init__(self, landmarker: FaceLandmarker | None = None) -> None:
        self._landmarker = landmarker

    def get(self) -> FaceLandmarker:
        if self._landmarker is None:
            self._landmarker = FaceLandmarker()
        return self._landmarker
