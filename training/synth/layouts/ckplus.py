"""The CK+ layout: ``cohn-kanade-images/S005/001/S005_001_00000001.png`` sequences from neutral to a posed
peak, labelled by ``Emotion/S005/001/S005_001_00000006_emotion.txt`` files (some sequences unlabelled)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from training.synth.actions import MACRO_SCALE, clip_profile
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
    settings_record,
    write_image,
    writer_rng,
)
from training.synth.layouts.manifest import MANIFEST_NAME, SynthManifest, SynthSample, expected_counts

CKPLUS_IMAGES = "cohn-kanade-images"
CKPLUS_EMOTION = "Emotion"
CKPLUS_CODES = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happiness": 5, "sadness": 6, "surprise": 7}
CKPLUS_SUBJECTS = (5, 10, 11, 14, 22, 26, 28, 29, 32, 34, 35, 37, 42, 44, 45, 46, 50, 51, 52, 53, 54, 55)


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
    check_counts(
        n_subjects=n_subjects,
        sequences_per_class=sequences_per_class,
        frames_per_sequence=frames_per_sequence,
        unlabelled_sequences=unlabelled_sequences,
    )
    amplitude = check_amplitude(amplitude)
    size = parse_frame_size(frame_size)
    face_photos = load_face_photos(photos)
    out = prepare_output(out, [Path(CKPLUS_IMAGES), Path(CKPLUS_EMOTION), Path(MANIFEST_NAME)], overwrite)
    plan = writer_rng(seed, "ckplus")
    numbers = [*CKPLUS_SUBJECTS, *range(CKPLUS_SUBJECTS[-1] + 1, CKPLUS_SUBJECTS[-1] + 1 + n_subjects)]
    names = [f"S{n:03d}" for n in numbers[:n_subjects]]
    grey = [i % 3 != 1 for i in range(n_subjects)]
    subjects = make_subjects(face_photos, names, plan, grey=grey, face_size=(0.45, 0.56))

    emotions: list[list[str | None]] = [[c for c in CKPLUS_CODES for _ in range(sequences_per_class)] for _ in names]
    for k in range(unlabelled_sequences):  # unlabelled sequences (an empty Emotion folder) show some emotion too
        emotions[k % n_subjects].append(None)
    sequence_name = clip_namer(lambda _s, _g, n: f"{n:03d}")
    clips = plan_clips(
        plan,
        emotions,
        frames_per_sequence,
        sequence_name,
        lambda _rng: 1,
        apex_last=True,
        unlabelled_shows=tuple(CKPLUS_CODES),
    )
    noise = SensorNoise(1.0)
    weights = clip_profile(frames_per_sequence, frames_per_sequence - 1)
    samples: list[SynthSample] = []
    for clip in clips:
        subject = subjects[clip.subject]
        rendered = render_clip(subject, clip, size, amplitude * MACRO_SCALE, weights, noise, seed, "ckplus")
        folder = out / CKPLUS_IMAGES / subject.name / clip.sample_id
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in zip(clip.numbers, rendered.frames, strict=True):
            write_image(folder / f"{subject.name}_{clip.sample_id}_{number:08d}.png", image)
        labels_folder = out / CKPLUS_EMOTION / subject.name / clip.sample_id
        labels_folder.mkdir(parents=True, exist_ok=True)
        last = clip.numbers[-1]
        label = clip.emotion if clip.labelled else None
        if label is not None:
            text = f"{float(CKPLUS_CODES[label]):16.7e}\n"  # '   5.0000000e+00'
            (labels_folder / f"{subject.name}_{clip.sample_id}_{last:08d}_emotion.txt").write_text(text)
        samples.append(
            record_sample(
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
    return save_manifest(
        SynthManifest(
            dataset="ckplus",
            out=out,
            root=out,
            frames_root=out / CKPLUS_IMAGES,
            coding=None,
            samples=ordered,
            expected_counts=expected_counts("ckplus", ordered),
            settings=settings_record(
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
