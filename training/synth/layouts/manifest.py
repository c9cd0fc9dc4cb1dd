"""What a layout writer wrote: :class:`SynthSample` (one clip or sequence), :class:`SynthManifest` (the
whole set, also written as ``synth_manifest.json``, which readers ignore) and :func:`expected_counts`, the
per-class counts a reader must find under each label protocol."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from realtime.core.errors import UserInputError
from training.datasets.base import PROTOCOLS

SUBJECT_PHOTOS_NAME = "subject_photos.json"
MANIFEST_NAME = "synth_manifest.json"


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
