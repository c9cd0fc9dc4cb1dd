"""CK+ (Lucey et al. 2010) — the paper's pretraining set.

Layout (see ``shared/datasets.md``): ``<root>/cohn-kanade-images/S005/001/S005_001_00000011.png`` and, for
the 327 labelled sequences only, ``<root>/Emotion/S005/001/S005_001_00000011_emotion.txt`` holding one
float such as ``   3.0000000e+00`` and naming the sequence's last (peak) frame. The paper takes the last 3
frames of every labelled sequence: 327 × 3 = 981 images.
"""

from __future__ import annotations

from pathlib import Path

from realtime.core.errors import UserInputError
from training.datasets.base import (
    PROTOCOLS,
    DatasetIndex,
    DatasetIssue,
    Sample,
    frame_number,
    list_frames,
    normalise_label,
    protocol_classes,
    resolve_protocol,
    verify_image,
)

IMAGES_FOLDER = "cohn-kanade-images"
EMOTION_FOLDER = "Emotion"
EMOTION_CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
DEFAULT_FRAMES_PER_SEQUENCE = 3


def _child(root: Path, name: str) -> Path | None:
    """``root/name``, matched ignoring case (``emotion``, ``Emotion``)."""
    exact = root / name
    if exact.is_dir():
        return exact
    matches = [c for c in root.iterdir() if c.is_dir() and c.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def read_emotion_code(path: Path) -> int:
    """The emotion code (1–7) in a CK+ ``*_emotion.txt``; anything else is an error naming the file."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as error:
        raise UserInputError(f"cannot read CK+ emotion file {path}: {error.strerror or error}") from None
    try:
        value = float(text.split()[0]) if text else float("nan")
    except ValueError:
        value = float("nan")
    if not value.is_integer() or int(value) not in EMOTION_CODES:
        shown = "neutral (0)" if value == 0 else repr(text)
        raise UserInputError(
            f"CK+ emotion file {path} holds {shown}; expected a code 1–7 "
            "(anger, contempt, disgust, fear, happy, sadness, surprise)"
        )
    return int(value)


def read_ckplus(
    root: Path, *, protocol: str | None = None, frames_per_sequence: int = DEFAULT_FRAMES_PER_SEQUENCE
) -> DatasetIndex:
    """Read CK+: the last ``frames_per_sequence`` frames (up to the labelled peak) of every labelled
    sequence, each a sample ``S005/001/00000011`` of subject ``S005``."""
    protocol = resolve_protocol("ckplus", protocol)
    if frames_per_sequence < 1:
        raise UserInputError(f"frames per CK+ sequence must be at least 1, got {frames_per_sequence}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserInputError(f"CK+ root is not a folder: {root}")
    images_dir, emotion_dir = _child(root, IMAGES_FOLDER), _child(root, EMOTION_FOLDER)
    missing = [name for name, found in ((IMAGES_FOLDER, images_dir), (EMOTION_FOLDER, emotion_dir)) if not found]
    if images_dir is None or emotion_dir is None:
        raise UserInputError(
            f"CK+ root {root} lacks {' and '.join(f'{m}/' for m in missing)}; "
            f"expected {root}/{IMAGES_FOLDER}/S005/001/*.png and {root}/{EMOTION_FOLDER}/S005/001/*_emotion.txt"
        )

    mapping = PROTOCOLS["ckplus"][protocol]
    samples: list[Sample] = []
    issues: list[DatasetIssue] = []
    label_files = sorted(emotion_dir.glob("*/*/*_emotion.txt"))
    if not label_files:
        raise UserInputError(f"no labelled CK+ sequences: {emotion_dir} holds no <subject>/<seq>/*_emotion.txt")
    sequences: dict[tuple[str, str], list[Path]] = {}
    for path in label_files:
        sequences.setdefault((path.parent.parent.name, path.parent.name), []).append(path)

    for (subject, sequence), files in sequences.items():
        sequence_id = f"{subject}/{sequence}"
        label_file = max(files, key=lambda p: frame_number(Path(p.name.removesuffix("_emotion.txt"))) or 0)
        if len(files) > 1:
            issues.append(
                DatasetIssue(
                    sequence_id,
                    "repaired",
                    f"{len(files)} emotion files; used the one naming the latest frame",
                    str(label_file),
                )
            )
        raw_label = EMOTION_CODES[read_emotion_code(label_file)]
        label = normalise_label(raw_label)
        if label not in mapping:
            issues.append(DatasetIssue(sequence_id, "skipped", f"label '{label}' not in protocol {protocol}"))
            continue
        image_folder = images_dir / subject / sequence
        frames = list_frames(image_folder) if image_folder.is_dir() else {}
        if not frames:
            issues.append(DatasetIssue(sequence_id, "skipped", "image sequence missing", str(image_folder)))
            continue
        peak = frame_number(Path(label_file.name.removesuffix("_emotion.txt")))
        numbers = [n for n in frames if peak is None or n <= peak]
        if peak not in frames:
            issues.append(
                DatasetIssue(
                    sequence_id,
                    "repaired",
                    f"labelled frame {peak} has no image; used the sequence's last frames",
                    str(image_folder),
                )
            )
            numbers = numbers or list(frames)
        chosen = numbers[-frames_per_sequence:]
        if len(chosen) < frames_per_sequence:
            issues.append(
                DatasetIssue(
                    sequence_id,
                    "repaired",
                    f"sequence has only {len(chosen)} frame(s); used {len(chosen)} of {frames_per_sequence}",
                    str(image_folder),
                )
            )
        for number in chosen:
            path = frames[number]
            verify_image(path)
            digits = _frame_digits(path.name, number)
            samples.append(
                Sample(
                    dataset="ckplus",
                    subject=subject,
                    sample_id=f"{subject}/{sequence}/{digits}",
                    label=mapping[label],
                    raw_label=raw_label,
                    image_path=path,
                    onset_frame=next(iter(frames)),
                    apex_frame=number,
                    offset_frame=None,
                    onset_path=frames[next(iter(frames))],
                )
            )
    return DatasetIndex(
        name="ckplus",
        root=root,
        protocol=protocol,
        classes=protocol_classes("ckplus", protocol),
        samples=tuple(samples),
        issues=tuple(issues),
    )


def _frame_digits(name: str, number: int) -> str:
    """The frame number as the file name writes it (``S005_001_00000011.png`` → ``00000011``)."""
    stem = Path(name).stem
    digits = stem[len(stem.rstrip("0123456789")) :]
    return digits if digits and int(digits) == number else str(number)
