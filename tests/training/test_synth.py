"""The generator of micro-expression data (training/synth): faces, action units, the warp, the layouts, the CLI."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from realtime.core.errors import UserInputError
from training.datasets import read_casme2, read_ckplus, read_samm
from training.datasets.base import list_frames
from training.synth import (
    ACTION_UNITS,
    EMOTION_ACTION_UNITS,
    AUCode,
    Pose,
    Subject,
    SubjectLook,
    SynthManifest,
    clip_profile,
    expression_displacements,
    expression_field,
    load_face_photos,
    make_subjects,
    write_casme2,
    write_ckplus,
    write_samm,
)
from training.synth import cli as synth_cli
from training.synth.actions import MIRROR, SIDE
from training.synth.faces import shared_landmarker
from training.synth.warp import DEFAULT_WARP

SMALL = (320, 240)


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def casme2(tmp_path_factory) -> SynthManifest:
    return write_casme2(tmp_path_factory.mktemp("casme2"), seed=5, n_subjects=3, samples_per_class=1, frame_size=SMALL)


@pytest.fixture(scope="module")
def ckplus(tmp_path_factory) -> SynthManifest:
    return write_ckplus(
        tmp_path_factory.mktemp("ckplus"), seed=5, n_subjects=2, frame_size=SMALL, unlabelled_sequences=2
    )


@pytest.fixture(scope="module")
def samm(tmp_path_factory) -> SynthManifest:
    return write_samm(tmp_path_factory.mktemp("samm"), seed=5, n_subjects=2, frame_size=SMALL)


def render_face(photo: int):
    """Photo ``photo`` of the defaults (0 Grace Hopper, 1 the astronaut), unmorphed, at 640×480."""
    source = load_face_photos()[photo]
    return Subject("s", source, SubjectLook(photo=photo, face_size=0.55)).render((640, 480))


@pytest.fixture(scope="module")
def face():
    """Grace Hopper at 640×480 (a 120 px inter-ocular distance)."""
    return render_face(0)


@pytest.fixture(scope="module")
def astronaut():
    """The astronaut at 640×480: dlib fits her face closely (Grace Hopper's glasses hold its brows still)."""
    return render_face(1)


# --- determinism --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "writer, options",
    [
        (write_casme2, {"n_subjects": 1, "samples_per_class": 1}),
        (write_ckplus, {"n_subjects": 1, "frames_per_sequence": 3}),
        (write_samm, {"n_subjects": 1, "frames_per_clip": 5}),
    ],
    ids=["casme2", "ckplus", "samm"],
)
def test_same_seed_writes_the_same_bytes(tmp_path, writer, options):
    first = writer(tmp_path / "a", seed=11, frame_size=SMALL, **options)
    writer(tmp_path / "b", seed=11, frame_size=SMALL, **options)
    writer(tmp_path / "c", seed=12, frame_size=SMALL, **options)
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert a != c
    assert first.path.is_file() and SynthManifest.load(tmp_path / "a").samples == first.samples


# --- CASME II layout ------------------------------------------------------------------------------------------------


def test_casme2_layout_paths_and_numeric_frame_names(casme2):
    root = casme2.out
    assert casme2.root == root and casme2.frames_root == root / "CASME2_RAW_selected"
    assert casme2.coding == root / "CASME2-coding-20140508.xlsx" and casme2.coding.is_file()
    assert sorted(p.name for p in casme2.frames_root.iterdir()) == ["sub01", "sub02", "sub03"]
    for sample in casme2.samples:
        folder = root / sample.folder
        assert re.fullmatch(r"CASME2_RAW_selected/sub\d\d/EP\d\d_\d\df?", sample.folder)
        if sample.expected == "skipped":
            assert not folder.exists()
            continue
        names = {p.name for p in folder.iterdir()}
        assert names == {f"img{n}.jpg" for n in sample.frames}
        assert sample.onset_frame < sample.apex_frame < sample.offset_frame
        assert read_image(folder / f"img{sample.frames[0]}.jpg").shape == (240, 320, 3)
    crossing = [s for s in casme2.samples if s.onset_frame <= 99 < 100 <= s.offset_frame]
    assert crossing, "one clip must cross img99 → img100"
    frames = list(list_frames(casme2.out / crossing[0].folder))
    assert frames == sorted(frames) and sorted(f"img{n}.jpg" for n in frames) != [f"img{n}.jpg" for n in frames]


