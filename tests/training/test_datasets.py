"""Dataset readers on small hand-made layouts: every quirk of shared/datasets.md is handled and reported."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from realtime.core import landmarks as landmarks_module
from realtime.core.errors import UserInputError
from realtime.core.landmarks import FaceLandmarker
from training.datasets import DATASETS, read_casme2, read_ckplus, read_dataset, read_samm
from training.datasets.base import frame_number, list_frames
from training.datasets.sheets import parse_frame, read_sheet

CASME_HEADER = [
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
    None,
]
SAMM_HEADER = [
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
]
SPOTTED_APEX = 16  # the apex of the expression clip whose sheet apex is missing (frames 10..21)


# --- writing small layouts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def face_frame(face_photo) -> np.ndarray:
    """grace_hopper.jpg cut to 4:3 around the face and resized to 320×240 (a detectable 125 px face)."""
    return cv2.resize(face_photo[80:464], (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def smile_frames(face_frame, expression_clip) -> list[np.ndarray]:
    """12 frames (numbered 10..21) whose smile peaks at frame SPOTTED_APEX."""
    corners = np.array([[145.0, 125.0], [187.0, 123.0]])
    return expression_clip(face_frame, corners, 12, SPOTTED_APEX - 10, pixels=3.0)


def write_frames(folder: Path, numbers, name: str = "img{n}.jpg", frames=None) -> None:
    """Small numbered frames; with ``frames`` (one per number) those images instead of grey noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i, n in enumerate(numbers):
        image = frames[i] if frames is not None else rng.integers(0, 255, (24, 32), dtype=np.uint8)
        cv2.imwrite(str(folder / name.format(n=n)), image)


def write_sheet(path: Path, rows: list[list], title_rows: list[list] = ()) -> Path:
    """An .xlsx or .csv coding sheet (by suffix), with optional title rows above the header."""
    all_rows = [*title_rows, *rows]
    if path.suffix == ".csv":
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([["" if c is None else c for c in r] for r in all_rows])
    else:
        workbook = openpyxl.Workbook()
        for r in all_rows:
            workbook.active.append(r)
        workbook.save(path)
    return path


CASME_ROWS = [
    # Subject, Filename, Onset, Apex, Offset, AUs, Emotion, unnamed extra column
    [1, "EP02_01f", 46, 50, 55, "12", "happiness", "x"],
    ["01", "EP03_02", 95, 100, 105, "4", " Disgust ", None],  # img99 / img100 sort; stray spaces
    [1.0, "EP04_01", 10, "/", 21, "14", "surprise", None],  # apex "/" → spotter
    [2, "EP01_01", 25, 30, 35, "4+7", "repression", None],  # img30 missing → nearest
    [2, "EP05_02", 10, 12, 14, "", "others", None],  # clip folder missing
    [2, "EP06_01", 1, 3, 5, "20", "fear", None],  # not in 5class
    [3, "EP07_01", 1, 5, 0, "", "Others", None],  # offset 0 < onset → last frame
    ["3", "EP08_01", 1, 4, None, "", "OTHERS", None],  # offset blank → last frame
    [3, "EP09_01", 1, 2, 6, "1", "sadness", None],  # not in 5class
]


def make_casme2(root: Path, smile_frames, *, rows=CASME_ROWS, folder="CASME2_RAW_selected", prefix="img", sheet="xlsx"):
    frames_root = root / folder if folder else root
    write_frames(frames_root / "sub01" / "EP02_01f", range(46, 56), f"{prefix}{{n}}.jpg")
    write_frames(frames_root / "sub01" / "EP03_02", range(95, 106), f"{prefix}{{n}}.jpg")
    write_frames(frames_root / "sub01" / "EP04_01", range(10, 22), f"{prefix}{{n}}.png", smile_frames)
    write_frames(frames_root / "sub02" / "EP01_01", [25, 27, 29, 31, 33, 35], f"{prefix}{{n}}.jpg")
    write_frames(frames_root / "sub02" / "EP06_01", range(1, 6), f"{prefix}{{n}}.jpg")
    for clip in ("EP07_01", "EP08_01", "EP09_01"):
        write_frames(frames_root / "sub03" / clip, range(1, 9), f"{prefix}{{n}}.jpg")
    write_sheet(root / f"CASME2-coding-20140508.{sheet}", [CASME_HEADER, *rows])
    return root


