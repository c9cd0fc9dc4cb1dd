"""A smooth dense warp of a face image that moves chosen points by chosen displacements, without folding.

The displacement field is a Gaussian radial-basis-function (RBF) interpolation of the control points'
displacements: the landmarks an action moves, the landmarks held still (jaw corners and chin, nose bridge,
eye corners: see :data:`training.synth.actions.PINNED`) and a ring of still anchors around the face, so the
head and the background do not move. It is evaluated on a low-resolution grid over the face only (the
Gaussian is separable, so the grid costs two small matrix products), inverted there by Newton's method
(``cv2.remap`` samples *from* the source, so it needs the inverse map; the residual stays below 0.002 IOD),
upsampled to pixels and applied with one ``cv2.remap`` of the face region.

The field moves the content at ``p`` to ``p + s·F(p)`` for a time weight ``s`` in [0, 1]; it folds the image
where the Jacobian determinant ``det(I + s·∇F)`` is not positive. :meth:`DisplacementField.min_jacobian`
returns its smallest value over the grid and over every ``s`` in [0, 1] (the determinant is a quadratic in
``s``). Amplitude is bounded against kernel width twice: the kernel widens with the largest displacement
(``WarpSettings.spread``), and :func:`fit_field` scales a field down until its Jacobian is at least
``WarpSettings.min_jacobian``. Realistic expressions, and those up to about 3× stronger, are met exactly;
at 5× some AU combinations are weakened (to 55–100 %) instead of tearing the face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.core.errors import UserInputError


@dataclass(frozen=True)
class WarpSettings:
    """How displacements become a dense field; lengths are in IOD units.

    ``sigma`` is the Gaussian kernel width (larger: smoother, less local); it grows to ``spread`` times the
    largest displacement when that is larger, so a strong expression spreads over more skin instead of
    compressing it (a Gaussian's steepest slope is about 0.6 × amplitude / width); ``smoothing`` the ridge term of
    the RBF solve (keeps the weights small where control points crowd); ``grid_step`` the spacing of the
    low-resolution grid; ``margin`` how far (in kernel widths) the grid reaches beyond the control points;
    ``anchor_distance`` how far outside the landmarks the ring of still anchors lies; ``min_jacobian`` the
    smallest Jacobian determinant allowed anywhere at any time of the profile.
    """

    sigma: float = 0.25
    spread: float = 1.3
    smoothing: float = 0.03
    grid_step: float = 0.05
    margin: float = 3.0
    anchor_distance: float = 0.45
    anchors: int = 20
    inverse_iterations: int = 5
    min_jacobian: float = 0.3

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and self.grid_step > 0 and self.margin > 0 and self.smoothing >= 0):
            raise UserInputError(f"invalid warp settings: {self}")
        if not 0.0 < self.min_jacobian < 1.0:
            raise UserInputError(f"min_jacobian must lie in (0, 1), got {self.min_jacobian}")


DEFAULT_WARP = WarpSettings()


def anchor_ring(landmarks: np.ndarray, iod: float, settings: WarpSettings = DEFAULT_WARP) -> np.ndarray:
    """Still points on an ellipse ``anchor_distance`` IOD outside the landmarks' bounding box (centred on
    it, reaching up over the forehead), so a warp fades out before the hair line and the background."""
    points = np.asarray(landmarks, dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    half = (high - low) / 2.0 + settings.anchor_distance * iod
    centre = centre - np.array([0.0, 0.25 * iod])  # the forehead lies above the brows' landmarks
    half = half + np.array([0.0, 0.25 * iod])
    angles = np.linspace(0.0, 2.0 * np.pi, settings.anchors, endpoint=False)
    return centre + half * np.stack([np.cos(angles), np.sin(angles)], axis=1)


class DisplacementField:
    """A forward displacement field sampled on a regular grid over a region of a frame.

    Node ``(i, j)`` lies at pixel ``(x0 + j·step, y0 + i·step)``; ``forward[i, j]`` is where the content
    there moves (pixels). Outside the region nothing moves. Build one with :func:`fit_field`.
    """

    __slots__ = ("_pixel_cache", "forward", "frame_size", "iterations", "step", "x0", "y0")

    def __init__(
        self,
        forward: np.ndarray,
        x0: float,
        y0: float,
        step: float,
        frame_size: tuple[int, int],
        iterations: int = DEFAULT_WARP.inverse_iterations,
    ) -> None:
        self.forward = np.ascontiguousarray(forward, dtype=np.float32)
        self.iterations = int(iterations)
        self.x0, self.y0, self.step = float(x0), float(y0), float(step)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self._pixel_cache: tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
        self._pixel_cache = None

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.forward.shape[0], self.forward.shape[1]

    def scaled(self, factor: float) -> DisplacementField:
        forward = self.forward * np.float32(factor)
        return DisplacementField(forward, self.x0, self.y0, self.step, self.frame_size, self.iterations)

    def _grid_coords(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = np.asarray(points, dtype=np.float32)
        return (pts[..., 0] - self.x0) / self.step, (pts[..., 1] - self.y0) / self.step

    def _sample(self, field: np.ndarray, gx: np.ndarray, gy: np.ndarray, channels: int = 2) -> np.ndarray:
        """Bilinear samples of a grid field with ``channels`` channels at grid coordinates (zero outside)."""
        shape = gx.shape
        out = cv2.remap(
            field,
            np.ascontiguousarray(gx.reshape(1, -1) if gx.ndim == 1 else gx, dtype=np.float32),
            np.ascontiguousarray(gy.reshape(1, -1) if gy.ndim == 1 else gy, dtype=np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0, 0.0, 0.0, 0.0),
        )
        return out.reshape(*shape, channels)

    def at(self, points: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Forward displacement (pixels, N×2) at ``points`` (N×2 pixels), times ``scale``."""
        gx, gy = self._grid_coords(np.asarray(points).reshape(-1, 2))
        return scale * self._sample(self.forward, gx, gy).astype(np.float64)

    def jacobian_determinants(self) -> np.ndarray:
        """Per grid node, the smallest ``det(I + s·∇F)`` over ``s`` in [0, 1] (finite differences)."""
        fx, fy = self.forward[..., 0].astype(np.float64), self.forward[..., 1].astype(np.float64)
        dfx_dy, dfx_dx = np.gradient(fx, self.step)
        dfy_dy, dfy_dx = np.gradient(fy, self.step)
        trace = dfx_dx + dfy_dy
        det = dfx_dx * dfy_dy - dfx_dy * dfy_dx
        # det(I + sJ) = 1 + s·trace + s²·det: its minimum over [0, 1] is at s = 1 or at the vertex
        at_one = 1.0 + trace + det
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = np.where(det > 0, -trace / (2.0 * det), -1.0)
        inside = (vertex > 0.0) & (vertex < 1.0)
        at_vertex = 1.0 + vertex * trace + vertex**2 * det
        return np.minimum(at_one, np.where(inside, at_vertex, np.inf))

    def min_jacobian(self) -> float:
        """The smallest Jacobian determinant of the warp anywhere on the grid at any time weight in [0, 1]:
        positive means the warp never folds the image."""
        return float(self.jacobian_determinants().min()) if self.forward.size else 1.0

    def inverse(self, scale: float = 1.0) -> np.ndarray:
        """The backward offsets on the grid for time weight ``scale``: ``B(q)`` with ``q + B(q)`` the source
        point that lands on node ``q``, i.e. the root ``x`` of ``x + scale·F(x) = q``, found by Newton's
        method from ``x = q − scale·F(q)`` (the Jacobian ``I + scale·∇F`` is invertible: it never folds)."""
        gh, gw = self.grid_shape
        nodes_y, nodes_x = np.mgrid[0:gh, 0:gw].astype(np.float32)
        gradient = self._gradient()
        backward = -scale * self.forward
        for _ in range(self.iterations):
            gx, gy = nodes_x + backward[..., 0] / self.step, nodes_y + backward[..., 1] / self.step
            residual = backward + scale * self._sample(self.forward, gx, gy)  # x + sF(x) − q
            j = scale * self._sample(gradient, gx, gy, channels=4)  # s·∂(Fx, Fy)/∂(x, y) at x
            a, b, c, d = 1.0 + j[..., 0], j[..., 1], j[..., 2], 1.0 + j[..., 3]
            det = np.maximum(a * d - b * c, 1e-3)
            backward = backward - np.stack(
                [
                    (d * residual[..., 0] - b * residual[..., 1]) / det,
                    (a * residual[..., 1] - c * residual[..., 0]) / det,
                ],
                axis=-1,
            )
        return backward.astype(np.float32)

    def _gradient(self) -> np.ndarray:
        """∂Fx/∂x, ∂Fx/∂y, ∂Fy/∂x, ∂Fy/∂y on the grid (gh × gw × 4), by central differences."""
        dfx_dy, dfx_dx = np.gradient(self.forward[..., 0], self.step)
        dfy_dy, dfy_dx = np.gradient(self.forward[..., 1], self.step)
        return np.ascontiguousarray(np.stack([dfx_dx, dfx_dy, dfy_dx, dfy_dy], axis=-1), dtype=np.float32)

    def _pixels(self) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The frame region the grid covers (x0, y0, x1, y1), its pixel coordinates and their grid coordinates."""
        if self._pixel_cache is None:
            gh, gw = self.grid_shape
            width, height = self.frame_size
            x0, y0 = max(0, math.ceil(self.x0)), max(0, math.ceil(self.y0))
            x1 = min(width, math.floor(self.x0 + (gw - 1) * self.step) + 1)
            y1 = min(height, math.floor(self.y0 + (gh - 1) * self.step) + 1)
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            gx, gy = self._grid_coords(np.stack([xs, ys], axis=-1))
            self._pixel_cache = ((x0, y0, x1, y1), xs, ys, gx.astype(np.float32), gy.astype(np.float32))
        return self._pixel_cache

    def sampling_maps(self, scale: float = 1.0) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        """The region and the ``cv2.remap`` maps (absolute source pixels) that warp it at time weight
        ``scale``."""
        region, xs, ys, gx, gy = self._pixels()
        backward = cv2.remap(self.inverse(scale), gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if backward.ndim == 2:  # a one-pixel-wide region
            backward = backward.reshape(*xs.shape, 2)
        return region, xs + backward[..., 0], ys + backward[..., 1]

    def apply(self, image: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """``image`` (frame-sized, grey or colour) warped at time weight ``scale`` (1 = the full field)."""
        height, width = image.shape[:2]
        if (width, height) != self.frame_size:
            raise UserInputError(f"a field for {self.frame_size} frames cannot warp a {width}×{height} image")
        out = image.copy()
        if scale == 0.0 or not self.forward.size:
            return out
        (x0, y0, x1, y1), map_x, map_y = self.sampling_maps(scale)
        if x1 <= x0 or y1 <= y0:
            return out
        out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out


def fit_field(
    points: np.ndarray,
    displacements: np.ndarray,
    iod: float,
    frame_size: tuple[int, int],
    settings: WarpSettings = DEFAULT_WARP,
) -> tuple[DisplacementField, float]:
    """The smooth field that moves each control point (N×2 pixels) by its displacement (N×2 pixels).

    ``iod`` (pixels) sets the scale of ``settings``. Include still points (zero displacement) where the
    image must not move. Returns the field and the factor it was scaled by to keep its Jacobian at least
    ``settings.min_jacobian`` (1.0 unless the displacements were too large for the kernel width).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    moves = np.asarray(displacements, dtype=np.float64).reshape(-1, 2)
    if pts.shape != moves.shape:
        raise UserInputError(f"{len(pts)} control points but {len(moves)} displacements")
    if not (math.isfinite(iod) and iod > 0):
        raise UserInputError(f"the inter-ocular distance must be positive, got {iod}")
    largest = float(np.sqrt((moves**2).sum(axis=1)).max()) if len(moves) else 0.0
    sigma = max(settings.sigma * iod, settings.spread * largest)
    step = max(settings.grid_step * iod, 0.5)
    low = pts.min(axis=0) - settings.margin * sigma
    high = pts.max(axis=0) + settings.margin * sigma
    width, height = frame_size
    low = np.maximum(low, [-step, -step])
    high = np.minimum(high, [width - 1 + step, height - 1 + step])
    gw, gh = (np.floor((high - low) / step).astype(int) + 1).tolist()
    if not np.any(moves) or gw < 2 or gh < 2:
        return DisplacementField(
            np.zeros((max(gh, 0), max(gw, 0), 2), np.float32), low[0], low[1], step, frame_size
        ), 1.0

    # weights of the Gaussian RBF: (Φ + λI) W = D
    delta = pts[:, None, :] - pts[None, :, :]
    phi = np.exp(-(delta**2).sum(axis=-1) / (2.0 * sigma**2))
    weights = np.linalg.solve(phi + settings.smoothing * np.eye(len(pts)), moves)
    # the field on the grid: exp(-(dx²+dy²)/2σ²) = gx·gy, so each component is Gy · diag(w) · Gxᵀ
    node_x = low[0] + step * np.arange(gw)
    node_y = low[1] + step * np.arange(gh)
    gx = np.exp(-((node_x[:, None] - pts[None, :, 0]) ** 2) / (2.0 * sigma**2))  # gw × N
    gy = np.exp(-((node_y[:, None] - pts[None, :, 1]) ** 2) / (2.0 * sigma**2))  # gh × N
    gx[gx < 1e-12] = 0.0  # far tails underflow to denormals, which make the products a hundred times slower
    gy[gy < 1e-12] = 0.0
    # einsum, not BLAS: these products are small, and a threaded BLAS stalls when the cores are busy
    forward = np.stack([np.einsum("ik,kj->ij", gy, weights[:, c, None] * gx.T) for c in range(2)], axis=-1)
    forward *= _edge_taper(gh, gw, max(2, round(sigma / step)))[..., None]
    field = DisplacementField(forward, low[0], low[1], step, frame_size)

    factor = 1.0
    if field.min_jacobian() < settings.min_jacobian:
        lo, hi = 0.0, 1.0  # the largest scale that keeps the Jacobian: bisection
        for _ in range(12):
            mid = (lo + hi) / 2.0
            if field.scaled(mid).min_jacobian() >= settings.min_jacobian:
                lo = mid
            else:
                hi = mid
        factor = lo
        field = field.scaled(factor)
    return field, factor


def _edge_taper(rows: int, cols: int, width: int) -> np.ndarray:
    """1 inside, a raised-cosine fall to 0 over the outer ``width`` nodes: the field ends smoothly at the
    edge of its grid."""

    def ramp(n: int) -> np.ndarray:
        index = np.arange(n, dtype=np.float64)
        distance = np.minimum(index, n - 1 - index)
        return np.where(distance >= width, 1.0, 0.5 - 0.5 * np.cos(np.pi * distance / width))

    return np.outer(ramp(rows), ramp(cols))
