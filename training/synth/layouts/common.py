"""The machinery every layout writer shares: seeded random streams, planning clips (names, frame numbers,
action units, apex), rendering them, reproducible image and workbook bytes, a safe output folder, and the
manifest entry of each written clip."""

from __future__ import annotations

import datetime
import io
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError
from training.synth.actions import AUCode, choose_action_units, format_action_units
from training.synth.faces import ExpressionClip, SensorNoise, Subject, render_expression_clip
from training.synth.layouts.manifest import MANIFEST_NAME, SynthManifest, SynthSample

_DATASET_TAGS = {"casme2": 1, "ckplus": 2, "samm": 3}
_FIXED_TIME = datetime.datetime(2014, 5, 8, 12, 0, 0)  # sheets carry this instead of "now": reproducible bytes
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class PlannedClip:
    """A clip to render: whose, which expression, which frame numbers, where the apex lies."""

    subject: int
    sample_id: str
    emotion: str
    codes: tuple[AUCode, ...]
    numbers: tuple[int, ...]
    apex_index: int
    key: int  # seeds this clip's pose and noise
    labelled: bool = True


def writer_rng(seed: int, dataset: str, *keys: int) -> np.random.Generator:
    """A generator for one purpose (``keys``) of one writer: independent of every other draw."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _DATASET_TAGS[dataset], *keys])


def _encode(image: np.ndarray, suffix: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise UserInputError(f"OpenCV cannot encode a {suffix} image")
    return data.tobytes()


def write_image(path: Path, image: np.ndarray) -> None:
    path.write_bytes(_encode(image, path.suffix.lower()))


def save_workbook(rows: Sequence[Sequence[object]], path: Path, title: str) -> None:
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


def prepare_output(out: Path, owned: Sequence[Path], overwrite: bool) -> Path:
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


def check_counts(**values: int) -> None:
    for name, value in values.items():
        minimum = 3 if name.startswith("frames") else (0 if name == "unlabelled_sequences" else 1)
        if int(value) != value or value < minimum:
            raise UserInputError(f"{name} must be a whole number of at least {minimum}, got {value}")


def check_amplitude(amplitude: float) -> float:
    amplitude = float(amplitude)
    if not 0.0 < amplitude <= 10.0:
        raise UserInputError(f"amplitude must lie in (0, 10] (1 = a realistic micro-expression), got {amplitude}")
    return amplitude


def _apex_index(rng: np.random.Generator, n_frames: int) -> int:
    """An apex strictly inside the clip, in its middle 40 % where the clip is long enough."""
    low = max(1, round(0.3 * (n_frames - 1)))
    high = min(n_frames - 2, round(0.7 * (n_frames - 1)))
    return int(rng.integers(low, high + 1)) if high >= low else 1


def settings_record(**values: object) -> dict[str, object]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


# --- shared by the writers ------------------------------------------------------------------------------------------


def render_clip(
    subject: Subject,
    clip: PlannedClip,
    frame_size: tuple[int, int],
    amplitude: float,
    weights: np.ndarray,
    noise: SensorNoise,
    seed: int,
    dataset: str,
) -> ExpressionClip:
    """Render one planned clip; its pose and noise come from its own seed, so clips are independent."""
    rng = writer_rng(seed, dataset, 1000 + clip.key)
    return render_expression_clip(subject, frame_size, clip.codes, weights, rng, amplitude=amplitude, noise=noise)


def record_sample(
    out: Path,
    folder: Path,
    subject: Subject,
    clip: PlannedClip,
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


def sort_by_subject(
    samples: list[SynthSample], rows: list[list[object]]
) -> tuple[tuple[SynthSample, ...], list[list[object]]]:
    """Samples and their sheet rows in the sheets' order: by subject, then clip name."""
    order = sorted(range(len(rows)), key=lambda i: (samples[i].subject, samples[i].sample_id))
    return tuple(samples[i] for i in order), [rows[i] for i in order]


def plan_clips(
    plan: np.random.Generator,
    emotions: Sequence[Sequence[str | None]],
    frames_per_clip: int,
    name: Callable[[int, np.random.Generator], str],
    first_frame: Callable[[np.random.Generator], int],
    *,
    apex_last: bool = False,
    unlabelled_shows: Sequence[str] = (),
) -> list[PlannedClip]:
    """The clips of each subject's emotions, in random order, named by ``name(subject, rng)`` and starting
    at absolute frame ``first_frame(rng)``, each with an AU combination and its apex inside the clip (or at
    its last frame: ``apex_last``). ``None`` asks for an unlabelled clip showing a random one of
    ``unlabelled_shows``."""
    clips: list[PlannedClip] = []
    for subject, labels in enumerate(emotions):
        for position in plan.permutation(len(labels)):
            label = labels[int(position)]
            shown = label if label is not None else str(plan.choice(list(unlabelled_shows)))
            onset = first_frame(plan)
            apex = frames_per_clip - 1 if apex_last else _apex_index(plan, frames_per_clip)
            clips.append(
                PlannedClip(
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


def clip_namer(
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


def save_manifest(manifest: SynthManifest) -> SynthManifest:
    manifest.write()
    return manifest