@pytest.fixture
def casme_root(tmp_path, smile_frames) -> Path:
    return make_casme2(tmp_path / "casme2", smile_frames)


def make_samm(root: Path, smile_frames, sheet: str = "xlsx") -> Path:
    write_frames(root / "006" / "006_1_2", range(5562, 5571), "006_{n:05d}.jpg")
    write_frames(root / "006" / "006_1_3", range(10, 22), "006_{n:05d}.png", smile_frames)
    write_frames(root / "007" / "007_2_1", range(998, 1003), "007_{n:05d}.jpg")
    write_frames(root / "007" / "007_3_1", range(1, 4), "007_{n:05d}.jpg")
    write_frames(root / "011" / "011_1_1", range(40, 50), "011_{n}.jpg")
    rows = [
        [6, "006_1_2", "1_2", 5562, 5566, 5570, 8, "Micro - 1/2", "R12", "", "Happiness", 1],
        ["006", "006_1_3", "1_3", 10, -1, 21, 11, "Micro - 1/2", "R12", "", "Contempt", 2],
        [7, "007_2_1", "2_1", 998, 1000, -1, 3, "Micro - 1/2", "4", "", "Other", 7],
        [7, "007_3_1", "3_1", 1, 2, 3, 3, "Micro - 1/2", "4", "", "Fear", 4],
        [11, "011_1_1", "1_1", 40, 44, 49, 9, "Micro - 1/2", "4", "", "Anger", 1],
        [11, "011_2_1", "2_1", 1, 2, 3, 3, "Micro - 1/2", "4", "", "Surprise", 6],  # folder missing
    ]
    titles = [["SAMM Micro-FACS codes"], ["Version 2", None, "do not redistribute"], []]
    write_sheet(root / f"SAMM_Micro_FACS_Codes_v2.{sheet}", [SAMM_HEADER, *rows], titles)
    return root


