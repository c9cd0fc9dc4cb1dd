"""Aligned face crops for training, made by the streaming side's own alignment and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from realtime.core.align import AlignmentSettings, align_largest_face
from realtime.core.errors import UserInputError
from realtime.core.files import atomic_write_bytes
from realtime.core.landmarks import FaceLandmarker, LazyLandmarker
from realtime.core.motion import DEFAULT_INPUT_KIND, build_classifier_input, needs_onset
from training.datasets.base import DatasetIndex

CACHE_FORMAT = "crop-v1"  # bump when the stored crop's meaning changes


@dataclass(frozen=True)
class CropSet:
    """Aligned crops of a dataset, ready for training.

    ``images`` is uint8 of shape (N, S, S, 3) in OpenCV's BGR order (the engine converts to the model's RGB
    on the device): the classifier's input of kind ``input_kind`` (:mod:`realtime.core.motion`; for ``apex`` the
    aligned apex crop itself); ``labels`` are class indices into ``classes``; ``subjects`` and ``sample_ids`` are
    per-sample strings (LOSO folds group by subject).
    """

    images: np.ndarray
    labels: np.ndarray
    subjects: tuple[str, ...]
    sample_ids: tuple[str, ...]
    classes: tuple[str, ...]
    dataset: str = ""
    protocol: str = ""
    input_kind: str = DEFAULT_INPUT_KIND

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.labels) == len(self.subjects) == len(self.sample_ids) == n):
            raise ValueError("images, labels, subjects and sample_ids must have the same length")

    def subset(self, indices: np.ndarray | list[int]) -> CropSet:
        idx = np.asarray(indices, dtype=np.int64)
        return CropSet(
            self.images[idx],
            self.labels[idx],
            tuple(self.subjects[i] for i in idx),
            tuple(self.sample_ids[i] for i in idx),
            self.classes,
            self.dataset,
            self.protocol,
            self.input_kind,
        )


class CropCache:
    """Aligned crops on disk, keyed by the image file's content and the alignment settings.

    A LOSO run over 26 subjects, an ablation of six runs and a re-run after a crash all read the same
    crops: dlib runs once per image, ever. Crops are stored as lossless PNG (bit-exact round trip) with a
    small JSON sidecar recording whether the whole-image fallback was used and the eye angle.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    def key(self, image_bytes: bytes, settings: AlignmentSettings) -> str:
        digest = hashlib.sha1(image_bytes)
        digest.update(settings.key().encode())
        digest.update(CACHE_FORMAT.encode())
        return digest.hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        assert self.folder is not None
        base = self.folder / key[:2] / key
        return base.with_suffix(".png"), base.with_suffix(".json")

    def get(self, key: str) -> tuple[np.ndarray, dict] | None:
        if self.folder is None:
            return None
        image_path, meta_path = self._paths(key)
        if not (image_path.is_file() and meta_path.is_file()):
            return None
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:  # a damaged cache entry is recomputed, not trusted
            return None
        return image, json.loads(meta_path.read_text())

    def put(self, key: str, image: np.ndarray, meta: dict) -> None:
        if self.folder is None:
            return
        image_path, meta_path = self._paths(key)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"could not encode a crop for the cache at {image_path}")
        atomic_write_bytes(image_path, encoded.tobytes())
        atomic_write_bytes(meta_path, json.dumps(meta).encode())


def default_cache_dir() -> Path:
    """``$MICROEXPR_CACHE`` or ``~/.cache/microexpr``, then ``crops/``."""
    base = os.environ.get("MICROEXPR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "microexpr"
    )
    return Path(base) / "crops"


