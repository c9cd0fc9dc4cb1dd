"""Readers of the licensed micro-expression data sets (CASME II, CK+, SAMM) into a :class:`DatasetIndex`.

Each reader resolves the layout a user points it at, finds its coding sheet, and returns one sample per
labelled image with every skip and repair reported as a :class:`DatasetIssue` (``summary()`` prints them).
Bad input (a wrong root, a missing sheet or column, an unknown label) raises one
:class:`realtime.core.errors.UserInputError` naming the file. Layouts and quirks: ``shared/datasets.md``.
"""

from __future__ import annotations

from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker
from training.datasets.base import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    DatasetIndex,
    DatasetIssue,
    Sample,
    normalise_label,
    protocol_classes,
)
from training.datasets.casme2 import read_casme2
from training.datasets.ckplus import DEFAULT_FRAMES_PER_SEQUENCE, read_ckplus
from training.datasets.samm import read_samm

DATASETS = ("casme2", "ckplus", "samm")

__all__ = [
    "DATASETS",
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "DatasetIndex",
    "DatasetIssue",
    "Sample",
    "normalise_label",
    "protocol_classes",
    "read_casme2",
    "read_ckplus",
    "read_dataset",
    "read_samm",
]


def read_dataset(
    name: str,
    root: Path,
    *,
    coding: Path | None = None,
    protocol: str | None = None,
    landmarker: FaceLandmarker | None = None,
    apex_cache_dir: Path | None = None,
    frames_per_sequence: int | None = None,
) -> DatasetIndex:
    """Read a data set by name; ``protocol=None`` takes the data set's default (``DEFAULT_PROTOCOL``).

    ``coding``, ``landmarker`` and ``apex_cache_dir`` apply to CASME II and SAMM (coded clips);
    ``frames_per_sequence`` to CK+ only. Passing a coding sheet for CK+, which has none, is an error
    rather than silently ignored.
    """
    key = str(name).strip().lower().replace("+", "plus").replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise UserInputError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if key == "ckplus":
        if coding is not None:
            raise UserInputError(f"CK+ has no coding sheet; drop --coding ({coding})")
        return read_ckplus(
            root,
            protocol=protocol,
            frames_per_sequence=DEFAULT_FRAMES_PER_SEQUENCE if frames_per_sequence is None else frames_per_sequence,
        )
    if frames_per_sequence is not None:
        raise UserInputError(f"frames per sequence applies to CK+ only, not {key}")
    reader = read_casme2 if key == "casme2" else read_samm
    return reader(root, coding=coding, protocol=protocol, landmarker=landmarker, apex_cache_dir=apex_cache_dir)
