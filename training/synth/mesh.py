"""Head rotation in depth for a photographed face: a triangle mesh over the landmarks with a depth proxy.

A photo is flat, but a head that turns shows parallax: the nose tip swings further than the cheeks, the far
side of the face narrows, the ears and hair move against the background. :class:`FaceMesh` gets that from
one photo. Its vertices are the 68 landmarks, a few points of its own (eye centres, which carry the gaze,
forehead, cheeks, a ring around the head) and fixed points on the frame's border (the background). Each
face vertex has a depth (:func:`head_depth`, in inter-ocular distances, towards the camera: a wide
ellipsoid with the nose and lips standing out of it, :data:`LANDMARK_BUMPS_IOD`). A frame's vertex positions come from
:meth:`FaceMesh.project`: the face's own non-rigid movement is added in the face's frame, the points are
lifted to 3D (undoing a pinhole projection, so the neutral face is the photo exactly), rotated about a
pivot behind the face (yaw, pitch, roll), projected again and moved and scaled in the image.

The image is then warped piecewise-affinely from the neutral photo's triangles to the frame's
(:meth:`FaceMesh.warp`): the forward map (photo pixel → frame pixel) is linear in the vertex positions, so
it is one gather per frame on a coarse grid whose barycentric weights are computed once; the backward map
the remap needs is found by a few fixed-point steps on a coarse grid of the output and interpolated up.
Vertices land exactly where :meth:`project` says, so the frame's true landmarks are exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from training.synth.actions import MIRROR, N_LANDMARKS, FaceAxes

FOCAL_IOD = 10.0
"""The camera's focal length in inter-ocular distances (a webcam about 60 cm from the face)."""
PIVOT_IOD = (0.0, 0.5, -1.0)
"""The head's centre of rotation in the face frame (x right, y down, z towards the camera; IOD units)."""

_SIDE_BUMPS = {
    # what stands out of the head's smooth curve (IOD units): the nose most, the lips a little; the eyes sit
    # a little deeper. The jaw (0-16) and brows follow the curve.
    27: 0.07, 28: 0.14, 29: 0.22, 30: 0.3, 31: 0.14, 32: 0.2, 33: 0.24,
    36: -0.03, 37: -0.03, 38: -0.03, 39: -0.03, 40: -0.03, 41: -0.03, 17: 0.0, 18: 0.02, 19: 0.03, 20: 0.03, 21: 0.03,
    48: 0.0, 49: 0.05, 50: 0.07, 51: 0.08, 57: 0.07, 58: 0.06, 59: 0.04,
    60: 0.01, 61: 0.05, 62: 0.06, 66: 0.05, 67: 0.04,
}  # fmt: skip
HEAD_AXES_IOD = (1.9, 2.2)
"""Half-axes (x, y) of the ellipsoid the head's depth follows, centred at :data:`HEAD_CENTRE_Y_IOD`."""
HEAD_CENTRE_Y_IOD = 0.55
HEAD_DEPTH_IOD = 1.6  # how far the ellipsoid bulges towards the camera (IOD units)


def _landmark_bumps() -> np.ndarray:
    bump = np.zeros(N_LANDMARKS)
    for index, value in _SIDE_BUMPS.items():
        bump[index] = value
        bump[int(MIRROR[index])] = value
    return bump


LANDMARK_BUMPS_IOD = _landmark_bumps()
"""How far each of dlib's 68 landmarks stands out of the head's smooth curve (IOD units)."""


def head_depth(points: np.ndarray) -> np.ndarray:
    """The depth proxy (IOD units towards the camera, 0 at the face's centre) of face-frame points (N×2):
    a wide ellipsoid, so its slope stays gentle enough out to the hair for a ±15° turn not to fold the
    mesh."""
    ax, ay = HEAD_AXES_IOD
    x, y = points[:, 0] / ax, (points[:, 1] - HEAD_CENTRE_Y_IOD) / ay
    return HEAD_DEPTH_IOD * (np.sqrt(np.maximum(1.0 - x * x - y * y, 0.05)) - 1.0)


BORDER_MARGIN = 0.1
"""Extra vertices closer than this share of the frame's smaller side to its border are left out."""
N_GAZE = 2  # the two eye-centre vertices follow the gaze (indices 68 and 69)


