"""Small generated data sets in the exact published layouts of CASME II, CK+ and SAMM.

Each writer makes subjects from real face photos (:mod:`training.synth.faces`), gives every clip an
emotion's action units (:mod:`training.synth.actions`) and renders its frames with the smooth warp
(:mod:`training.synth.warp`) following an onset → apex → offset profile, then writes frames, coding sheet
and label files where the real release keeps them, with the real quirks when ``quirks`` is on (see
``shared/datasets.md``). A :class:`SynthManifest` (also written as ``synth_manifest.json``, which readers
ignore) says what was written, which rows a reader must repair or skip and why, and the per-class counts a
reader must find under each label protocol.

Everything is deterministic for a seed: the same arguments write byte-identical files.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from training.datasets.base import PROTOCOLS
from training.synth.actions import MACRO_SCALE, AUCode, choose_action_units, clip_profile, format_action_units
from training.synth.faces import (
    ExpressionClip,
    SensorNoise,
    Subject,
    load_face_photos,
    make_subjects,
    parse_frame_size,
    render_expression_clip,
)

SUBJECT_PHOTOS_NAME = "subject_photos.json"
MANIFEST_NAME = "synth_manifest.json"
CASME2_RAW_FOLDER = "CASME2_RAW_selected"
CASME2_CROPPED_FOLDER = "CASME2_Cropped"
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
CASME2_CROPPED_SIZE = (140, 170)  # (width, height) of the Cropped release's face crops, about 170×140 px
CKPLUS_IMAGES = "cohn-kanade-images"
CKPLUS_EMOTION = "Emotion"
SAMM_FOLDER = "SAMM"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"

CASME2_CLASSES = ("happiness", "disgust", "surprise", "repression", "others")
CASME2_EXTRA_CLASSES = ("fear", "sadness")  # in the 7-class protocol, dropped by the paper's 5-class one
CASME2_HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
CKPLUS_CODES = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happiness": 5, "sadness": 6, "surprise": 7}
CKPLUS_SUBJECTS = (5, 10, 11, 14, 22, 26, 28, 29, 32, 34, 35, 37, 42, 44, 45, 46, 50, 51, 52, 53, 54, 55)
SAMM_LABELS = {
    "anger": "Anger",
    "contempt": "Contempt",
    "disgust": "Disgust",
    "fear": "Fear",
    "happiness": "Happiness",
    "others": "Other",
    "sadness": "Sadness",
    "surprise": "Surprise",
}
SAMM_SUBJECTS = (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 30, 31, 32)
SAMM_HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
    "Objective Classes",
)
SAMM_OBJECTIVE_CLASS = {
    "happiness": 1,
    "surprise": 2,
    "anger": 3,
    "disgust": 4,
    "sadness": 5,
    "fear": 6,
    "contempt": 7,
    "others": 7,
}
_DATASET_TAGS = {"casme2": 1, "ckplus": 2, "samm": 3}
_FIXED_TIME = datetime.datetime(2014, 5, 8, 12, 0, 0)  # sheets carry this instead of "now": reproducible bytes
_JPEG_QUALITY = 95


# --- what was written ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSample:
    """One written clip (CASME II, SAMM) or sequence (CK+).

    ``reader_id`` is the id a dataset reader gives it (``sub01/EP02_01f``; for CK+ the sequence,
    ``S005/001``, whose images the reader names ``S005/001/00000006``…); ``label`` the canonical class name
    (``None`` for an unlabelled CK+ sequence) and ``raw_label`` the text written (CK+: the emotion code).
    Frame numbers are the dataset's own. ``frames`` are the numbers of the frame files on disk.

    ``expected`` is what a reader must do with it whatever the protocol: ``'ok'``; ``'repaired'`` (``reason``
    says what, ``reader_apex`` which frame it must then use: ``None`` when a spotter must choose it);
    ``'skipped'`` (a sheet row without frames); ``'unlabelled'`` (a CK+ sequence without an Emotion file,
    which readers never see). Labels outside a protocol are skipped as well: :meth:`SynthManifest.outcomes`.

    ``warp_scale`` is 1.0 unless the expression had to be weakened to keep the warp fold-free;
    ``apex_shift_iod`` the largest landmark movement at the apex in IOD units.
    """

    subject: str
    sample_id: str
    reader_id: str
    label: str | None
    raw_label: str | None
    action_units: str
    onset_frame: int
    apex_frame: int
    offset_frame: int
    folder: str
    frames: tuple[int, ...]
    expected: str = "ok"
    reason: str = ""
    reader_apex: int | None = None
    photo: str = ""
    grey: bool = False
    warp_scale: float = 1.0
    apex_shift_iod: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["frames"] = list(self.frames)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> SynthSample:
        values = dict(data)
        values["frames"] = tuple(values.get("frames", ()))
        return cls(**values)


@dataclass(frozen=True)
class SynthManifest:
    """What a writer wrote: where to point a reader, and what it must find there.

    ``root`` is the folder to give a reader (``--root``); ``frames_root`` the folder holding the subject
    folders; ``coding`` the coding sheet (``None`` for CK+, which labels with Emotion files).
    ``expected_counts`` maps each label protocol of the dataset to its classes' sample counts (for CK+:
    labelled sequences; its reader makes ``frames_per_sequence`` images of each). ``settings`` are the
    writer's arguments.
    """

    dataset: str
    out: Path
    root: Path
    frames_root: Path
    coding: Path | None
    samples: tuple[SynthSample, ...]
    expected_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    settings: Mapping[str, object] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where the manifest's JSON lies."""
        return self.out / MANIFEST_NAME

    def sample(self, reader_id: str) -> SynthSample:
        for sample in self.samples:
            if sample.reader_id == reader_id:
                return sample
        raise KeyError(reader_id)

    def outcomes(self, protocol: str) -> dict[str, str]:
        """``reader_id`` → ``'ok'`` | ``'repaired'`` | ``'skipped'`` for every sample a reader sees under
        ``protocol`` (a label outside the protocol is skipped)."""
        mapping = PROTOCOLS[self.dataset][protocol]
        result: dict[str, str] = {}
        for sample in self.samples:
            if sample.expected == "unlabelled":
                continue
            result[sample.reader_id] = "skipped" if sample.label not in mapping else sample.expected
        return result

    def to_dict(self) -> dict:
        """JSON-ready, with paths relative to ``out`` (so two writes of one seed are byte-identical)."""

        def relative(path: Path | None) -> str | None:
            return None if path is None else path.relative_to(self.out).as_posix() or "."

        return {
            "dataset": self.dataset,
            "root": relative(self.root),
            "frames_root": relative(self.frames_root),
            "coding": relative(self.coding),
            "settings": dict(self.settings),
            "expected_counts": {k: dict(v) for k, v in self.expected_counts.items()},
            "samples": [s.to_dict() for s in self.samples],
        }

    def subject_photos(self) -> dict[str, str]:
        """Each subject's source photograph (file stem): the groups of a leave-one-photo-out evaluation."""
        photos: dict[str, str] = {}
        for sample in self.samples:
            if sample.photo:
                photos.setdefault(sample.subject, Path(sample.photo).stem)
        return dict(sorted(photos.items()))

    def write(self) -> Path:
        """Write ``synth_manifest.json`` and, beside it, ``subject_photos.json`` (``loso --groups``)."""
        self.path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        (self.out / SUBJECT_PHOTOS_NAME).write_text(json.dumps(self.subject_photos(), indent=1) + "\n")
        return self.path

    @classmethod
    def load(cls, path: Path) -> SynthManifest:
        """Read a ``synth_manifest.json`` (or the folder holding it) back."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise UserInputError(f"cannot read synth manifest {path}: {error}") from None
        out = path.parent
        return cls(
            dataset=data["dataset"],
            out=out,
            root=out / data["root"],
            frames_root=out / data["frames_root"],
            coding=None if data["coding"] is None else out / data["coding"],
            samples=tuple(SynthSample.from_dict(s) for s in data["samples"]),
            expected_counts=data["expected_counts"],
            settings=data["settings"],
        )


def expected_counts(dataset: str, samples: Iterable[SynthSample]) -> dict[str, dict[str, int]]:
    """Per protocol, per class: the samples a reader keeps (``ok`` or ``repaired``, label in the protocol)."""
    kept = [s for s in samples if s.expected in ("ok", "repaired")]
    result: dict[str, dict[str, int]] = {}
    for protocol, mapping in PROTOCOLS[dataset].items():
        counts = Counter(mapping[s.label] for s in kept if s.label in mapping)
        result[protocol] = {c: counts.get(c, 0) for c in dict.fromkeys(mapping.values())}
    return result


# --- shared machinery --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clip:
    """A clip to render: whose, which expression, which frame numbers, where the apex lies."""

    subject: int
    sample_id: str
    emotion: str
    codes: tuple[AUCode, ...]
    numbers: tuple[int, ...]
    apex_index: int
    key: int  # seeds this clip's pose and noise
    labelled: bool = True


def _rng(seed: int, dataset: str, *keys: int) -> np.random.Generator:
    """A generator for one purpose (``keys``) of one writer: independent of every other draw."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _DATASET_TAGS[dataset], *keys])


