"""Shared fixtures: real face photographs that pip packages ship (no licensed data in tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest


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