def rotation_matrices(yaw_deg: np.ndarray, pitch_deg: np.ndarray, roll_deg: np.ndarray) -> np.ndarray:
    """Per frame, the 3×3 rotation R = roll · pitch · yaw in the face frame (x right, y down, z towards the
    camera): positive yaw turns the nose towards image-right, positive pitch tips the nose down, positive
    roll turns the face clockwise in the image."""
    y, p, r = (np.radians(np.asarray(a, dtype=np.float64)) for a in (yaw_deg, pitch_deg, roll_deg))
    n = len(y)
    out = np.zeros((n, 3, 3))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    yaw = np.zeros((n, 3, 3))
    yaw[:, 0, 0], yaw[:, 0, 2], yaw[:, 1, 1], yaw[:, 2, 0], yaw[:, 2, 2] = cy, sy, 1.0, -sy, cy
    pitch = np.zeros((n, 3, 3))
    pitch[:, 0, 0], pitch[:, 1, 1], pitch[:, 1, 2], pitch[:, 2, 1], pitch[:, 2, 2] = 1.0, cp, -sp, sp, cp
    roll = np.zeros((n, 3, 3))
    roll[:, 0, 0], roll[:, 0, 1], roll[:, 1, 0], roll[:, 1, 1], roll[:, 2, 2] = cr, -sr, sr, cr, 1.0
    out[:] = roll @ pitch @ yaw
    return out


