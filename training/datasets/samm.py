"""SAMM (Davison et al. 2018): 200 fps grey clips coded like CASME II.

Layout (see ``shared/datasets.md``): ``<root>/006/006_1_2/006_05562.jpg`` — subject folders named by
number, clip folders named as the sheet's Filename, frames numbered by the LAST integer group of their
names (the pattern varies between releases). The coding sheet (``SAMM_Micro_FACS_Codes_v2.xlsx``, name
varies) has title rows above its header, which :func:`training.datasets.sheets.read_sheet` finds by the
column names. Rows are read by :func:`training.datasets.coded_clips.read_coded_clips`, so the quirks (apex
missing or ``-1``, offsets, missing folders) are handled and reported exactly as for CASME II.
"""

from __future__ import annotations

import re
from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker, LazyLandmarker
from training.datasets.base import SAMM_LABELS, DatasetIndex, protocol_classes, resolve_protocol
from training.datasets.coded_clips import (
    CODED_CLIP_COLUMNS,
    OPTIONAL_COLUMNS,
    ClipLayout,
    read_coded_clips,
    subject_folders,
)
from training.datasets.sheets import find_coding_sheet, read_sheet

SAMM_SUBJECT = re.compile(r"^(\d+)$")
SAMM_SHEET_PATTERN = r"samm"


def resolve_samm_frames(root: Path) -> Path:
    """The folder holding the numbered subject folders: ``root`` itself, or its one sub-folder that does
    (a release unpacked as ``<root>/SAMM/006/…``)."""
    if not root.is_dir():
        raise UserInputError(f"SAMM root is not a folder: {root}")
    if subject_folders(root, SAMM_SUBJECT):
        return root
    nested = [c for c in sorted(root.iterdir()) if c.is_dir() and subject_folders(c, SAMM_SUBJECT)]
    if len(nested) == 1:
        return nested[0]
    raise UserInputError(
        f"no SAMM subject folders (006, 007, …) in {root}; expected {root}/<subject>/<clip>/<frames>.jpg"
    )


def read_samm(
    root: Path,
    *,
    coding: Path | None = None,
    protocol: str | None = None,
    landmarker: FaceLandmarker | None = None,
    apex_cache_dir: Path | None = None,
) -> DatasetIndex:
    """Read SAMM: one apex-frame sample per coded clip, under a protocol (5class by default: anger,
    contempt, happiness, surprise, others; 8class; 3class, the MEGC composite mapping)."""
    protocol = resolve_protocol("samm", protocol)
    root = Path(root).expanduser()
    frames_root = resolve_samm_frames(root)
    sheet = find_coding_sheet([root, frames_root, root.parent], SAMM_SHEET_PATTERN, "SAMM", coding)
    table = read_sheet(sheet, CODED_CLIP_COLUMNS, OPTIONAL_COLUMNS)
    layout = ClipLayout("samm", frames_root, subject_folders(frames_root, SAMM_SUBJECT), lambda n: f"{n:03d}")
    samples, issues = read_coded_clips(layout, table, SAMM_LABELS, protocol, LazyLandmarker(landmarker), apex_cache_dir)
    return DatasetIndex(
        name="samm",
        root=root,
        protocol=protocol,
        classes=protocol_classes("samm", protocol),
        samples=tuple(samples),
        issues=tuple(issues),
    )
