"""The offline apex chooser: frame differences from the onset, on crops aligned once with its landmarks."""

import cv2
import numpy as np
import pytest

from realtime.core.apex import ApexChoice, choose_apex, smooth_curve
from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def mouth_corners(face_photo, landmarker) -> np.ndarray:
    points = landmarker.landmarks(face_photo, landmarker.detect(face_photo)[0])
    return points[[48, 54]]


@pytest.mark.parametrize(("n", "apex"), [(24, 9), (30, 21), (15, 3)])
def test_the_known_apex_of_a_warped_photo_is_found(face_photo, mouth_corners, landmarker, expression_clip, n, apex):
    frames = expression_clip(face_photo, mouth_corners, n, apex, pixels=3.0, seed=apex)
    choice = choose_apex(frames, landmarker)
    assert isinstance(choice, ApexChoice) and choice.face_detected
    assert abs(choice.index - apex) <= 1
    assert len(choice.curve) == len(choice.smoothed) == n and choice.curve[0] == 0.0
    # the curve rises to the apex and falls after it
    assert choice.smoothed[choice.index] == max(choice.smoothed)
    assert choice.smoothed[apex] > 2 * choice.smoothed[-1] and choice.curve[apex] > 2 * choice.curve[1]


def test_a_subtle_expression_beats_sensor_noise(face_photo, mouth_corners, landmarker, expression_clip):
    frames = expression_clip(face_photo, mouth_corners, 20, 12, pixels=1.0, seed=7)
    assert abs(choose_apex(frames, landmarker).index - 12) <= 1


def test_paths_give_the_same_choice_as_arrays(tmp_path, face_photo, mouth_corners, landmarker, expression_clip):
    frames = expression_clip(face_photo, mouth_corners, 12, 7)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), frame)
    assert choose_apex(paths, landmarker) == choose_apex(frames, landmarker)


def test_a_static_clip_gives_the_middle_frame(face_photo, landmarker):
    assert choose_apex([face_photo] * 5, landmarker).index == 2
    assert choose_apex([face_photo], landmarker).index == 0


def test_bad_clips_raise_user_errors(tmp_path, face_photo, landmarker):
    with pytest.raises(UserInputError, match="empty clip"):
        choose_apex([], landmarker)
    broken = tmp_path / "img2.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserInputError, match=r"img2\.jpg"):
        choose_apex([face_photo, broken], landmarker)
    with pytest.raises(UserInputError, match="first frame"):
        choose_apex([face_photo, face_photo[:100]], landmarker)


def test_smoothing_keeps_length_and_peak():
    curve = np.array([0, 1, 2, 8, 2, 1, 0], float)
    smoothed = smooth_curve(curve, 1.0)
    assert smoothed.shape == curve.shape and int(np.argmax(smoothed)) == 3
    np.testing.assert_array_equal(smooth_curve(curve, 0.0), curve)
