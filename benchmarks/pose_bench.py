"""How good the head pose (``pose_Rx``/``pose_Ry``/``pose_Rz``) is, on head turns with known angles.

1. Projected head turns: the generic 3D face (:data:`realtime.core.pose.GENERIC_FACE_3D`) at random known angles
   (pitch ±20°, yaw ±30°, roll ±20°, 8–14 IOD from the camera) through the assumed camera, with Gaussian
   landmark noise of 0, 1.5 and 3 % of the IOD. This measures the solver and the noise, not the model: a
   real face differs from the generic one, which the next test shows for roll.
2. A real face (Grace Hopper, a shipped photo that is not held out) rotated in the image by known angles:
   dlib's landmarks, then the change of ``pose_Rz`` against the rotation (real faces, roll only: the
   generator's lab set renders no out-of-plane turns).
3. ``--realistic DIR``: clips of ``python -m training synth videos --set realistic`` (head turns and sway in
   depth, with the true yaw/pitch/roll of every frame): per clip, the estimate from dlib's landmarks and
   from the generator's own true landmarks against the truth, after removing the clip's median offset (the
   photo's own pose), and the slope of estimate on truth (1 = the angles follow the truth's scale).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pose_bench.py [--turns 500] [--realistic DIR]
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

from realtime.core.pose import PoseEstimator, project  # noqa: E402
from realtime.stages.faces import FaceTracker  # noqa: E402
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


def realistic(folder: Path) -> None:
    """Estimate against the realistic generator's truth (its yaw > 0 turns the nose to image-right: ours < 0)."""
    import json

    from realtime.stages.capture import CaptureOptions, open_source

    estimator = PoseEstimator()
    for truth_path in sorted(folder.glob("clip*.json")):
        truth = json.loads(truth_path.read_text())
        head = truth["head_pose"]
        want = np.array([head["pitch_deg"], head["yaw_deg"], head["roll_deg"]]).T
        size = tuple(truth["size"])

        def angles(points, size=size) -> np.ndarray:
            pose = estimator.estimate(points, size)
            return np.degrees([pose.pitch_rad, -pose.yaw_rad, pose.roll_rad])

        source, tracker = open_source(str(folder / truth["video"]), CaptureOptions(live=False)), FaceTracker()
        dlib_rows, frames = [], []
        while (frame := source.read()) is not None:
            faces = tracker.process(frame.image).faces
            if faces:
                dlib_rows.append(angles(faces[0].landmarks))
                frames.append(frame.index)
        source.close()
        true_landmarks = np.load(truth_path.with_name(f"{truth_path.stem}_landmarks.npz"))["landmarks"]
        for name, got, rows in (
            ("dlib landmarks", np.array(dlib_rows), want[frames]),
            ("true landmarks", np.array([angles(p) for p in true_landmarks]), want),
        ):
            error = np.abs(got - rows - np.median(got - rows, axis=0))
            slope = [np.polyfit(rows[:, k], got[:, k], 1)[0] for k in range(3)]
            print(
                f"  {truth_path.stem} ({truth['photo']}, truth spans {np.ptp(rows, axis=0).round(1).tolist()} deg), "
                f"{name}: mean error pitch/yaw/roll {error.mean(axis=0).round(2).tolist()}, 95th pct "
                f"{np.percentile(error, 95, axis=0).round(2).tolist()}, slope {np.round(slope, 2).tolist()}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--realistic", type=Path, help="a folder of realistic generated clips with head pose truth")
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
    if args.realistic is not None:
        print(f"realistic generated clips in {args.realistic} (offset per clip removed):")
        realistic(args.realistic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