def _encode(image: np.ndarray, suffix: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise UserInputError(f"OpenCV cannot encode a {suffix} image")
    return data.tobytes()


def _write_image(path: Path, image: np.ndarray) -> None:
    path.write_bytes(_encode(image, path.suffix.lower()))


def _save_workbook(rows: Sequence[Sequence[object]], path: Path, title: str) -> None:
    """Write rows to a one-sheet .xlsx whose bytes depend only on the rows (fixed timestamps)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    workbook.properties.creator = "microexpr synth"
    workbook.properties.created = _FIXED_TIME
    buffer = io.BytesIO()
    workbook.save(buffer)
    stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(<)", rb"\g<1>" + stamp.encode() + rb"\2", data)
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, data)


def _prepare(out: Path, owned: Sequence[Path], overwrite: bool) -> Path:
    """Create ``out`` and make room for the paths (relative to it) this writer owns.

    A path that exists already is an error naming it, unless ``overwrite`` is set and ``out`` holds a
    ``synth_manifest.json`` of an earlier write: only then is it removed, so a real data set is never
    deleted by pointing ``--out`` at it.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"output path exists and is not a folder: {out}")
    ours = (out / MANIFEST_NAME).is_file()
    for path in owned:
        target = out / path
        if not (target.exists() or target.is_symlink()):
            continue
        if not overwrite:
            raise UserInputError(
                f"{target} already exists; choose an empty output folder or allow overwriting (--force)"
            )
        if not ours:
            raise UserInputError(
                f"{target} already exists and {out} holds no {MANIFEST_NAME}, so it was not written by this "
                "generator; it is left alone: choose another output folder"
            )
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"cannot create output folder {out}: {error.strerror or error}") from None
    return out


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        minimum = 3 if name.startswith("frames") else (0 if name == "unlabelled_sequences" else 1)
        if int(value) != value or value < minimum:
            raise UserInputError(f"{name} must be a whole number of at least {minimum}, got {value}")


