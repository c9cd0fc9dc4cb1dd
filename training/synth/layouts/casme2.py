"""The CASME II layout: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (or the Cropped release's face
crops) and the coding sheet ``CASME2-coding-20140508.xlsx``, with the real sheet's quirks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from training.synth.actions import clip_profile, format_action_units
from training.synth.faces import SensorNoise, Subject, load_face_photos, make_subjects, parse_frame_size
from training.synth.layouts.common import (
    PlannedClip,
    check_amplitude,
    check_counts,
    clip_namer,
    plan_clips,
    prepare_output,
    record_sample,
    render_clip,
    save_manifest,
    save_workbook,
    settings_record,
    sort_by_subject,
    write_image,
    writer_rng,
)
from training.synth.layouts.manifest import MANIFEST_NAME, SynthManifest, SynthSample, expected_counts

CASME2_RAW_FOLDER = "CASME2_RAW_selected"
CASME2_CROPPED_FOLDER = "CASME2_Cropped"
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
CASME2_CROPPED_SIZE = (140, 170)  # (width, height) of the Cropped release's face crops, about 170×140 px
CASME2_CLASSES = ("happiness", "disgust", "surprise", "repression", "others")
CASME2_EXTRA_CLASSES = ("fear", "sadness")  # in the 7-class protocol, dropped by the paper's 5-class one
CASME2_HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")

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
    check_counts(n_subjects=n_subjects, samples_per_class=samples_per_class, frames_per_clip=frames_per_clip)
    amplitude = check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    folder_name = CASME2_CROPPED_FOLDER if cropped else CASME2_RAW_FOLDER
    face_photos = load_face_photos(photos)
    out = prepare_output(out, [Path(folder_name), Path(CASME2_SHEET), Path(MANIFEST_NAME)], overwrite)
    plan = writer_rng(seed, "casme2")
    names = [f"sub{i + 1:02d}" for i in range(n_subjects)]
    subjects = make_subjects(face_photos, names, plan, face_size=(0.45, 0.56))
    clips = _plan_casme2_clips(plan, n_subjects, samples_per_class, frames_per_clip)
    sheet_quirks = _choose_sheet_quirks(plan, clips, n_subjects) if quirks else _SheetQuirks()

    frames_root = out / folder_name
    render = _Rendering(size, amplitude, SensorNoise(1.2), seed, cropped)
    samples: list[SynthSample] = []
    rows: list[list[object]] = []
    for index, clip in enumerate(clips):
        sample, row = _write_clip(out, frames_root, subjects[clip.subject], clip, index, render, sheet_quirks, quirks)
        samples.append(sample)
        rows.append(row)
    if sheet_quirks.ghost is not None:
        sample, row = _ghost_clip(plan, names, sheet_quirks.ghost, folder_name)
        samples.append(sample)
        rows.append(row)

    ordered, rows = sort_by_subject(samples, rows)
    _save_sheet(rows, out / CASME2_SHEET, unnamed_column=quirks)
    return save_manifest(
        SynthManifest(
            dataset="casme2",
            out=out,
            root=out,
            frames_root=frames_root,
            coding=out / CASME2_SHEET,
            samples=ordered,
            expected_counts=expected_counts("casme2", ordered),
            settings=settings_record(
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


@dataclass(frozen=True)
class _SheetQuirks:
    """Where the real sheet's row quirks go: indices into the planned clips, None where there are none."""

    slash_apex: int | None = None  # its ApexFrame is written '/'
    missing_apex: int | None = None  # its apex frame file is left out
    ghost: tuple[int, str] | None = None  # (subject index, clip name) of a sheet row without a clip folder


@dataclass(frozen=True)
class _Rendering:
    """How every clip of one write is rendered and stored."""

    size: tuple[int, int]
    amplitude: float
    noise: SensorNoise
    seed: int
    cropped: bool  # the Cropped release's face crops, named reg_img<N>.jpg, instead of whole frames

    @property
    def prefix(self) -> str:
        return "reg_img" if self.cropped else "img"


