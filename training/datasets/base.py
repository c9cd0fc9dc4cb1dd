"""What every dataset reader returns: samples with their apex image, and every skip or repair it made."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from realtime.core.errors import UserInputError
from realtime.core.files import IMAGE_SUFFIXES

# Label protocols: name → ordered class names (the model's output order), and how raw labels map onto them.
# Raw labels are normalised first (lower case, inner spaces collapsed) by ``normalise_label``.
CASME2_LABELS = ("happiness", "disgust", "surprise", "repression", "others", "fear", "sadness")
CKPLUS_LABELS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
SAMM_LABELS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "others")

PROTOCOLS: dict[str, dict[str, dict[str, str]]] = {
    # dataset → protocol → {raw label: class}; raw labels absent from the mapping are dropped (and reported).
    "casme2": {
        "5class": {c: c for c in ("happiness", "disgust", "surprise", "repression", "others")},
        "7class": {c: c for c in CASME2_LABELS},
        "3class": {
            "happiness": "positive",
            "disgust": "negative",
            "repression": "negative",
            "surprise": "surprise",
        },
    },
    "ckplus": {"7class": {c: c for c in CKPLUS_LABELS}},
    "samm": {
        "5class": {c: c for c in ("anger", "contempt", "happiness", "surprise", "others")},
        "8class": {c: c for c in SAMM_LABELS},
        "3class": {
            "happiness": "positive",
            "anger": "negative",
            "contempt": "negative",
            "disgust": "negative",
            "fear": "negative",
            "sadness": "negative",
            "surprise": "surprise",
        },
    },
}
DEFAULT_PROTOCOL = {"casme2": "5class", "ckplus": "7class", "samm": "5class"}
LABEL_SYNONYMS = {"happy": "happiness", "other": "others", "sad": "sadness", "angry": "anger"}


def normalise_label(raw: str) -> str:
    """``' Happiness '`` → ``'happiness'``; common synonyms (happy, other, sad) map to the canonical name."""
    label = " ".join(str(raw).split()).lower()
    return LABEL_SYNONYMS.get(label, label)


def protocol_classes(dataset: str, protocol: str) -> tuple[str, ...]:
    """The ordered class names of a protocol: the order of first appearance in its mapping's values."""
    mapping = PROTOCOLS[dataset][protocol]
    return tuple(dict.fromkeys(mapping.values()))


@dataclass(frozen=True)
class Sample:
    """One labelled image to classify: for a micro-expression clip, its apex frame.

    ``subject`` is the canonical folder name (``sub01``, ``S005``, ``006``); ``sample_id`` is unique within
    the dataset (``sub01/EP02_01f``). Frame numbers are the dataset's own (absolute) indices. ``onset_path``
    is the onset frame's image (the first frame of the onset..offset window that has one; CK+: the
    sequence's neutral first frame).
    """

    dataset: str
    subject: str
    sample_id: str
    label: str
    raw_label: str
    image_path: Path
    onset_frame: int | None = None
    apex_frame: int | None = None
    offset_frame: int | None = None
    onset_path: Path | None = None  # the onset frame's image (the classifier's onset-apex and flow inputs)


@dataclass(frozen=True)
class DatasetIssue:
    """A sample the reader skipped or repaired, with the reason, for the summary."""

    sample_id: str
    action: str  # "skipped" or "repaired"
    reason: str
    file: str | None = None

    def to_dict(self) -> dict:
        return {"sample": self.sample_id, "action": self.action, "reason": self.reason, "file": self.file}


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset read from disk under one label protocol."""

    name: str
    root: Path
    protocol: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    issues: tuple[DatasetIssue, ...] = field(default=())

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(sorted({s.subject for s in self.samples}))

    def label_indices(self) -> list[int]:
        position = {c: i for i, c in enumerate(self.classes)}
        return [position[s.label] for s in self.samples]

    def summary(self) -> dict:
        """The JSON printed by ``python -m training summary``."""
        per_class = Counter(s.label for s in self.samples)
        per_subject = Counter(s.subject for s in self.samples)
        return {
            "dataset": self.name,
            "root": str(self.root),
            "protocol": self.protocol,
            "classes": list(self.classes),
            "n_samples": len(self.samples),
            "n_subjects": len(per_subject),
            "per_class": {c: per_class.get(c, 0) for c in self.classes},
            "per_subject": dict(sorted(per_subject.items())),
            "n_skipped": sum(1 for i in self.issues if i.action == "skipped"),
            "n_repaired": sum(1 for i in self.issues if i.action == "repaired"),
            "issues": [i.to_dict() for i in self.issues],
        }


# --- small helpers shared by the readers -------------------------------------------------------------------

_LAST_INTEGER = re.compile(r"(\d+)(?!.*\d)")


def resolve_protocol(dataset: str, protocol: str | None) -> str:
    """The protocol name to use: ``None`` → the dataset's default; an unknown name → one clear error."""
    if protocol is None:
        return DEFAULT_PROTOCOL[dataset]
    name = str(protocol).strip().lower()
    if name not in PROTOCOLS[dataset]:
        valid = ", ".join(PROTOCOLS[dataset])
        raise UserInputError(f"unknown protocol {protocol!r} for {dataset}; choose one of: {valid}")
    return name


def frame_number(path: Path) -> int | None:
    """The frame index written in an image file name: its LAST integer group (``reg_img46.jpg`` → 46,
    ``006_05562.jpg`` → 5562, ``S005_001_00000011.png`` → 11); ``None`` when the name holds no digits."""
    match = _LAST_INTEGER.search(Path(path).stem)
    return int(match.group(1)) if match else None


def list_frames(folder: Path) -> dict[int, Path]:
    """The image files of a clip folder keyed by frame number, in numeric order (``img100`` after ``img99``).

    Files that are not images or whose names hold no number (``Thumbs.db``, ``.DS_Store``) are ignored; of
    two files with the same number the first by name is kept.
    """
    found: dict[int, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        number = frame_number(path)
        if number is not None and number not in found:
            found[number] = path
    return dict(sorted(found.items()))


def verify_image(path: Path) -> None:
    """Check that an image file exists, is not empty and can be opened (without decoding it)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise UserInputError(f"cannot read image {path}: {error.strerror or error}") from None
    if not head:
        raise UserInputError(f"cannot read image {path}: the file is empty")