def _check_amplitude(amplitude: float) -> float:
    amplitude = float(amplitude)
    if not 0.0 < amplitude <= 10.0:
        raise UserInputError(f"amplitude must lie in (0, 10] (1 = a realistic micro-expression), got {amplitude}")
    return amplitude


def _apex_index(rng: np.random.Generator, n_frames: int) -> int:
    """An apex strictly inside the clip, in its middle 40 % where the clip is long enough."""
    low = max(1, round(0.3 * (n_frames - 1)))
    high = min(n_frames - 2, round(0.7 * (n_frames - 1)))
    return int(rng.integers(low, high + 1)) if high >= low else 1


def _settings(**values: object) -> dict[str, object]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


# --- shared by the writers ------------------------------------------------------------------------------------------


def _render(
    subject: Subject,
    clip: _Clip,
    frame_size: tuple[int, int],
    amplitude: float,
    weights: np.ndarray,
    noise: SensorNoise,
    seed: int,
    dataset: str,
) -> ExpressionClip:
    """Render one planned clip; its pose and noise come from its own seed, so clips are independent."""
    rng = _rng(seed, dataset, 1000 + clip.key)
    return render_expression_clip(subject, frame_size, clip.codes, weights, rng, amplitude=amplitude, noise=noise)


def _record(
    out: Path,
    folder: Path,
    subject: Subject,
    clip: _Clip,
    rendered: ExpressionClip,
    *,
    label: str | None,
    raw_label: str | None,
    frames: Sequence[int],
    expected: str = "ok",
    reason: str = "",
    reader_apex: int | None,
) -> SynthSample:
    """The manifest entry of a written clip."""
    return SynthSample(
        subject=subject.name,
        sample_id=clip.sample_id,
        reader_id=f"{subject.name}/{clip.sample_id}",
        label=label,
        raw_label=raw_label,
        action_units=format_action_units(clip.codes),
        onset_frame=clip.numbers[0],
        apex_frame=clip.numbers[clip.apex_index],
        offset_frame=clip.numbers[-1],
        folder=folder.relative_to(out).as_posix(),
        frames=tuple(frames),
        expected=expected,
        reason=reason,
        reader_apex=reader_apex,
        photo=subject.photo.path.name,
        grey=subject.look.grey,
        warp_scale=round(rendered.warp_scale, 4),
        apex_shift_iod=round(rendered.peak_shift_iod, 4),
    )


