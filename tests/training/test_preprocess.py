"""Training crops come from the streaming side's alignment, bit for bit, and are cached on disk."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.core.align import AlignmentSettings, align_largest_face
from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker
from training.datasets.base import DatasetIndex, Sample
from training.preprocess import CropCache, LazyLandmarker, align_image_file, build_crop_set


def _index(paths: list[Path], labels: list[str]) -> DatasetIndex:
    samples = tuple(
        Sample("casme2", f"sub{i:02d}", f"sub{i:02d}/EP01_0{i}", label, label, path)
        for i, (path, label) in enumerate(zip(paths, labels, strict=True), start=1)
    )
    return DatasetIndex("casme2", paths[0].parent, "5class", ("happiness", "disgust"), samples)


@pytest.fixture()
def frames(tmp_path, face_photo, second_face_photo) -> list[Path]:
    paths = []
    for i, image in enumerate([face_photo, second_face_photo, cv2.flip(face_photo, 1)]):
        path = tmp_path / f"img{46 + i}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.mark.parametrize("size", [64, 224])
def test_training_and_streaming_paths_give_bit_identical_crops(frames, tmp_path, size):
    settings = AlignmentSettings(output_size=size)
    landmarker = FaceLandmarker()
    index = _index(frames, ["happiness", "disgust", "happiness"])
    crops, report = build_crop_set(index, settings, cache_dir=None, progress=False)
    for path, crop in zip(frames, crops.images, strict=True):
        live = align_largest_face(cv2.imread(str(path)), landmarker, settings).aligned.image
        assert np.array_equal(live, crop)
    assert report.n_images == 3 and report.n_cached == 0
    assert crops.labels.tolist() == [0, 1, 0] and crops.subjects == ("sub01", "sub02", "sub03")


def test_cache_returns_the_same_crops_without_running_dlib(frames, tmp_path, monkeypatch):
    settings = AlignmentSettings(output_size=64)
    index = _index(frames, ["happiness", "disgust", "happiness"])
    first, report1 = build_crop_set(index, settings, cache_dir=tmp_path / "cache", progress=False)
    assert report1.n_cached == 0

    def no_dlib(*args, **kwargs):
        raise AssertionError("dlib ran although every crop was cached")

    monkeypatch.setattr(LazyLandmarker, "get", no_dlib)
    second, report2 = build_crop_set(index, settings, cache_dir=tmp_path / "cache", progress=False)
    assert report2.n_cached == 3
    assert np.array_equal(first.images, second.images)


def test_cache_is_keyed_by_content_and_settings(frames, tmp_path):
    cache = CropCache(tmp_path / "cache")
    data = frames[0].read_bytes()
    assert cache.key(data, AlignmentSettings(output_size=64)) != cache.key(data, AlignmentSettings(output_size=65))
    assert cache.key(data, AlignmentSettings()) != cache.key(frames[1].read_bytes(), AlignmentSettings())
    # the same bytes under another name hit the same entry
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(data)
    align_image_file(frames[0], AlignmentSettings(output_size=32), cache=cache)
    assert align_image_file(copy, AlignmentSettings(output_size=32), cache=cache).from_cache


def test_unreadable_and_missing_images_name_the_file(tmp_path):
    broken = tmp_path / "img1.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserInputError, match=r"img1\.jpg"):
        align_image_file(broken, AlignmentSettings(output_size=32))
    with pytest.raises(UserInputError, match=r"missing\.jpg"):
        align_image_file(tmp_path / "missing.jpg", AlignmentSettings(output_size=32))
