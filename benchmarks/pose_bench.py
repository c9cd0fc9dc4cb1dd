"""How good the head pose (``pose_Rx``/``pose_Ry``/``pose_Rz``) is, on head turns with known angles.

1. Projected head turns: the generic 3D face (:data:`realtime.pose.GENERIC_FACE_3D`) at random known angles
   (pitch ±20°, yaw ±30°, roll ±20°, 8–14 IOD from the camera) through the assumed camera, with Gaussian
   landmark noise of 0, 1.5 and 3 % of the IOD. This measures the solver and the noise, not the model: a
   real face differs from the generic one, which the next test shows for roll.
2. A real face (Grace Hopper, a shipped photo that is not held out) rotated in the image by known angles:
   dlib's landmarks, then the change of ``pose_Rz`` against the rotation (real faces, roll only: the
   generator on this branch renders no out-of-plane turns).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pose_bench.py [--turns 500]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.pose import PoseEstimator, project  # noqa: E402
from realtime.tracking import FaceTracker  # noqa: E402
from training.synth.photos import photo_path  # noqa: E402

SIZE = (640, 480)


def projected(turns: int, noise_iod: float, rng: np.random.Generator) -> np.ndarray:
    estimator, errors = PoseEstimator(), []
    for _ in range(turns):
        true = np.radians([rng.uniform(-20, 20), rng.uniform(-30, 30), rng.uniform(-20, 20)])
        points = project(*true, (rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(8, 14)), SIZE)
        iod = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
        pose = estimator.estimate(points + rng.normal(0.0, noise_iod * iod, points.shape), SIZE)
        errors.append(np.degrees(np.abs(np.array([pose.pitch_rad, pose.yaw_rad, pose.roll_rad]) - true)))
    return np.array(errors)


def real_roll(angles: list[float]) -> list[tuple[float, float]]:
    image = cv2.imread(str(photo_path("grace_hopper")))
    size = (image.shape[1], image.shape[0])
    estimator = PoseEstimator()
    base = estimator.estimate(FaceTracker().process(image).faces[0].landmarks, size).roll_rad
    out = []
    for angle in angles:
        matrix = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), angle, 1.0)
        faces = FaceTracker().process(cv2.warpAffine(image, matrix, size)).faces
        roll = estimator.estimate(faces[0].landmarks, size).roll_rad
        out.append((angle, math.degrees(roll - base) + angle))  # OpenCV's + is counter-clockwise: roll falls
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"projected head turns ({args.turns} each): mean / 95th percentile absolute error, degrees")
    for noise in (0.0, 0.015, 0.03):
        errors = projected(args.turns, noise, rng)
        mean, p95 = errors.mean(axis=0), np.percentile(errors, 95, axis=0)
        print(
            f"  landmark noise {100 * noise:.1f} % IOD: pitch {mean[0]:.2f} / {p95[0]:.2f}, "
            f"yaw {mean[1]:.2f} / {p95[1]:.2f}, roll {mean[2]:.2f} / {p95[2]:.2f}"
        )
    rolls = real_roll([-20.0, -15.0, -10.0, -5.0, 5.0, 10.0, 15.0, 20.0])
    worst = max(abs(e) for _, e in rolls)
    mean = sum(abs(e) for _, e in rolls) / len(rolls)
    print(f"real face rotated in the image (roll -20..20 deg): mean error {mean:.2f} deg, worst {worst:.2f} deg")
    print("  " + ", ".join(f"{a:+.0f}: {e:+.2f}" for a, e in rolls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