def _sort_rows(
    samples: list[SynthSample], rows: list[list[object]]
) -> tuple[tuple[SynthSample, ...], list[list[object]]]:
    """Samples and their sheet rows in the sheets' order: by subject, then clip name."""
    order = sorted(range(len(rows)), key=lambda i: (samples[i].subject, samples[i].sample_id))
    return tuple(samples[i] for i in order), [rows[i] for i in order]


def _plan_clips(
    plan: np.random.Generator,
    emotions: Sequence[Sequence[str | None]],
    frames_per_clip: int,
    name: Callable[[int, np.random.Generator], str],
    first_frame: Callable[[np.random.Generator], int],
    *,
    apex_last: bool = False,
) -> list[_Clip]:
    """The clips of each subject's emotions, in random order, named by ``name(subject, rng)`` and starting
    at absolute frame ``first_frame(rng)``, each with an AU combination and its apex inside the clip (or at
    its last frame: ``apex_last``). ``None`` asks for an unlabelled clip showing a random emotion."""
    clips: list[_Clip] = []
    for subject, labels in enumerate(emotions):
        for position in plan.permutation(len(labels)):
            label = labels[int(position)]
            shown = label if label is not None else str(plan.choice(list(CKPLUS_CODES)))
            onset = first_frame(plan)
            apex = frames_per_clip - 1 if apex_last else _apex_index(plan, frames_per_clip)
            clips.append(
                _Clip(
                    subject,
                    name(subject, plan),
                    shown,
                    choose_action_units(shown, plan),
                    tuple(range(onset, onset + frames_per_clip)),
                    apex,
                    len(clips),
                    labelled=label is not None,
                )
            )
    return clips


def _clip_namer(
    pattern: Callable[[int, int, int], str], groups: tuple[int, int] | None = None
) -> Callable[[int, np.random.Generator], str]:
    """Clip names ``pattern(subject, group, count)``: ``group`` drawn from the range ``groups`` (an episode,
    an inducement video; 0 without one), ``count`` numbering the clips of that subject and group from 1."""
    used: Counter[tuple[int, int]] = Counter()

    def name(subject: int, rng: np.random.Generator) -> str:
        group = int(rng.integers(*groups)) if groups else 0
        used[subject, group] += 1
        return pattern(subject, group, used[subject, group])

    return name


# --- CASME II ---------------------------------------------------------------------------------------------------

_CASME2_LABEL_VARIANTS = {
    "happiness": "Happiness ",
    "disgust": " disgust",
    "surprise": "Surprise",
    "repression": "repression ",
    "others": "Others",
    "fear": " fear",
    "sadness": "Sadness ",
}