class FaceMesh:
    """The mesh of one neutral face (``landmarks``, pixels, in an image of ``image_size``).

    ``face_points`` (M×2, face frame, IOD units) are the vertices that move with the head: the 68
    landmarks, then the two eye centres, then the extra points; ``depths`` their depth proxy. The border
    vertices only follow a camera pan. ``grid_step`` (pixels) sets the coarse grids of the warp over the
    frame, ``detail_step`` the fine ones over the face (default: at least 16 per IOD, at most 4 px).
    """

    def __init__(
        self, landmarks: np.ndarray, image_size: tuple[int, int], grid_step: int = 8, detail_step: int | None = None
    ) -> None:
        points = np.asarray(landmarks, dtype=np.float64)
        if points.shape != (N_LANDMARKS, 2):
            raise UserInputError(f"a face mesh needs 68 landmarks, got an array of shape {points.shape}")
        self.frame = FaceAxes.from_landmarks(points)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.grid_step = max(1, int(grid_step))
        width, height = self.image_size
        face = self.to_face(points)
        extra = self._extra_points(face)
        pixels = self.to_pixels(extra)
        margin = BORDER_MARGIN * min(width, height)  # a vertex near the fixed border would fold against it
        inside = (pixels.min(axis=1) > margin) & (pixels[:, 0] < width - margin) & (pixels[:, 1] < height - margin)
        inside[:N_GAZE] = True  # the eye centres lie inside the face
        self.face_points = np.concatenate([face, extra[inside]])
        self.depths = head_depth(self.face_points)
        self.depths[:N_LANDMARKS] += LANDMARK_BUMPS_IOD
        self.border = _border_points(width, height)
        self.source = np.concatenate([self.to_pixels(self.face_points), self.border])
        self.triangles = _triangulate(self.source, width, height)
        self.out_step = next(
            s for s in (self.grid_step, 8, 4, 2, 1) if s <= self.grid_step and width % s == 0 and height % s == 0
        )
        self._coarse = _grid_weights(self.source, self.triangles, (0.0, 0.0), (width, height), self.out_step)
        if detail_step is None:  # at least 16 grid steps per IOD, so that the face's small triangles are resolved
            detail_step = int(np.clip(self.frame.iod // 16.0, 1, 4))
        self._detail = None
        if detail_step < self.out_step:
            low = np.floor(self.source[: len(self.face_points)].min(axis=0) - self.frame.iod)
            high = np.ceil(self.source[: len(self.face_points)].max(axis=0) + self.frame.iod)
            low = np.maximum(low, 0.0)
            high = np.minimum(high, [width - 1, height - 1])
            self._detail = _grid_weights(self.source, self.triangles, tuple(low), tuple(high - low + 1), detail_step)
        self._out_grid: np.ndarray | None = None
        self._pixel_grid: np.ndarray | None = None

    # --- coordinates ---

    def to_face(self, pixels: np.ndarray) -> np.ndarray:
        """Image pixels (N×2) → face-frame coordinates (IOD units, origin between the eyes)."""
        return self.frame.to_face(np.asarray(pixels, dtype=np.float64) - np.array(self.frame.origin))

    def to_pixels(self, face_points: np.ndarray) -> np.ndarray:
        """Face-frame coordinates (…×2, IOD units) → image pixels."""
        return self.frame.to_pixels(face_points) + np.array(self.frame.origin)

    @staticmethod
    def _extra_points(face: np.ndarray) -> np.ndarray:
        """Eye centres, forehead, cheeks and a ring around the head (face frame)."""
        eyes = np.stack([face[36:42].mean(axis=0), face[42:48].mean(axis=0)])
        brow_top = float(face[17:27, 1].min())
        forehead = face[[17, 19, 21, 22, 24, 26]] + np.array([0.0, -0.45])
        top_x = np.linspace(-0.9, 0.9, 5)
        forehead_top = np.stack([top_x, np.full(5, brow_top - 0.7)], axis=1)
        cheeks = np.stack(
            [
                0.5 * (face[1] + face[40]),
                0.5 * (face[15] + face[47]),
                0.5 * (face[4] + face[48]),
                0.5 * (face[12] + face[54]),
            ]
        )
        centre = np.array([0.5 * (face[0, 0] + face[16, 0]), 0.5 * (brow_top + face[8, 1])])
        half_width = 0.5 * (face[16, 0] - face[0, 0]) * 1.28
        half_height = 0.5 * (face[8, 1] - brow_top) * 1.25 + 0.9
        angles = np.linspace(0.0, 2.0 * math.pi, 18, endpoint=False)
        ring = centre + np.stack([half_width * np.cos(angles), half_height * np.sin(angles)], axis=1)
        return np.concatenate([eyes, forehead, forehead_top, cheeks, ring])

    # --- motion ---

    def project(
        self,
        moves: np.ndarray,
        yaw_deg: np.ndarray,
        pitch_deg: np.ndarray,
        roll_deg: np.ndarray,
        scale: np.ndarray,
        shift_px: np.ndarray,
        pan_px: np.ndarray | None = None,
    ) -> np.ndarray:
        """Per frame (T), every vertex's image position (T×V×2): the face vertices moved by ``moves``
        (T×M×2, face frame, IOD units: the face's own movement), rotated in depth, scaled about the eyes'
        midpoint and shifted (``shift_px``, T×2); ``pan_px`` (T×2) moves everything, border included."""
        moves = np.asarray(moves, dtype=np.float64)
        n = moves.shape[0]
        moved = self.face_points[None] + moves
        z = np.broadcast_to(self.depths, moved.shape[:2])
        lift = (FOCAL_IOD - z) / FOCAL_IOD  # undo the photo's perspective
        world = np.concatenate([moved * lift[..., None], z[..., None]], axis=2)
        pivot = np.array(PIVOT_IOD)
        rotated = np.einsum("tij,tvj->tvi", rotation_matrices(yaw_deg, pitch_deg, roll_deg), world - pivot) + pivot
        image = rotated[..., :2] * (FOCAL_IOD / (FOCAL_IOD - rotated[..., 2]))[..., None]
        image = image * np.asarray(scale, dtype=np.float64).reshape(n, 1, 1)
        pixels = self.to_pixels(image) + np.asarray(shift_px, dtype=np.float64).reshape(n, 1, 2)
        border = np.broadcast_to(self.border, (n, *self.border.shape))
        out = np.concatenate([pixels, border], axis=1)
        if pan_px is not None:
            out = out + np.asarray(pan_px, dtype=np.float64).reshape(n, 1, 2)
        return out

    def min_triangle_area(self, vertices: np.ndarray) -> float:
        """The smallest signed area ratio (frame / photo) of any triangle at ``vertices`` (V×2): positive
        means the mesh did not fold."""

        def areas(v: np.ndarray) -> np.ndarray:
            a, b, c = v[self.triangles[:, 0]], v[self.triangles[:, 1]], v[self.triangles[:, 2]]
            return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

        return float((areas(np.asarray(vertices)) / areas(self.source)).min())

    # --- pixels ---

    def warp(self, image: np.ndarray, vertices: np.ndarray, iterations: int = 4) -> np.ndarray:
        """``image`` (the neutral photo frame) warped so that each mesh vertex moves to ``vertices`` (V×2)."""
        return cv2.remap(
            image, self.backward_map(vertices, iterations), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def backward_map(self, vertices: np.ndarray, iterations: int = 4) -> np.ndarray:
        """The remap map (H×W×2 float32: the source pixel of every frame pixel) of the warp to ``vertices``:
        on the coarse grid over the whole frame, then, where the face's triangles are small next to that grid,
        again on the fine grid over the face."""
        vertices = np.asarray(vertices, dtype=np.float64)
        design = np.concatenate([self.source, np.ones((len(self.source), 1))], axis=1)
        affine, *_ = np.linalg.lstsq(design, vertices, rcond=None)  # the global affine part: [x y 1] @ affine
        inverse = np.linalg.inv(affine[:2].T).astype(np.float32)
        q = self._output_grid()
        p = (q - affine[2].astype(np.float32)) @ inverse.T
        p = self._refine(self._coarse, vertices, q, p, inverse, iterations)
        # interpolate the offsets, not the positions: at the frame's edge resize holds the outer nodes' values
        offsets = np.ascontiguousarray(p - q, dtype=np.float32)
        dense = cv2.resize(offsets, self.image_size, interpolation=cv2.INTER_LINEAR) + self._pixels()
        if self._detail is not None:
            self._refine_face(dense, vertices, inverse, iterations)
        return dense

    @staticmethod
    def _forward(
        grid: tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray, int], vertices: np.ndarray
    ) -> np.ndarray:
        index, weights, shape, _, _ = grid
        v = vertices.astype(np.float32)
        forward = weights[:, 0, None] * v[index[:, 0]]
        forward += weights[:, 1, None] * v[index[:, 1]]
        forward += weights[:, 2, None] * v[index[:, 2]]
        return forward.reshape(*shape, 2)

    def _refine(
        self, grid, vertices: np.ndarray, q: np.ndarray, p: np.ndarray, inverse: np.ndarray, iterations: int
    ) -> np.ndarray:
        """Fixed-point steps p ← p + A⁻¹(q − f(p)) towards the source point ``p`` that the forward map
        ``f`` (sampled on ``grid``) takes to ``q``."""
        forward = self._forward(grid, vertices)
        origin, step = grid[3], float(grid[4])
        for _ in range(iterations):
            gx = np.ascontiguousarray((p[..., 0] - origin[0]) / step, dtype=np.float32)
            gy = np.ascontiguousarray((p[..., 1] - origin[1]) / step, dtype=np.float32)
            reached = cv2.remap(forward, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            p = p + (q - reached) @ inverse.T
        return p

    def _refine_face(self, dense: np.ndarray, vertices: np.ndarray, inverse: np.ndarray, iterations: int) -> None:
        """In place: the map over the face's box on the fine grid."""
        step = self._detail[4]
        width, height = self.image_size
        face = vertices[: len(self.face_points)]
        margin = 0.3 * self.frame.iod
        x0, y0 = (np.floor(face.min(axis=0) - margin)).astype(int)
        x1, y1 = (np.ceil(face.max(axis=0) + margin)).astype(int)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = (
            min(width, x0 + (min(width, x1) - x0) // step * step),
            min(height, y0 + (min(height, y1) - y0) // step * step),
        )
        if x1 - x0 < 2 * step or y1 - y0 < 2 * step:
            return
        ys, xs = np.mgrid[0 : (y1 - y0) // step, 0 : (x1 - x0) // step].astype(np.float32)
        q = np.stack([x0 + (xs + 0.5) * step - 0.5, y0 + (ys + 0.5) * step - 0.5], axis=-1)
        start = dense[
            np.clip(np.rint(q[..., 1]).astype(int), 0, height - 1),
            np.clip(np.rint(q[..., 0]).astype(int), 0, width - 1),
        ]
        p = self._refine(self._detail, vertices, q, start, inverse, iterations)
        offsets = np.ascontiguousarray(p - q, dtype=np.float32)
        dense[y0:y1, x0:x1] = cv2.resize(offsets, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        dense[y0:y1, x0:x1] += self._pixels()[y0:y1, x0:x1]

    def _pixels(self) -> np.ndarray:
        """Every pixel's own coordinates (H×W×2 float32)."""
        if self._pixel_grid is None:
            width, height = self.image_size
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            self._pixel_grid = np.stack([xs, ys], axis=-1)
        return self._pixel_grid

    def _output_grid(self) -> np.ndarray:
        """The coarse output grid: the centres of ``out_step``-pixel cells, which ``cv2.resize`` by that factor
        interpolates exactly back to every pixel."""
        if self._out_grid is None:
            width, height = self.image_size
            step = self.out_step
            ys, xs = np.mgrid[0 : height // step, 0 : width // step].astype(np.float32)
            self._out_grid = np.stack([(xs + 0.5) * step - 0.5, (ys + 0.5) * step - 0.5], axis=-1)
        return self._out_grid


def _border_points(width: int, height: int, per_side: int = 5) -> np.ndarray:
    """Points along the frame's border, corners included (they hold the background)."""
    xs = np.linspace(0.0, width - 1.0, per_side + 1)
    ys = np.linspace(0.0, height - 1.0, per_side + 1)
    top = np.stack([xs, np.zeros_like(xs)], axis=1)
    bottom = np.stack([xs, np.full_like(xs, height - 1.0)], axis=1)
    left = np.stack([np.zeros_like(ys[1:-1]), ys[1:-1]], axis=1)
    right = np.stack([np.full_like(ys[1:-1], width - 1.0), ys[1:-1]], axis=1)
    return np.concatenate([top, bottom, left, right])


def _triangulate(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Delaunay triangles (K×3 vertex indices) of ``points``, all of which lie inside the frame."""
    subdiv = cv2.Subdiv2D((-1, -1, width + 2, height + 2))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    corners = subdiv.getTriangleList().reshape(-1, 3, 2).astype(np.float64)
    distance = np.linalg.norm(corners[:, :, None, :] - points[None, None, :, :], axis=-1)
    nearest = distance.argmin(axis=2)
    exact = np.take_along_axis(distance, nearest[..., None], axis=2)[..., 0] < 1e-2
    triangles = nearest[exact.all(axis=1)]
    triangles = triangles[(triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2])]
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    triangles[area < 0] = triangles[area < 0][:, [0, 2, 1]]  # one orientation for all
    return triangles[np.abs(area) > 1e-6]


def barycentric(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point (N×2), the three vertex numbers of the triangle that holds it and its barycentric weights
    (N×3 each); a point outside every triangle takes the nearest one's weights, clamped to it. The renderer moves
    a pixel by these weights of its triangle's vertex moves, so they also tell how any point of the face moves."""
    a, b, c = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    v0, v1 = b - a, c - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    index = np.zeros((len(points), 3), np.int64)
    weights = np.zeros((len(points), 3))
    for start in range(0, len(points), 4096):
        chunk = points[start : start + 4096]
        d = chunk[:, None, :] - a[None]
        u = (d[..., 0] * v1[None, :, 1] - d[..., 1] * v1[None, :, 0]) / det
        v = (v0[None, :, 0] * d[..., 1] - v0[None, :, 1] * d[..., 0]) / det
        w = 1.0 - u - v
        best = np.minimum(np.minimum(u, v), w).argmax(axis=1)
        rows = np.arange(len(chunk))
        bary = np.stack([w[rows, best], u[rows, best], v[rows, best]], axis=1)
        bary = np.clip(bary, 0.0, None)
        bary /= bary.sum(axis=1, keepdims=True)
        index[start : start + len(chunk)] = triangles[best]
        weights[start : start + len(chunk)] = bary
    return index, weights


def _grid_weights(
    points: np.ndarray, triangles: np.ndarray, origin: tuple[float, float], size: tuple[float, float], step: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray, int]:
    """For each node of a grid with ``step`` px spacing from ``origin`` over ``size`` (pixels), the vertices of
    the triangle that holds it and its barycentric weights (:func:`barycentric`); with the grid's shape, origin
    and step."""
    gw, gh = int((size[0] - 1) // step) + 2, int((size[1] - 1) // step) + 2
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64) * step
    nodes = np.stack([xs.ravel() + origin[0], ys.ravel() + origin[1]], axis=1)
    index, weights = barycentric(nodes, points, triangles)
    return index, weights.astype(np.float32), (gh, gw), np.array(origin, np.float32), step


__all__ = [
    "FOCAL_IOD",
    "LANDMARK_BUMPS_IOD",
    "PIVOT_IOD",
    "FaceMesh",
    "barycentric",
    "head_depth",
    "rotation_matrices",
]