def make_ckplus(root: Path) -> Path:
    images, emotion = root / "cohn-kanade-images", root / "Emotion"
    write_frames(images / "S005" / "001", range(1, 12), "S005_001_{n:08d}.png")
    (emotion / "S005" / "001").mkdir(parents=True)
    (emotion / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text("   3.0000000e+00\n")
    write_frames(images / "S010" / "002", [1, 2], "S010_002_{n:08d}.png")  # only 2 frames
    (emotion / "S010" / "002").mkdir(parents=True)
    (emotion / "S010" / "002" / "S010_002_00000002_emotion.txt").write_text("   5.0000000e+00\n")
    write_frames(images / "S010" / "003", range(1, 6), "S010_003_{n:08d}.png")  # unlabelled
    (emotion / "S010" / "003").mkdir(parents=True)
    (emotion / "S011" / "001").mkdir(parents=True)  # labelled, images missing
    (emotion / "S011" / "001" / "S011_001_00000009_emotion.txt").write_text("   7.0000000e+00\n")
    write_frames(images / "S014" / "001", range(1, 21), "S014_001_{n:08d}.png")
    (emotion / "S014" / "001").mkdir(parents=True)
    (emotion / "S014" / "001" / "S014_001_00000020_emotion.txt").write_text("   2.0000000e+00\n")
    return root


def issues_by_sample(index) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for issue in index.issues:
        found.setdefault(issue.sample_id, []).append((issue.action, issue.reason))
    return found


# --- CASME II ----------------------------------------------------------------------------------------------


def test_casme2_reads_every_quirk_and_reports_it(casme_root, landmarker):
    index = read_casme2(casme_root, landmarker=landmarker)
    summary = index.summary()
    assert summary["protocol"] == "5class" and summary["classes"] == [
        "happiness",
        "disgust",
        "surprise",
        "repression",
        "others",
    ]
    assert summary["n_samples"] == 6 and summary["n_subjects"] == 3
    assert summary["per_class"] == {"happiness": 1, "disgust": 1, "surprise": 1, "repression": 1, "others": 2}
    assert summary["per_subject"] == {"sub01": 3, "sub02": 1, "sub03": 2}
    assert summary["n_skipped"] == 3 and summary["n_repaired"] == 4
    by_id = {s.sample_id: s for s in index.samples}
    assert by_id["sub01/EP02_01f"].image_path.name == "img50.jpg"
    assert by_id["sub01/EP03_02"].image_path.name == "img100.jpg"  # numeric, not text, order
    assert by_id["sub01/EP03_02"].label == "disgust" and by_id["sub01/EP03_02"].raw_label == "Disgust"
    assert by_id["sub01/EP04_01"].apex_frame == SPOTTED_APEX
    assert by_id["sub02/EP01_01"].apex_frame == 29
    assert by_id["sub03/EP07_01"].offset_frame == 8 and by_id["sub03/EP08_01"].offset_frame == 8
    assert all(s.image_path.is_file() and "CASME2_RAW_selected" in str(s.image_path) for s in index.samples)
    issues = issues_by_sample(index)
    assert issues["sub01/EP04_01"] == [
        ("repaired", f"apex missing in sheet; chosen by frame-difference spotter: frame {SPOTTED_APEX}")
    ]
    assert issues["sub02/EP01_01"] == [
        ("repaired", "apex frame 30 has no image; used the nearest frame within onset..offset: 29")
    ]
    assert issues["sub02/EP05_02"] == [("skipped", "clip folder missing")]
    assert issues["sub02/EP06_01"] == [("skipped", "label 'fear' not in protocol 5class")]
    assert issues["sub03/EP09_01"] == [("skipped", "label 'sadness' not in protocol 5class")]
    assert issues["sub03/EP07_01"] == [("repaired", "offset 0 before onset 1; used the clip's last frame: 8")]
    assert issues["sub03/EP08_01"] == [("repaired", "offset missing in sheet; used the clip's last frame: 8")]
    assert "sub01/EP03_02" not in issues  # label spacing/capitals are normalised silently
    json.dumps(summary)  # the CLI prints it


@pytest.mark.parametrize(
    ("protocol", "per_class"),
    [
        (
            "7class",
            {"happiness": 1, "disgust": 1, "surprise": 1, "repression": 1, "others": 2, "fear": 1, "sadness": 1},
        ),
        ("3class", {"positive": 1, "negative": 2, "surprise": 1}),
    ],
)
def test_casme2_protocols(casme_root, landmarker, protocol, per_class):
    summary = read_dataset("casme2", casme_root, protocol=protocol, landmarker=landmarker).summary()
    assert summary["per_class"] == per_class and summary["n_samples"] == sum(per_class.values())


def test_casme2_root_resolution(tmp_path, smile_frames, landmarker):
    # the subject folders themselves, sheet in the parent
    both = make_casme2(tmp_path / "both", smile_frames)
    direct = read_casme2(both / "CASME2_RAW_selected", landmarker=landmarker)
    assert direct.summary()["n_samples"] == 6
    # the Cropped release (reg_img*.jpg) alone, and RAW preferred when both are present
    make_casme2(tmp_path / "both", smile_frames, folder="CASME2_Cropped", prefix="reg_img")
    assert all("CASME2_RAW_selected" in str(s.image_path) for s in read_casme2(both, landmarker=landmarker).samples)
    cropped = make_casme2(tmp_path / "cropped", smile_frames, folder="CASME2_Cropped", prefix="reg_img")
    index = read_casme2(cropped, landmarker=landmarker)
    assert index.summary()["n_samples"] == 6 and all(s.image_path.name.startswith("reg_img") for s in index.samples)


def test_casme2_csv_sheet_and_explicit_coding(tmp_path, smile_frames, landmarker):
    root = make_casme2(tmp_path / "c", smile_frames, sheet="csv")
    assert read_casme2(root, landmarker=landmarker).summary()["n_samples"] == 6
    elsewhere = write_sheet(tmp_path / "my sheet.xlsx", [CASME_HEADER, CASME_ROWS[0]])
    index = read_casme2(root, coding=elsewhere)  # no apex to spot: no landmarker needed
    assert [s.sample_id for s in index.samples] == ["sub01/EP02_01f"]


def test_landmarker_is_created_only_when_an_apex_must_be_chosen(tmp_path, smile_frames, monkeypatch):
    created = []
    # the readers create dlib's landmarker through realtime.core.landmarks.LazyLandmarker
    monkeypatch.setattr(landmarks_module, "FaceLandmarker", lambda: created.append(1) or FaceLandmarker())
    rows = [r for r in CASME_ROWS if r[3] != "/"]
    root = make_casme2(tmp_path / "c", smile_frames, rows=rows)
    read_casme2(root)
    assert not created
    (root / "CASME2-coding-20140508.xlsx").unlink()
    make_casme2(root, smile_frames)
    assert read_casme2(root).summary()["n_repaired"] == 4 and created == [1]


class _NoLandmarker:
    def detect(self, image):
        raise AssertionError("the apex cache should have answered")

    landmarks = detect


def test_apex_choice_is_cached(casme_root, tmp_path, landmarker):
    cache = tmp_path / "apex-cache"
    first = read_casme2(casme_root, landmarker=landmarker, apex_cache_dir=cache)
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["frame"] == f"img{SPOTTED_APEX}.png"
    again = read_casme2(casme_root, landmarker=_NoLandmarker(), apex_cache_dir=cache)
    assert again.samples == first.samples
    # a changed frame invalidates the entry
    clip = casme_root / "CASME2_RAW_selected" / "sub01" / "EP04_01"
    os.utime(clip / "img12.png", ns=(1, 1))
    with pytest.raises(AssertionError, match="apex cache"):
        read_casme2(casme_root, landmarker=_NoLandmarker(), apex_cache_dir=cache)


def test_casme2_unknown_label_names_sheet_and_row(tmp_path, smile_frames):
    rows = [CASME_ROWS[0], [1, "EP03_02", 95, 100, 105, "", "contempt", None]]
    root = make_casme2(tmp_path / "c", smile_frames, rows=rows)
    with pytest.raises(UserInputError, match=r"CASME2-coding-20140508\.xlsx row 3: unknown emotion 'contempt'"):
        read_casme2(root)


def test_casme2_missing_column_names_missing_and_found(tmp_path, smile_frames):
    header = [c for c in CASME_HEADER if c != "ApexFrame"]
    root = make_casme2(tmp_path / "c", smile_frames, rows=[])
    write_sheet(root / "CASME2-coding-20140508.xlsx", [header, [1, "EP02_01f", 46, 55, "", "happiness", None]])
    with pytest.raises(UserInputError) as error:
        read_casme2(root)
    message = str(error.value)
    assert "CASME2-coding-20140508.xlsx" in message and "lacks required column(s) ApexFrame" in message
    assert "found: Subject, Filename, OnsetFrame, OffsetFrame, Action Units, Estimated Emotion" in message
    assert "\n" not in message


def test_casme2_coding_sheet_search(tmp_path, smile_frames):
    root = make_casme2(tmp_path / "c", smile_frames, rows=[CASME_ROWS[0]])
    write_sheet(root / "CASME2-coding-updated.csv", [CASME_HEADER, CASME_ROWS[0]])
    with pytest.raises(UserInputError, match=r"several CASME II coding sheets.*CASME2-coding-20140508\.xlsx.*--coding"):
        read_casme2(root)
    for sheet in root.glob("*coding*"):
        sheet.unlink()
    (root / "~$CASME2-coding-20140508.xlsx").write_bytes(b"lock")  # Excel's lock file is ignored
    with pytest.raises(UserInputError, match="no CASME II coding sheet"):
        read_casme2(root)
    with pytest.raises(UserInputError, match=r"coding sheet not found: .*nope\.xlsx"):
        read_casme2(root, coding=tmp_path / "nope.xlsx")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a workbook")
    with pytest.raises(UserInputError, match=r"cannot read coding sheet .*broken\.xlsx"):
        read_casme2(root, coding=broken)


def test_casme2_unreadable_apex_image_is_an_error(tmp_path, smile_frames):
    root = make_casme2(tmp_path / "c", smile_frames, rows=[CASME_ROWS[0]])
    (root / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img50.jpg").write_bytes(b"")
    with pytest.raises(UserInputError, match=r"cannot read image .*img50\.jpg: the file is empty"):
        read_casme2(root)


# --- SAMM --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
def test_samm_title_rows_minus_one_and_labels(tmp_path, smile_frames, landmarker, sheet):
    root = make_samm(tmp_path / "samm", smile_frames, sheet)
    index = read_samm(root, landmarker=landmarker)
    summary = index.summary()
    assert summary["classes"] == ["anger", "contempt", "happiness", "surprise", "others"]
    assert summary["n_samples"] == 4 and summary["per_subject"] == {"006": 2, "007": 1, "011": 1}
    assert summary["per_class"] == {"anger": 1, "contempt": 1, "happiness": 1, "surprise": 0, "others": 1}
    by_id = {s.sample_id: s for s in index.samples}
    assert by_id["006/006_1_2"].image_path.name == "006_05566.jpg"
    assert by_id["006/006_1_3"].apex_frame == SPOTTED_APEX
    assert by_id["007/007_2_1"].raw_label == "Other" and by_id["007/007_2_1"].offset_frame == 1002
    assert by_id["011/011_1_1"].image_path.name == "011_44.jpg"
    issues = issues_by_sample(index)
    assert issues == {
        "006/006_1_3": [
            ("repaired", f"apex missing in sheet; chosen by frame-difference spotter: frame {SPOTTED_APEX}")
        ],
        "007/007_2_1": [("repaired", "offset missing in sheet; used the clip's last frame: 1002")],
        "007/007_3_1": [("skipped", "label 'fear' not in protocol 5class")],
        "011/011_2_1": [("skipped", "clip folder missing")],
    }


@pytest.mark.parametrize(("protocol", "n"), [("8class", 5), ("3class", 4)])
def test_samm_protocols(tmp_path, smile_frames, landmarker, protocol, n):
    root = make_samm(tmp_path / "samm", smile_frames)
    index = read_dataset("samm", root, protocol=protocol, landmarker=landmarker)
    assert index.summary()["n_samples"] == n
    if protocol == "3class":
        assert index.summary()["per_class"] == {"positive": 1, "negative": 3, "surprise": 0}


def test_samm_nested_root_and_sheet_in_parent(tmp_path, smile_frames, landmarker):
    data = make_samm(tmp_path / "release" / "SAMM", smile_frames)
    (data / "SAMM_Micro_FACS_Codes_v2.xlsx").rename(tmp_path / "release" / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert read_samm(data, landmarker=landmarker).summary()["n_samples"] == 4  # sheet in the parent
    assert read_samm(tmp_path / "release", landmarker=landmarker).summary()["n_samples"] == 4  # nested


def test_samm_missing_header_is_reported(tmp_path, smile_frames):
    root = make_samm(tmp_path / "samm", smile_frames)
    write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", [["SAMM"], ["Subject", "Filename", "Apex Frame"]])
    with pytest.raises(UserInputError, match=r"lacks required column\(s\) OnsetFrame, OffsetFrame, Estimated Emotion"):
        read_samm(root)


# --- CK+ ---------------------------------------------------------------------------------------------------


def test_ckplus_last_frames_of_labelled_sequences(tmp_path):
    index = read_ckplus(make_ckplus(tmp_path / "ck"))
    summary = index.summary()
    assert summary["n_samples"] == 3 + 2 + 3 and summary["n_subjects"] == 3
    assert summary["per_class"]["disgust"] == 3 and summary["per_class"]["happiness"] == 2
    assert summary["per_class"]["contempt"] == 3
    ids = [s.sample_id for s in index.samples]
    assert ids[:3] == ["S005/001/00000009", "S005/001/00000010", "S005/001/00000011"]
    assert index.samples[2].image_path.name == "S005_001_00000011.png" and index.samples[2].subject == "S005"
    assert issues_by_sample(index) == {
        "S010/002": [("repaired", "sequence has only 2 frame(s); used 2 of 3")],
        "S011/001": [("skipped", "image sequence missing")],
    }
    one = read_dataset("ckplus", tmp_path / "ck", frames_per_sequence=1)
    assert [s.sample_id for s in one.samples] == ["S005/001/00000011", "S010/002/00000002", "S014/001/00000020"]


@pytest.mark.parametrize("content", ["   0.0000000e+00", "", "happy", "   8.0000000e+00"])
def test_ckplus_bad_emotion_file_names_it(tmp_path, content):
    root = make_ckplus(tmp_path / "ck")
    (root / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text(content)
    with pytest.raises(UserInputError, match=r"S005_001_00000011_emotion\.txt"):
        read_ckplus(root)


def test_ckplus_missing_folders_are_named(tmp_path):
    root = make_ckplus(tmp_path / "ck")
    (root / "Emotion").rename(root / "labels")
    with pytest.raises(UserInputError, match=r"lacks Emotion/"):
        read_ckplus(root)
    with pytest.raises(UserInputError, match="no coding sheet"):
        read_dataset("ckplus", root, coding=tmp_path / "x.xlsx")


# --- all readers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_wrong_roots_are_one_line_errors(tmp_path, name):
    with pytest.raises(UserInputError, match="is not a folder") as error:
        read_dataset(name, tmp_path / "missing")
    assert "\n" not in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"empty") as error:
        read_dataset(name, tmp_path / "empty")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", DATASETS)
def test_unknown_protocol_lists_the_valid_ones(tmp_path, name):
    with pytest.raises(UserInputError, match=r"unknown protocol '9class'.*choose one of: .*class"):
        read_dataset(name, tmp_path, protocol="9class")


def test_unknown_dataset():
    with pytest.raises(UserInputError, match="choose one of: casme2, ckplus, samm"):
        read_dataset("smic", Path("."))


# --- helpers ------------------------------------------------------------------------------------------------


def test_frames_are_indexed_by_number(tmp_path):
    write_frames(tmp_path, [99, 100, 8], "img{n}.jpg")
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "notes.jpg").write_bytes(b"x")
    assert list(list_frames(tmp_path)) == [8, 99, 100]
    assert frame_number(Path("reg_img46.jpg")) == 46 and frame_number(Path("006_05562.jpg")) == 5562


@pytest.mark.parametrize(
    ("cell", "expected"),
    [(46, 46), (46.0, 46), (" 46 ", 46), ("046", 46), ("/", None), (None, None), ("", None), (-1, None), (4.5, None)],
)
def test_frame_cells(cell, expected):
    assert parse_frame(cell) == expected


def test_header_is_found_by_name_below_title_rows(tmp_path):
    sheet = write_sheet(
        tmp_path / "s.csv",
        [["Estimated emotion", "", "ONSET frame", "Subject"], ["happiness", "junk", "3", "1"], ["", "", "", ""]],
        [["title"], ["Subject only"]],
    )
    table = read_sheet(sheet, ["Subject", "OnsetFrame", "Estimated Emotion"])
    assert table.header_row == 3 and len(table.rows) == 1
    assert table.rows[0].get("Onset Frame") == "3" and table.rows[0].get("estimated_emotion") == "happiness"


def test_casme2_odd_rows_are_skipped_with_reasons(tmp_path, smile_frames):
    rows = [
        CASME_ROWS[0],
        [1, "EP02_01f", 46, 51, 55, "", "happiness", None],  # the same clip again
        [None, "EP03_02", 95, 100, 105, "", "disgust", None],
        ["sub", "EP03_02", 95, 100, 105, "", "disgust", None],
        [1, "EP03_02", 95, 100, 105, "", " ", None],
        [1, "ep03_02", 120, 125, 130, "", "disgust", None],  # folder case differs; no frame in onset..offset
        [None, None, None, None, None, None, None, None],  # blank rows are dropped silently
    ]
    root = make_casme2(tmp_path / "c", smile_frames, rows=rows)
    index = read_casme2(root)
    assert [s.sample_id for s in index.samples] == ["sub01/EP02_01f"]
    reasons = [(i.sample_id, i.action, i.reason) for i in index.issues]
    assert reasons == [
        ("sub01/EP02_01f", "skipped", "duplicate row for this clip (first at row 2)"),
        ("/EP03_02", "skipped", "subject or filename missing in sheet"),
        ("sub/EP03_02", "skipped", "subject 'sub' is not a subject number"),
        ("sub01/EP03_02", "skipped", "emotion missing in sheet"),
        ("sub01/ep03_02", "skipped", "no frame between onset 120 and offset 130 in the clip folder"),
    ]
    assert index.issues[0].file.endswith("CASME2-coding-20140508.xlsx row 3")