def write_casme2(
    out: Path,
    *,
    seed: int = 0,
    n_subjects: int = 4,
    samples_per_class: int = 2,
    frame_size: Sequence[int] | str = (640, 480),
    frames_per_clip: int = 9,
    amplitude: float = 1.0,
    quirks: bool = True,
    photos: Sequence[Path] | None = None,
    cropped: bool = False,
    overwrite: bool = False,
) -> SynthManifest:
    """Write a CASME II-layout data set under ``out`` and return its manifest.

    ``out/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (or, with ``cropped``, the Cropped release's
    ``out/CASME2_Cropped/sub01/EP02_01f/reg_img46.jpg`` face crops of 140×170 px) and the coding sheet
    ``out/CASME2-coding-20140508.xlsx``. Each subject gets ``samples_per_class`` clips of each 5-class label
    (happiness, disgust, surprise, repression, others); ``max(1, n_subjects // 2)`` fear and as many
    sadness clips are added (the 7-class protocol keeps them, the paper's 5-class one drops them). Frame
    numbers are absolute (clips start anywhere) and the first clip crosses 99 → 100, so only a numeric sort
    orders it. ``amplitude`` scales the movements (1 = a realistic micro-expression).

    With ``quirks`` the sheet also holds what the real one does: an ApexFrame written ``/``, emotions with
    stray spaces or capitals, Subject as ``1`` or ``'01'``, an extra unnamed column; plus one clip whose apex
    frame file is missing and one row whose clip folder does not exist. The manifest says which is which.
    ``overwrite`` replaces an earlier output of this writer in ``out``.
    """
    _check_counts(n_subjects=n_subjects, samples_per_class=samples_per_class, frames_per_clip=frames_per_clip)
    amplitude = _check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    folder_name = CASME2_CROPPED_FOLDER if cropped else CASME2_RAW_FOLDER
    face_photos = load_face_photos(photos)
    out = _prepare(out, [Path(folder_name), Path(CASME2_SHEET), Path(MANIFEST_NAME)], overwrite)
    plan = _rng(seed, "casme2")
    names = [f"sub{i + 1:02d}" for i in range(n_subjects)]
    subjects = make_subjects(face_photos, names, plan, face_size=(0.45, 0.56))

    emotions = [[c for c in CASME2_CLASSES for _ in range(samples_per_class)] for _ in names]
    extra = [label for label in CASME2_EXTRA_CLASSES for _ in range(max(1, n_subjects // 2))]
    for k, label in enumerate(extra):
        emotions[k % n_subjects].append(label)
    episode = _clip_namer(lambda _s, ep, n: f"EP{ep:02d}_{n:02d}", (1, 20))
    clips = _plan_clips(
        plan,
        emotions,
        frames_per_clip,
        lambda s, rng: episode(s, rng) + ("f" if rng.random() < 0.3 else ""),
        lambda rng: int(rng.integers(1, 300)),
    )
    first = clips[0]  # crosses a digit boundary: img96 … img104
    crossing = max(1, 100 - frames_per_clip // 2)
    clips[0] = replace(first, numbers=tuple(range(crossing, crossing + frames_per_clip)))

    # the quirks, on clips of the 5-class protocol so that they change its counts predictably
    slash_apex = missing_apex = None
    ghost: tuple[int, str] | None = None
    if quirks:
        candidates = [i for i, c in enumerate(clips) if c.emotion in CASME2_CLASSES and i > 0]
        chosen = [int(i) for i in plan.choice(candidates, size=min(2, len(candidates)), replace=False)]
        slash_apex, missing_apex = [*chosen, None, None][:2]
        ghost = (int(plan.integers(n_subjects)), f"EP{int(plan.integers(20, 30)):02d}_01")

    frames_root = out / folder_name
    prefix = "reg_img" if cropped else "img"
    noise = SensorNoise(1.2)
    samples: list[SynthSample] = []
    rows: list[list[object]] = []
    for index, clip in enumerate(clips):
        subject = subjects[clip.subject]
        weights = clip_profile(len(clip.numbers), clip.apex_index)
        rendered = _render(subject, clip, size, amplitude, weights, noise, seed, "casme2")
        images = rendered.frames
        if cropped:  # one crop box per clip, from its neutral face
            images = tuple(_crop_face(f, rendered.neutral.landmarks, CASME2_CROPPED_SIZE) for f in images)
        folder = frames_root / subject.name / clip.sample_id
        folder.mkdir(parents=True, exist_ok=True)
        apex = clip.numbers[clip.apex_index]
        written = []
        for number, image in zip(clip.numbers, images, strict=True):
            if index == missing_apex and number == apex:
                continue
            _write_image(folder / f"{prefix}{number}.jpg", image)
            written.append(number)

        expected, reason, reader_apex, apex_cell = "ok", "", apex, apex
        if index == slash_apex:
            expected, reason, reader_apex, apex_cell = (
                "repaired",
                "ApexFrame is '/': the reader must spot the apex",
                None,
                "/",
            )
        elif index == missing_apex:
            reader_apex = apex - 1  # the nearest frame; of two equally near, the earlier
            expected, reason = "repaired", f"apex frame file {prefix}{apex}.jpg is missing: nearest frame {reader_apex}"
        quirky_row = quirks and index % 3 == 1  # every third emotion has stray spaces or capitals
        raw_label = _CASME2_LABEL_VARIANTS[clip.emotion] if quirky_row else clip.emotion
        samples.append(
            _record(
                out,
                folder,
                subject,
                clip,
                rendered,
                label=clip.emotion,
                raw_label=raw_label,
                frames=written,
                expected=expected,
                reason=reason,
                reader_apex=reader_apex,
            )
        )
        subject_cell = f"{clip.subject + 1:02d}" if quirks and index % 4 == 2 else clip.subject + 1  # 1 or '01'
        au_text = format_action_units(clip.codes)
        rows.append([subject_cell, clip.sample_id, clip.numbers[0], apex_cell, clip.numbers[-1], au_text, raw_label])
    if ghost is not None:
        number, ghost_id = ghost
        onset = int(plan.integers(1, 300))
        samples.append(
            SynthSample(
                subject=names[number],
                sample_id=ghost_id,
                reader_id=f"{names[number]}/{ghost_id}",
                label="others",
                raw_label="others",
                action_units="7",
                onset_frame=onset,
                apex_frame=onset + 4,
                offset_frame=onset + 8,
                folder=f"{folder_name}/{names[number]}/{ghost_id}",
                frames=(),
                expected="skipped",
                reason="the sheet lists this clip but its folder does not exist",
            )
        )
        rows.append([number + 1, ghost_id, onset, onset + 4, onset + 8, "7", "others"])

    ordered, rows = _sort_rows(samples, rows)
    header: list[object] = list(CASME2_HEADER)
    if quirks:  # an extra unnamed column among the named ones, holding stray notes
        header.insert(5, None)
        for n, row in enumerate(rows):
            row.insert(5, "check" if n % 4 == 1 else None)
    _save_workbook([header, *rows], out / CASME2_SHEET, "Sheet1")
    return _finish(
        SynthManifest(
            dataset="casme2",
            out=out,
            root=out,
            frames_root=frames_root,
            coding=out / CASME2_SHEET,
            samples=ordered,
            expected_counts=expected_counts("casme2", ordered),
            settings=_settings(
                seed=seed,
                n_subjects=n_subjects,
                samples_per_class=samples_per_class,
                frame_size=size,
                frames_per_clip=frames_per_clip,
                amplitude=amplitude,
                quirks=quirks,
                cropped=cropped,
                photos=tuple(p.path.name for p in face_photos),
            ),
        )
    )


def _crop_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The Cropped release's face crop: the landmark box widened a little (more above the brows), with the
    crop's aspect ratio, resized to ``size`` (width, height)."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    width, height = high - low
    top, bottom = low[1] - 0.18 * height, high[1] + 0.04 * height
    box_width = max((bottom - top) * size[0] / size[1], 1.05 * width)
    box_height = box_width * size[1] / size[0]
    x0, y0 = (low[0] + high[0] - box_width) / 2.0, (top + bottom - box_height) / 2.0
    scale = size[0] / box_width
    matrix = np.array([[scale, 0.0, -scale * x0], [0.0, scale, -scale * y0]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _finish(manifest: SynthManifest) -> SynthManifest:
    manifest.write()
    return manifest


# --- CK+ --------------------------------------------------------------------------------------------------------


def write_ckplus(
    out: Path,
    *,
    seed: int = 0,
    n_subjects: int = 4,
    sequences_per_class: int = 1,
    frame_size: Sequence[int] | str = (640, 490),
    frames_per_sequence: int = 6,
    amplitude: float = 1.0,
    unlabelled_sequences: int = 1,
    photos: Sequence[Path] | None = None,
    overwrite: bool = False,
) -> SynthManifest:
    """Write a CK+-layout data set under ``out`` and return its manifest.

    ``out/cohn-kanade-images/S005/001/S005_001_00000001.png`` … : each sequence goes from neutral (frame 1)
    to the peak of a posed expression (its last frame), about three times the movement of a
    micro-expression (:data:`training.synth.actions.MACRO_SCALE`; ``amplitude`` scales it further). Each
    subject gets ``sequences_per_class`` sequences of each of the 7 emotions, labelled by
    ``out/Emotion/S005/001/S005_001_00000006_emotion.txt`` (``   5.0000000e+00``: 1 anger, 2 contempt,
    3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise) naming the last frame; ``unlabelled_sequences`` more
    sequences (in all, spread over the subjects) have an empty Emotion folder, as in the release. About two
    subjects in three are grey, the others colour. ``overwrite`` replaces an earlier output of this writer.
    """
    _check_counts(
        n_subjects=n_subjects,
        sequences_per_class=sequences_per_class,
        frames_per_sequence=frames_per_sequence,
        unlabelled_sequences=unlabelled_sequences,
    )
    amplitude = _check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    face_photos = load_face_photos(photos)
    out = _prepare(out, [Path(CKPLUS_IMAGES), Path(CKPLUS_EMOTION), Path(MANIFEST_NAME)], overwrite)
    plan = _rng(seed, "ckplus")
    numbers = [*CKPLUS_SUBJECTS, *range(CKPLUS_SUBJECTS[-1] + 1, CKPLUS_SUBJECTS[-1] + 1 + n_subjects)]
    names = [f"S{n:03d}" for n in numbers[:n_subjects]]
    grey = [i % 3 != 1 for i in range(n_subjects)]
    subjects = make_subjects(face_photos, names, plan, grey=grey, face_size=(0.45, 0.56))

    emotions: list[list[str | None]] = [[c for c in CKPLUS_CODES for _ in range(sequences_per_class)] for _ in names]
    for k in range(unlabelled_sequences):  # unlabelled sequences (an empty Emotion folder) show some emotion too
        emotions[k % n_subjects].append(None)
    sequence_name = _clip_namer(lambda _s, _g, n: f"{n:03d}")
    clips = _plan_clips(plan, emotions, frames_per_sequence, sequence_name, lambda _rng: 1, apex_last=True)
    noise = SensorNoise(1.0)
    weights = clip_profile(frames_per_sequence, frames_per_sequence - 1)
    samples: list[SynthSample] = []
    for clip in clips:
        subject = subjects[clip.subject]
        rendered = _render(subject, clip, size, amplitude * MACRO_SCALE, weights, noise, seed, "ckplus")
        folder = out / CKPLUS_IMAGES / subject.name / clip.sample_id
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in zip(clip.numbers, rendered.frames, strict=True):
            _write_image(folder / f"{subject.name}_{clip.sample_id}_{number:08d}.png", image)
        labels_folder = out / CKPLUS_EMOTION / subject.name / clip.sample_id
        labels_folder.mkdir(parents=True, exist_ok=True)
        last = clip.numbers[-1]
        label = clip.emotion if clip.labelled else None
        if label is not None:
            text = f"{float(CKPLUS_CODES[label]):16.7e}\n"  # '   5.0000000e+00'
            (labels_folder / f"{subject.name}_{clip.sample_id}_{last:08d}_emotion.txt").write_text(text)
        samples.append(
            _record(
                out,
                folder,
                subject,
                clip,
                rendered,
                label=label,
                raw_label=None if label is None else str(CKPLUS_CODES[label]),
                frames=clip.numbers,
                expected="ok" if label is not None else "unlabelled",
                reason="" if label is not None else f"no Emotion file (an unlabelled sequence showing {clip.emotion})",
                reader_apex=last,
            )
        )
    ordered = tuple(sorted(samples, key=lambda x: x.reader_id))
    return _finish(
        SynthManifest(
            dataset="ckplus",
            out=out,
            root=out,
            frames_root=out / CKPLUS_IMAGES,
            coding=None,
            samples=ordered,
            expected_counts=expected_counts("ckplus", ordered),
            settings=_settings(
                seed=seed,
                n_subjects=n_subjects,
                sequences_per_class=sequences_per_class,
                frame_size=size,
                frames_per_sequence=frames_per_sequence,
                amplitude=amplitude,
                unlabelled_sequences=unlabelled_sequences,
                photos=tuple(p.path.name for p in face_photos),
            ),
        )
    )


# --- SAMM -------------------------------------------------------------------------------------------------------


def write_samm(
    out: Path,
    *,
    seed: int = 0,
    n_subjects: int = 3,
    samples_per_class: int = 1,
    frame_size: Sequence[int] | str = (640, 480),
    frames_per_clip: int = 9,
    amplitude: float = 1.0,
    quirks: bool = True,
    photos: Sequence[Path] | None = None,
    overwrite: bool = False,
) -> SynthManifest:
    """Write a SAMM-layout data set under ``out`` and return its manifest.

    ``out/SAMM/006/006_1_2/006_05562.jpg`` (grey; the release is 2040×1088, pass that ``frame_size`` for
    full-size frames) and ``out/SAMM_Micro_FACS_Codes_v2.xlsx``, whose header row (Subject, Filename,
    Inducement Code, Onset Frame, Apex Frame, Offset Frame, Duration, Type, Action Units, Notes, Estimated
    Emotion, Objective Classes) comes after two title rows and a blank one. Each subject gets
    ``samples_per_class`` clips of each of SAMM's labels (Anger, Contempt, Disgust, Fear, Happiness, Other,
    Sadness, Surprise). With ``quirks`` one Apex Frame reads ``-1`` and Subject is sometimes a number
    (``6``) rather than text (``'006'``). ``overwrite`` replaces an earlier output of this writer.
    """
    _check_counts(n_subjects=n_subjects, samples_per_class=samples_per_class, frames_per_clip=frames_per_clip)
    amplitude = _check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    face_photos = load_face_photos(photos)
    out = _prepare(out, [Path(SAMM_FOLDER), Path(SAMM_SHEET), Path(MANIFEST_NAME)], overwrite)
    plan = _rng(seed, "samm")
    numbers = [*SAMM_SUBJECTS, *range(SAMM_SUBJECTS[-1] + 1, SAMM_SUBJECTS[-1] + 1 + n_subjects)]
    names = [f"{n:03d}" for n in numbers[:n_subjects]]
    subjects = make_subjects(face_photos, names, plan, grey=[True] * n_subjects, face_size=(0.5, 0.6))

    emotions = [[c for c in SAMM_LABELS for _ in range(samples_per_class)] for _ in names]
    inducement = _clip_namer(lambda s, video, n: f"{names[s]}_{video}_{n}", (1, 8))
    clips = _plan_clips(plan, emotions, frames_per_clip, inducement, lambda rng: int(rng.integers(100, 20000)))
    minus_one = None
    if quirks:
        candidates = [i for i, c in enumerate(clips) if c.emotion in PROTOCOLS["samm"]["5class"]]
        minus_one = int(plan.choice(candidates))

    noise = SensorNoise(1.2)
    samples: list[SynthSample] = []
    rows: list[list[object]] = []
    for index, clip in enumerate(clips):
        subject = subjects[clip.subject]
        weights = clip_profile(len(clip.numbers), clip.apex_index)
        rendered = _render(subject, clip, size, amplitude, weights, noise, seed, "samm")
        folder = out / SAMM_FOLDER / subject.name / clip.sample_id
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in zip(clip.numbers, rendered.frames, strict=True):
            _write_image(folder / f"{subject.name}_{number:05d}.jpg", image)
        apex = clip.numbers[clip.apex_index]
        expected, reason, reader_apex, apex_cell = "ok", "", apex, apex
        if index == minus_one:
            expected, reason, reader_apex, apex_cell = (
                "repaired",
                "Apex Frame is -1: the reader must spot the apex",
                None,
                -1,
            )
        samples.append(
            _record(
                out,
                folder,
                subject,
                clip,
                rendered,
                label=clip.emotion,
                raw_label=SAMM_LABELS[clip.emotion],
                frames=clip.numbers,
                expected=expected,
                reason=reason,
                reader_apex=reader_apex,
            )
        )
        rows.append(
            [
                int(subject.name) if quirks and index % 3 == 1 else subject.name,  # '006', or (a quirk) 6
                clip.sample_id,
                clip.sample_id.split("_", 1)[1],
                clip.numbers[0],
                apex_cell,
                clip.numbers[-1],
                len(clip.numbers),
                "Micro - 1/2",
                format_action_units(clip.codes),
                None,
                SAMM_LABELS[clip.emotion],
                SAMM_OBJECTIVE_CLASS[clip.emotion],
            ]
        )
    ordered, rows = _sort_rows(samples, rows)
    titles: list[list[object]] = [
        ["SAMM Micro-Movement FACS Codes"],
        ["Version 2 layout, generated by microexpr synth: synthetic faces, not the licensed SAMM data"],
        [],
    ]
    _save_workbook([*titles, list(SAMM_HEADER), *rows], out / SAMM_SHEET, "FACS Codes")
    return _finish(
        SynthManifest(
            dataset="samm",
            out=out,
            root=out,
            frames_root=out / SAMM_FOLDER,
            coding=out / SAMM_SHEET,
            samples=ordered,
            expected_counts=expected_counts("samm", ordered),
            settings=_settings(
                seed=seed,
                n_subjects=n_subjects,
                samples_per_class=samples_per_class,
                frame_size=size,
                frames_per_clip=frames_per_clip,
                amplitude=amplitude,
                quirks=quirks,
                photos=tuple(p.path.name for p in face_photos),
            ),
        )
    )


WRITERS: Mapping[str, Callable[..., SynthManifest]] = {
    "casme2": write_casme2,
    "ckplus": write_ckplus,
    "samm": write_samm,
}
"""Layout name → writer (the CLI's choices)."""
