"""Spotting: how wrong is the measured cell motion? The learned spotter's measured motion of each of its cells
against the generator's exact motion of the same patch of skin, on development clips (training photos only).

Stop 29 found that the learned spotter's features find 79 % of the micro-expressions' apexes when fed the
generator's exact cell motion (``spotting_exact_cells_bench.py``, apex rule) and 58 % with the motion it measures:
the measurement is the loss. This bench says how large the measurement's error is and lets each suspect be
switched off. For each clip it runs the stream's face stage and the learned spotter (recording its cell motion
and the crop matrix of every frame, :func:`training.spotting.run_clip`) and weights the generator's exact own
motion (head pose removed exactly) over each measured cell. ``--weighting crop`` (the default, stop 30): every
crop pixel of the cell is taken back to the frame by that frame's crop matrix and onto the skin by the mesh
under that frame's head pose, and weighted by the structure tensor of the spotter's own reference crop, as its
Lucas–Kanade step weights it. ``lk`` and ``area`` (stop 29) map the cell's box to the neutral face by a similarity
fit of the landmarks instead and weight by the neutral frame's structure tensor, or by area. Both are compared
as the features see them: the contrast u(t) − (u(t−k) + u(t+k))/2 at k = 2 frames (67 ms), the exact motion first
high-passed by the same running average as the spotter's reference face. It prints, per part of the face, the
exact motion's spread (the face's own motion and the events), the measured-minus-exact residual's spread and
their correlation.

At stop 30, its four base clips (crop weighting, 40 seconds; residual sd px, correlation in brackets): as made
0.059 (0.53); without compression, so written as Motion JPEG, 0.057 (0.56); ``--lossless`` as well, 0.049
(0.59); also without sensor noise 0.042 (0.64); also without lighting, exposure, white balance and motion blur
0.036 (0.69); also without head sway 0.033 (0.71); the face's own motion alone 0.028 (0.69), 0.034 (0.62) through
Motion JPEG. The face's own motion spreads 0.054 px (0.040 alone). The measured motion's frame-to-frame noise is
only 0.009-0.024 px: the error is slow and per cell, so to the features it looks like movement
(``weights/SPOTTER.md``). The ``lk`` weighting gives the same figures (stop 29: 0.059 as made), so the landmark
fit was not what made the error.

    .venv/bin/python benchmarks/spotting_measurement_bench.py [--clips 4] [--without NUISANCE ...]
        [--lossless] [--weighting crop|lk|area] [--json runs/spotting_measurement_bench.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from spotting_bench import DEV_PHOTOS, DEV_SEED, groups_per_photo  # noqa: E402
from spotting_bound_bench import SAMPLES_PER_CELL, _mean_motion  # noqa: E402

from realtime.stages.spotter import SpotSignal, SpotterOptions  # noqa: E402
from realtime.stages.spotter.learned import FACE_PARTS  # noqa: E402
from training.spotting import RecordingSpotter, run_clip  # noqa: E402
from training.synth.mesh import barycentric  # noqa: E402
from training.synth.realistic import NUISANCES, RealisticClipSpec, RealisticRenderer  # noqa: E402

CONTRAST_FRAMES = 2  # k of the compared contrast (67 ms at 30 fps)
LK_SAMPLES = 12  # samples a side of a cell for the Lucas-Kanade weighting


class GeometrySpotter(RecordingSpotter):
    """The recording spotter, also keeping where its cells lie: each crop pixel's cell number and the landmarks
    in the crop when the cells were laid out, every frame's crop matrix (frame → crop) and the gradients of its
    first Lucas–Kanade step (a diagnostic reads the base class's internals on purpose)."""

    def __init__(self, face_id: int, options: SpotterOptions | None = None) -> None:
        super().__init__(face_id, options)
        self.crop_matrices: dict[int, np.ndarray] = {}
        self.first_gradients: tuple[np.ndarray, np.ndarray] | None = None
        self._crop_matrix = np.eye(3)

    def _setup_cells(self) -> None:
        super()._setup_cells()
        points = self._template @ self._fit[:, :2].T + self._fit[:, 2]
        matrix = self._last_matrix
        self.crop_landmarks = points @ matrix[:2, :2].T + matrix[:2, 2]
        self.cell_labels = self._cells.reshape(self._settings.output_size, self._settings.output_size).copy()

    def _crop(self, gray: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        self._crop_matrix = matrix.copy()  # the last crop of a frame is the one its motion is measured on
        return super()._crop(gray, matrix)

    def _cell_motion(self, face: np.ndarray) -> np.ndarray:
        motion = super()._cell_motion(face)
        if self.first_gradients is None:
            self.first_gradients = tuple(g.copy() for g in self._gradients)
        return motion

    def update(self, frame_index: int, t_ms: float, gray: np.ndarray, landmarks: np.ndarray) -> SpotSignal:
        signal = super().update(frame_index, t_ms, gray, landmarks)
        self.crop_matrices[frame_index] = self._crop_matrix
        return signal


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) with target ≈ s R source + t, least squares (Umeyama without reflection)."""
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mean_s, target - mean_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    rotation = u @ np.diag([1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    scale = float(sigma.sum() / (a**2).sum())
    return scale, rotation, mean_t - scale * rotation @ mean_s


def lk_weighted(
    own: np.ndarray, renderer: RealisticRenderer, centres: np.ndarray, half: float, blur: float
) -> np.ndarray:
    """Each cell's exact motion (T×K×2, frame px) as a perfect Lucas–Kanade step sees it: (Σ G)⁻¹ Σ G u over
    the cell's box, G the structure tensor of the neutral frame blurred as the crop is."""
    gray = cv2.GaussianBlur(cv2.cvtColor(renderer.image, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), max(blur, 0.3))
    gx, gy = np.gradient(gray, axis=1), np.gradient(gray, axis=0)
    steps = ((np.arange(LK_SAMPLES) + 0.5) / LK_SAMPLES) * 2.0 - 1.0
    dx, dy = np.meshgrid(steps * half, steps * half)
    offsets = np.stack([dx.ravel(), dy.ravel()], axis=1)
    points = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    x = np.clip(np.round(points[:, 0]).astype(int), 0, gray.shape[1] - 1)
    y = np.clip(np.round(points[:, 1]).astype(int), 0, gray.shape[0] - 1)
    cells, samples = len(centres), len(offsets)
    a, b, c = ((v[y, x]).reshape(cells, samples) for v in (gx * gx, gx * gy, gy * gy))
    vertices, weights = barycentric(points, renderer.mesh.source, renderer.mesh.triangles)
    moved = np.einsum("pk,tpkc->tpc", weights, own[:, vertices]).reshape(len(own), cells, samples, 2)
    p = (a * moved[..., 0] + b * moved[..., 1]).sum(axis=-1)
    q = (b * moved[..., 0] + c * moved[..., 1]).sum(axis=-1)
    sa, sb, sc = a.sum(axis=-1), b.sum(axis=-1), c.sum(axis=-1)
    det = sa * sc - sb * sb + 1e-9
    return np.stack([(sc * p - sb * q) / det, (sa * q - sb * p) / det], axis=-1)


def crop_weighted(
    own: np.ndarray, rest: np.ndarray, triangles: np.ndarray, spotter: GeometrySpotter, frames: np.ndarray
) -> np.ndarray:
    """Each cell's exact motion (len(frames)×K×2, crop px) weighted exactly as the spotter's Lucas–Kanade step
    weights it: on each frame, every crop pixel of the cell is taken back to the frame by the spotter's own crop
    matrix, to the patch of skin there by the mesh's ``triangles`` over the neutral face under that frame's head
    pose (``rest``), and weighted by the structure tensor of the spotter's reference crop (its first
    gradients). ``own`` is every vertex's own movement (frame px); no landmark fit."""
    labels = spotter.cell_labels
    gx, gy = spotter.first_gradients
    inside = np.flatnonzero(labels.ravel() >= 0)
    cells = labels.ravel()[inside]
    ys, xs = np.divmod(inside, labels.shape[1])
    crop_points = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
    a, b, c = (v.ravel()[inside].astype(np.float64) for v in (gx * gx, gx * gy, gy * gy))
    n = int(labels.max()) + 1
    sa, sb, sc = (np.bincount(cells, weights=v, minlength=n) for v in (a, b, c))
    det = sa * sc - sb * sb + 1e-9
    out = np.zeros((len(frames), n, 2))
    for row, t in enumerate(frames):
        matrix = spotter.crop_matrices[int(t)]
        points = crop_points @ np.linalg.inv(matrix).T
        vertices, weights = barycentric(points[:, :2], rest[t], triangles)
        moved = np.einsum("pk,pkc->pc", weights, own[t, vertices])
        p = np.bincount(cells, weights=a * moved[:, 0] + b * moved[:, 1], minlength=n)
        q = np.bincount(cells, weights=b * moved[:, 0] + c * moved[:, 1], minlength=n)
        crop_px = math.sqrt(abs(np.linalg.det(matrix[:2, :2])))  # frame px → crop px on this frame
        out[row] = crop_px * np.stack([(sc * p - sb * q) / det, (sa * q - sb * p) / det], axis=-1)
    return out


def high_pass(motion: np.ndarray, fps: float, reference_ms: float) -> np.ndarray:
    """The motion against a running average of itself, as the spotter's reference face follows the face."""
    alpha = 1.0 - math.exp(-(1000.0 / fps) / reference_ms)
    reference = motion[0].copy()
    out = np.zeros_like(motion)
    for t in range(len(motion)):
        out[t] = motion[t] - reference
        reference += alpha * (motion[t] - reference)
    return out


def contrast(motion: np.ndarray, k: int = CONTRAST_FRAMES) -> np.ndarray:
    return motion[k:-k] - 0.5 * (motion[: -2 * k] + motion[2 * k :])


def compare_clip(job: tuple[str, RealisticClipSpec, str, bool]) -> dict:
    """One clip's per-part exact spread, residual spread and correlation (see the module's docstring)."""
    group, spec, weighting, lossless = job
    _, spotters = run_clip(("realistic", spec), GeometrySpotter, lossless)
    spotter, recording = max(((s, s.recording()) for s in spotters), key=lambda pair: len(pair[1].frames))
    renderer = RealisticRenderer(spec)
    scale, rotation, shift = similarity(renderer.neutral, spotter.crop_landmarks)  # crop ≈ s R neutral + t
    labels = spotter.cell_labels
    cell_px = labels.shape[0] // SpotterOptions().grid
    centres = np.array([np.argwhere(labels == k)[:, ::-1].mean(axis=0) + 0.5 for k in range(labels.max() + 1)])
    centres = (centres - shift) @ rotation / scale  # crop → neutral frame pixels
    still = np.zeros((spec.n_frames, len(renderer.mesh.face_points), 2))
    shift_px = renderer.iod * spec.shift_iod
    rest = renderer.mesh.project(still, spec.yaw_deg, spec.pitch_deg, spec.roll_deg, spec.scale, shift_px, spec.pan_px)
    own = renderer.vertices - rest
    half = cell_px / 2.0 / scale
    if weighting == "crop":
        exact = crop_weighted(own, rest, renderer.mesh.triangles, spotter, recording.frames)
    else:
        if weighting == "lk":
            exact = lk_weighted(own, renderer, centres, half, SpotterOptions().blur_px / scale)
        else:
            exact = _mean_motion(own, renderer.mesh, centres, np.full(2, half), SAMPLES_PER_CELL)
        crop_points = spotter.crop_landmarks
        crop_iod = float(np.linalg.norm(crop_points[36:42].mean(axis=0) - crop_points[42:48].mean(axis=0)))
        exact = exact[recording.frames] / renderer.iod * crop_iod
    exact = high_pass(exact - np.median(exact, axis=1, keepdims=True), spec.fps, SpotterOptions().reference_ms)
    true, measured = contrast(exact), contrast(recording.motion)
    noise = recording.motion[1:-1] - 0.5 * (recording.motion[:-2] + recording.motion[2:])
    out = {"group": group, "clip": spec.name, "photo": Path(spec.photo).stem, "parts": {}}
    out["frame_noise_px"] = float(np.sqrt(np.median((noise - np.median(noise, axis=1, keepdims=True)) ** 2)))
    for name, cells in zip(FACE_PARTS, recording.part_cells, strict=True):
        if len(cells):
            e, m = true[:, cells].ravel(), measured[:, cells].ravel()
            gain = float((e * m).sum() / ((e * e).sum() + 1e-12))
            out["parts"][name] = {
                "exact_sd_px": float(e.std()),
                "residual_sd_px": float((m - gain * e).std()),
                "correlation": float(np.corrcoef(e, m)[0, 1]),
                "gain": gain,
            }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="base-group clips compared (spread over the photos)")
    parser.add_argument(
        "--without", nargs="+", default=[], choices=sorted(NUISANCES), metavar="NUISANCE",
        help=f"leave these nuisances out of the clips (which one makes the error?): any of {', '.join(NUISANCES)}",
    )  # fmt: skip
    parser.add_argument(
        "--weighting", choices=("crop", "lk", "area"), default="crop", help="how the exact motion is averaged"
    )
    parser.add_argument(
        "--lossless",
        action="store_true",
        help="with --without compression, measure the rendered frames themselves instead of Motion JPEG",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_measurement_bench.json")
    args = parser.parse_args(argv)
    if args.workers < 1 or not 1 <= args.clips <= 50:
        print("spotting_measurement_bench: --workers must be at least 1 and --clips 1-50", file=sys.stderr)
        return 2
    if args.lossless and "compression" not in args.without:
        print("spotting_measurement_bench: --lossless needs --without compression (H.264 is lossy)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    groups = groups_per_photo(DEV_PHOTOS, False, 12.0, DEV_SEED, frozenset(args.without))
    base = [spec for group, spec in groups if group == "base"]
    step = max(1, len(base) // args.clips)
    jobs = [("base", spec, args.weighting, args.lossless) for spec in base[::step][: args.clips]]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(compare_clip, jobs))
    print(
        f"\nmeasured against exact cell motion ({args.weighting} weighting), contrast at {CONTRAST_FRAMES} frames, "
        f"{len(rows)} base clips{', without ' + ', '.join(args.without) if args.without else ''} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    print(f"  {'part':<8} {'exact sd px':>11} {'residual sd px':>14} {'correlation':>11}")
    summary = {}
    for name in FACE_PARTS:
        values = [row["parts"][name] for row in rows if name in row["parts"]]
        if values:
            summary[name] = {key: float(np.mean([v[key] for v in values])) for key in values[0]}
            s = summary[name]
            print(f"  {name:<8} {s['exact_sd_px']:>11.3f} {s['residual_sd_px']:>14.3f} {s['correlation']:>11.2f}")
    overall = {
        key: float(np.mean([s[key] for s in summary.values()]))
        for key in ("exact_sd_px", "residual_sd_px", "correlation")
    }
    noise = float(np.median([row["frame_noise_px"] for row in rows]))
    print(
        f"  {'mean':<8} {overall['exact_sd_px']:>11.3f} {overall['residual_sd_px']:>14.3f} "
        f"{overall['correlation']:>11.2f}\n  frame-to-frame noise of the measured motion: {noise:.3f} px"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    facts = {"command": " ".join(sys.argv), "without": args.without, "weighting": args.weighting}
    args.json.write_text(json.dumps({**facts, "overall": overall, "parts": summary, "clips": rows}, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