def test_casme2_sheet_has_every_quirk_and_the_manifest_names_them(casme2):
    rows = list(openpyxl.load_workbook(casme2.coding, read_only=True).active.iter_rows(values_only=True))
    header = rows[0]
    assert [h for h in header if h is not None] == [
        "Subject",
        "Filename",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Action Units",
        "Estimated Emotion",
    ]
    assert None in header  # the extra unnamed column
    column = {name: header.index(name) for name in header if name is not None}
    body = rows[1:]
    assert len(body) == len(casme2.samples)
    subjects = {type(r[column["Subject"]]) for r in body}
    assert subjects == {int, str}  # 1 and '01'
    apex_cells = [r[column["ApexFrame"]] for r in body]
    assert apex_cells.count("/") == 1
    emotions = [r[column["Estimated Emotion"]] for r in body]
    assert any(e != e.strip() for e in emotions) and any(e != e.lower() for e in emotions)

    by_expected = {kind: [s for s in casme2.samples if s.expected == kind] for kind in ("repaired", "skipped")}
    assert len(by_expected["repaired"]) == 2 and len(by_expected["skipped"]) == 1
    slash = next(s for s in by_expected["repaired"] if s.reader_apex is None)
    assert body[[r[column["Filename"]] for r in body].index(slash.sample_id)][column["ApexFrame"]] == "/"
    missing = next(s for s in by_expected["repaired"] if s.reader_apex is not None)
    assert missing.apex_frame not in missing.frames and missing.reader_apex == missing.apex_frame - 1
    assert not (casme2.out / missing.folder / f"img{missing.apex_frame}.jpg").exists()
    assert (casme2.out / missing.folder / f"img{missing.apex_frame - 1}.jpg").exists()
    assert {s.label for s in casme2.samples} == {
        "happiness",
        "disgust",
        "surprise",
        "repression",
        "others",
        "fear",
        "sadness",
    }


def test_casme2_reader_finds_exactly_what_the_manifest_says(casme2, tmp_path):
    for protocol in ("5class", "7class", "3class"):
        index = read_casme2(casme2.root, protocol=protocol, landmarker=shared_landmarker(), apex_cache_dir=tmp_path)
        assert index.summary()["per_class"] == casme2.expected_counts[protocol]
        actions: dict[str, set[str]] = {}
        for issue in index.issues:
            actions.setdefault(issue.sample_id, set()).add(issue.action)
        for reader_id, outcome in casme2.outcomes(protocol).items():
            assert (outcome in actions.get(reader_id, set())) if outcome != "ok" else reader_id not in actions
        for sample in index.samples:
            expected = casme2.sample(sample.sample_id).reader_apex
            assert expected is None or sample.apex_frame == expected


def test_casme2_cropped_variant(tmp_path):
    manifest = write_casme2(tmp_path, seed=1, n_subjects=1, samples_per_class=1, frame_size=SMALL, cropped=True)
    assert manifest.frames_root == tmp_path / "CASME2_Cropped"
    sample = next(s for s in manifest.samples if s.expected == "ok")
    names = sorted(p.name for p in (tmp_path / sample.folder).iterdir())
    assert names == sorted(f"reg_img{n}.jpg" for n in sample.frames)
    assert read_image(tmp_path / sample.folder / names[0]).shape == (170, 140, 3)
    index = read_casme2(tmp_path, protocol="7class", landmarker=shared_landmarker(), apex_cache_dir=tmp_path / "c")
    assert index.summary()["per_class"] == manifest.expected_counts["7class"]


def test_the_apex_frame_moves_most_from_the_onset(casme2):
    checked = 0
    for sample in casme2.samples:
        if sample.expected != "ok":
            continue
        folder = casme2.out / sample.folder
        onset = read_image(folder / f"img{sample.onset_frame}.jpg").astype(np.float32)
        change = {n: float(np.abs(read_image(folder / f"img{n}.jpg") - onset).mean()) for n in sample.frames}
        assert max(change, key=change.get) == sample.apex_frame, sample
        checked += 1
    assert checked >= 15


