"""CASME II (Yan et al. 2014) — the paper's target set.

Layout (see ``shared/datasets.md``): ``<root>/subNN/<clip>/img46.jpg`` (RAW_selected) or
``<root>/subNN/<clip>/reg_img46.jpg`` (Cropped), with a coding sheet (``CASME2-coding-*.xlsx``, name
varies) whose rows give Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame and Estimated Emotion. The
rows are read, and their quirks repaired, by :func:`training.datasets.coded_clips.read_coded_clips`, which
SAMM shares.
"""

from __future__ import annotations

import re
from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker, LazyLandmarker
from training.datasets.base import CASME2_LABELS, DatasetIndex, protocol_classes, resolve_protocol
from training.datasets.coded_clips import (
    CODED_CLIP_COLUMNS,
    OPTIONAL_COLUMNS,
    ClipLayout,
    read_coded_clips,
    subject_folders,
)
from training.datasets.sheets import find_coding_sheet, read_sheet

CASME2_SUBJECT = re.compile(r"^sub(\d+)$", re.IGNORECASE)
CASME2_FRAME_FOLDERS = ("casme2_raw_selected", "raw_selected", "casme2_cropped", "cropped")  # preference
CASME2_SHEET_PATTERN = r"^(?!.*samm).*coding"  # CASME2-coding-20140508.xlsx, …-updated.xlsx, coding.csv


def resolve_casme2_frames(root: Path) -> Path:
    """The folder that holds the ``subNN`` folders.

    ``root`` may be that folder itself (RAW_selected or Cropped), or a folder that contains
    ``CASME2_RAW_selected`` and/or ``CASME2_Cropped`` (RAW is preferred: the paper aligns raw frames).
    """
    if not root.is_dir():
        raise UserInputError(f"CASME II root is not a folder: {root}")
    children = {c.name.lower(): c for c in root.iterdir() if c.is_dir()}
    for name in CASME2_FRAME_FOLDERS:
        if name in children and subject_folders(children[name], CASME2_SUBJECT):
            return children[name]
    if subject_folders(root, CASME2_SUBJECT):
        return root
    raise UserInputError(
        f"no CASME II subject folders (sub01, sub02, …) in {root}; expected {root}/subNN/<clip>/img*.jpg "
        "or a CASME2_RAW_selected or CASME2_Cropped folder holding them"
    )


def read_casme2(
    root: Path,
    *,
    coding: Path | None = None,
    protocol: str | None = None,
    landmarker: FaceLandmarker | None = None,
    apex_cache_dir: Path | None = None,
) -> DatasetIndex:
    """Read CASME II: one apex-frame sample per coded clip, under a protocol (5class by default: 249
    samples in the full set; 7class; 3class, the MEGC composite mapping)."""
    protocol = resolve_protocol("casme2", protocol)
    root = Path(root).expanduser()
    frames_root = resolve_casme2_frames(root)
    sheet = find_coding_sheet([root, frames_root, root.parent], CASME2_SHEET_PATTERN, "CASME II", coding)
    table = read_sheet(sheet, CODED_CLIP_COLUMNS, OPTIONAL_COLUMNS)
    layout = ClipLayout("casme2", frames_root, subject_folders(frames_root, CASME2_SUBJECT), lambda n: f"sub{n:02d}")
    samples, issues = read_coded_clips(
        layout, table, CASME2_LABELS, protocol, LazyLandmarker(landmarker), apex_cache_dir
    )
    return DatasetIndex(
        name="casme2",
        root=root,
        protocol=protocol,
        classes=protocol_classes("casme2", protocol),
        samples=tuple(samples),
        issues=tuple(issues),
    )
