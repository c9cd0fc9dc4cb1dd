"""The SAMM layout: grey ``SAMM/006/006_1_2/006_05562.jpg`` frames and the coding sheet
``SAMM_Micro_FACS_Codes_v2.xlsx`` (two title rows and a blank one above its header), with its quirks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from training.datasets.base import PROTOCOLS
from training.synth.actions import clip_profile, format_action_units
from training.synth.faces import SensorNoise, load_face_photos, make_subjects, parse_frame_size
from training.synth.layouts.common import (
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

SAMM_FOLDER = "SAMM"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
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
    check_counts(n_subjects=n_subjects, samples_per_class=samples_per_class, frames_per_clip=frames_per_clip)
    amplitude = check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    face_photos = load_face_photos(photos)
    out = prepare_output(out, [Path(SAMM_FOLDER), Path(SAMM_SHEET), Path(MANIFEST_NAME)], overwrite)
    plan = writer_rng(seed, "samm")
    numbers = [*SAMM_SUBJECTS, *range(SAMM_SUBJECTS[-1] + 1, SAMM_SUBJECTS[-1] + 1 + n_subjects)]
    names = [f"{n:03d}" for n in numbers[:n_subjects]]
    subjects = make_subjects(face_photos, names, plan, grey=[True] * n_subjects, face_size=(0.5, 0.6))

    emotions = [[c for c in SAMM_LABELS for _ in range(samples_per_class)] for _ in names]
    inducement = clip_namer(lambda s, video, n: f"{names[s]}_{video}_{n}", (1, 8))
    clips = plan_clips(plan, emotions, frames_per_clip, inducement, lambda rng: int(rng.integers(100, 20000)))
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
        rendered = render_clip(subject, clip, size, amplitude, weights, noise, seed, "samm")
        folder = out / SAMM_FOLDER / subject.name / clip.sample_id
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in zip(clip.numbers, rendered.frames, strict=True):
            write_image(folder / f"{subject.name}_{number:05d}.jpg", image)
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
            record_sample(
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
    ordered, rows = sort_by_subject(samples, rows)
    titles: list[list[object]] = [
        ["SAMM Micro-Movement FACS Codes"],
        ["Version 2 layout, generated by microexpr synth: synthetic faces, not the licensed SAMM data"],
        [],
    ]
    save_workbook([*titles, list(SAMM_HEADER), *rows], out / SAMM_SHEET, "FACS Codes")
    return save_manifest(
        SynthManifest(
            dataset="samm",
            out=out,
            root=out,
            frames_root=out / SAMM_FOLDER,
            coding=out / SAMM_SHEET,
            samples=ordered,
            expected_counts=expected_counts("samm", ordered),
            settings=settings_record(
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