# --- CK+ and SAMM layouts ---------------------------------------------------------------------------------------------


def test_ckplus_layout_emotion_files_and_colour_modes(ckplus):
    root = ckplus.out
    labelled = [s for s in ckplus.samples if s.expected == "ok"]
    unlabelled = [s for s in ckplus.samples if s.expected == "unlabelled"]
    assert len(labelled) == 14 and len(unlabelled) == 2
    modes = set()
    for sample in ckplus.samples:
        subject, sequence = sample.subject, sample.sample_id
        assert re.fullmatch(r"S\d{3}", subject) and re.fullmatch(r"\d{3}", sequence)
        images = sorted((root / "cohn-kanade-images" / subject / sequence).iterdir())
        assert [p.name for p in images] == [f"{subject}_{sequence}_{n:08d}.png" for n in range(1, 7)]
        assert sample.apex_frame == 6 and sample.reader_apex == 6
        emotion_dir = root / "Emotion" / subject / sequence
        files = list(emotion_dir.iterdir())
        if sample.expected == "unlabelled":
            assert emotion_dir.is_dir() and files == []
            continue
        assert [p.name for p in files] == [f"{subject}_{sequence}_00000006_emotion.txt"]
        text = files[0].read_text()
        assert re.fullmatch(r" {3}[1-7]\.0000000e\+00\n", text)
        codes = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happiness": 5, "sadness": 6, "surprise": 7}
        assert float(text) == codes[sample.label]
        modes.add(read_image(images[-1]).ndim)
        # neutral → peak: the last frame is the one that moved most
        first = read_image(images[0]).astype(np.float32)
        change = [float(np.abs(read_image(p) - first).mean()) for p in images]
        assert int(np.argmax(change)) == len(images) - 1
    assert modes == {2, 3}  # grey and colour sequences
    index = read_ckplus(root)
    assert index.summary()["per_class"] == {k: 3 * v for k, v in ckplus.expected_counts["7class"].items()}


def test_samm_layout_title_rows_and_minus_one_apex(samm, tmp_path):
    assert samm.frames_root == samm.out / "SAMM" and samm.coding == samm.out / "SAMM_Micro_FACS_Codes_v2.xlsx"
    rows = list(openpyxl.load_workbook(samm.coding, read_only=True).active.iter_rows(values_only=True))
    header_row = next(i for i, r in enumerate(rows) if r and r[0] == "Subject")
    assert 2 <= header_row <= 3  # title rows come first
    header = rows[header_row]
    for name in ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units"):
        assert name in header
    apex = [r[header.index("Apex Frame")] for r in rows[header_row + 1 :]]
    assert apex.count(-1) == 1
    labels = {r[header.index("Estimated Emotion")] for r in rows[header_row + 1 :]}
    assert labels == {"Anger", "Contempt", "Disgust", "Fear", "Happiness", "Other", "Sadness", "Surprise"}
    for sample in samm.samples:
        assert re.fullmatch(r"SAMM/\d{3}/\d{3}_\d_\d+", sample.folder)
        names = sorted(p.name for p in (samm.out / sample.folder).iterdir())
        assert names == [f"{sample.subject}_{n:05d}.jpg" for n in sample.frames]
        assert read_image(samm.out / sample.folder / names[0]).shape == (240, 320)  # grey
    index = read_samm(samm.root, protocol="8class", landmarker=shared_landmarker(), apex_cache_dir=tmp_path)
    assert index.summary()["per_class"] == samm.expected_counts["8class"]
    assert [i.action for i in index.issues] == ["repaired"]


# --- action units and the warp --------------------------------------------------------------------------------


def test_action_unit_tables_are_consistent():
    assert all(MIRROR[MIRROR[i]] == i for i in range(68))
    assert all(SIDE[MIRROR[i]] == -SIDE[i] for i in range(68))
    assert set(MIRROR[36:42]) == set(range(42, 48))
    for emotion, combos in EMOTION_ACTION_UNITS.items():
        for combo in combos:
            assert all(AUCode.parse(code).au in ACTION_UNITS for code in combo), emotion
    assert str(AUCode.parse(" r14 ")) == "R14"
    with pytest.raises(UserInputError, match="AU99"):
        AUCode(99)