def _plan_casme2_clips(
    plan: np.random.Generator, n_subjects: int, samples_per_class: int, frames_per_clip: int
) -> list[PlannedClip]:
    """Every subject's clips: ``samples_per_class`` of each 5-class label, the 7-class protocol's fear and
    sadness clips spread over the subjects, named like ``EP02_01f``; the first clip's frame numbers cross
    99 → 100, so that only a numeric sort orders them."""
    emotions = [[c for c in CASME2_CLASSES for _ in range(samples_per_class)] for _ in range(n_subjects)]
    extra = [label for label in CASME2_EXTRA_CLASSES for _ in range(max(1, n_subjects // 2))]
    for k, label in enumerate(extra):
        emotions[k % n_subjects].append(label)
    episode = clip_namer(lambda _s, ep, n: f"EP{ep:02d}_{n:02d}", (1, 20))
    clips = plan_clips(
        plan,
        emotions,
        frames_per_clip,
        lambda s, rng: episode(s, rng) + ("f" if rng.random() < 0.3 else ""),
        lambda rng: int(rng.integers(1, 300)),
    )
    first = clips[0]  # crosses a digit boundary: img96 … img104
    crossing = max(1, 100 - frames_per_clip // 2)
    clips[0] = replace(first, numbers=tuple(range(crossing, crossing + frames_per_clip)))
    return clips


def _choose_sheet_quirks(plan: np.random.Generator, clips: Sequence[PlannedClip], n_subjects: int) -> _SheetQuirks:
    """The clips that get the slash apex and the missing apex file (on clips of the 5-class protocol, so that
    they change its counts predictably), and the name of a sheet row without a folder."""
    candidates = [i for i, c in enumerate(clips) if c.emotion in CASME2_CLASSES and i > 0]
    chosen = [int(i) for i in plan.choice(candidates, size=min(2, len(candidates)), replace=False)]
    slash_apex, missing_apex = [*chosen, None, None][:2]
    ghost = (int(plan.integers(n_subjects)), f"EP{int(plan.integers(20, 30)):02d}_01")
    return _SheetQuirks(slash_apex, missing_apex, ghost)


def _write_clip(
    out: Path,
    frames_root: Path,
    subject: Subject,
    clip: PlannedClip,
    index: int,
    render: _Rendering,
    sheet_quirks: _SheetQuirks,
    quirks: bool,
) -> tuple[SynthSample, list[object]]:
    """Render clip number ``index``, write its frame files, and return its manifest entry and sheet row."""
    weights = clip_profile(len(clip.numbers), clip.apex_index)
    rendered = render_clip(subject, clip, render.size, render.amplitude, weights, render.noise, render.seed, "casme2")
    images = rendered.frames
    if render.cropped:  # one crop box per clip, from its neutral face
        images = tuple(_crop_face(f, rendered.neutral.landmarks, CASME2_CROPPED_SIZE) for f in images)
    folder = frames_root / subject.name / clip.sample_id
    folder.mkdir(parents=True, exist_ok=True)
    apex = clip.numbers[clip.apex_index]
    written = []
    for number, image in zip(clip.numbers, images, strict=True):
        if index == sheet_quirks.missing_apex and number == apex:
            continue
        write_image(folder / f"{render.prefix}{number}.jpg", image)
        written.append(number)

    expected, reason, reader_apex, apex_cell = "ok", "", apex, apex
    if index == sheet_quirks.slash_apex:
        expected, reason, reader_apex, apex_cell = (
            "repaired",
            "ApexFrame is '/': the reader must spot the apex",
            None,
            "/",
        )
    elif index == sheet_quirks.missing_apex:
        reader_apex = apex - 1  # the nearest frame; of two equally near, the earlier
        expected = "repaired"
        reason = f"apex frame file {render.prefix}{apex}.jpg is missing: nearest frame {reader_apex}"
    quirky_row = quirks and index % 3 == 1  # every third emotion has stray spaces or capitals
    raw_label = _CASME2_LABEL_VARIANTS[clip.emotion] if quirky_row else clip.emotion
    sample = record_sample(
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
    subject_cell = f"{clip.subject + 1:02d}" if quirks and index % 4 == 2 else clip.subject + 1  # 1 or '01'
    au_text = format_action_units(clip.codes)
    return sample, [subject_cell, clip.sample_id, clip.numbers[0], apex_cell, clip.numbers[-1], au_text, raw_label]


def _ghost_clip(
    plan: np.random.Generator, names: Sequence[str], ghost: tuple[int, str], folder_name: str
) -> tuple[SynthSample, list[object]]:
    """The manifest entry and sheet row of a clip the sheet lists but whose folder does not exist."""
    number, ghost_id = ghost
    onset = int(plan.integers(1, 300))
    sample = SynthSample(
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
    return sample, [number + 1, ghost_id, onset, onset + 4, onset + 8, "7", "others"]


def _save_sheet(rows: list[list[object]], path: Path, *, unnamed_column: bool) -> None:
    """The coding sheet: CASME II's header and the rows; with ``unnamed_column`` (a quirk of the real
    sheet) an extra unnamed column among the named ones, holding stray notes."""
    header: list[object] = list(CASME2_HEADER)
    if unnamed_column:
        header.insert(5, None)
        for n, row in enumerate(rows):
            row.insert(5, "check" if n % 4 == 1 else None)
    save_workbook([header, *rows], path, "Sheet1")


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