def decode_image(image_bytes: bytes, path: Path) -> np.ndarray:
    """Decode an image file's bytes to a 3-channel BGR array (grey frames are replicated)."""
    image = cv2.imdecode(np.frombuffer(image_bytes, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserInputError(f"cannot read image {path}: not a decodable image file")
    return image


@dataclass(frozen=True)
class AlignedImage:
    """One image file's aligned crop (BGR, ``output_size``²) and what alignment did."""

    image: np.ndarray
    whole_image_fallback: bool
    angle_deg: float
    from_cache: bool


def align_image_file(
    path: Path,
    settings: AlignmentSettings,
    landmarker: LazyLandmarker | None = None,
    cache: CropCache | None = None,
) -> AlignedImage:
    """Align one image file with :func:`realtime.core.align.align_largest_face` — the very function the
    streaming recognizer uses — going through the crop cache when one is given."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserInputError(f"cannot read image {path}: {exc.strerror or exc}") from None
    cache = cache or CropCache(None)
    key = cache.key(data, settings)
    hit = cache.get(key)
    if hit is not None:
        image, meta = hit
        return AlignedImage(image, bool(meta["whole_image_fallback"]), float(meta["angle_deg"]), True)
    landmarker = landmarker or LazyLandmarker()
    located = align_largest_face(decode_image(data, path), landmarker.get(), settings, whole_image_fallback=True)
    assert located is not None  # the whole-image fallback always yields a face box
    meta = {"whole_image_fallback": located.whole_image_fallback, "angle_deg": located.aligned.angle_deg}
    cache.put(key, located.aligned.image, meta)
    return AlignedImage(located.aligned.image, located.whole_image_fallback, located.aligned.angle_deg, False)


@dataclass(frozen=True)
class PreprocessReport:
    """What preprocessing did: crops read from the cache, freshly aligned, and aligned on the whole image
    because no face was detected (normal for already-cropped releases)."""

    n_images: int
    n_cached: int
    whole_image_fallback: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "n_cached": self.n_cached,
            "n_aligned": self.n_images - self.n_cached,
            "whole_image_fallback": list(self.whole_image_fallback),
        }


def build_crop_set(
    index: DatasetIndex,
    settings: AlignmentSettings,
    cache_dir: Path | None = None,
    landmarker: FaceLandmarker | None = None,
    progress: bool = True,
    input_kind: str = DEFAULT_INPUT_KIND,
) -> tuple[CropSet, PreprocessReport]:
    """Align every sample's image of a dataset index into a :class:`CropSet`, using the on-disk cache.

    For an ``input_kind`` that needs the onset (:func:`realtime.core.motion.needs_onset`), the onset frame's image
    is aligned too (on its own landmarks, as the stream aligns every frame) and the pair goes through
    :func:`realtime.core.motion.build_classifier_input`, the function the stream calls."""
    if not index.samples:
        raise UserInputError(f"no usable samples in {index.root} under protocol {index.protocol}")
    cache = CropCache(cache_dir)
    lazy = LazyLandmarker(landmarker)
    size = settings.output_size
    images = np.empty((len(index.samples), size, size, 3), dtype=np.uint8)
    fallback: list[str] = []
    n_cached = 0
    with_onset = needs_onset(input_kind)
    samples = tqdm(index.samples, desc=f"align {index.name}", unit="img", disable=not progress, leave=False)
    for i, sample in enumerate(samples):
        aligned = align_image_file(sample.image_path, settings, lazy, cache)
        n_cached += aligned.from_cache
        onset = None
        if with_onset:
            if sample.onset_path is None:
                raise UserInputError(f"sample {sample.sample_id} has no onset frame image: {input_kind} needs one")
            onset_aligned = align_image_file(sample.onset_path, settings, lazy, cache)
            onset = onset_aligned.image
        images[i] = build_classifier_input(input_kind, aligned.image, onset)
        if aligned.whole_image_fallback:
            fallback.append(sample.sample_id)
    crop_set = CropSet(
        images,
        np.asarray(index.label_indices(), dtype=np.int64),
        tuple(s.subject for s in index.samples),
        tuple(s.sample_id for s in index.samples),
        index.classes,
        index.name,
        index.protocol,
        input_kind,
    )
    return crop_set, PreprocessReport(len(index.samples), n_cached, tuple(fallback))