def test_unilateral_action_moves_one_side(face):
    moves = expression_displacements(face.landmarks, [AUCode.parse("R14")], amplitude=1.0)
    assert np.abs(moves[48]).max() > 0.02 * face.frame.iod  # the subject's right corner (image left)
    assert np.abs(moves[54]).max() == 0.0
    assert moves[48, 0] < 0  # pulled outward, towards the image's left


def test_time_profile_peaks_only_at_the_apex():
    weights = clip_profile(9, 3)
    assert weights[0] == 0.0 == weights[-1] and weights[3] == 1.0
    assert np.all(np.diff(weights[:4]) > 0) and np.all(np.diff(weights[3:]) < 0)
    assert clip_profile(6, 5)[-1] == 1.0 and np.all(np.diff(clip_profile(6, 5)) > 0)


@pytest.mark.parametrize("amplitude", [1.0, 5.0, 10.0])
def test_the_warp_never_folds(face, amplitude):
    rng = np.random.default_rng(int(amplitude))
    for emotion in EMOTION_ACTION_UNITS:
        codes = [AUCode.parse(c) for c in EMOTION_ACTION_UNITS[emotion][int(rng.integers(3))]]
        field, scale = expression_field(face, codes, amplitude)
        assert field.min_jacobian() >= DEFAULT_WARP.min_jacobian - 1e-6
        assert 0.0 < scale <= 1.0
        # the sampling map that is actually applied has a positive Jacobian at every pixel
        for weight in (0.5, 1.0):
            _, map_x, map_y = field.sampling_maps(weight)
            dxdy, dxdx = np.gradient(map_x.astype(np.float64))
            dydy, dydx = np.gradient(map_y.astype(np.float64))
            assert (dxdx * dydy - dxdy * dydx).min() > 0.0, (emotion, weight)
    if amplitude == 1.0:
        assert scale == 1.0  # realistic expressions are never weakened


@pytest.mark.parametrize("codes", [("12",), ("1", "2"), ("15",), ("9",)], ids=["AU12", "AU1+2", "AU15", "AU9"])
def test_the_warp_moves_landmarks_by_the_requested_amount(face, astronaut, codes):
    aus = [AUCode.parse(c) for c in codes]
    for subject in (face, astronaut):
        requested = expression_displacements(subject.landmarks, aus, amplitude=3.0)
        field, scale = expression_field(subject, aus, amplitude=3.0)
        assert scale == 1.0
        moved = np.flatnonzero(np.linalg.norm(requested, axis=1) > 0.05 * subject.frame.iod)
        assert moved.size >= 2
        wanted = requested[moved]
        size = np.linalg.norm(wanted, axis=1).max()
        # the field meets the request at the landmarks…
        assert np.linalg.norm(field.at(subject.landmarks[moved]) - wanted, axis=1).max() < 0.15 * size
        # …and the image content there moves by it (pyramidal Lucas-Kanade between the two images)
        warped = field.apply(subject.image)
        grey = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in (subject.image, warped)]
        start = subject.landmarks[moved].astype(np.float32).reshape(-1, 1, 2)
        end, found, _ = cv2.calcOpticalFlowPyrLK(*grey, start, None, winSize=(21, 21), maxLevel=3)
        assert found.all()
        flow = (end - start).reshape(-1, 2)
        assert np.linalg.norm(flow.mean(axis=0) - wanted.mean(axis=0)) < 0.15 * size
    # dlib, fitted on the warped image, finds the landmarks moved by the requested amount
    landmarker = shared_landmarker()
    requested = expression_displacements(astronaut.landmarks, aus, amplitude=3.0)
    warped = expression_field(astronaut, aus, amplitude=3.0)[0].apply(astronaut.image)
    before = landmarker.landmarks(astronaut.image, landmarker.detect(astronaut.image)[0])
    after = landmarker.landmarks(warped, landmarker.detect(warped)[0])
    moved = np.flatnonzero(np.linalg.norm(requested, axis=1) > 0.05 * astronaut.frame.iod)
    measured, wanted = (after - before)[moved].mean(axis=0), requested[moved].mean(axis=0)
    assert np.linalg.norm(measured - wanted) < 0.25 * np.linalg.norm(wanted) + 1.0, (measured, wanted)


