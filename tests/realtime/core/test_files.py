"""realtime.core.files: whole files or none, by one rule, and the content hash."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from realtime.core.files import (
    IMAGE_SUFFIXES,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
)


@pytest.mark.parametrize(
    ("write", "read"),
    [
        (lambda p: atomic_write_text(p, "héllo\n"), lambda p: p.read_text(encoding="utf-8")),
        (lambda p: atomic_write_bytes(p, "héllo\n".encode()), lambda p: p.read_bytes().decode()),
        (
            lambda p: atomic_write_json(p, {"word": "héllo"}, ensure_ascii=False),
            lambda p: json.loads(p.read_text(encoding="utf-8"))["word"] + "\n",
        ),
    ],
    ids=["text", "bytes", "json"],
)
def test_a_write_replaces_the_target_and_leaves_nothing_beside_it(tmp_path, write, read):
    target = tmp_path / "out.txt"
    target.write_text("old")
    assert write(target) == target
    assert read(target) == "héllo\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "batch.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half-way"), atomic_open(target, newline="") as handle:
        csv.writer(handle).writerow(["new", "row"])
        raise RuntimeError("half-way")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["batch.csv"]


def test_writers_that_want_a_path_get_a_hidden_sibling_with_the_same_suffix(tmp_path):
    target = tmp_path / "folds.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".png"
        assert not target.exists()
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not tmp.exists()


def test_only_whole_file_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "a"):
        pass


def test_file_sha256_is_the_hash_of_the_content(tmp_path):
    data = bytes(range(256)) * 9000  # more than one 1 MiB block
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_image_suffix_is_one_opencv_reads_and_every_reader_lists(tmp_path, suffix):
    import cv2
    import numpy as np

    from realtime.stages.capture import open_source
    from training.datasets.base import list_frames

    frame = np.full((8, 8) if suffix == ".pgm" else (8, 8, 3), 90, np.uint8)  # PGM is grey by definition
    for number in (1, 2):
        assert cv2.imwrite(str(tmp_path / f"img{number}{suffix}"), frame)
    assert cv2.imread(str(tmp_path / f"img1{suffix}")) is not None
    assert list(list_frames(tmp_path)) == [1, 2]
    with open_source(str(tmp_path)) as source:
        assert [frame.index for frame in source] == [0, 1]
