"""The coded-clip reading CASME II and SAMM share: both code their clips in a sheet whose rows give
Subject, Filename, onset, apex and offset frames and the estimated emotion, so :func:`read_coded_clips`
holds the row loop and every quirk repair for both.

Repairs: apex ``/``, blank or ``-1`` → chosen by :func:`realtime.core.apex.choose_apex` (cached, :func:`spot_apex`);
an apex frame without an image → the nearest frame within onset…offset; offset missing or before the onset
→ the clip's last frame; missing clip folders and labels outside the protocol → skipped. Each repair and
skip becomes a :class:`DatasetIssue`. Each coded clip becomes one :class:`Sample` whose image is the apex
frame. Where each data set keeps its frames is its own module's business (:class:`ClipLayout`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.files import atomic_write_text
from realtime.core.landmarks import LazyLandmarker
from training.datasets.base import PROTOCOLS, DatasetIssue, Sample, list_frames, normalise_label, verify_image
from training.datasets.sheets import SheetTable, cell_text, parse_frame, parse_int

CODED_CLIP_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")
OPTIONAL_COLUMNS = ("Action Units",)


# --- the spotter, created only when an apex has to be chosen -------------------------------------------------


def _apex_cache_key(paths: Sequence[Path]) -> dict:
    from realtime.core.apex import DEFAULT_SPOTTING_SETTINGS, SPOTTER_VERSION

    frames = []
    for path in paths:
        stat = path.stat()
        frames.append([f"{path.parent.name}/{path.name}", stat.st_size, stat.st_mtime_ns])
    return {"spotter": SPOTTER_VERSION, "settings": DEFAULT_SPOTTING_SETTINGS.key(), "frames": frames}


def spot_apex(paths: Sequence[Path], landmarker: LazyLandmarker, cache_dir: Path | None = None) -> int:
    """Index (into ``paths``) of the apex the frame-difference spotter chooses, cached in ``cache_dir``.

    The cache entry is a small JSON keyed by the clip's frame files (name, size, mtime) and the spotter's
    version, so a second read of the same clip is instant and an edited clip is spotted again.
    """
    from realtime.core.apex import choose_apex

    cache_file: Path | None = None
    key: dict | None = None
    if cache_dir is not None:
        key = _apex_cache_key(paths)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        cache_file = Path(cache_dir) / f"apex-{digest}.json"
        try:
            cached = json.loads(cache_file.read_text())
            if cached.get("key") == key and 0 <= int(cached["index"]) < len(paths):
                return int(cached["index"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no entry yet, or a damaged one: spot again and overwrite it
    choice = choose_apex(list(paths), landmarker.get())
    if cache_file is not None:
        entry = {"key": key, "index": choice.index, "frame": paths[choice.index].name, "curve": choice.curve}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(entry))
        except OSError as error:
            raise UserInputError(f"cannot write the apex cache {cache_file}: {error.strerror or error}") from None
    return choice.index


# --- the row loop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipLayout:
    """Where a coded-clip dataset keeps its frames.

    ``subjects`` maps a subject's number to its folder name under ``frames_root`` (``1`` → ``sub01``);
    ``subject_format`` names the folder of a subject that has none (for messages).
    """

    dataset: str
    frames_root: Path
    subjects: dict[int, str]
    subject_format: Callable[[int], str]


def subject_folders(folder: Path, pattern: re.Pattern[str]) -> dict[int, str]:
    """Subject number → folder name for the sub-folders of ``folder`` whose names match ``pattern``
    (its first group is the number)."""
    found: dict[int, str] = {}
    if not folder.is_dir():
        return found
    for child in sorted(folder.iterdir()):
        match = pattern.match(child.name)
        if match and child.is_dir():
            found.setdefault(int(match.group(1)), child.name)
    return found


def _subject_number(value: object) -> int | None:
    """``1``, ``'01'``, ``1.0``, ``'sub01'``, ``'006'`` → the subject's number."""
    number = parse_int(value)
    if number is not None:
        return number
    match = re.fullmatch(r"[a-z]*\s*0*(\d+)", cell_text(value), re.IGNORECASE)
    return int(match.group(1)) if match else None


def _find_child(folder: Path, name: str) -> Path | None:
    """``folder/name``, or the one child whose name equals ``name`` ignoring case and outer spaces."""
    exact = folder / name
    if exact.is_dir():
        return exact
    if not folder.is_dir():
        return None
    wanted = name.strip().lower()
    matches = [c for c in folder.iterdir() if c.is_dir() and c.name.strip().lower() == wanted]
    return matches[0] if len(matches) == 1 else None


