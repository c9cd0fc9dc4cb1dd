"""dlib's detectors and landmark model, as the face stage uses them: the CNN face detector's second opinion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.core.landmarks import FaceBox, FaceLandmarker
from training.synth.scripted import Walker, walking_faces


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _frame(photo: str, width_px: float):
    walker = Walker(photo, (320, 240), (320, 240), width_px)
    return next(iter(walking_faces((walker,), (640, 480), 1, 30.0)))[0]


def _distance(a: FaceBox, b: FaceBox) -> float:
    return float(np.hypot((a.left + a.right - b.left - b.right) / 2, (a.top + a.bottom - b.top - b.bottom) / 2))


@pytest.mark.parametrize("photo", ["grace_hopper", "takeo"])
def test_the_cnn_confirms_a_small_face_and_moves_a_box_beside_it_onto_it(landmarker, photo):
    frame = _frame(photo, 45.0)
    box = landmarker.detect(frame, 2.0)[0]
    assert landmarker.cnn_face(frame, box) == box  # HOG's own box on the face is kept as it is
    shift = box.width // 5
    off = FaceBox(box.left + shift, box.top - shift, box.right + shift, box.bottom - shift)  # a weak box beside it
    moved = landmarker.cnn_face(frame, off)
    assert moved is not None and moved != off
    assert (moved.width, moved.height) == (box.width, box.height)  # HOG's size is kept
    assert _distance(moved, box) <= 0.2 * box.width < _distance(off, box)  # where the CNN puts the face


@pytest.mark.parametrize("photo", ["grace_hopper", "takeo"])
def test_the_cnn_rejects_an_eye_of_a_large_face_and_a_blank_wall(landmarker, photo):
    frame = _frame(photo, 220.0)
    face = landmarker.detect(frame, 1.0)[0]
    side = face.width // 4  # an eye and its brow, as an upscaled HOG search may take it for a small face
    for left in (face.left + face.width // 8, face.right - face.width // 8 - side):
        eye = FaceBox(left, face.top + face.height // 5, left + side, face.top + face.height // 5 + side)
        assert landmarker.cnn_face(frame, eye) is None
    assert landmarker.cnn_face(frame * 0 + 128, FaceBox(10, 10, 60, 60)) is None


def _identity(landmarker: FaceLandmarker, photo: str, width_px: float, blur_sigma: float = 0.0) -> np.ndarray:
    frame = _frame(photo, width_px)
    if blur_sigma:
        frame = cv2.GaussianBlur(frame, (0, 0), blur_sigma)
    box = landmarker.detect(frame, 2.0)[0]
    return landmarker.identity(frame, landmarker.landmarks(frame, box))


def test_the_identity_descriptor_tells_people_apart_through_blur_and_size(landmarker):
    sharp = {photo: _identity(landmarker, photo, 120.0) for photo in ("grace_hopper", "takeo", "tongue")}
    for photo, seen in sharp.items():
        for other in (_identity(landmarker, photo, 120.0, blur_sigma=2.5), _identity(landmarker, photo, 70.0)):
            assert np.linalg.norm(seen - other) < 0.5  # the same person (TrackingOptions.same_person)
    for a, b in (("grace_hopper", "takeo"), ("grace_hopper", "tongue"), ("takeo", "tongue")):
        assert np.linalg.norm(sharp[a] - sharp[b]) > 0.55