def test_subjects_stay_detectable_and_their_landmarks_are_true(tmp_path):
    photos = load_face_photos()
    subjects = make_subjects(photos, [f"s{i}" for i in range(4)], np.random.default_rng(3), grey=[False, True] * 2)
    landmarker = shared_landmarker()
    for subject in subjects:
        face = subject.render(SMALL, Pose.draw(np.random.default_rng(1)))
        assert face.image.ndim == (2 if subject.look.grey else 3)
        boxes = landmarker.detect(face.image)
        assert boxes and boxes[0].height >= 90
        fitted = landmarker.landmarks(face.image, boxes[0])
        assert np.abs(fitted - face.landmarks).mean() < 0.06 * face.frame.iod
    assert {s.look.mirror for s in subjects} == {False, True}


@pytest.mark.parametrize("face_px", [45, 70])
def test_a_small_face_is_the_only_face_in_its_frame(face_px):
    """Where the photo does not reach, the frame is a blurred backdrop: a mirrored border tiled a small face's
    frame with copies of it, and the face stage followed a copy that never changed expression."""
    landmarker = shared_landmarker()
    for number, photo in enumerate(load_face_photos()):
        aspect = float(np.ptp(photo.landmarks[:, 1]) / np.ptp(photo.landmarks[:, 0]))
        # rendered larger and shrunk, as the realistic set renders a small face
        subject = Subject(f"s{number}", photo, SubjectLook(number, face_size=face_px * aspect / 480.0))
        face = subject.render((1920, 1440))
        image, points = cv2.resize(face.image, (640, 480), interpolation=cv2.INTER_AREA), face.landmarks / 3.0
        assert np.ptp(points[:, 0]) == pytest.approx(face_px, rel=0.05)
        boxes = landmarker.detect(image, 80.0 / 40.0)  # as the face stage searches for small faces
        centre = points.mean(axis=0)
        offsets = [np.hypot((b.left + b.right) / 2 - centre[0], (b.top + b.bottom) / 2 - centre[1]) for b in boxes]
        assert len(boxes) == 1 and offsets[0] < 0.5 * boxes[0].width, (boxes, centre)  # the face, and only it


# --- bad input and the command line -----------------------------------------------------------------------------------


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training synth")
    synth_cli.configure_parser(parser)
    return parser


def test_bad_photos_are_one_clear_error(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for photo, message in ((tmp_path / "nobody.jpg", "not found"), (blank, "no face"), (text, "cannot read")):
        with pytest.raises(UserInputError, match=message) as error:
            write_casme2(tmp_path / "out", photos=[photo], frame_size=SMALL)
        assert str(photo) in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing is written before the photos are known to be good


def test_cli_writes_and_summarises(parser, tmp_path, capsys):
    out = tmp_path / "samm"
    argv = ["samm", "--out", str(out), "--size", "320x240", "--subjects", "1", "--frames", "4"]
    assert synth_cli.main(parser.parse_args(argv)) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("wrote samm: 8 clips (32 frames, 1 subjects, 320x240)")
    assert (out / "synth_manifest.json").is_file()
    with pytest.raises(UserInputError, match="already exists"):
        synth_cli.main(parser.parse_args(argv))
    assert synth_cli.main(parser.parse_args([*argv, "--force"])) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["casme2", "--size", "320by240"], "320by240"),
        (["casme2", "--size", "100x80"], "100x80"),
        (["casme2", "--faces", "missing.jpg"], "missing.jpg"),
        (["ckplus", "--cropped"], "--cropped"),
        (["samm", "--amplitude", "0"], "amplitude"),
        (["casme2", "--subjects", "0"], "n_subjects"),
    ],
)
def test_cli_bad_input(parser, tmp_path, argv, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        synth_cli.main(parser.parse_args([*argv, "--out", str(tmp_path / "o")]))


def test_cli_help_teaches(parser):
    text = parser.format_help()
    assert "examples:" in text and "python -m training synth casme2 --out" in text
    for option in ("--faces", "--seed", "--subjects", "--amplitude", "--size", "--no-quirks"):
        assert option in text