def read_coded_clips(
    layout: ClipLayout,
    table: SheetTable,
    labels: Sequence[str],
    protocol: str,
    landmarker: LazyLandmarker,
    apex_cache_dir: Path | None,
) -> tuple[list[Sample], list[DatasetIssue]]:
    """One apex sample per coded clip of a CASME II / SAMM style coding sheet, with every skip and repair.

    An emotion that is none of ``labels`` raises a :class:`UserInputError` naming the sheet and row: it
    means the sheet is not what we think it is, and guessing would train on wrong labels.
    """
    dataset = layout.dataset
    mapping = PROTOCOLS[dataset][protocol]
    samples: list[Sample] = []
    issues: list[DatasetIssue] = []
    first_row: dict[str, int] = {}

    for row in table.rows:
        where = table.where(row)
        subject_cell = cell_text(row.get("Subject"))
        clip_name = cell_text(row.get("Filename"))
        number = _subject_number(row.get("Subject"))
        known = None if number is None else layout.subjects.get(number, layout.subject_format(number))
        subject = known or subject_cell
        sample_id = f"{subject}/{clip_name}"

        def issue(action: str, reason: str, file: object = None, sample_id: str = sample_id) -> None:
            issues.append(DatasetIssue(sample_id, action, reason, None if file is None else str(file)))

        if not subject_cell or not clip_name:
            issue("skipped", "subject or filename missing in sheet", where)
            continue
        if number is None:
            issue("skipped", f"subject {subject_cell!r} is not a subject number", where)
            continue
        raw_label = cell_text(row.get("Estimated Emotion"))
        if not raw_label:
            issue("skipped", "emotion missing in sheet", where)
            continue
        label = normalise_label(raw_label)
        if label not in labels:
            raise UserInputError(
                f"{where}: unknown emotion {raw_label!r} for {dataset} (expected one of {', '.join(labels)})"
            )
        if sample_id in first_row:
            issue("skipped", f"duplicate row for this clip (first at row {first_row[sample_id]})", where)
            continue
        first_row[sample_id] = row.number
        if label not in mapping:
            issue("skipped", f"label '{label}' not in protocol {protocol}")
            continue

        subject_dir = layout.frames_root / subject
        clip_dir = _find_child(subject_dir, clip_name) if subject_dir.is_dir() else None
        if clip_dir is None:
            issue("skipped", "clip folder missing", subject_dir / clip_name)
            continue
        frames = list_frames(clip_dir)
        if not frames:
            issue("skipped", "clip folder holds no numbered images", clip_dir)
            continue
        numbers = list(frames)

        onset = parse_frame(row.get("OnsetFrame"))
        if onset is None:
            onset = numbers[0]
            issue("repaired", f"onset missing in sheet; used the clip's first frame: {onset}", clip_dir)
        offset = parse_frame(row.get("OffsetFrame"))
        if offset is None:
            offset = numbers[-1]
            issue("repaired", f"offset missing in sheet; used the clip's last frame: {offset}", clip_dir)
        elif offset < onset:
            issue(
                "repaired",
                f"offset {offset} before onset {onset}; used the clip's last frame: {numbers[-1]}",
                clip_dir,
            )
            offset = numbers[-1]
        window = [n for n in numbers if onset <= n <= offset]
        if not window:
            issue("skipped", f"no frame between onset {onset} and offset {offset} in the clip folder", clip_dir)
            continue

        apex = parse_frame(row.get("ApexFrame"))
        if apex is None:
            index = spot_apex([frames[n] for n in window], landmarker, apex_cache_dir)
            apex = window[index]
            issue(
                "repaired",
                f"apex missing in sheet; chosen by frame-difference spotter: frame {apex}",
                frames[apex],
            )
        elif apex not in frames:
            nearest = min(window, key=lambda n: (abs(n - apex), n))
            issue(
                "repaired",
                f"apex frame {apex} has no image; used the nearest frame within onset..offset: {nearest}",
                clip_dir,
            )
            apex = nearest
        verify_image(frames[apex])
        samples.append(
            Sample(
                dataset=dataset,
                subject=subject,
                sample_id=sample_id,
                label=mapping[label],
                raw_label=raw_label,
                image_path=frames[apex],
                onset_frame=onset,
                apex_frame=apex,
                offset_frame=offset,
                onset_path=frames[onset] if onset in frames else frames[window[0]],
            )
        )
    return samples, issues
